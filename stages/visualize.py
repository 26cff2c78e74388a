"""DVC stage `visualize`: Optuna's plots of the study, the training plots, and the numbers
derived from the test predictions (bootstrap intervals of macro F1, the backtest)."""

import argparse
import json
from pathlib import Path

from stockclf.config import load_params
from stockclf.data.store import atomic_directory, load_meta
from stockclf.errors import run_main
from stockclf.evaluation.predictions import PREDICTORS
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--study-info", required=True, type=Path)
    parser.add_argument("--train-live", required=True, type=Path)
    parser.add_argument("--confusion", required=True, type=Path)
    parser.add_argument("--predictions", required=True, type=Path)
    parser.add_argument("--prepared", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="directory of PNG figures")
    parser.add_argument("--bootstrap", required=True, type=Path, help="intervals (metrics)")
    parser.add_argument("--backtest", required=True, type=Path, help="backtest (metrics)")
    parser.add_argument("--equity", required=True, type=Path, help="equity curve TSV (plot)")
    args = parser.parse_args()
    params = load_params(args.params)
    info = json.loads(args.study_info.read_text(encoding="utf-8"))
    study = load_study_for_reading(info["storage"], info["study_name"])
    meta = load_meta(args.prepared)
    results = compute_results(args.predictions, meta, params)
    dpi = params.visualize.dpi
    with atomic_directory(args.out) as tmp:
        save_plots(study, params.visualize.plots, tmp, dpi)
        plot_training_curves(args.train_live, tmp / "training_curves.png", dpi)
        plot_confusion(args.confusion, meta["classes"], tmp / "confusion_matrix.png", dpi)
        plot_f1_intervals(results.uncertainty, list(PREDICTORS), tmp / "f1_intervals.png", dpi)
        plot_equity(results.backtest, results.equity, tmp / "equity_curve.png", dpi)
    write_results(results, args.bootstrap, args.backtest, args.equity)
    for path in sorted(args.out.iterdir()):
        print(path)
    print(format_results(results, list(PREDICTORS)))


if __name__ == "__main__":
    run_main(main)
