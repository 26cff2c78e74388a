"""Tuning on walk-forward folds: a trial trains once per fold and is worth their mean, the
wilcoxon pruner stops it between folds, the pruners' params reach Optuna, the study name
changes with the folds only, and every trial's curves land in one TSV for ``dvc plots``."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from helpers import REPO, SYNTHETIC_META, synthetic_split
from tune_fakes import COMPLETE, PRUNED, load_only_study

import stockclf.tuning.objective as objective_module
from stockclf.config import ParamsError
from stockclf.data.folds import FoldsError
from stockclf.data.store import save_meta, save_split
from stockclf.pipeline.tune import TunePaths, run_tune, trial_curves_file
from stockclf.tuning.curves import COLUMNS
from stockclf.tuning.identity import study_identity, study_name
from stockclf.tuning.samplers import make_pruner


@pytest.fixture
def long_prepared(tmp_path: Path) -> Path:
    """A prepared directory of 480/96/96 learnable samples of one symbol, one a day in date
    order (train, then val, then test): room for three folds of 96 validation days."""
    out = tmp_path / "long_prepared"
    rng = np.random.default_rng(0)
    start = np.datetime64("2000-01-01")
    for split, n in (("train", 480), ("val", 96), ("test", 96)):
        data = synthetic_split(rng, n, channels=2, length=16)
        save_split(out, split, replace(data, dates=start + np.arange(n).astype("timedelta64[D]")))
        start += np.timedelta64(n, "D")
    save_meta(out, SYNTHETIC_META)
    return out


class FakeFoldTrainer:
    """What the objective reads of a trainer: the kept epoch, and the epochs trained."""

    def __init__(self, score: float, epochs: int) -> None:
        self.early_stopping_callback = type("Stopper", (), {})()
        self.early_stopping_callback.kept = {"val_f1": score, "val_loss": 1 - score, "epoch": 0}
        self.current_epoch = epochs


def fold_fake(calls: list[dict[str, Any]], score_of):
    """``train_model`` that scores ``score_of(params, fold_index)`` and records each call."""

    def train_model(params, prepared_dir, max_epochs, live_dir, monitor, mode, **kw):
        name = Path(live_dir).name  # fold_K, or trial_NNNN for the last fold (or one split)
        k = int(name.removeprefix("fold_")) if name.startswith("fold_") else params.tune.folds - 1
        calls.append({"k": k, **kw})
        Path(live_dir).mkdir(parents=True, exist_ok=True)
        return None, FakeFoldTrainer(score_of(params, k), epochs=k + 2), None

    return train_model


def test_a_trial_trains_each_fold_and_is_worth_their_mean(
    make_params, long_prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        objective_module, "train_model", fold_fake(calls, lambda p, k: 0.1 * (k + 1))
    )
    params = make_params(
        {"data": {"stride": 1}, "tune": {"n_trials": 1, "folds": 3, "pruner": "none"}}
    )
    out = TunePaths.under(tmp_path / "tuning", long_prepared)
    summary = run_tune(params, out)
    (trial,) = load_only_study(params).trials
    assert trial.state == COMPLETE
    assert trial.value == pytest.approx(0.2) == summary["best_value"]
    assert trial.intermediate_values == pytest.approx({0: 0.1, 1: 0.2, 2: 0.3})
    assert trial.user_attrs["fold_values"] == pytest.approx([0.1, 0.2, 0.3])
    assert trial.user_attrs["fold_epochs"] == [2, 3, 4]
    assert trial.user_attrs["best_epoch"] == pytest.approx({"val_f1": 0.2, "val_loss": 0.8})
    assert [c["k"] for c in calls] == [0, 1, 2]
    # only the last fold, the prepared split, keeps a checkpoint; the training rows grow
    assert [c["checkpoint_dir"] is None for c in calls] == [True, True, False]
    sizes = [len(c["fold"].train) for c in calls]
    # purged by L + h = 17 days before each 96-day validation block; the last: all of train
    assert sizes == [288 - 17, 384 - 17, 480]


def test_wilcoxon_prunes_a_worse_trial_between_folds(
    make_params, long_prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trial 0 scores 0.5 on every fold; later trials score less on each, so after two
    folds the signed-rank test's p is 0.25, below the threshold 0.3: fold 2 never trains."""
    calls: list[dict[str, Any]] = []
    worse = {"n": 0}

    def score_of(params, fold: int) -> float:
        if fold == 0:
            worse["n"] += 1
        return 0.5 if worse["n"] == 1 else 0.3 - 0.01 * fold

    monkeypatch.setattr(objective_module, "train_model", fold_fake(calls, score_of))
    tune = {"n_trials": 2, "folds": 3, "pruner": "wilcoxon", "wilcoxon_p_threshold": 0.3}
    params = make_params({"data": {"stride": 1}, "tune": tune})
    run_tune(params, TunePaths.under(tmp_path / "tuning", long_prepared))
    first, second = load_only_study(params).trials
    assert (first.state, second.state) == (COMPLETE, PRUNED)
    assert second.intermediate_values == pytest.approx({0: 0.3, 1: 0.29})
    assert second.user_attrs["fold_values"] == pytest.approx([0.3, 0.29])
    assert [c["k"] for c in calls] == [0, 1, 2, 0, 1]


def test_a_non_finite_fold_fails_the_trial_at_once(
    make_params, tiny_prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(objective_module, "train_model", fold_fake(calls, lambda p, k: np.nan))
    tune = {"n_trials": 1, "folds": 2, "pruner": "none"}
    params = make_params({"data": {"stride": 1}, "tune": tune})
    with pytest.raises(RuntimeError, match="no trial completed"):
        run_tune(params, TunePaths.under(tmp_path / "tuning", tiny_prepared))
    trial = load_only_study(params).trials[0]
    assert trial.user_attrs["failure"] == "nonfinite"
    assert trial.user_attrs["fail_reason"].startswith("NonFiniteMetric: val_f1 of fold 0 is nan")


def test_folds_that_cannot_be_cut_stop_the_stage_before_any_output(
    make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    params = make_params({"tune": {"folds": 5, "pruner": "none"}})
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    with pytest.raises(FoldsError, match=r"tune\.folds = 5 needs 4 validation blocks"):
        run_tune(params, out)
    assert not (tmp_path / "tuning").exists()


@pytest.mark.parametrize(
    ("tune", "message"),
    [
        ({"folds": 3}, r"tune\.pruner 'median' compares trials epoch by epoch.*tune\.folds = 3"),
        ({"folds": 2, "pruner": "hyperband"}, r"tune\.pruner 'hyperband' compares"),
        ({"pruner": "wilcoxon"}, r"tune\.pruner 'wilcoxon' needs tune\.folds >= 3 \(got 1\)"),
        ({"folds": 4, "pruner": "wilcoxon"}, r"can never prune with tune\.folds = 4.*0\.125"),
        ({"min_resource": 4}, r"tune\.min_resource \(4\) must be at most"),
        ({"folds": 0}, r"tune\.folds: Input should be greater than or equal to 1"),
    ],
)
def test_params_refuse_folds_and_pruners_that_do_not_go_together(
    make_params, tune: dict[str, Any], message: str
) -> None:
    with pytest.raises(ParamsError, match=message):
        make_params({"tune": {"tuning_max_epochs": 3, **tune}})


def test_the_pruner_params_reach_optuna(make_params) -> None:
    median = make_pruner(make_params({"tune": {"n_warmup_steps": 2}}).tune)
    assert isinstance(median, optuna.pruners.MedianPruner) and median._n_warmup_steps == 2
    tune = {"pruner": "hyperband", "tuning_max_epochs": 6, "min_resource": 2}
    hyperband = make_pruner(make_params({"tune": tune}).tune)
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
    assert (hyperband._min_resource, hyperband._max_resource) == (2, 6)
    tune = {"pruner": "wilcoxon", "folds": 5, "wilcoxon_p_threshold": 0.07}
    wilcoxon = make_pruner(make_params({"tune": tune}).tune)
    assert isinstance(wilcoxon, optuna.pruners.WilcoxonPruner)
    assert wilcoxon._p_threshold == 0.07


def test_only_the_fold_count_changes_the_study_name(make_params) -> None:
    """At tune.folds = 1 the identity has the keys it had before folds existed, so the
    studies made then keep their names; the pruner's params never enter it."""
    base = study_identity(make_params(), "data-v1")
    assert set(base) == {
        "search_space",
        "model",
        "train",
        "seed",
        "tuning_max_epochs",
        "metric",
        "direction",
        "data",
    }
    same = {"n_warmup_steps": 3, "min_resource": 1, "wilcoxon_p_threshold": 0.5}
    assert study_name(study_identity(make_params({"tune": same}), "data-v1")) == study_name(base)
    folded = study_identity(make_params({"tune": {"folds": 3, "pruner": "none"}}), "data-v1")
    assert folded["folds"] == 3 and study_name(folded) != study_name(base)


def test_trials_of_another_fold_count_are_not_carried(
    make_params, long_prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A study valued on one split does not warm-start one valued on three folds."""
    monkeypatch.setattr(objective_module, "train_model", fold_fake([], lambda p, k: 0.4))
    base = {"data": {"stride": 1}, "tune": {"pruner": "none", "n_trials": 2}}
    out = TunePaths.under(tmp_path / "tuning", long_prepared)
    first = make_params(base)
    run_tune(first, out)
    (old,) = optuna.get_all_study_names(first.tune.storage)
    tune = {**base["tune"], "folds": 3, "warm_start_from": old}
    second = make_params({**base, "tune": tune})
    capsys.readouterr()
    run_tune(second, out)
    err = capsys.readouterr().err
    assert f"carried 0 trials from {old}" in err
    assert err.count("skipped: its study was measured with another folds") == 2
    names = optuna.get_all_study_names(second.tune.storage)
    new = optuna.load_study(
        study_name=next(n for n in names if n != old), storage=second.tune.storage
    )
    assert not any("carried_from" in t.user_attrs for t in new.trials)


# ---------------------------------------------------------------- the curves plot


def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def dvclive_values(live: Path, metric: str) -> list[float]:
    rows = read_tsv(live / "plots" / "metrics" / f"{metric}.tsv")
    return [float(r[metric.split("/")[1]]) for r in rows]


@pytest.mark.parametrize("folds", [1, 2])
def test_trial_curves_hold_every_epoch_of_every_trial_and_fold(
    make_params, tiny_prepared: Path, tmp_path: Path, one_torch_thread, folds: int
) -> None:
    """Real trials (the tiny config, two epochs each): one row per (trial, fold, epoch),
    with the values of that run's own dvclive files."""
    tune = {"n_trials": 2, "folds": folds, "pruner": "none", "tuning_max_epochs": 2}
    params = make_params({"data": {"stride": 1}, "tune": tune})
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    run_tune(params, out)
    rows = read_tsv(trial_curves_file(out.live))
    assert list(rows[0]) == list(COLUMNS)
    keys = [(int(r["trial"]), int(r["fold"]), int(r["epoch"])) for r in rows]
    assert keys == [(t, k, e) for t in range(2) for k in range(folds) for e in range(2)]
    assert {r["state"] for r in rows} == {"COMPLETE"}
    for trial in range(2):
        for k in range(folds):
            live = out.trials / f"trial_{trial:04d}"
            live = live / f"fold_{k}" if k < folds - 1 else live  # the last: as one split
            mine = [r for r in rows if (int(r["trial"]), int(r["fold"])) == (trial, k)]
            for metric in ("val/f1", "val/loss", "train/loss"):
                column = [float(r[metric.replace("/", "_")]) for r in mine]
                assert column == pytest.approx(dvclive_values(live, metric)), (trial, k)
    if folds > 1:
        (first, *_) = load_only_study(params).trials
        assert first.value == pytest.approx(np.mean(first.user_attrs["fold_values"]))


def test_dvc_yaml_plots_the_curves_by_trial() -> None:
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    plots = {title: plot for p in declared if isinstance(p, dict) for title, plot in p.items()}
    for title, field in (
        ("Trial curves (validation macro F1)", "val_f1"),
        ("Trial curves (validation loss)", "val_loss"),
    ):
        plot = plots[title]
        assert plot["template"] == "trial_curves" and plot["x"] == "epoch"
        assert plot["y"] == {"tuning/live/plots/trial_curves.tsv": field}
        assert field in COLUMNS
    template = json.loads((REPO / ".dvc" / "plots" / "trial_curves.json").read_text())
    assert template["encoding"]["color"] == {"field": "trial", "type": "nominal"}
    assert template["encoding"]["strokeDash"]["field"] == "fold"
    assert template["data"]["values"] == "<DVC_METRIC_DATA>"
