"""What a tuning run leaves (checkpoints, snapshot, trial table), its limits (timeout,
seeds), its memory over trials, and the params that configure it."""

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import tune_fakes
import yaml
from helpers import child_env
from tune_fakes import COMPLETE, FAIL, PRUNED

from stockclf.config import ParamsError, load_params
from stockclf.errors import StudyError
from stockclf.pipeline.tune import TunePaths, run_tune
from stockclf.tuning.identity import identify
from stockclf.tuning.outputs import lock_safe
from stockclf.tuning.runner import TrialProgress
from stockclf.tuning.storage import open_tuning_storage


def journal_params(make_params, root: Path, **tune):
    """Tiny params on a journal file (~5 ms per storage write, vs ~100 ms for SQLite)."""
    params = make_params({"tune": {"pruner": "none", **tune}})
    return tune_fakes.on_journal(params, root / "study.journal")


def study_of(params, prepared: Path) -> optuna.Study:
    _, name = identify(params, prepared)
    return optuna.load_study(study_name=name, storage=open_tuning_storage(params.tune.storage))


def test_checkpoints_only_for_the_top_k_trials(
    make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    params = journal_params(make_params, tmp_path, n_trials=6, keep_top_k=2)
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    history = []

    def look(study, trial) -> None:  # after each trial's checkpoint bookkeeping
        history.append(
            (trial.number, {int(p.parent.name[6:]) for p in out.trials.glob("trial_*/checkpoint")})
        )

    run_tune(params, out, train_fn=tune_fakes.quick, callbacks=[look])
    values = {t.number: t.value for t in study_of(params, tiny_prepared).trials}
    for number, kept in history:
        so_far = sorted((n for n in values if n <= number), key=lambda n: (-values[n], n))
        assert kept == set(so_far[:2]), (number, kept)  # deleted once out of the top 2
    assert any(len(k) == 2 for _, k in history)

    # keep_top_k lowered on a rerun: the extra checkpoint goes, nothing else changes
    run_tune(tune_fakes.with_tune(params, keep_top_k=1), out, train_fn=tune_fakes.quick)
    best = max(values, key=lambda n: values[n])
    assert {p.parent.name for p in out.trials.glob("trial_*/checkpoint")} == {f"trial_{best:04d}"}
    assert len(list(out.trials.glob("trial_*"))) == 6  # the curves of every trial stay


def test_journal_storage_snapshot_restores_a_fresh_clone(
    make_params, tiny_prepared: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths, as under `dvc repro`
    params = tune_fakes.with_tune(
        make_params({"tune": {"n_trials": 3, "pruner": "none"}}),
        storage="journal:///tuning/study.journal",
    )
    out = TunePaths.under(Path("tuning"), tiny_prepared)
    run_tune(params, out, train_fn=tune_fakes.quick)
    study = study_of(params, tiny_prepared)
    first = [(t.number, t.params, t.value) for t in study.trials]
    snap = optuna.load_study(study_name=study.study_name, storage="sqlite:///tuning/study.db")
    assert [(t.number, t.params, t.value) for t in snap.trials] == first
    info = json.loads(out.study_info.read_text())
    assert info["storage"] == "sqlite:///tuning/study.db"
    assert info["tuned_in"] == "journal:///tuning/study.journal"
    with out.trials_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["number"]) for r in rows] == [0, 1, 2]
    assert {r["state"] for r in rows} == {"COMPLETE"}
    assert float(rows[1]["lr_head"]) == pytest.approx(study.trials[1].params["lr_head"])

    # a fresh clone: the journal is not a DVC output, the pulled snapshot is
    Path("tuning/study.journal").unlink()
    Path("dvc.lock").write_text(
        yaml.safe_dump({"stages": {"tune": {"outs": [{"path": "tuning/study.db", "md5": "x"}]}}})
    )
    more = tune_fakes.with_tune(params, n_trials=5)
    summary = run_tune(more, out, train_fn=tune_fakes.quick)
    resumed = study_of(more, tiny_prepared)
    assert summary["n_complete"] == 5
    assert [(t.number, t.params, t.value) for t in resumed.trials[:3]] == first

    # neither the journal nor the snapshot (not pulled): stop, ask for `dvc pull`
    Path("tuning/study.journal").unlink()
    Path("tuning/study.db").unlink()
    with pytest.raises(StudyError, match=r"tuning/study.db: dvc.lock records.*dvc pull tune"):
        run_tune(more, out, train_fn=tune_fakes.quick)
    assert optuna.get_all_study_names(open_tuning_storage(more.tune.storage)) == []


def test_timeout_is_honoured(make_params, tiny_prepared: Path, tmp_path: Path) -> None:
    # 2 epochs of 0.15 s: trials long enough that the timeout, not the count, ends the study
    params = journal_params(make_params, tmp_path, n_trials=100, timeout=1.0, tuning_max_epochs=2)
    started = time.monotonic()
    summary = run_tune(
        params, TunePaths.under(tmp_path / "tuning", tiny_prepared), tune_fakes.stepwise
    )
    elapsed = time.monotonic() - started
    assert summary["stopped"] == "timeout"
    assert 1 <= summary["n_complete"] <= 5  # 0.3 s a trial; no trial starts after 1 s
    assert elapsed < 4.0


@pytest.mark.parametrize(
    ("sampler", "pruner"),
    [("tpe", "median"), ("random", "hyperband"), ("cmaes", "successive_halving")],
)
def test_samplers_and_pruners_are_seeded(
    make_params, tiny_prepared: Path, tmp_path: Path, sampler: str, pruner: str
) -> None:
    def run(root: Path, seed: int) -> list[tuple]:
        params = make_params(
            {
                "seed": seed,
                "tune": {
                    "n_trials": 8,
                    "sampler": sampler,
                    "pruner": pruner,
                    "n_startup_trials": 2,
                    "tuning_max_epochs": 4,
                },
            }
        )
        params = tune_fakes.on_journal(params, root / "study.journal")
        run_tune(params, TunePaths.under(root / "tuning", tiny_prepared), train_fn=tune_fakes.quick)
        return [(t.state, t.params) for t in study_of(params, tiny_prepared).trials]

    first = run(tmp_path / "a", seed=7)
    assert first == run(tmp_path / "b", seed=7)
    assert {s for s, _ in first} <= {COMPLETE, PRUNED}
    if sampler == "random":  # the seed matters (the other samplers start the same way)
        assert [p for _, p in first] != [p for _, p in run(tmp_path / "c", seed=8)]
    if pruner != "hyperband":  # hyperband's brackets may keep all of 8 trials
        assert PRUNED in {s for s, _ in first}


def test_progress_bar_counts_finished_trials(monkeypatch) -> None:
    monkeypatch.setattr("stockclf.tuning.runner.progress_enabled", lambda: True)  # a terminal
    progress = TrialProgress(total=5, done=1)
    for frozen in (
        optuna.trial.create_trial(state=COMPLETE, value=0.3),
        optuna.trial.create_trial(state=FAIL),
        optuna.trial.create_trial(state=PRUNED),
    ):
        progress(None, frozen)
    assert progress.bar.n == 3 and progress.bar.total == 5
    progress.set_done(5)
    assert progress.bar.n == 5
    progress.close()


MEMORY_PROBE = """
import json, sys
from pathlib import Path
import psutil
from stockclf.config import load_params
from stockclf.pipeline.tune import TunePaths, run_tune
rss = []
run_tune(load_params(sys.argv[1]), TunePaths.under(Path(sys.argv[3]), Path(sys.argv[2])),
         callbacks=[lambda study, trial: rss.append(psutil.Process().memory_info().rss)])
print(json.dumps(rss))
"""


def test_memory_does_not_grow_from_trial_to_trial(
    make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    """Real tiny trials in a fresh process: RSS after 6 within 10% of RSS after 2."""
    make_params(
        {
            "model": {"backbone": "test_efficientnet"},
            "tune": {"n_trials": 6, "pruner": "none", "keep_top_k": 1},
        }
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            MEMORY_PROBE,
            str(tmp_path / "params.yaml"),
            str(tiny_prepared),
            str(tmp_path / "tuning"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=child_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(rss) == 6
    assert rss[5] <= 1.10 * rss[1], [round(r / 2**20) for r in rss]


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("postgresql://tuner:s3cret@db:5432/optuna", "holds a password"),
        ("postgresql://db/optuna?password=s3cret", "holds a password"),
        ("redis://localhost/0", "is not a supported storage"),
        ("mysql://tuner:s3cret@db/optuna", "mysql://... is not a supported storage"),
        ("sqlite:///", "names no file"),
    ],
)
def test_storage_param_is_checked(
    tmp_path: Path, repo_params_dict: dict, storage: str, message: str
) -> None:
    data = {**repo_params_dict, "tune": {**repo_params_dict["tune"], "storage": storage}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError, match=f"tune.storage: .*{message}") as err:
        load_params(path)
    assert "s3cret" not in str(err.value)


def test_tune_params_accept_workers_and_check_heartbeats(
    tmp_path: Path, repo_params_dict: dict
) -> None:
    def load(**tune):
        data = {**repo_params_dict, "tune": {**repo_params_dict["tune"], **tune}}
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(data))
        return load_params(path)

    params = load(n_jobs=4, storage="postgresql://tuner@db.lan:5432/optuna", keep_top_k=0)
    assert params.tune.n_jobs == 4 and params.tune.keep_top_k == 0
    assert load().tune.keep_top_k == 3
    with pytest.raises(ParamsError, match=r"tune: grace_period \(60\) must be longer"):
        load(heartbeat_interval=60, grace_period=60)


def test_best_params_survive_dvc_rewriting_the_lock() -> None:
    """DVC rewrites dvc.lock with ruamel.yaml after each stage; a float it reads back in
    exponent form must come out equal, or train_best looks changed after a full run."""
    import io

    from ruamel.yaml import YAML

    def rewritten(value: float) -> float:
        yml = YAML()
        first = io.StringIO()
        yml.dump({"lr": value}, first)
        second = io.StringIO()
        yml.dump(yml.load(first.getvalue()), second)  # the lock, read and written again
        return float(yml.load(second.getvalue())["lr"])

    broken = 5.12429239312534e-05
    assert rewritten(broken) != broken  # the ruamel.yaml behaviour this guards against
    assert rewritten(lock_safe(broken)) == lock_safe(broken)
    assert lock_safe(broken) == pytest.approx(broken, rel=1e-11)
    rng = np.random.default_rng(0)
    for value in 10 ** rng.uniform(-7, 0, size=500):
        assert rewritten(lock_safe(float(value))) == lock_safe(float(value))
    assert lock_safe(128) == 128 and isinstance(lock_safe(128), int)
