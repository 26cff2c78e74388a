"""Stand-ins for the training of a trial, importable by spawned worker processes.

They follow ``stockclf.tuning.objective.TrainFn``; tests pass them as ``train_fn`` (a
monkeypatch does not reach a spawned process). Module-level so they pickle by name.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import optuna

from stockclf.config import Params


def stepwise(
    params: Params,
    prepared_dir: Path,
    trial: optuna.Trial,
    live_dir: Path,
    checkpoint_dir: Path | None,
    epoch_s: float = 0.15,
) -> float:
    """A value that grows per epoch towards ``10 * lr_head``, reported for pruning; leaves
    a marker naming the process that ran the trial, and a checkpoint file."""
    live_dir.mkdir(parents=True, exist_ok=True)
    (live_dir / f"ran_by_{os.getpid()}").write_text(str(trial.number))
    if checkpoint_dir is not None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (checkpoint_dir / "best.ckpt").write_bytes(b"weights")
    epochs = params.tune.tuning_max_epochs
    value = 0.0
    for epoch in range(epochs):
        time.sleep(epoch_s)
        value = params.train.lr_head * 10 * (epoch + 1) / epochs
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def quick(
    params: Params,
    prepared_dir: Path,
    trial: optuna.Trial,
    live_dir: Path,
    checkpoint_dir: Path | None,
) -> float:
    """:func:`stepwise` without the sleeps."""
    return stepwise(params, prepared_dir, trial, live_dir, checkpoint_dir, epoch_s=0.0)
