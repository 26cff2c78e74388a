"""Several worker processes on one study: one machine (SQLite, journal) and PostgreSQL."""

import itertools
import json
import os
import signal
import threading
import time
from pathlib import Path

import optuna
import pytest
import tune_fakes
import yaml
from helpers import run_cli
from tune_fakes import COMPLETE, FAIL, WAITING

from stockclf.pipeline.tune import TunePaths, run_tune
from stockclf.tuning.identity import identify
from stockclf.tuning.signals import TuneInterrupted
from stockclf.tuning.storage import StorageError, open_tuning_storage

PG_URL = os.environ.get("STOCKCLF_TEST_POSTGRES_URL")


def check_shared_run(study: optuna.Study, trials_root: Path, n_trials: int) -> None:
    """Exactly n_trials finished, each trial run once, by both workers, in parallel."""
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [COMPLETE] * n_trials  # none extra, none failed
    assert [t.number for t in trials] == list(range(n_trials))
    runners = {}
    for t in trials:
        markers = list((trials_root / f"trial_{t.number:04d}").glob("ran_by_*"))
        assert len(markers) == 1, f"trial {t.number} ran {len(markers)} times"
        runners[t.number] = markers[0].name
        assert t.user_attrs["worker"]["pid"] == int(markers[0].name.removeprefix("ran_by_"))
    assert len(set(runners.values())) == 2  # both processes worked
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(b[0] < a[1] for a, b in itertools.pairwise(spans))  # overlapping


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_worker_processes_share_one_study(
    make_params, tiny_prepared: Path, tmp_path: Path, kind: str
) -> None:
    params = make_params(
        {"tune": {"n_trials": 6, "n_jobs": 2, "pruner": "none", "tuning_max_epochs": 4}}
    )
    if kind == "journal":
        params = tune_fakes.on_journal(params, tmp_path / "tuning" / "study.journal")
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    summary = run_tune(params, out, train_fn=tune_fakes.two_workers)
    assert summary["stopped"] == "done" and summary["n_complete"] == 6
    _, name = identify(params, tiny_prepared)
    study = optuna.load_study(study_name=name, storage=open_tuning_storage(params.tune.storage))
    check_shared_run(study, out.trials, 6)
    # keep_top_k (3): the checkpoints of the three best trials only
    kept = {int(p.parent.name[6:]) for p in out.trials.glob("trial_*/checkpoint")}
    best3 = sorted(study.trials, key=lambda t: -t.value)[:3]
    assert kept == {t.number for t in best3}


def test_a_signal_to_the_stage_fails_the_workers_trials_and_they_are_retried(
    make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    """SIGTERM to the stage reaches its worker processes: each fails its running trial
    (queued again) and exits; the stage exits 143; a rerun finishes the study."""
    params = make_params({"tune": {"n_trials": 4, "n_jobs": 2, "tuning_max_epochs": 20}})
    params = tune_fakes.with_tune(
        params, storage=f"journal:///{tmp_path / 'study.journal'}", pruner="none"
    )
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)

    def signal_once_both_workers_train() -> None:
        deadline = time.monotonic() + 60
        while len(list(out.trials.glob("trial_*/ran_by_*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=signal_once_both_workers_train, daemon=True)
    watcher.start()
    with pytest.raises(TuneInterrupted) as err:
        run_tune(params, out, train_fn=tune_fakes.stepwise)  # 3 s a trial
    watcher.join()
    assert err.value.exit_code == 143
    study = optuna.load_study(
        study_name=identify(params, tiny_prepared)[1],
        storage=open_tuning_storage(params.tune.storage),
    )
    states = [t.state for t in study.trials]
    assert states == [FAIL, FAIL, WAITING, WAITING]
    assert {t.user_attrs["fail_reason"] for t in study.trials[:2]} == {
        "interrupted by SIGTERM during the trial"
    }
    assert sorted(t.system_attrs["failed_trial"] for t in study.trials[2:]) == [0, 1]

    summary = run_tune(params, out, train_fn=tune_fakes.quick)
    assert summary["n_complete"] == 4 and summary["n_fail"] == 2


def test_tune_worker_command_joins_the_stage_study(
    make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    """`stockclf tune worker` computes the stage's study name from the same params and data,
    and runs the trials still missing (here one real tiny training) in its own process."""
    params = make_params(
        {"model": {"backbone": "test_efficientnet"}, "tune": {"n_trials": 2, "pruner": "none"}}
    )
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    run_tune(params, out, train_fn=tune_fakes.quick)
    name = json.loads(out.study_info.read_text())["study_name"]

    more = yaml.safe_load((tmp_path / "params.yaml").read_text())
    more["tune"]["n_trials"] = 3  # not part of the study's identity: the same study
    (tmp_path / "more.yaml").write_text(yaml.safe_dump(more))
    args = ["tune", "worker", "--params", "more.yaml", "--prepared", str(tiny_prepared)]
    done = run_cli(*args, "--out", "elsewhere", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"study {name}: 3 of 3 trials finished (done), 0 failed" in done.stdout
    assert (
        f"study {name} at sqlite:///" in done.stderr and "2 finished, running 1 more" in done.stderr
    )

    study = optuna.load_study(study_name=name, storage=open_tuning_storage(params.tune.storage))
    joined = study.trials[2]
    assert joined.state == COMPLETE and joined.user_attrs["worker"]["pid"] != os.getpid()
    # the worker's curves are on its machine, under its --out
    assert (tmp_path / "elsewhere/trials/trial_0002/plots/metrics/val/f1.tsv").is_file()


@pytest.fixture
def postgres_url() -> str:
    if not PG_URL:
        pytest.skip(
            "no PostgreSQL server: set STOCKCLF_TEST_POSTGRES_URL=postgresql://USER@HOST/DB "
            "and PGPASSWORD (.ci/run starts one)"
        )
    try:
        open_tuning_storage(PG_URL).engine.dispose()
    except StorageError as err:
        pytest.skip(f"PostgreSQL server at STOCKCLF_TEST_POSTGRES_URL not reachable: {err}")
    return PG_URL


def test_two_workers_on_postgresql(
    make_params, tiny_prepared: Path, tmp_path: Path, postgres_url: str
) -> None:
    # the seed is part of the study name: a fresh study even on a shared test database;
    # 0.6 s trials (4 epochs): long enough to overlap even when storage writes are slow
    seed = os.getpid() * 1000 + len(str(tmp_path))
    params = make_params(
        {"seed": seed, "tune": {"n_trials": 6, "n_jobs": 2, "tuning_max_epochs": 4}}
    )
    params = tune_fakes.with_tune(params, storage=postgres_url, pruner="none")
    _, name = identify(params, tiny_prepared)
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    try:
        summary = run_tune(params, out, train_fn=tune_fakes.stepwise)
        study = optuna.load_study(study_name=name, storage=open_tuning_storage(postgres_url))
        check_shared_run(study, out.trials, 6)
        assert summary["n_complete"] == 6
        # the DVC outputs: a SQLite snapshot of the server's study, the trial table, and the
        # study record pointing at the snapshot (never at the server, never a password)
        snapshot = optuna.load_study(study_name=name, storage=f"sqlite:///{out.study_db}")
        assert [(t.number, t.value) for t in snapshot.trials] == [
            (t.number, t.value) for t in study.trials
        ]
        info = json.loads(out.study_info.read_text())
        assert info["storage"] == f"sqlite:///{out.study_db}"
        assert info["tuned_in"] == postgres_url
        rows = out.trials_csv.read_text().splitlines()
        assert len(rows) == 7 and rows[0].startswith("number,state,value,duration_s")
    finally:
        if name in optuna.get_all_study_names(postgres_url):
            optuna.delete_study(study_name=name, storage=postgres_url)
