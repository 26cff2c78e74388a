"""End to end: the real DVC pipeline on the bundled data, shrunk, in a throwaway git repo."""

import json
from pathlib import Path

import pytest
import yaml
from pipeline_support import sh

pytestmark = pytest.mark.slow


def test_dag_has_the_four_stages(pipeline_repo: Path) -> None:
    listed = sh("dvc", "stage", "list", "--names-only", cwd=pipeline_repo).stdout.split()
    assert listed == ["prepare", "tune", "train_best", "visualize"]


def test_outputs_and_metrics_are_sane(pipeline_repo: Path) -> None:
    prepare = json.loads((pipeline_repo / "reports/prepare.json").read_text())
    assert prepare["train"]["n"] > 5000 and prepare["test"]["last_date"] < "2019-01-01"

    tune = json.loads((pipeline_repo / "tuning/metrics.json").read_text())
    assert tune["n_complete"] + tune["n_pruned"] == 2
    assert 0.0 < tune["best_value"] <= 1.0

    best = yaml.safe_load((pipeline_repo / "tuning/best_params.yaml").read_text())
    assert set(best) == {
        "lr_head",
        "lr_backbone",
        "lr_decay_rate",
        "drop_path_rate",
        "agc_clip_factor",
        "batch_size",
        "weight_decay",
        "aux_loss_weight",
    }

    test = json.loads((pipeline_repo / "reports/test_metrics.json").read_text())
    assert test["n_test"] == prepare["test"]["n"]
    for name in ("model", "majority", "stratified", "logreg"):
        assert 0.0 <= test[name]["f1_macro"] <= 1.0
        assert 0.0 <= test[name]["accuracy"] <= 1.0
    # the majority baseline predicts one class: its macro F1 is at most 1/3 of a perfect score
    assert test["majority"]["f1_macro"] < 0.34
    assert (pipeline_repo / "models/best.ckpt").stat().st_size > 1_000_000

    figures = sorted(p.name for p in (pipeline_repo / "reports/figures").iterdir())
    assert figures == sorted(
        [
            "optimization_history.png",
            "param_importances.png",
            "parallel_coordinate.png",
            "slice.png",
            "contour.png",
            "training_curves.png",
            "confusion_matrix.png",
        ]
    )
    rows = (pipeline_repo / "reports/confusion.csv").read_text().splitlines()
    assert rows[0] == "actual,predicted" and len(rows) == test["n_test"] + 1


def test_exp_show_lists_params_and_metrics(pipeline_repo: Path) -> None:
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=pipeline_repo).stdout)
    text = json.dumps(shown)
    for needle in (
        "n_trials",
        "tuning/best_params.yaml",
        "lr_head",
        "reports/test_metrics.json",
        "f1_macro",
        "best_value",
    ):
        assert needle in text, needle


def test_nothing_left_to_reproduce(pipeline_repo: Path) -> None:
    status = sh("dvc", "status", cwd=pipeline_repo).stdout
    assert "Data and pipelines are up to date" in status
    again = sh("dvc", "repro", cwd=pipeline_repo).stdout
    assert "Data and pipelines are up to date" in again
    for stage in ("prepare", "tune", "train_best", "visualize"):
        assert f"Running stage '{stage}'" not in again
