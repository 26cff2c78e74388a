import json
import math
from pathlib import Path

import pytest
import torch
import tune_fakes
import yaml
from tune_fakes import COMPLETE, FAIL

import stockclf.tuning.objective as objective_module
from stockclf.data.store import data_fingerprint
from stockclf.errors import StudyError
from stockclf.pipeline.tune import TunePaths, run_tune
from stockclf.training.module import StockClassifier
from stockclf.tuning.identity import study_identity, study_name
from stockclf.tuning.lockfile import check_study_present
from stockclf.tuning.space import with_values


def test_resume_runs_only_missing_trials_with_new_params(
    make_params, tiny_prepared: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(
        objective_module, "train_model", tune_fakes.fake_train_model(lambda p: p.train.lr_head * 10)
    )
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    params = make_params({"tune": {"n_trials": 3, "pruner": "none"}})
    first = run_tune(params, out)
    assert first["n_complete"] == 3
    before = [t.params for t in tune_fakes.load_only_study(params).trials]

    more = make_params({"tune": {"n_trials": 5, "pruner": "none"}})
    second = run_tune(more, out)
    study = tune_fakes.load_only_study(more)
    assert second["n_complete"] == 5 and len(study.trials) == 5
    assert [t.params for t in study.trials[:3]] == before  # earlier trials kept
    for new in study.trials[3:]:  # reseeded sampler: the resumed trials are new points
        assert new.params not in before

    # nothing missing: a rerun adds no trial
    run_tune(more, out)
    assert len(tune_fakes.load_only_study(more).trials) == 5

    best = yaml.safe_load(out.best_params.read_text())
    assert set(best) == set(more.tune.parameter_ranges)
    assert best["lr_head"] == pytest.approx(max(t.params["lr_head"] for t in study.trials))
    metrics = json.loads(out.metrics.read_text())
    assert metrics["best_value"] == pytest.approx(best["lr_head"] * 10)
    assert metrics["n_complete"] == 5 and metrics["n_fail"] == 0
    info = json.loads(out.study_info.read_text())
    assert info["study_name"] == study.study_name
    history = (out.live / "plots" / "metrics" / "trial_value.tsv").read_text().splitlines()
    assert history[0].split("\t") == ["step", "trial_value"]
    assert [int(r.split("\t")[0]) for r in history[1:]] == [0, 1, 2, 3, 4]


def test_failed_trials_are_recorded_and_the_study_goes_on(
    make_params, tiny_prepared: Path, tmp_path: Path, monkeypatch
) -> None:
    calls = {"n": 0}

    def value_of(params):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA out of memory (injected)")
        if calls["n"] == 2:
            return math.nan
        return 0.5

    monkeypatch.setattr(objective_module, "train_model", tune_fakes.fake_train_model(value_of))
    params = make_params({"tune": {"n_trials": 2, "pruner": "none"}})
    summary = run_tune(params, TunePaths.under(tmp_path / "tuning", tiny_prepared))
    study = tune_fakes.load_only_study(params)
    states = [t.state for t in study.trials]
    assert states[:2] == [FAIL] * 2
    assert states[2:] == [COMPLETE] * 2
    assert (
        study.trials[0].user_attrs["fail_reason"] == "RuntimeError: CUDA out of memory (injected)"
    )
    assert "Traceback" in study.trials[0].user_attrs["traceback"]
    assert study.trials[1].user_attrs["fail_reason"] == "val_f1 is nan"
    assert summary["n_fail"] == 2 and summary["n_complete"] == 2


def test_every_trial_failing_stops_with_a_clear_error(
    make_params, tiny_prepared: Path, tmp_path: Path, monkeypatch
) -> None:
    def broken(params):
        raise ValueError("broken backbone")

    monkeypatch.setattr(objective_module, "train_model", tune_fakes.fake_train_model(broken))
    params = make_params({"tune": {"n_trials": 2, "pruner": "none"}})
    with pytest.raises(RuntimeError, match=r"no trial completed \(3 failed: \['ValueError: broken"):
        run_tune(params, TunePaths.under(tmp_path / "tuning", tiny_prepared))


def test_real_training_trials_with_pruner(
    one_torch_thread, make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    params = make_params(
        {
            "model": {"backbone": "test_efficientnet"},  # timm's tiny test net: ~1 s a trial
            # 2 epochs: the median pruner (one warm-up step) can act on the second
            "tune": {"tuning_max_epochs": 2, "keep_top_k": 1},
        }
    )
    summary = run_tune(params, out)
    assert summary["n_complete"] + summary["n_pruned"] == 2
    assert 0.0 <= summary["best_value"] <= 1.0
    for number in (0, 1):
        f1 = out.trials / f"trial_{number:04d}" / "plots" / "metrics" / "val" / "f1.tsv"
        assert len(f1.read_text().splitlines()) >= 2  # header + at least one epoch
    study = tune_fakes.load_only_study(params)
    assert all(len(t.intermediate_values) >= 1 for t in study.trials)  # reported for pruning
    # keep_top_k: 1 -> only the best trial keeps its checkpoint, a loadable Lightning file
    kept = sorted(p.parent.name for p in out.trials.glob("trial_*/checkpoint"))
    assert kept == [f"trial_{summary['best_trial']:04d}"]
    ckpt = torch.load(
        out.trials / kept[0] / "checkpoint" / "best.ckpt", map_location="cpu", weights_only=True
    )
    tuned = with_values(params, study.trials[summary["best_trial"]].params)
    module = StockClassifier(tuned.model, tuned.train, in_channels=2, num_classes=3)
    module.load_state_dict(ckpt["state_dict"])  # strict: every tensor present and shaped


def test_study_name_follows_search_space_and_data_not_budget(
    make_params, tiny_prepared: Path
) -> None:
    fp = data_fingerprint(tiny_prepared)
    base = make_params()
    name = study_name(study_identity(base, fp))
    assert name == study_name(study_identity(make_params({"tune": {"n_trials": 40}}), fp))
    assert name == study_name(study_identity(make_params({"train": {"max_epochs": 30}}), fp))
    narrower = {"tune": {"parameter_ranges": {"lr_head": {"low": 0.001, "high": 0.002}}}}
    assert name != study_name(study_identity(make_params(narrower), fp))
    assert name != study_name(study_identity(base, "other-data"))
    (tiny_prepared / "val" / "y.npy").write_bytes(b"changed")
    assert data_fingerprint(tiny_prepared) != fp


def test_locked_but_missing_study_asks_for_dvc_pull(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("dvc.lock").write_text(
        yaml.safe_dump({"stages": {"tune": {"outs": [{"path": "tuning/study.db", "md5": "x"}]}}})
    )
    with pytest.raises(StudyError, match=r"dvc.lock records this study.*dvc pull"):
        check_study_present("sqlite:///tuning/study.db")
    assert not Path("tuning/study.db").exists()  # no empty database was created
    check_study_present("sqlite:///other.db")  # not locked: a new study may start

    # a journal or server storage: the locked snapshot is missing, and the storage does not
    # hold the study either -> pull; if the storage holds it, the snapshot is not needed
    snapshot = Path("tuning/study.db")
    with pytest.raises(StudyError, match=r"tuning/study.db: dvc.lock records.*dvc pull"):
        check_study_present(
            "journal:///tuning/study.journal", snapshot=snapshot, storage_has_study=lambda: False
        )
    check_study_present("postgresql://u@db/x", snapshot=snapshot, storage_has_study=lambda: True)
