"""DVC stage `visualize`: Optuna's plots of the study and the training plots, as PNG."""

import argparse
import json
from pathlib import Path

from stockclf.config import load_params
from stockclf.data.store import atomic_directory, load_meta
from stockclf.errors import run_main
from stockclf.reporting.plots import save_plots
from stockclf.reporting.training_plots import plot_confusion, plot_training_curves
from stockclf.tuning.study import load_existing_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--study-info", required=True, type=Path)
    parser.add_argument("--train-live", required=True, type=Path)
    parser.add_argument("--confusion", required=True, type=Path)
    parser.add_argument("--prepared", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    params = load_params(args.params)
    info = json.loads(args.study_info.read_text(encoding="utf-8"))
    study = load_existing_study(info["storage"], info["study_name"])
    classes = load_meta(args.prepared)["classes"]
    dpi = params.visualize.dpi
    with atomic_directory(args.out) as tmp:
        save_plots(study, params.visualize.plots, tmp, dpi)
        plot_training_curves(args.train_live, tmp / "training_curves.png", dpi)
        plot_confusion(args.confusion, classes, tmp / "confusion_matrix.png", dpi)
    for path in sorted(args.out.iterdir()):
        print(path)


if __name__ == "__main__":
    run_main(main)
