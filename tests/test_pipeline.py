"""End to end: the real DVC pipeline, shrunk, in a throwaway git repo: on the bundled data,
and on an ``.npz`` source."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import copy_repo, sh, tiny_config, write_params
from matplotlib.image import imread

from stockclf.config import merge_params
from stockclf.evaluation.predictions import PREDICTORS

pytestmark = pytest.mark.slow


def test_dag_has_the_four_stages(pipeline_repo: Path) -> None:
    listed = sh("dvc", "stage", "list", "--names-only", cwd=pipeline_repo).stdout.split()
    assert listed == ["prepare", "tune", "train_best", "visualize"]


def test_outputs_and_metrics_are_sane(pipeline_repo: Path) -> None:
    # the -S overrides made of configs/tiny.yaml reached params.yaml, with their types
    params = yaml.safe_load((pipeline_repo / "params.yaml").read_text())
    assert merge_params(params, tiny_config()) == params
    prepare = json.loads((pipeline_repo / "reports/prepare.json").read_text())
    # every 5th of the 6,960 bundled training windows of 16 days (configs/tiny.yaml): 1,394
    assert 1350 < prepare["train"]["n"] < 1450 and prepare["test"]["last_date"] < "2019-01-01"

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
    for name in PREDICTORS:
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
            "intermediate_values.png",
            "timeline.png",
            "training_curves.png",
            "confusion_matrix.png",
            "f1_intervals.png",
            "equity_curve.png",
        ]
    )
    # DVC's confusion plot reads the model's column of the predictions; no second copy
    assert not (pipeline_repo / "reports/confusion.csv").exists()
    rows = (pipeline_repo / "reports/predictions.csv").read_text().splitlines()
    assert rows[0].split(",")[:4] == ["date", "symbol", "actual", "model"]
    assert len(rows) == test["n_test"] + 1


def _leaves(data: object, prefix: str = "") -> list[str]:
    """A metrics file's columns as `dvc exp show` names them: one per leaf, dotted keys."""
    if isinstance(data, dict):
        return [c for k, v in data.items() for c in _leaves(v, f"{prefix}{k}.")]
    return [prefix[:-1]]


def test_exp_show_lists_params_and_the_headline_metrics(pipeline_repo: Path) -> None:
    """The one metrics file gives at most 25 columns (118 before the details moved out); the
    details files are there, and DVC lists none of them as metrics."""
    shown = json.loads(sh("dvc", "metrics", "show", "--json", cwd=pipeline_repo).stdout)
    (workspace,) = shown.values()  # one revision, the workspace (DVC 3.67 keys it "")
    files = workspace["data"]
    assert set(files) == {"reports/metrics.json"}
    headline = json.loads((pipeline_repo / "reports/metrics.json").read_text())
    assert files["reports/metrics.json"]["data"] == headline
    names = _leaves(headline)
    assert 15 <= len(names) <= 25, names
    assert "best_val_f1" in names and "model_gain.ci_low" in names
    assert "backtest.buy_and_hold.sharpe" in names and "test_f1.minirocket" in names
    details = (
        "reports/prepare.json",
        "tuning/metrics.json",
        "reports/test_metrics.json",
        "reports/bootstrap.json",
        "reports/backtest.json",
    )
    for path in details:
        assert json.loads((pipeline_repo / path).read_text()), path
    # the headline copies its numbers from the details
    tune = json.loads((pipeline_repo / "tuning/metrics.json").read_text())
    test = json.loads((pipeline_repo / "reports/test_metrics.json").read_text())
    boot = json.loads((pipeline_repo / "reports/bootstrap.json").read_text())
    back = json.loads((pipeline_repo / "reports/backtest.json").read_text())
    assert headline["best_val_f1"] == tune["best_value"]
    assert headline["n_complete"] == tune["n_complete"]
    for name in PREDICTORS:
        assert headline["test_f1"][name] == pytest.approx(test[name]["f1_macro"])
    gain = boot[headline["model_gain"]["baseline"]]
    assert headline["model_gain"]["ci_low"] == gain["model_gain_ci_low"]
    assert headline["backtest"]["buy_and_hold"]["sharpe"] == back["buy_and_hold"]["sharpe"]

    exp = json.loads(sh("dvc", "exp", "show", "--json", cwd=pipeline_repo).stdout)
    text = json.dumps(exp)
    for needle in ("n_trials", "tuning/best_params.yaml", "lr_head", "reports/metrics.json"):
        assert needle in text, needle
    for metrics in _exp_metrics(exp):
        assert set(metrics) == {"reports/metrics.json"}


def _exp_metrics(shown: list[dict]) -> list[dict]:
    """The ``metrics`` of every row of `dvc exp show --json` that has any."""
    rows = []
    for commit in shown:
        for rev in [commit, *(r for e in commit.get("experiments") or [] for r in e["revs"])]:
            metrics = (rev.get("data") or {}).get("metrics")
            if metrics:
                rows.append(metrics)
    assert rows, "no row of dvc exp show has metrics"
    return rows


def test_figures_are_readable_pngs(pipeline_repo: Path) -> None:
    """Every PNG exists, has the size its plot is drawn at (dpi 100) and is not blank."""
    tune = json.loads((pipeline_repo / "tuning/metrics.json").read_text())
    n_params = len(yaml.safe_load((pipeline_repo / "tuning/best_params.yaml").read_text()))
    # the slice plot: 3.2 inches per param + 1.5 (a placeholder when no trial completed)
    slice_width = round(100 * max(10, 3.2 * n_params + 1.5)) if tune["n_complete"] else 1000
    sizes = {
        "optimization_history": (600, 1000),
        "param_importances": (600, 1000),
        "parallel_coordinate": (600, 1000),
        "slice": (600, slice_width),
        "contour": (600, 1000),
        "intermediate_values": (600, 1000),
        "timeline": (600, 1000),
        "training_curves": (400, 1000),
        "confusion_matrix": (450, 500),
        "f1_intervals": (round(100 * (0.8 * len(PREDICTORS) + 1.8)), 900),  # 0.8 in a row
        "equity_curve": (550, 1000),
    }
    for name, size in sizes.items():
        image = imread(pipeline_repo / "reports/figures" / f"{name}.png")
        assert image.shape[:2] == size, name
        assert image[..., :3].std() > 0.02, f"{name}.png looks blank"


def test_intervals_backtest_and_predictions(pipeline_repo: Path) -> None:
    test = json.loads((pipeline_repo / "reports/test_metrics.json").read_text())
    boot = json.loads((pipeline_repo / "reports/bootstrap.json").read_text())
    resamples = tiny_config()["evaluate"]["bootstrap_samples"]
    assert (boot["confidence"], boot["n_resamples"], boot["block_days"]) == (0.95, resamples, 20)
    for name in PREDICTORS:
        e = boot[name]
        assert e["f1_macro"] == pytest.approx(test[name]["f1_macro"])
        assert e["f1_macro_ci_low"] <= e["f1_macro"] <= e["f1_macro_ci_high"]
        if name != "model":
            assert e["model_gain"] == pytest.approx(test["model"]["f1_macro"] - e["f1_macro"])
            assert e["model_gain_ci_low"] <= e["model_gain_ci_high"]
    rows = (pipeline_repo / "reports/predictions.csv").read_text().splitlines()
    assert rows[0] == (
        "date,symbol,actual,model,majority,stratified,logreg,minirocket,forward_return"
    )
    assert len(rows) == test["n_test"] + 1

    back = json.loads((pipeline_repo / "reports/backtest.json").read_text())
    assert back["costs"] == "no transaction costs" and back["rebalance_days"] == 5
    assert back["first_date"] >= "2016-01-01" and back["n_periods"] > 100
    for book in ("strategy", "buy_and_hold", "minirocket"):
        m = back[book]
        assert set(m) >= {"total_return", "annual_return", "sharpe", "max_drawdown", "hit_rate"}
        assert 0.0 <= m["max_drawdown"] < 1.0
    # the bundled indices rose over 2016-2018
    assert back["buy_and_hold"]["total_return"] > 0.1
    equity = (pipeline_repo / "reports/equity.tsv").read_text().splitlines()
    assert equity[0] == "date\tyear\tstrategy\tbuy_and_hold\tminirocket"
    assert len(equity) == back["n_periods"] + 2 and equity[1].endswith("\t1.0\t1.0\t1.0")


def test_dvc_plots_show_html_references_every_plot(pipeline_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "plots"
    sh("dvc", "plots", "show", "-o", str(out), cwd=pipeline_repo)
    html = (out / "index.html").read_text()
    specs = {}
    for match in re.finditer(r"var spec = (\{.*?\});\s*vegaEmbed", html, re.S):
        spec = json.loads(match.group(1))
        specs[spec["title"]["text"]] = spec["data"]["values"]
    declared = yaml.safe_load((pipeline_repo / "dvc.yaml").read_text())["plots"]
    titles = [next(iter(p)) for p in declared if isinstance(p, dict)]
    assert sorted(specs) == sorted(titles)
    for title, values in specs.items():
        assert values, f"{title}: no data"
    loss_files = {v.get("filename") for v in specs["Training curves (loss)"]}
    assert loss_files == {"train/loss.tsv", "val/loss.tsv"}
    assert {v.get("filename") for v in specs["Training curves (macro F1)"]} >= {"val/f1.tsv"}
    equity = next(t for t in specs if t.startswith("Backtest equity"))
    assert {"strategy", "buy_and_hold"} <= set(specs[equity][0])
    images = set(re.findall(r'<img src="([^"]+)"', html))
    for png in (pipeline_repo / "reports/figures").iterdir():
        sources = [i for i in images if i.endswith(f"_figures_{png.name}")]
        assert len(sources) == 1, f"{png.name} not in the HTML"
        assert (out / sources[0]).stat().st_size == png.stat().st_size


def test_nothing_left_to_reproduce(pipeline_repo: Path) -> None:
    status = sh("dvc", "status", cwd=pipeline_repo).stdout
    assert "Data and pipelines are up to date" in status
    again = sh("dvc", "repro", cwd=pipeline_repo).stdout
    assert "Data and pipelines are up to date" in again
    for stage in ("prepare", "tune", "train_best", "visualize"):
        assert f"Running stage '{stage}'" not in again


def test_npz_source_runs_the_whole_pipeline(tmp_path: Path) -> None:
    """``dvc repro`` on an ``.npz`` of generic windows: every stage runs and writes its
    declared outputs; the intervals cover every predictor and the backtest says it does not
    apply (there are no prices)."""
    repo = copy_repo(tmp_path / "repo")
    rng = np.random.default_rng(0)
    y = np.arange(300) % 3
    t = np.linspace(0, 1, 24)
    waves = np.sin(2 * np.pi * (y[:, None] + 1) * t)  # one frequency per class
    X = np.stack([waves, -waves], axis=1) + rng.normal(0, 0.3, (300, 2, 24))
    np.savez(repo / "data" / "waves.npz", X=X, y=y, classes=np.array(["down", "flat", "up"]))
    write_params(repo, merge_params(tiny_config(), {"data": {"source": "data/waves.npz"}}))
    out = sh("dvc", "repro", cwd=repo).stdout
    for stage in ("prepare", "tune", "train_best", "visualize"):
        assert f"Running stage '{stage}'" in out

    test = json.loads((repo / "reports/test_metrics.json").read_text())
    assert test["n_test"] == 45  # data.test_fraction = 0.15 of the rows, by position
    assert test["minirocket"]["f1_macro"] > 0.9  # three frequencies: easy for MiniRocket
    boot = json.loads((repo / "reports/bootstrap.json").read_text())
    assert boot["n_dates"] == 45 and boot["n_resamples"] == 100
    for name in PREDICTORS:
        e = boot[name]
        assert e["f1_macro"] == pytest.approx(test[name]["f1_macro"])
        assert e["f1_macro_ci_low"] <= e["f1_macro"] <= e["f1_macro_ci_high"]
        if name != "model":
            assert e["model_gain_ci_low"] <= e["model_gain"] <= e["model_gain_ci_high"]
    back = json.loads((repo / "reports/backtest.json").read_text())
    assert back["applicable"] is False and "no prices" in back["reason"]
    equity = (repo / "reports/equity.tsv").read_text().splitlines()
    assert equity == ["date\tyear\tstrategy\tbuy_and_hold\tminirocket"]
    rows = (repo / "reports/predictions.csv").read_text().splitlines()
    assert len(rows) == 46 and all(r.endswith(",") for r in rows[1:])  # no forward return
    figures = {p.name for p in (repo / "reports/figures").iterdir()}
    assert {"f1_intervals.png", "equity_curve.png", "training_curves.png"} <= figures
    assert len(figures) == 11  # seven Optuna plots, training, confusion, intervals, equity
    status = sh("dvc", "status", cwd=repo).stdout
    assert "Data and pipelines are up to date" in status
