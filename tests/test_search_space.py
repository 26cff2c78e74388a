"""The search space: the model and recipe can be searched, a bad space is one clear error
before any trial, range errors are one line, and trial 0 is params.yaml's own point."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import tune_fakes
import yaml
from tune_fakes import COMPLETE

from stockclf.config import ParamsError
from stockclf.pipeline.train_best import TrainBestPaths, run_train_best
from stockclf.pipeline.tune import TunePaths, run_tune
from stockclf.tuning.outputs import lock_safe
from stockclf.tuning.samplers import make_sampler
from stockclf.tuning.space import default_point, from_trial, label


@pytest.mark.parametrize(
    ("ranges", "line"),
    [
        (
            {"lr_head": {"low": 0.5, "high": 0.01, "log": True}},
            "tune.parameter_ranges.lr_head: low (0.5) is greater than high (0.01)",
        ),
        (
            {"batch_size": {"choices": []}},
            "tune.parameter_ranges.batch_size.choices: List should have at least 1 item",
        ),
        (
            {"backbone": {"low": 1, "high": 2}},
            "backbone is not a number, so it takes choices: [...], not low/high",
        ),
        (
            {"label_smoothing": {"low": 0.1}},
            "tune.parameter_ranges.label_smoothing.high: Field required",
        ),
    ],
)
def test_a_wrong_range_is_one_line_about_that_range(make_params, ranges, line) -> None:
    with pytest.raises(ParamsError) as err:
        make_params({"tune": {"parameter_ranges": ranges}})
    lines = str(err.value).splitlines()
    assert len(lines) == 2, lines  # "<file>: invalid params" and the one problem
    assert line in lines[1]


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        (
            {"backbone": {"choices": ["efficientnet_b0", "resnet_fake"]}},
            "tune.parameter_ranges.backbone: 'resnet_fake' cannot be trained: 'resnet_fake' "
            "is not a timm model name",
        ),
        (
            {"encodings": {"choices": [["gasf"], ["gasf", "mft"]]}},
            "tune.parameter_ranges.encodings: ['gasf', 'mft'] cannot be trained: "
            "model.encodings: unknown encoding 'mft'; choose from ['gadf', 'gasf', 'mtf']",
        ),
        (
            {"drop_path_rate": {"low": 0.0, "high": 1.5}},
            "tune.parameter_ranges.drop_path_rate: 1.5 cannot be trained: "
            "model.drop_path_rate: Input should be less than 1",
        ),
    ],
)
def test_an_untrainable_choice_stops_the_stage_before_any_trial(
    make_params, tiny_prepared: Path, tmp_path: Path, ranges, message
) -> None:
    params = make_params({"tune": {"parameter_ranges": ranges}})
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    with pytest.raises(ParamsError) as err:
        run_tune(params, out, train_fn=tune_fakes.quick)
    assert message in str(err.value)
    assert not out.study_db.exists()  # no study was opened, let alone a trial run


def test_trial_zero_is_params_yaml_point_and_the_rest_are_sampled(
    make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    # batch 64: the shrunk config's 32 is not among the choices, and the point is params.yaml's
    params = make_params({"train": {"batch_size": 64}, "tune": {"n_trials": 3, "pruner": "none"}})
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    run_tune(params, out, tune_fakes.quick)
    assert json.loads(out.metrics.read_text())["metric"] == "val_f1"  # names its best_value
    trials = tune_fakes.load_only_study(params).trials
    expected = {
        name: getattr(params.train if hasattr(params.train, name) else params.model, name)
        for name in params.tune.parameter_ranges
    }
    assert trials[0].params == expected
    assert "fixed_params" in trials[0].system_attrs
    assert all(t.params != expected and "fixed_params" not in t.system_attrs for t in trials[1:])


def test_warm_start_off_and_a_default_outside_its_range(
    make_params, tiny_prepared: Path, tmp_path: Path, capsys
) -> None:
    params = make_params({"tune": {"n_trials": 1, "pruner": "none", "warm_start": False}})
    run_tune(params, TunePaths.under(tmp_path / "a", tiny_prepared), tune_fakes.quick)
    assert "fixed_params" not in tune_fakes.load_only_study(params).trials[0].system_attrs

    narrow = {"lr_head": {"low": 0.01, "high": 0.02}}  # params.yaml's 0.002 lies below
    params = make_params(
        {"train": {"batch_size": 64}, "tune": {"n_trials": 1, "parameter_ranges": narrow}}
    )
    point, outside = default_point(params)
    assert "lr_head" not in point and outside == ["lr_head"]
    run_tune(params, TunePaths.under(tmp_path / "b", tiny_prepared), tune_fakes.quick)
    assert "['lr_head'] lie outside their ranges and are sampled" in capsys.readouterr().err


def test_list_choices_are_labels_in_the_study_and_lists_for_training(make_params) -> None:
    choices = [["gasf", "gadf", "mtf"], ["gasf", "mtf"]]
    params = make_params({"tune": {"parameter_ranges": {"encodings": {"choices": choices}}}})
    assert label(choices[1]) == "gasf+mtf"
    assert from_trial(params.tune, {"encodings": "gasf+mtf"}) == {"encodings": ["gasf", "mtf"]}
    point, _ = default_point(params)
    assert point["encodings"] == "gasf+gadf+mtf"


@pytest.mark.slow
def test_trials_of_different_architectures_tune_and_train_best(
    make_params, tiny_prepared: Path, tmp_path: Path, one_torch_thread
) -> None:
    """Two backbones and two encoding sets in one study: every trial trains, the best one's
    architecture lands in best_params.yaml as training params, and train_best builds it."""
    space = {
        "backbone": {"choices": ["efficientnet_b0", "resnet10t"]},
        "encodings": {"choices": [["gasf", "mtf"], ["gadf"]]},
        "lr_head": {"low": 0.001, "high": 0.01, "log": True},
    }
    params = make_params(
        {"tune": {"n_trials": 3, "pruner": "none", "keep_top_k": 1, "parameter_ranges": space}}
    )
    out = TunePaths.under(tmp_path / "tuning", tiny_prepared)
    summary = run_tune(params, out)
    trials = tune_fakes.load_only_study(params).trials
    assert [t.state for t in trials] == [COMPLETE] * 3
    assert {t.params["backbone"] for t in trials} <= {"efficientnet_b0", "resnet10t"}
    assert {t.params["encodings"] for t in trials} <= {"gasf+mtf", "gadf"}
    best = yaml.safe_load(out.best_params.read_text())
    assert best["encodings"] in (["gasf", "mtf"], ["gadf"])
    # best_params.yaml holds floats at lock_safe's 12 significant digits (trial 0, params.yaml's
    # own point, has short values; a sampled trial may win and has not)
    chosen = from_trial(params.tune, trials[summary["best_trial"]].params)
    assert best == {k: lock_safe(v) for k, v in chosen.items()}
    kept = [p.parent.name for p in out.trials.glob("trial_*/checkpoint")]
    assert kept == [f"trial_{summary['best_trial']:04d}"]
    results = run_train_best(
        params, TrainBestPaths.under(tmp_path / "best", tiny_prepared, out.best_params), False
    )
    assert results is not None and 0.0 <= results["model"]["f1_macro"] <= 1.0


def test_the_gaussian_process_sampler_runs_a_study(
    make_params, tiny_prepared: Path, tmp_path: Path
) -> None:
    params = make_params({"tune": {"sampler": "gp", "n_trials": 4, "n_startup_trials": 2}})
    summary = run_tune(params, TunePaths.under(tmp_path / "t", tiny_prepared), tune_fakes.quick)
    assert summary["n_complete"] + summary["n_pruned"] == 4
    assert isinstance(make_sampler(params.tune, 0, 0), optuna.samplers.GPSampler)
    study = tune_fakes.load_only_study(params)
    assert [t.state for t in study.trials] == [COMPLETE] * 4
    assert all(0.0003 <= t.params["lr_head"] <= 0.01 for t in study.trials)
