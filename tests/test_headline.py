"""The headline metrics: the one DVC metrics file, small enough that `dvc exp show` can be
read, with every detail left in plain stage outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from helpers import REPO

from stockclf.data.store import SplitData
from stockclf.evaluation.predictions import PREDICTORS, write_predictions
from stockclf.pipeline.visualize import headline_metrics, strongest_baseline
from stockclf.reporting.results import compute_results

CLASSES = ["down", "flat", "up"]

#: The most metric columns a default-shaped run may give `dvc exp show`.
MAX_COLUMNS = 25

#: The tune stage's summary as tuning/metrics.json holds it.
TUNED = {
    "best_value": 0.41,
    "best_trial": 3,
    "n_complete": 5,
    "n_pruned": 1,
    "n_fail": 0,
    "best_val_loss": 1.07,
}

#: The headline's columns, in order, for every run: with prices or without.
HEADLINE_COLUMNS = [
    "best_val_f1",
    "n_complete",
    "n_pruned",
    "n_fail",
    *(f"test_f1.{name}" for name in PREDICTORS),
    "model_gain.baseline",
    "model_gain.f1",
    "model_gain.ci_low",
    "model_gain.ci_high",
    "backtest.model.total_return",
    "backtest.model.sharpe",
    "backtest.buy_and_hold.total_return",
    "backtest.buy_and_hold.sharpe",
]


def columns(data: Any, prefix: str = "") -> list[str]:
    """The column names `dvc exp show` makes of a metrics file: one per leaf, the keys
    joined with dots (a null leaf still makes a column where another experiment has a
    value)."""
    if isinstance(data, dict):
        return [c for k, v in data.items() for c in columns(v, f"{prefix}{k}.")]
    return [prefix[:-1]]


def _results(tmp_path: Path, split: SplitData, symbols: list[str], meta: dict, params, preds):
    write_predictions(tmp_path / "p.csv", split, symbols, CLASSES, preds)
    return compute_results(tmp_path / "p.csv", meta, params)


@pytest.fixture
def priced(make_params, tmp_path: Path, two_symbol_test_days):
    """Intervals and a backtest of made-up predictions: a perfect model, logreg always one
    class off, MiniRocket right on about two thirds of the samples."""
    split, symbols, rng = two_symbol_test_days
    y = split.y
    near = np.where(rng.random(y.size) < 0.65, y, (y + 1) % 3)
    preds = {"model": y, "majority": np.ones_like(y), "stratified": rng.integers(0, 3, y.size)}
    preds.update(logreg=(y + 1) % 3, minirocket=near)
    params = make_params({"data": {"stride": 1}, "evaluate": {"bootstrap_samples": 100}})
    meta = {"classes": CLASSES, "symbols": symbols, "horizon": 5}
    return _results(tmp_path, split, symbols, meta, params, preds)


def test_the_headline_holds_what_answers_did_it_do_better(priced) -> None:
    headline = headline_metrics(TUNED, "val_f1", priced)
    names = columns(headline)
    assert names == HEADLINE_COLUMNS and len(names) <= MAX_COLUMNS
    assert headline["best_val_f1"] == 0.41 and headline["n_pruned"] == 1
    u, b = priced.uncertainty, priced.backtest
    assert headline["test_f1"] == {name: u[name]["f1_macro"] for name in PREDICTORS}
    # MiniRocket is the strongest baseline here: the gain is the model's over it
    assert strongest_baseline(u) == "minirocket" == headline["model_gain"]["baseline"]
    assert headline["model_gain"] == {
        "baseline": "minirocket",
        "f1": u["minirocket"]["model_gain"],
        "ci_low": u["minirocket"]["model_gain_ci_low"],
        "ci_high": u["minirocket"]["model_gain_ci_high"],
    }
    assert 0 < headline["model_gain"]["ci_low"] <= headline["model_gain"]["ci_high"]
    assert headline["backtest"]["model"] == {
        "total_return": b["strategy"]["total_return"],
        "sharpe": b["strategy"]["sharpe"],
    }
    assert headline["backtest"]["buy_and_hold"]["sharpe"] == b["buy_and_hold"]["sharpe"]
    # the details are not in it
    assert "best_trial" not in headline and "best_value" not in headline
    assert not any("ci_low" in n and n.startswith("test_f1") for n in names)


def test_the_best_score_is_named_after_tune_metric(priced) -> None:
    headline = headline_metrics(TUNED, "val_loss", priced)
    assert headline["best_val_loss"] == 0.41 and "best_val_f1" not in headline


def test_without_prices_the_backtest_columns_stay_and_are_empty(make_params, tmp_path) -> None:
    """An .npz source has nothing to trade: the same columns, null, so that `dvc exp show`
    lines it up with a priced run instead of growing other columns."""
    n = 60
    y = np.arange(n) % 3
    dates = np.datetime64("1970-01-01") + np.arange(n)
    no_return = np.full(n, np.nan)
    split = SplitData(np.zeros((n, 1, 4), np.float32), y, dates, np.zeros(n, int), no_return)
    preds = {name: np.zeros_like(y) for name in PREDICTORS}
    preds.update(model=y, logreg=y)  # a tie with the model: gain 0 over logreg
    params = make_params({"evaluate": {"bootstrap_samples": 100}})
    meta = {"classes": CLASSES, "symbols": ["waves"], "horizon": None}
    results = _results(tmp_path, split, ["waves"], meta, params, preds)
    headline = headline_metrics(TUNED, "val_f1", results)
    assert columns(headline) == HEADLINE_COLUMNS
    assert headline["backtest"] == {
        "model": {"total_return": None, "sharpe": None},
        "buy_and_hold": {"total_return": None, "sharpe": None},
    }
    assert headline["model_gain"]["baseline"] == "logreg" and headline["model_gain"]["f1"] == 0


def test_dvc_yaml_declares_the_headline_as_the_only_metrics_file() -> None:
    """The details stay stage outputs (so DVC tracks them and `dvc repro` writes them) but
    not metrics, so `dvc exp show` does not list their columns."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    metrics = {next(iter(m)) for s in stages.values() for m in s.get("metrics", [])}
    assert metrics == {"reports/metrics.json"}
    assert "--headline reports/metrics.json" in " ".join(stages["visualize"]["cmd"].split())
    details = [
        ("prepare", "reports/prepare.json"),
        ("tune", "tuning/metrics.json"),
        ("train_best", "reports/test_metrics.json"),
        ("visualize", "reports/bootstrap.json"),
        ("visualize", "reports/backtest.json"),
    ]
    for stage, path in details:
        outs = stages[stage]["outs"]
        declared = [o for o in outs if isinstance(o, dict) and path in o]
        assert declared == [{path: {"cache": False}}], (stage, path)
    # the stage that writes the headline reads every file its numbers come from
    assert "tuning/metrics.json" in stages["visualize"]["deps"]
    assert "reports/predictions.csv" in stages["visualize"]["deps"]
