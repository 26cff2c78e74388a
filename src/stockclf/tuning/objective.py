"""One trial: train with suggested params, report per-epoch values for pruning, and turn
failures into recorded, non-fatal trial states."""

from __future__ import annotations

import gc
import math
import traceback
from pathlib import Path

import optuna
import torch
from optuna_integration import PyTorchLightningPruningCallback

from stockclf.config import Params
from stockclf.training.run import train_model
from stockclf.tuning.study import suggest


def trial_dir(trials_root: Path, number: int) -> Path:
    return trials_root / f"trial_{number:04d}"


class Objective:
    """Callable for ``study.optimize``; exceptions are re-raised after recording why,
    and ``optimize(catch=...)`` turns them into FAIL so the study goes on."""

    def __init__(self, params: Params, prepared_dir: Path, trials_root: Path) -> None:
        self.params = params
        self.prepared_dir = prepared_dir
        self.trials_root = trials_root

    def __call__(self, trial: optuna.Trial) -> float:
        tune = self.params.tune
        values = suggest(trial, tune)
        mode = "max" if tune.direction == "maximize" else "min"
        try:
            _, trainer, _ = train_model(
                self.params.with_overrides(values),
                self.prepared_dir,
                max_epochs=tune.tuning_max_epochs,
                live_dir=trial_dir(self.trials_root, trial.number),
                monitor=tune.metric,
                mode=mode,
                callbacks=[PyTorchLightningPruningCallback(trial, monitor=tune.metric)],
                progress_bar=False,
            )
        except optuna.TrialPruned:
            raise
        except Exception as err:
            trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}"[:1000])
            trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
            raise
        finally:
            release_memory()
        # Early stopping's best score, not the last epoch's value: the trial is judged
        # by the epoch train_best would keep.
        stopper = trainer.early_stopping_callback
        score = stopper.best_score if stopper is not None else trainer.callback_metrics[tune.metric]
        value = float(score)
        if not math.isfinite(value):
            trial.set_user_attr("fail_reason", f"{tune.metric} is {value}")
        return value


def release_memory() -> None:
    """Drop what a finished or failed trial left, so memory does not grow per trial."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
