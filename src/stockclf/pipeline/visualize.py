"""The visualize stage: Optuna's plots of the study, the training plots, the numbers
derived from the test predictions (bootstrap intervals of macro F1, the backtest), and the
headline metrics that ``dvc exp show`` compares.

Everything is computed and drawn first, into a temporary directory; the figures replace
the old ones and the JSON files are written only when all of it worked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stockclf.config import Params
from stockclf.data.store import load_meta
from stockclf.evaluation.predictions import PREDICTORS
from stockclf.files import atomic_directory, write_json
from stockclf.reporting.plots import save_plots
from stockclf.reporting.results import (
    Results,
    compute_results,
    format_results,
    plot_equity,
    plot_f1_intervals,
    write_results,
)
from stockclf.reporting.training_plots import plot_confusion, plot_training_curves
from stockclf.tuning.storage import load_study_for_reading


@dataclass(frozen=True)
class VisualizePaths:
    study_info: Path  # the tune stage's record of where its study is
    train_live: Path  # train_best's dvclive directory
    predictions: Path  # train_best's per-sample test predictions
    prepared: Path  # the prepared data (its meta.json: classes, horizon)
    figures: Path  # the PNG figures (a directory, replaced whole)
    tune_metrics: Path  # the tune stage's summary: best value, trial counts
    bootstrap: Path  # intervals of test macro F1 (details: a plain output)
    backtest: Path  # the backtest's returns (details: a plain output)
    equity: Path  # the equity curves, a TSV that DVC plots
    headline: Path  # the one DVC metrics file: what experiments are compared by


#: The tune summary's trial counts, copied into the headline under the same names.
TRIAL_COUNTS = ("n_complete", "n_pruned", "n_fail")


def strongest_baseline(uncertainty: dict[str, Any]) -> str:
    """The baseline with the highest test macro F1 (the first of :data:`PREDICTORS` on a
    tie): the one the model has to beat for its gain to mean anything."""
    baselines = [name for name in PREDICTORS if name != "model"]
    return max(baselines, key=lambda name: uncertainty[name]["f1_macro"])


def _book(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """A book's total return and Sharpe ratio; None for both where there is no backtest, so
    that every experiment has the same columns."""
    metrics = metrics or {}
    return {"total_return": metrics.get("total_return"), "sharpe": metrics.get("sharpe")}


def headline_metrics(tuned: dict[str, Any], metric: str, results: Results) -> dict[str, Any]:
    """The numbers that say whether an experiment did better, and nothing else, so that
    ``dvc exp show`` fits on a screen: the best validation score (named after
    ``tune.metric``), the trial counts, each predictor's test macro F1, the model's gain
    over the strongest baseline with its interval, and the backtest of the model and of
    buy-and-hold. The details stay in the tune summary, the test metrics, the bootstrap
    and the backtest files."""
    u = results.uncertainty
    baseline = strongest_baseline(u)
    gain = u[baseline]
    return {
        f"best_{metric}": tuned["best_value"],
        **{key: tuned[key] for key in TRIAL_COUNTS},
        "test_f1": {name: u[name]["f1_macro"] for name in PREDICTORS},
        "model_gain": {
            "baseline": baseline,
            "f1": gain["model_gain"],
            "ci_low": gain["model_gain_ci_low"],
            "ci_high": gain["model_gain_ci_high"],
        },
        "backtest": {
            "model": _book(results.backtest.get("strategy")),
            "buy_and_hold": _book(results.backtest.get("buy_and_hold")),
        },
    }


def run_visualize(params: Params, paths: VisualizePaths) -> dict[str, Any]:
    """Draw every figure and write the interval, backtest and headline files; returns the
    summary."""
    info = json.loads(paths.study_info.read_text(encoding="utf-8"))
    study = load_study_for_reading(info["storage"], info["study_name"])
    meta = load_meta(paths.prepared)
    results = compute_results(paths.predictions, meta, params)
    tuned = json.loads(paths.tune_metrics.read_text(encoding="utf-8"))
    headline = headline_metrics(tuned, info["metric"], results)
    dpi = params.visualize.dpi
    with atomic_directory(paths.figures) as tmp:
        save_plots(study, params.visualize.plots, tmp, dpi)
        plot_training_curves(paths.train_live, tmp / "training_curves.png", dpi)
        plot_confusion(paths.predictions, meta["classes"], tmp / "confusion_matrix.png", dpi)
        plot_f1_intervals(results.uncertainty, list(PREDICTORS), tmp / "f1_intervals.png", dpi)
        plot_equity(results.backtest, results.equity, tmp / "equity_curve.png", dpi)
    write_results(results, paths.bootstrap, paths.backtest, paths.equity)
    write_json(paths.headline, headline)
    figures = sorted(str(p) for p in paths.figures.iterdir())
    return {"figures": figures, "report": format_results(results, list(PREDICTORS))}


def describe(summary: dict[str, Any]) -> str:
    return "\n".join([*summary["figures"], summary["report"]])
