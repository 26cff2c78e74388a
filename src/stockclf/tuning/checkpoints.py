"""Where each trial leaves its files, and which trials keep their checkpoint.

Every trial writes under ``<trials>/trial_NNNN/``: its dvclive training curves and, while
it is one of the best ``tune.keep_top_k`` complete trials, ``checkpoint/best.ckpt`` (its
best epoch). One directory per trial, never a shared one: dvclive's Lightning logger with
``log_model=True`` deletes files in a checkpoint directory that its run did not write
(unless ``resume=True``; dvclive 3.49). The same top trials' checkpoint and curve figure
are also in optuna-dashboard's artifact store, kept in step by :mod:`stockclf.tuning.artifacts`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import optuna

CHECKPOINT_DIR = "checkpoint"
_TRIAL_DIR = re.compile(r"trial_(\d+)$")


def trial_dir(trials_root: Path, number: int) -> Path:
    return trials_root / f"trial_{number:04d}"


def checkpoint_dir(trials_root: Path, number: int) -> Path:
    return trial_dir(trials_root, number) / CHECKPOINT_DIR


def top_trials(study: optuna.Study, k: int) -> set[int]:
    """Numbers of the ``k`` best complete trials (ties: the earlier trial first)."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    ranked = sorted(complete, key=lambda t: (sign * float(t.value), t.number))
    return {t.number for t in ranked[:k]}


def prune_checkpoints(study: optuna.Study, trials_root: Path, keep_top_k: int) -> list[int]:
    """Delete the checkpoints of finished trials outside the top ``keep_top_k``.

    Safe with several workers on one ``trials_root``: a running trial's checkpoint is left
    alone, and a finished trial that is out of the top k never comes back into it (finished
    values do not change), so two workers pruning at once cannot delete a keeper.
    Returns the numbers whose checkpoint was deleted.
    """
    if not trials_root.is_dir():
        return []
    keep = top_trials(study, keep_top_k)
    finished = {t.number: t for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    deleted = []
    for path in sorted(trials_root.glob(f"trial_*/{CHECKPOINT_DIR}")):
        match = _TRIAL_DIR.match(path.parent.name)
        if match is None:
            continue
        number = int(match.group(1))
        if number in finished and number not in keep:
            shutil.rmtree(path, ignore_errors=True)
            deleted.append(number)
    return deleted


class CheckpointKeeper:
    """Optuna callback: after each trial, drop the checkpoints that left the top k."""

    def __init__(self, trials_root: Path, keep_top_k: int) -> None:
        self.trials_root = trials_root
        self.keep_top_k = keep_top_k

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        prune_checkpoints(study, self.trials_root, self.keep_top_k)
