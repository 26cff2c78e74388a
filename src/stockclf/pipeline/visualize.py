"""The visualize stage: Optuna's plots of the study, the training plots, and the numbers
derived from the test predictions (bootstrap intervals of macro F1, the backtest).

Everything is computed and drawn first, into a temporary directory; the figures replace
the old ones and the metrics files are written only when all of it worked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stockclf.config import Params
from stockclf.data.store import load_meta
from stockclf.evaluation.predictions import PREDICTORS
from stockclf.files import atomic_directory
from stockclf.reporting.plots import save_plots
from stockclf.reporting.results import (
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
    bootstrap: Path  # intervals of test macro F1 (a DVC metrics file)
    backtest: Path  # the backtest's returns (a DVC metrics file)
    equity: Path  # the equity curves, a TSV that DVC plots


def run_visualize(params: Params, paths: VisualizePaths) -> dict[str, Any]:
    """Draw every figure and write the interval and backtest files; returns the summary."""
    info = json.loads(paths.study_info.read_text(encoding="utf-8"))
    study = load_study_for_reading(info["storage"], info["study_name"])
    meta = load_meta(paths.prepared)
    results = compute_results(paths.predictions, meta, params)
    dpi = params.visualize.dpi
    with atomic_directory(paths.figures) as tmp:
        save_plots(study, params.visualize.plots, tmp, dpi)
        plot_training_curves(paths.train_live, tmp / "training_curves.png", dpi)
        plot_confusion(paths.predictions, meta["classes"], tmp / "confusion_matrix.png", dpi)
        plot_f1_intervals(results.uncertainty, list(PREDICTORS), tmp / "f1_intervals.png", dpi)
        plot_equity(results.backtest, results.equity, tmp / "equity_curve.png", dpi)
    write_results(results, paths.bootstrap, paths.backtest, paths.equity)
    figures = sorted(str(p) for p in paths.figures.iterdir())
    return {"figures": figures, "report": format_results(results, list(PREDICTORS))}


def describe(summary: dict[str, Any]) -> str:
    return "\n".join([*summary["figures"], summary["report"]])
