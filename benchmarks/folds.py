"""``python -m benchmarks.folds``: what walk-forward folds buy, at the same trial budget.

Two studies on the bundled sample, alike but for ``tune.folds`` (1 and 3 by default), each
through the real tune stage (:func:`run_tune`) with no pruning, every trial's checkpoint
kept, and then the real ``train_best``. Per study:

- **gap**: the best trial's validation score minus ``train_best``'s test macro F1 (how
  much the validation score the study picks by overstates what it gets);
- **rank correlation**: Spearman's rho between the trials' validation scores and their test
  macro F1, each trial's kept checkpoint scored on the test split here, in the benchmark
  (the pipeline never scores a trial on test). With folds the checkpoint is the last
  fold's, which trains on the same train split as every trial of the one-split study.

Same ``seed``, same ``n_trials``, the same search space: only the validation differs, so a
3-fold trial costs about three one-split trials. ``tune.metric`` is ``val_f1`` so that
validation and test score the same way.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, Context, bench_params, prepared_data, publish, quote
from benchmarks.tuning_rows import load_only_study, torch_threads, with_storage
from stockclf.config import Params, merge_params, validate_params
from stockclf.reporting.markdown import table

DEFAULT_OUT = REPO / "benchmarks" / "FOLDS.md"
#: The studies: params.yaml plus these (full), or on top of configs/tiny.yaml (smoke).
FULL_UPDATES: dict[str, Any] = {"tune": {"n_trials": 12}}
SMOKE_UPDATES: dict[str, Any] = {"tune": {"n_trials": 3}}
#: What every study here shares, whatever the mode.
COMMON_TUNE: dict[str, Any] = {"pruner": "none", "metric": "val_f1", "direction": "maximize"}


@dataclass
class TrialScore:
    number: int
    val: float  # the trial's value: its validation score (the folds' mean with folds)
    test: float  # its kept checkpoint's test macro F1
    fold_values: list[float] = field(default_factory=list)


@dataclass
class FoldsStudy:
    """One study and its train_best, as measured."""

    folds: int
    trials: list[TrialScore]
    best_trial: int
    best_val: float
    test_f1: float  # train_best's test macro F1, with the study's best params
    tune_seconds: float

    @property
    def gap(self) -> float:
        return self.best_val - self.test_f1

    @property
    def spearman(self) -> float:
        """Rank correlation of validation and test scores over the trials (NaN below three
        trials, or when either is constant)."""
        from scipy.stats import spearmanr

        vals, tests = [t.val for t in self.trials], [t.test for t in self.trials]
        if len(vals) < 3 or len(set(vals)) < 2 or len(set(tests)) < 2:
            return math.nan
        return float(spearmanr(vals, tests).statistic)


def study_params(base: Params, folds: int, root: Path) -> Params:
    """``base`` with ``folds`` folds, no pruning, every checkpoint kept, its own storage."""
    tune = {**COMMON_TUNE, "folds": folds, "keep_top_k": base.tune.n_trials}
    data = merge_params(base.model_dump(mode="json"), {"tune": tune})
    return with_storage(validate_params(data, "<benchmark folds>"), root / "study.db")


def trial_test_f1(prepared: Path, trials_root: Path, number: int) -> float:
    """Test macro F1 of one trial's kept checkpoint (``trials/trial_NNNN/checkpoint``)."""
    from stockclf.data.store import load_meta, load_split
    from stockclf.evaluation.scoring import classification_metrics
    from stockclf.inference.checkpoint import load_classifier
    from stockclf.tuning.checkpoints import checkpoint_dir

    clf = load_classifier(checkpoint_dir(trials_root, number) / "best.ckpt")
    test = load_split(prepared, "test")
    y_pred = clf.predict_proba(np.asarray(test.X, dtype=np.float32)).argmax(axis=1)
    classes = load_meta(prepared)["classes"]
    return classification_metrics(np.asarray(test.y), y_pred, classes)["f1_macro"]


def run_study(base: Params, folds: int, prepared: Path, workdir: Path) -> FoldsStudy:
    """Tune with ``folds`` folds, score every complete trial on test, run train_best."""
    import optuna

    from stockclf.pipeline.train_best import TrainBestPaths, run_train_best
    from stockclf.pipeline.tune import TunePaths, run_tune

    root = workdir / f"folds{folds}"
    params = study_params(base, folds, root)
    tuning = TunePaths.under(root / "tuning", prepared)
    start = time.perf_counter()
    summary = run_tune(params, tuning)
    seconds = time.perf_counter() - start
    complete = [
        t
        for t in load_only_study(params).get_trials(deepcopy=False)
        if t.state == optuna.trial.TrialState.COMPLETE
    ]
    trials = [
        TrialScore(
            t.number,
            float(t.value),
            trial_test_f1(prepared, tuning.trials, t.number),
            list(t.user_attrs.get("fold_values", [])),
        )
        for t in sorted(complete, key=lambda t: t.number)
    ]
    best = TrainBestPaths.under(root / "train_best", prepared, tuning.best_params)
    results = run_train_best(params, best, progress_bar=False)
    assert results is not None  # one process, rank 0
    return FoldsStudy(
        folds=folds,
        trials=trials,
        best_trial=int(summary["best_trial"]),
        best_val=float(summary["best_value"]),
        test_f1=float(results["model"]["f1_macro"]),
        tune_seconds=seconds,
    )


def base_params(ctx: Context, n_trials: int | None) -> Params:
    """params.yaml (shrunk by configs/tiny.yaml in smoke mode) with the mode's trial count,
    or ``n_trials``."""
    updates = SMOKE_UPDATES if ctx.smoke else FULL_UPDATES
    if n_trials is not None:
        updates = merge_params(updates, {"tune": {"n_trials": n_trials}})
    return bench_params(ctx, updates)


def compare(ctx: Context, base: Params, fold_counts: list[int]) -> list[FoldsStudy]:
    """The studies, one per fold count, on the bundled sample prepared once."""
    prepared = prepared_data(ctx, base)
    # One thread: the figures are scores, not times, and two processes share the cores here.
    with torch_threads(1):
        return [run_study(base, k, prepared, ctx.workdir) for k in fold_counts]


def fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def render(studies: list[FoldsStudy], base: Params, command: str) -> str:
    """The report: one line per study, then every trial's two scores."""
    rows = [
        [
            str(s.folds),
            str(len(s.trials)),
            str(s.best_trial),
            fmt(s.best_val),
            fmt(s.test_f1),
            f"{s.gap:+.4f}",
            fmt(s.spearman),
            f"{s.tune_seconds:.0f} s",
        ]
        for s in studies
    ]
    header = ["tune.folds", "complete trials", "best trial", "best val score"]
    header += ["train_best test F1", "gap (val - test)", "Spearman val/test", "tune wall"]
    trial_rows = [
        [str(s.folds), str(t.number), fmt(t.val), fmt(t.test), ", ".join(map(fmt, t.fold_values))]
        for s in studies
        for t in s.trials
    ]
    tune = base.tune
    lines = [
        "# Walk-forward folds vs one validation split",
        "",
        f"Command: `{command}`",
        "",
        f"The bundled sample, params.yaml's search space, {tune.n_trials} trials per study "
        f"of {tune.tuning_max_epochs} epochs, TPE, seed {base.seed}, no pruning; "
        f"train_best {base.train.max_epochs} epochs. Trial test scores: each trial's kept "
        "checkpoint on the test split, computed here only (`benchmarks/folds.py`).",
        "",
        *table(header, "rrrrrrrr", rows),
        "",
        *table(["tune.folds", "trial", "val score", "test F1", "fold values"], "rrrrl", trial_rows),
        "",
    ]
    return "\n".join(lines)


def no_nan(value: Any) -> Any:
    """``value`` with every NaN as None (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [no_nan(v) for v in value]
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.folds", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="configs/tiny.yaml, 3 trials")
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 3], metavar="K")
    parser.add_argument("--trials", type=int, default=None, help="tune.n_trials of each study")
    parser.add_argument("--out", type=Path, default=None, help=f"default {DEFAULT_OUT.name}")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures")
    args = parser.parse_args(argv)
    if any(k < 1 for k in args.folds) or (args.trials is not None and args.trials < 1):
        parser.error("--folds and --trials take positive integers")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = quote(["python", "-m", "benchmarks.folds", *(argv or sys.argv[1:])])
    with tempfile.TemporaryDirectory(prefix="stockclf-folds-") as work:
        ctx = Context(smoke=args.smoke, repeats=1, workdir=Path(work), command=command)
        base = base_params(ctx, args.trials)
        studies = compare(ctx, base, args.folds)
    figures = [{**asdict(s), "gap": s.gap, "spearman": s.spearman} for s in studies]
    out = args.out or (None if args.smoke else DEFAULT_OUT)
    publish(render(studies, base, command), out, "benchmarks.folds", args.json, no_nan(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
