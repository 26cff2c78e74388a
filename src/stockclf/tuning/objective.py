"""One trial: train with suggested params (once, or once per fold of ``tune.folds``),
report per-epoch or per-fold values for pruning, and turn failures into recorded,
non-fatal trial states.

Failure policy (each is recorded in the trial's user attributes, and the study goes on):

- the loss becomes NaN/inf (:class:`~stockclf.training.module.NonFiniteLossError`, a
  ``FloatingPointError``) or the final metric is not finite: FAIL, ``failure: nonfinite``;
- out of memory (``torch.cuda.OutOfMemoryError`` or ``MemoryError``): the references to
  the failed run are dropped and memory released *before* the next trial, then FAIL,
  ``failure: oom``;
- any other exception: FAIL, ``failure: error``, with its ``traceback``;
- SIGINT/SIGTERM: FAIL, ``failure: interrupted``; the worker then stops and the trial is
  queued again (:mod:`stockclf.tuning.signals`).
"""

from __future__ import annotations

import gc
import math
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from stockclf.config import Params
from stockclf.tuning.checkpoints import checkpoint_dir, trial_dir
from stockclf.tuning.signals import StopSignals, TuneInterrupted
from stockclf.tuning.space import suggest, with_values

#: ``train_fn(params, prepared_dir, trial, live_dir, checkpoint_dir) -> value``: trains one
#: trial, reports per-epoch values to ``trial`` for pruning, returns the trial's value.
TrainFn = Callable[[Params, Path, optuna.Trial, Path, Path | None], float]


class NonFiniteMetric(FloatingPointError):
    """The trial's value is NaN or inf: it diverged without the loss check noticing."""


class TrialOutOfMemory(MemoryError):
    """Raised in place of an out-of-memory error once the failed run's memory is freed:
    the original exception's traceback holds the frames, and so the tensors, of that run."""


def __getattr__(name: str) -> Any:
    # ``train_model`` is imported on first use (PEP 562): Lightning and timm take ~6 s to
    # import, which each spawned worker process would pay even with an injected train_fn.
    # Tests replace it with ``monkeypatch.setattr(objective, "train_model", fake)``.
    if name == "train_model":
        from stockclf.training.run import train_model

        return train_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def tuning_run(
    params: Params,
    prepared_dir: Path,
    live_dir: Path,
    checkpoint: Path | None,
    callbacks: list[Any],
    fold: Any = None,
) -> tuple[dict[str, float], Any]:
    """One training run of ``tune.tuning_max_epochs`` on the train/val split (or ``fold``),
    kept by tune.metric; returns the kept epoch's validation metrics, and the trainer."""
    from stockclf.training.callbacks import kept_epoch

    train_model = sys.modules[__name__].train_model
    tune = params.tune
    # A trial trains one network whatever train.ensemble says: the ensemble is train_best's.
    params = params.model_copy(update={"train": params.train.model_copy(update={"ensemble": 1})})
    _, trainer, _ = train_model(
        params,
        prepared_dir,
        max_epochs=tune.tuning_max_epochs,
        live_dir=live_dir,
        monitor=tune.metric,
        mode="max" if tune.direction == "maximize" else "min",
        checkpoint_dir=checkpoint,
        callbacks=callbacks,
        progress_bar=False,
        fold=fold,
    )
    return kept_epoch(trainer), trainer


def train_trial(
    params: Params,
    prepared_dir: Path,
    trial: optuna.Trial,
    live_dir: Path,
    checkpoint: Path | None,
) -> float:
    """The real training of one trial (the default ``train_fn``): one run on the train/val
    split, reporting every epoch for pruning, or one run per fold (:func:`train_folds`)."""
    if params.tune.folds > 1:
        return train_folds(params, prepared_dir, trial, checkpoint, live_dir)
    from optuna_integration import PyTorchLightningPruningCallback

    metric = params.tune.metric
    pruning = PyTorchLightningPruningCallback(trial, monitor=metric)
    kept, _ = tuning_run(params, prepared_dir, live_dir, checkpoint, [pruning])
    trial.set_user_attr("best_epoch", kept)
    # tune.metric at the kept epoch, the one train_best would keep (not the last epoch's)
    return float(kept.get(metric, float("nan")))


def fold_dir(live_dir: Path, k: int, last: bool) -> Path:
    """Where fold ``k`` of a trial writes its curves: ``fold_K`` below the trial directory,
    except the last fold, the train/val split, which writes where a one-split trial does
    (dvclive clears only its own files there, not the fold directories)."""
    return live_dir if last else live_dir / f"fold_{k}"


def train_folds(
    params: Params, prepared_dir: Path, trial: optuna.Trial, checkpoint: Path | None, live: Path
) -> float:
    """One run per walk-forward fold, earliest first; the value is the mean of the folds'
    ``tune.metric`` at their kept epochs.

    Fold k's value is reported at step k, so the wilcoxon pruner pairs it with the best
    trial's fold k and may stop the trial after any fold but the last (which saves
    nothing). Only the last fold, the prepared train/val split that train_best also trains
    on, keeps a checkpoint. User attributes: ``fold_values``, ``fold_epochs`` (epochs
    trained), ``fold_kept`` (each fold's kept-epoch metrics) and ``best_epoch``, their
    mean over the folds.
    """
    from stockclf.data.folds import make_folds

    tune = params.tune
    folds = make_folds(prepared_dir, tune.folds, params.seed, params.data.stride)
    values: list[float] = []
    trained: list[int] = []
    kept_metrics: list[dict[str, float]] = []
    for k, fold in enumerate(folds):
        last = k == len(folds) - 1
        kept, trainer = tuning_run(
            params, prepared_dir, fold_dir(live, k, last), checkpoint if last else None, [], fold
        )
        trained.append(int(trainer.current_epoch))
        values.append(float(kept.get(tune.metric, float("nan"))))
        kept_metrics.append(kept)
        del trainer
        gc.collect()  # the fold's tensors sit in reference cycles (trainer <-> module)
        for name, value in (("fold_values", values), ("fold_epochs", trained)):
            trial.set_user_attr(name, value)
        trial.set_user_attr("fold_kept", kept_metrics)
        if not math.isfinite(values[-1]):
            raise NonFiniteMetric(f"{tune.metric} of fold {k} is {values[-1]}")
        trial.report(values[-1], k)
        if not last and trial.should_prune():
            raise optuna.TrialPruned(f"pruned after fold {k} of {len(folds)}")
    trial.set_user_attr("best_epoch", mean_metrics(kept_metrics))
    return sum(values) / len(values)


def mean_metrics(kept: list[dict[str, float]]) -> dict[str, float]:
    """The mean over folds of each validation metric every fold's kept epoch has."""
    names = set.intersection(*(set(k) for k in kept)) - {"epoch"}
    return {name: sum(k[name] for k in kept) / len(kept) for name in sorted(names)}


def record_failure(trial: optuna.Trial, kind: str, reason: str, trace: str | None = None) -> None:
    trial.set_user_attr("failure", kind)
    trial.set_user_attr("fail_reason", reason[:1000])
    if trace is not None:
        trial.set_user_attr("traceback", trace[-4000:])


def is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, MemoryError):
        return True
    torch = sys.modules.get("torch")  # no torch imported: no torch OOM possible
    return torch is not None and isinstance(err, torch.cuda.OutOfMemoryError)


class Objective:
    """Callable for ``study.optimize``; exceptions are re-raised after recording why,
    and ``optimize(catch=...)`` turns them into FAIL so the study goes on."""

    def __init__(
        self,
        params: Params,
        prepared_dir: Path,
        trials_root: Path,
        train_fn: TrainFn | None = None,
        stops: StopSignals | None = None,
    ) -> None:
        self.params = params
        self.prepared_dir = prepared_dir
        self.trials_root = trials_root
        self.train_fn = train_fn or train_trial
        self.stops = stops or StopSignals()

    def __call__(self, trial: optuna.Trial) -> float:
        tune = self.params.tune
        values = suggest(trial, tune)
        live = trial_dir(self.trials_root, trial.number)
        ckpt = checkpoint_dir(self.trials_root, trial.number) if tune.keep_top_k > 0 else None
        oom: str | None = None
        try:
            with self.stops.trial():
                value = self.train_fn(
                    with_values(self.params, values), self.prepared_dir, trial, live, ckpt
                )
        except optuna.TrialPruned:
            raise
        except (KeyboardInterrupt, SystemExit) as err:
            # Lightning turns a signal inside fit into SystemExit: what arrived is in stops.
            name = self.stops.name or type(err).__name__
            record_failure(trial, "interrupted", f"interrupted by {name} during the trial")
            raise TuneInterrupted(self.stops.signum or 2) from None
        except Exception as err:
            if not is_out_of_memory(err):
                kind = "nonfinite" if isinstance(err, FloatingPointError) else "error"
                record_failure(trial, kind, f"{type(err).__name__}: {err}", traceback.format_exc())
                raise
            oom = f"out of memory: {type(err).__name__}: {err}"
            traceback.clear_frames(err.__traceback__)
            # leaving this block deletes `err`, the last reference to the run's frames
        if oom is not None:
            release_memory()
            record_failure(trial, "oom", oom)
            raise TrialOutOfMemory(oom)
        if not math.isfinite(value):
            # Optuna fails a NaN itself but would complete a trial worth +-inf.
            record_failure(trial, "nonfinite", f"{tune.metric} is {value}")
            raise NonFiniteMetric(f"{tune.metric} is {value}")
        return value


def release_memory() -> None:
    """Drop what a finished or failed trial left, so memory does not grow per trial.

    A full collection walks every tracked object: about 550,000 once torch, Lightning, timm
    and Optuna are imported, 0.25 s on a 2-core machine, 2% of a one-epoch trial at the
    default size (``python -m benchmarks --only 5``). What survives it is long-lived
    (modules, the study), so it is moved to the permanent generation (``gc.freeze``) and the
    next trial's collection walks only what that trial created.
    """
    gc.collect()
    gc.freeze()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
