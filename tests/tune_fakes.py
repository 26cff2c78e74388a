"""Test helpers for tuning: stand-ins for the training of a trial (importable by spawned
worker processes), short names for the trial states, and small params/study helpers shared
by the tune test files.

The stand-ins follow ``stockclf.tuning.objective.TrainFn``; tests pass them as ``train_fn``
(a monkeypatch does not reach a spawned process). Module-level so they pickle by name.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import optuna

from stockclf.config import Params

COMPLETE = optuna.trial.TrialState.COMPLETE
FAIL = optuna.trial.TrialState.FAIL
PRUNED = optuna.trial.TrialState.PRUNED
RUNNING = optuna.trial.TrialState.RUNNING
WAITING = optuna.trial.TrialState.WAITING


def stepwise(
    params: Params,
    prepared_dir: Path,
    trial: optuna.Trial,
    live_dir: Path,
    checkpoint_dir: Path | None,
    epoch_s: float = 0.15,
    workers: int = 1,
) -> float:
    """A value that grows per epoch towards ``10 * lr_head``, reported for pruning; leaves
    a marker naming the process that ran the trial, and a checkpoint file.

    ``workers`` > 1: first wait (up to 120 s) until that many processes have each started
    a trial. Without the wait, the first worker can finish every trial before the second
    has imported torch, and a test that all workers ran trials fails by chance (it did on
    CI)."""
    live_dir.mkdir(parents=True, exist_ok=True)
    (live_dir / f"ran_by_{os.getpid()}").write_text(str(trial.number))
    deadline = time.monotonic() + 120
    while workers > 1 and time.monotonic() < deadline:
        if len({m.name for m in live_dir.parent.glob("trial_*/ran_by_*")}) >= workers:
            break
        time.sleep(0.05)
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


#: :func:`stepwise` with short epochs, once both worker processes have started a trial.
two_workers = functools.partial(stepwise, epoch_s=0.05, workers=2)


def quick(
    params: Params,
    prepared_dir: Path,
    trial: optuna.Trial,
    live_dir: Path,
    checkpoint_dir: Path | None,
) -> float:
    """:func:`stepwise` without the sleeps."""
    return stepwise(params, prepared_dir, trial, live_dir, checkpoint_dir, epoch_s=0.0)


class _Stopper:
    def __init__(self, score: float) -> None:
        self.kept = {metric: score for metric in ("val_f1", "val_acc", "val_loss")}


class FakeTrainer:
    """What the objective reads from a Lightning trainer: the kept epoch's metrics."""

    def __init__(self, score: float) -> None:
        self.early_stopping_callback = _Stopper(score)


def fake_train_model(value_of):
    """Replace ``train_model`` (same call shape) by ``value_of(params)``, for monkeypatching
    ``stockclf.tuning.objective.train_model`` in the test process."""

    def train_model(params, prepared_dir, max_epochs, live_dir, monitor, mode, callbacks, **kw):
        Path(live_dir).mkdir(parents=True, exist_ok=True)
        return None, FakeTrainer(value_of(params)), None

    return train_model


def load_only_study(params: Params) -> optuna.Study:
    """The one study in ``tune.storage``."""
    from stockclf.tuning.storage import open_tuning_storage

    storage = open_tuning_storage(params.tune.storage)
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def with_tune(params: Params, **changes) -> Params:
    """``params`` with some ``tune`` keys changed (validated types are kept as given)."""
    return params.model_copy(update={"tune": params.tune.model_copy(update=changes)})


def on_journal(params: Params, path: Path) -> Params:
    """The same params on a journal file: ~5 ms per storage write instead of ~100 ms."""
    return with_tune(params, storage=f"journal:///{path}")
