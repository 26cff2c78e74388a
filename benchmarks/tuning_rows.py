"""Row 4, what pruning saves; and the study helpers it shares with row 5
(:mod:`benchmarks.trial_rows`, what a tuning trial costs beyond its training).

Both rows drive the real tune stage (:func:`stockclf.pipeline.tune.run_tune` with the real
objective, i.e. Lightning training of the real network): row 4 on a synthetic learnable
problem, row 5 on the bundled sample. The row function returns what it measured (each
study's epochs and best value) and checks the target; :mod:`benchmarks.report.tuning`
words it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import optuna
import torch

from benchmarks.common import REPO, Context, bench_params, median
from stockclf.config import Params, validate_params
from stockclf.pipeline.tune import TunePaths, run_tune

# --- shared helpers ------------------------------------------------------------------------


def with_storage(params: Params, db: Path) -> Params:
    """``params`` with the study in its own SQLite file (``bench_params`` puts every study
    at the same path)."""
    data = params.model_dump()
    data["tune"]["storage"] = f"sqlite:///{db.as_posix()}"
    return validate_params(data, "<benchmark params>")


def load_only_study(params: Params) -> optuna.Study:
    """The one study in ``params``' storage (each study here gets a storage of its own)."""
    return optuna.load_study(study_name=None, storage=params.tune.storage)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --- row 4: pruning ------------------------------------------------------------------------

#: The small fixed problem of row 4 (full mode), on the data of :func:`synthetic_prepared`:
#: a small backbone at 16 x 16 pixels, 8 batches of 64 per epoch. The search space,
#: sampler, ``n_startup_trials`` and early stopping are the repository's.
PRUNING_UPDATES: dict[str, Any] = {
    "model": {"backbone": "mobilenetv3_small_050", "image_size": 16},
    "train": {"max_train_batches": 8, "min_steps": 0},  # epochs are what row 4 counts
    "tune": {
        "n_trials": 10,
        "tuning_max_epochs": 6,
        "parameter_ranges": {"batch_size": {"choices": [64]}},  # fixed cost per epoch
    },
}
#: Smoke mode, on top of ``configs/tiny.yaml`` (window 16, image 16, 3 batches of 32):
#: pruning needs more than tiny's one epoch a trial and one startup trial to have anything
#: to prune, and a third trial for the pruner to compare with the first two.
PRUNING_SMOKE_UPDATES: dict[str, Any] = {
    "model": {"backbone": "mobilenetv3_small_050"},
    "train": {"max_train_batches": 2},
    "tune": {
        "n_trials": 3,
        "tuning_max_epochs": 2,
        "n_startup_trials": 1,
        "parameter_ranges": {"batch_size": {"choices": [32]}},
    },
}


@dataclass(frozen=True)
class PruningCase:
    """One study setting of row 4: ``tune`` updates, and the unpruned case it is measured
    against (same validation: a mean over folds is compared with a mean over folds)."""

    tune: dict[str, Any]
    reference: str = "none"


#: The studies of row 4, by name: no pruning first, then the repository's pruner (the
#: verdict), then the alternatives. wilcoxon needs folds, and with 3 folds a p-value
#: threshold above 2^-2 to prune after two folds (see docs/tuning.md#pruning-across-folds).
PRUNING_CASES: dict[str, PruningCase] = {
    "none": PruningCase({"pruner": "none"}),
    "median": PruningCase({"pruner": "median"}),
    "successive_halving": PruningCase({"pruner": "successive_halving"}),
    "hyperband": PruningCase({"pruner": "hyperband"}),
    "hyperband_min2": PruningCase({"pruner": "hyperband", "min_resource": 2}),
    "median_w0_s1": PruningCase({"pruner": "median", "n_warmup_steps": 0, "n_startup_trials": 1}),
    "none_folds3": PruningCase({"pruner": "none", "folds": 3}, reference="none_folds3"),
    "wilcoxon_folds3": PruningCase(
        {"pruner": "wilcoxon", "folds": 3, "wilcoxon_p_threshold": 0.3}, reference="none_folds3"
    ),
}
PRUNERS_FULL = tuple(PRUNING_CASES)
PRUNERS_SMOKE = ("none", "median", "none_folds3", "wilcoxon_folds3")
VALUE_TOLERANCE = 0.01
EPOCH_SHARE_TARGET = 0.40


#: Windows per split of the synthetic problem, and how far the class shifts its signal.
SYNTHETIC_SIZES = {"train": 3000, "val": 600, "test": 60}
#: Smoke mode's: a trial there trains 2 batches an epoch, so validating 600 windows was
#: most of its time; the smoke run measures nothing, it only has to run every case.
SYNTHETIC_SMOKE_SIZES = {"train": 600, "val": 120, "test": 60}
SYNTHETIC_SIGNAL = 0.5


def synthetic_sizes(smoke: bool) -> dict[str, int]:
    return SYNTHETIC_SMOKE_SIZES if smoke else SYNTHETIC_SIZES


def synthetic_prepared(ctx: Context, params: Params) -> tuple[Params, Path]:
    """A learnable problem in the prepared layout, made once per run (seed 0).

    Stock windows barely carry a signal: on the bundled sample a small model's val F1 mostly
    sits at the one-class value, so every trial's curve looks alike and the best value is a
    lottery, which says nothing about pruning. Here the class (0, 1, 2) shifts the last
    quarter of channel 0 by ``(class - 1) * SYNTHETIC_SIGNAL`` standard deviations of noise:
    learnable, not trivial, so learning rates and the other searched params change how
    fast and how far a trial gets. Written as an ``.npz`` source and prepared by the real
    prepare stage.
    """
    from stockclf.data.prepare import prepare

    root = ctx.workdir / "row4-data"
    source, out = root / "synthetic.npz", root / "prepared"
    data = params.model_dump()
    data["data"]["source"] = source.as_posix()
    params = validate_params(data, "<row 4>")
    if not out.exists():
        sizes = synthetic_sizes(ctx.smoke)
        rng = np.random.default_rng(0)
        n = sum(sizes.values())
        channels, length = len(params.data.features), params.data.window
        x = rng.normal(size=(n, channels, length)).astype(np.float32)
        y = rng.integers(0, 3, size=n)
        x[:, 0, -length // 4 :] += (y[:, None] - 1) * SYNTHETIC_SIGNAL
        split = np.repeat(np.arange(3), [sizes[k] for k in ("train", "val", "test")])
        root.mkdir(parents=True, exist_ok=True)
        np.savez(source, X=x, y=y, split=split, classes=np.array(["down", "flat", "up"]))
        prepare(params.data, out, REPO / "data" / "sample")
    return params, out


@dataclass
class Study:
    """One whole tuning study: epochs trained, the best value, its trials, the wall time."""

    epochs: int
    best: float
    n_pruned: int
    n_complete: int
    seconds: float
    values: list[float | None] = field(default_factory=list)  # each trial's, by number


def epochs_trained(trial: optuna.trial.FrozenTrial) -> int:
    """Epochs one trial trained: with folds, the epochs of every fold it ran; with one
    split, its reported intermediate values (one per validated epoch, pruned or not)."""
    if "fold_epochs" in trial.user_attrs:
        return int(sum(trial.user_attrs["fold_epochs"]))
    return len(trial.intermediate_values)


def run_study(ctx: Context, base: Params, case: str, seed: int) -> Study:
    """One whole tuning study of the case named ``case``."""
    return synthetic_study(ctx, base, PRUNING_CASES[case].tune, f"row4/seed{seed}-{case}", seed)


def synthetic_study(
    ctx: Context, base: Params, tune: dict[str, Any], name: str, seed: int
) -> Study:
    """One whole tuning study on the synthetic problem: ``base`` with ``seed`` and the
    ``tune`` updates, in its own storage under ``ctx.workdir / name``."""
    data = base.model_dump()
    data["seed"] = seed
    data["tune"].update(tune)
    root = ctx.workdir / name
    params, prepared = synthetic_prepared(ctx, validate_params(data, f"<{name}>"))
    params = with_storage(params, root / "study.db")
    start = time.perf_counter()
    summary = run_tune(params, TunePaths.under(root / "out", prepared))
    seconds = time.perf_counter() - start
    trials = sorted(load_only_study(params).get_trials(deepcopy=False), key=lambda t: t.number)
    epochs = sum(epochs_trained(t) for t in trials)
    best = float(summary["best_value"])
    values = [t.value if t.state == optuna.trial.TrialState.COMPLETE else None for t in trials]
    return Study(epochs, best, summary["n_pruned"], summary["n_complete"], seconds, values)


class Verdict(NamedTuple):
    """A pruner against no pruning: medians over the seeds, and whether the target holds."""

    share: float  # of the unpruned study's epochs
    gap: float  # best value minus the unpruned study's
    met: bool


@dataclass
class PruningSavings:
    """Row 4: the same studies (seed, trials, search space) under each pruner."""

    params: Params  # of the studies, but for the seed and each case's tune updates
    seeds: list[int]
    studies: dict[str, list[Study]]  # case -> one study per seed; "none" first
    sizes: dict[str, int]  # windows per split of the synthetic problem

    @property
    def pruners(self) -> list[str]:
        """Every case measured, in order (the name of its row in the table)."""
        return list(self.studies)

    @property
    def pruned(self) -> list[str]:
        """The cases that prune, each against its unpruned reference."""
        return [p for p in self.studies if PRUNING_CASES[p].tune["pruner"] != "none"]

    def reference(self, case: str) -> str:
        return PRUNING_CASES[case].reference

    def share(self, pruner: str, r: int) -> float:
        return self.studies[pruner][r].epochs / self.studies[self.reference(pruner)][r].epochs

    def gap(self, pruner: str, r: int) -> float:
        return self.studies[pruner][r].best - self.studies[self.reference(pruner)][r].best

    def verdict(self, pruner: str) -> Verdict:
        share = median([self.share(pruner, r) for r in range(len(self.seeds))])
        gap = median([self.gap(pruner, r) for r in range(len(self.seeds))])
        return Verdict(share, gap, share <= EPOCH_SHARE_TARGET and gap >= -VALUE_TOLERANCE)

    @property
    def met(self) -> bool:
        """The verdict is on the repository's pruner."""
        return self.verdict("median").met

    def floor_epochs(self) -> int:
        """The fewest epochs the median pruner can use: n_startup_trials whole trials, and
        n_warmup_steps + 1 epochs for every later trial."""
        tune = self.params.tune
        later = tune.n_trials - tune.n_startup_trials
        return tune.n_startup_trials * tune.tuning_max_epochs + (tune.n_warmup_steps + 1) * later


def pruning_savings(ctx: Context) -> PruningSavings:
    """Row 4: the same study (seed, trials, search space) with and without pruning, in each
    case of :data:`PRUNING_CASES` the mode runs."""
    pruners = PRUNERS_SMOKE if ctx.smoke else PRUNERS_FULL
    base = bench_params(ctx, PRUNING_SMOKE_UPDATES if ctx.smoke else PRUNING_UPDATES)
    seeds = [base.seed + r for r in range(ctx.repeats)]
    studies: dict[str, list[Study]] = {p: [] for p in pruners}
    # One thread: these tiny models run no faster on two, and far slower when other
    # processes share the cores; the row's figures (epochs, values) do not depend on speed.
    with torch_threads(1):
        for r, seed in enumerate(seeds):
            shift = r % len(pruners)
            for pruner in pruners[shift:] + pruners[:shift]:
                studies[pruner].append(run_study(ctx, base, pruner, seed))
    return PruningSavings(base, seeds, studies, synthetic_sizes(ctx.smoke))
