"""DVC stage `tune`: bring the Optuna study up to tune.n_trials finished trials."""

import argparse
from pathlib import Path

from stockclf.config import load_params
from stockclf.errors import run_main
from stockclf.tuning.runner import TuneOutputs, run_tune
from stockclf.tuning.signals import interruptible


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    summary = run_tune(load_params(args.params), args.prepared, TuneOutputs(args.out))
    print(
        f"best {summary['best_value']:.4f} (trial {summary['best_trial']}); "
        f"{summary['n_complete']} complete, {summary['n_pruned']} pruned, "
        f"{summary['n_fail']} failed"
    )


if __name__ == "__main__":
    run_main(lambda: interruptible(main))
