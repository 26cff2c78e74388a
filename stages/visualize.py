"""DVC stage `visualize`: Optuna's plots of the tuned study as PNG files."""

import argparse
import json
from pathlib import Path

from stockclf.config import load_params
from stockclf.errors import run_main
from stockclf.reporting.plots import save_plots
from stockclf.tuning.study import load_existing_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--study-info", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    params = load_params(args.params)
    info = json.loads(args.study_info.read_text(encoding="utf-8"))
    study = load_existing_study(info["storage"], info["study_name"])
    for path in save_plots(study, params.visualize.plots, args.out, params.visualize.dpi):
        print(path)


if __name__ == "__main__":
    run_main(main)
