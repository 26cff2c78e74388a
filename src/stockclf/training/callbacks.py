"""Callbacks that choose, and describe, the epoch a run keeps.

The kept epoch is the best on the monitored metric; of epochs that tie on it, the one with
the lower validation loss. On a small validation split (UCR GunPoint keeps 10 windows)
macro F1 moves in steps of 0.1 and reaches its ceiling early while training goes on;
Lightning's strict comparison would then keep the first, least trained of those epochs,
and comparing on F1 alone cannot tell a confident right answer from a lucky one.

With ``keep_last`` every epoch replaces the kept one and the run never stops early: the
kept epoch is the last, whatever a validation split of a few windows says of it.
"""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

TIE_BREAK = "val_loss"


def improves(
    current: Mapping[str, torch.Tensor | float],
    best: Mapping[str, torch.Tensor | float] | None,
    monitor: str,
    mode: str,
) -> bool:
    """Whether an epoch with ``current`` metrics replaces the kept one with ``best``."""
    if best is None or monitor not in best:
        return True
    now, then = float(current[monitor]), float(best[monitor])
    if now != then:
        return now > then if mode == "max" else now < then
    if monitor == TIE_BREAK or TIE_BREAK not in current or TIE_BREAK not in best:
        return False
    return float(current[TIE_BREAK]) < float(best[TIE_BREAK])


class TieBreakCheckpoint(ModelCheckpoint):
    """Lightning's checkpoint with :func:`improves` as its rule (``save_top_k=1`` only)."""

    def __init__(self, *args, keep_last: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._kept: dict[str, float] | None = None
        self.keep_last = keep_last

    def check_monitor_top_k(self, trainer: L.Trainer, current: torch.Tensor | None = None) -> bool:
        if current is None:
            return False
        metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        decision = self.keep_last or improves(metrics, self._kept, self.monitor, self.mode)
        decision = trainer.strategy.reduce_boolean_decision(decision)
        if decision:
            self._kept = {k: float(v) for k, v in metrics.items()}
        return decision


class TieBreakEarlyStopping(EarlyStopping):
    """Lightning's early stopping with :func:`improves` as its rule: patience counts the
    epochs since the kept one changed, so a run whose validation loss still falls at the
    ceiling F1 goes on. ``kept`` holds every validation metric of the kept epoch."""

    def __init__(self, *args, keep_last: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kept: dict[str, float] = {}
        self.keep_last = keep_last

    def _run_early_stopping_check(self, trainer: L.Trainer) -> None:
        logs = trainer.callback_metrics
        if trainer.fast_dev_run or not self._validate_condition_metric(logs):
            return
        current = logs[self.monitor].squeeze()
        metrics = {k: float(v) for k, v in logs.items() if k.startswith("val_") and v.numel() == 1}
        should_stop = not torch.isfinite(current)  # a diverged run stops at once
        if not should_stop:
            better = self.keep_last or improves(metrics, self.kept or None, self.monitor, self.mode)
            if trainer.strategy.reduce_boolean_decision(better):
                self.kept = {**metrics, "epoch": float(trainer.current_epoch)}
                self.best_score = current.detach().clone()
                self.wait_count = 0
            else:
                self.wait_count += 1
                should_stop = self.wait_count >= self.patience
        should_stop = trainer.strategy.reduce_boolean_decision(should_stop, all=False)
        trainer.should_stop = trainer.should_stop or should_stop
        if should_stop:
            self.stopped_epoch = trainer.current_epoch


def kept_epoch(trainer: L.Trainer) -> dict[str, float]:
    """The validation metrics (and ``epoch``) of the epoch the run keeps; empty when the
    trainer has no :class:`TieBreakEarlyStopping`."""
    return dict(getattr(getattr(trainer, "early_stopping_callback", None), "kept", {}) or {})
