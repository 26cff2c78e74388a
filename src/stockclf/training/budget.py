"""How long one run trains: the epoch budget, stretched to a floor of optimizer steps.

Budgets are counted in epochs, which mean very different amounts of training from one data
set to the next: UCR GunPoint's 40 training windows make one batch per epoch, so 30 epochs
are 30 optimizer steps, while the bundled prices make 55 steps per epoch. ``train.min_steps``
sets a floor in steps; when it stretches the epochs, early-stopping patience and warmup are
stretched by the same factor, so they keep their share of the run.

The floor counts batches of params.yaml's own ``train.batch_size`` (``min_steps_batch_size``,
which ``with_values`` fills in when a trial draws another batch size). It is a floor for small
data, so it must not depend on the drawn batch size: counted at the drawn size, a bundled
trial drawing 256 had half the steps an epoch, met the floor of 400 only with 6 epochs
instead of 3, and took 262-306 s instead of 145 s (fresh clone, 2 cores). Counted at
params.yaml's size, every trial of a study trains the same epochs, so the pruner compares
trials at the same point of the same schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stockclf.config import TrainParams


@dataclass(frozen=True)
class Budget:
    epochs: int  # max_epochs of the trainer
    patience: int  # early-stopping patience, in epochs
    warmup_epochs: float  # linear warmup, in epochs


def steps_per_epoch(n_train: int, train: TrainParams, batch_size: int | None = None) -> int:
    """Optimizer steps in one epoch over ``n_train`` samples in batches of ``batch_size``
    (default ``train.batch_size``): one process's share under data-parallel training,
    capped by ``max_train_batches``."""
    per_process = math.ceil(n_train / train.devices)
    steps = max(math.ceil(per_process / (batch_size or train.batch_size)), 1)
    return min(steps, train.max_train_batches) if train.max_train_batches else steps


def run_budget(max_epochs: int, n_train: int, train: TrainParams) -> Budget:
    """The budget of a run of ``max_epochs`` epochs on ``n_train`` training samples.

    ``train.min_steps`` is the floor of a run of ``train.max_epochs`` (train_best); a
    shorter run (a tuning trial of ``tune.tuning_max_epochs``) gets the same share of it,
    so a trial costs the same fraction of the final run on small data as on large. The
    floor's steps are batches of ``train.min_steps_batch_size`` when set.
    """
    steps = steps_per_epoch(n_train, train, train.min_steps_batch_size)
    floor = math.ceil(train.min_steps * min(max_epochs / train.max_epochs, 1.0))
    epochs = max(max_epochs, math.ceil(floor / steps))
    scale = epochs / max_epochs
    return Budget(
        epochs=epochs,
        patience=math.ceil(train.early_stopping_patience * scale),
        warmup_epochs=train.warmup_epochs * scale,
    )
