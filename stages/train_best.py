"""DVC stage `train_best`: train with tune's best params, score the test split once."""

import argparse
from pathlib import Path

from stockclf.config import load_best_params, load_params
from stockclf.errors import run_main
from stockclf.evaluation.train_best import TrainBestOutputs, run_train_best
from stockclf.progress import progress_enabled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--best-params", required=True, type=Path)
    parser.add_argument("--prepared", required=True, type=Path)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--live-dir", required=True, type=Path)
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--confusion", required=True, type=Path)
    parser.add_argument("--predictions", required=True, type=Path)
    args = parser.parse_args()
    params = load_params(args.params).with_overrides(load_best_params(args.best_params))
    outputs = TrainBestOutputs(
        args.model_dir, args.live_dir, args.metrics, args.confusion, args.predictions
    )
    results = run_train_best(params, args.prepared, outputs, progress_bar=progress_enabled())
    if results is None:  # a DDP rank other than 0: rank 0 reports
        return
    for name in ("model", "minirocket", "logreg", "stratified", "majority"):
        m = results[name]
        print(f"{name:<10} test macro F1 {m['f1_macro']:.4f}  accuracy {m['accuracy']:.4f}")


if __name__ == "__main__":
    run_main(main)
