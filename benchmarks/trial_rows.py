"""Row 5: what a tuning trial costs beyond its training.

The real tune stage (:func:`run_tune` with the real objective) runs trials of one epoch at
the repository's default size; a Lightning callback and a wrapper of ``train_model`` stamp
each trial's parts. The row function returns the seconds of every part of every trial and
checks the target; :mod:`benchmarks.report.tuning` words it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from benchmarks.common import Context, bench_params, median, prepared_data
from benchmarks.tuning_rows import load_only_study, torch_threads, with_storage
from stockclf.config import Params, merge_params
from stockclf.pipeline.tune import TunePaths, run_tune
from stockclf.tuning import objective


class FitClock(Callback):
    """Wall-clock stamps (``time.time()``, comparable with Optuna's trial datetimes) of the
    fit loop's hooks, first occurrence each: enough to split one trial into its parts."""

    def __init__(self) -> None:
        self.stamps: dict[str, float] = {}

    def _stamp(self, name: str) -> None:
        self.stamps.setdefault(name, time.time())

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._stamp("fit_start")

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._stamp("epoch_start")

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._stamp("validation_end")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._stamp("train_end")


@contextlib.contextmanager
def clocked_training(log: list[dict[str, float]]) -> Iterator[None]:
    """Run every trial's ``train_model`` (the real one) with a :class:`FitClock` added and
    its entry and return stamped; each trial's stamps are appended to ``log``."""
    from stockclf.training.run import train_model

    def clocked(*args: Any, callbacks: Any = (), **kwargs: Any) -> Any:
        clock = FitClock()
        clock.stamps["train_model"] = time.time()
        try:
            return train_model(*args, callbacks=[*callbacks, clock], **kwargs)
        finally:
            clock.stamps["returned"] = time.time()
            log.append(clock.stamps)

    saved = vars(objective).get("train_model")  # normally absent: a lazy module attribute
    objective.train_model = clocked  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if saved is None:
            del objective.train_model  # type: ignore[attr-defined]
        else:
            objective.train_model = saved  # type: ignore[attr-defined]


#: The parts of a trial, between consecutive stamps: (name, from, to).
TRIAL_PARTS = (
    ("between trials: memory release, stale-trial sweep, claim, new trial", "prev_done", "start"),
    ("suggest the params, owner record (storage writes)", "start", "train_model"),
    ("build: data module, model, dvclive logger, Trainer, fit setup", "train_model", "fit_start"),
    ("load the train split, loop setup", "fit_start", "epoch_start"),
    ("compute: train + validation batches", "epoch_start", "validation_end"),
    (
        "epoch end: metrics to dvclive, pruning report (storage), early stopping, checkpoint",
        "validation_end",
        "train_end",
    ),
    ("fit end: teardown, dvclive end, best checkpoint loaded back", "train_end", "returned"),
    ("tell (storage writes), keep-top-k checkpoint pruning", "returned", "done"),
)


def trial_parts(stamps: dict[str, float]) -> dict[str, float]:
    """Seconds of each part of one trial. (The checkpoint has no stamp of its own: a
    weights-only checkpoint calls no callback hook.)"""
    return {name: stamps[end] - stamps[begin] for name, begin, end in TRIAL_PARTS}


#: The part that is the trial's compute: the reference of the overhead.
COMPUTE = TRIAL_PARTS[4][0]
OVERHEAD_LIMIT = 0.05


@dataclass
class TrialOverhead:
    """Row 5: the seconds of each part of each trial of one run of the tune stage."""

    params: Params  # of the measured run
    threads: int  # torch threads the trials ran on
    warm: dict[str, float]  # trial 0, the first in the process: reported, not counted
    trials: list[dict[str, float]]  # the measured trials: part name -> seconds
    per_run: float  # seconds the stage spends once per run, before and after its trials
    n_default: int  # params.yaml's n_trials, over which the per-run seconds spread

    def part(self, name: str) -> float:
        return median([t[name] for t in self.trials])

    @property
    def walls(self) -> list[float]:
        return [sum(t.values()) for t in self.trials]

    @property
    def computes(self) -> list[float]:
        return [t[COMPUTE] for t in self.trials]

    @property
    def overheads(self) -> list[float]:
        return [(w - c) / c for w, c in zip(self.walls, self.computes, strict=True)]

    @property
    def overhead(self) -> float:
        return median(self.overheads)

    @property
    def warm_overhead(self) -> float:
        return (sum(self.warm.values()) - self.warm[COMPUTE]) / self.warm[COMPUTE]

    @property
    def met(self) -> bool:
        return self.overhead <= OVERHEAD_LIMIT


def row5_params(ctx: Context, n_measured: int) -> Params:
    """The repository's params, tuning one epoch a trial at the default batch size, with a
    warm-up trial before the measured ones; its study in a storage of its own."""
    probe = bench_params(ctx)
    updates = {
        "tune": {
            "n_trials": n_measured + 1,  # trial 0 warms the process up and is not counted
            "tuning_max_epochs": 1,
            "parameter_ranges": {"batch_size": {"choices": [probe.train.batch_size]}},
        }
    }
    if ctx.smoke:  # a short validation split too; the figures mean nothing in smoke mode
        updates = merge_params(updates, {"data": {"val_start": "2015-01-01"}})
    return with_storage(bench_params(ctx, updates), ctx.workdir / "row5" / "study.db")


def trial_overhead(ctx: Context) -> TrialOverhead:
    """Row 5: a tune-stage trial of one epoch, against the compute of that epoch."""
    n_measured = ctx.repeats
    threads = 1 if ctx.smoke else torch.get_num_threads()
    params = row5_params(ctx, n_measured)
    prepared = prepared_data(ctx, params)
    fits: list[dict[str, float]] = []
    done: list[float] = []
    with torch_threads(threads), clocked_training(fits):
        run_start = time.time()
        run_tune(
            params,
            TunePaths.under(ctx.workdir / "row5" / "out", prepared),
            callbacks=[lambda study, trial: done.append(time.time())],
        )
        run_end = time.time()
    trials = sorted(load_only_study(params).get_trials(deepcopy=False), key=lambda t: t.number)
    if len(trials) != len(fits) or len(fits) != n_measured + 1:
        raise RuntimeError(f"expected {n_measured + 1} trials, got {len(trials)}/{len(fits)}")
    parts: list[dict[str, float]] = []
    for i, (trial, stamps) in enumerate(zip(trials, fits, strict=True)):
        assert trial.datetime_start is not None
        full = {**stamps, "start": trial.datetime_start.timestamp(), "done": done[i]}
        full["prev_done"] = done[i - 1] if i > 0 else full["start"]
        parts.append(trial_parts(full))
    per_run = (trials[0].datetime_start.timestamp() - run_start) + (run_end - done[-1])
    n_default = bench_params(ctx).tune.n_trials
    return TrialOverhead(params, threads, parts[0], parts[1:], per_run, n_default)
