"""One training run, as used by every tune trial and by train_best."""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from dvclive.lightning import DVCLiveLogger
from dvclive.utils import standardize_metric_name
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import Logger
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from stockclf.config import Params, TrainParams
from stockclf.data.folds import Fold
from stockclf.data.store import load_meta
from stockclf.training.averaging import KeptWeightAverage
from stockclf.training.budget import run_budget
from stockclf.training.callbacks import TieBreakCheckpoint, TieBreakEarlyStopping
from stockclf.training.datamodule import PreparedDataModule
from stockclf.training.module import StockClassifier


def resolve_precision(train: TrainParams, accelerator: str) -> str:
    """``auto`` means bf16 mixed precision on CUDA and fp32 elsewhere (measured: bf16
    autocast is slower on CPUs without AVX512-BF16/AMX)."""
    if train.precision != "auto":
        return train.precision
    return "bf16-mixed" if accelerator == "gpu" else "32-true"


def resolve_accelerator(train: TrainParams) -> str:
    if train.accelerator != "auto":
        return "gpu" if train.accelerator == "cuda" else train.accelerator
    return "gpu" if torch.cuda.is_available() else "cpu"


def quiet_lightning() -> None:
    """Lightning's tips (no GPU, few workers, ...) drown the progress bars of many trials."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*number of training batches.*")
    warnings.filterwarnings("ignore", ".*isinstance.treespec, LeafSpec.*")


#: Training windows that the normalisation statistics are computed from (evenly spaced
#: over the split, so they span its whole period); more changes the statistics little.
NORMALISATION_SAMPLES = 8192


def fit_to_training_split(
    module: StockClassifier, x: np.ndarray, y: np.ndarray, train: TrainParams
) -> None:
    """Set what the module learns from the training split before training: the
    normalisation statistics and, with ``class_weights: balanced``, the class weights."""
    step = max(len(x) // NORMALISATION_SAMPLES, 1)
    sample = torch.from_numpy(np.array(x[::step][:NORMALISATION_SAMPLES], dtype=np.float32))
    module.net.fit_normalisation(sample)
    if train.class_weights == "balanced":
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(module.class_weight))
        module.set_class_weights(torch.from_numpy(counts).float())


def checkpoint_meta(params: Params, prepared_dir: str | Path) -> dict:
    """The prepared data's description (features, window, horizon, classes, channels) and
    the data params, in JSON types: what using the model on new data needs."""
    meta = load_meta(prepared_dir)
    return {
        "features": list(meta["features"]),
        "window": int(meta["window"]),
        "horizon": None if meta.get("horizon") is None else int(meta["horizon"]),
        "classes": list(meta["classes"]),
        "n_channels": int(meta["n_channels"]),
        "params": params.data.model_dump(mode="json"),
    }


def kept_epoch_checkpoint(
    checkpoint_dir: str | Path | None, monitor: str, mode: str, keep_last: bool = False
) -> TieBreakCheckpoint | None:
    """Saves the kept epoch as ``best.ckpt`` in ``checkpoint_dir`` (None: no checkpoint)."""
    if checkpoint_dir is None:
        return None
    return TieBreakCheckpoint(
        keep_last=keep_last,
        dirpath=checkpoint_dir,
        filename="best",
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        # no optimizer state: nothing resumes from it, and it is half the bytes written
        save_weights_only=True,
        enable_version_counter=False,
    )


#: The folder of a run's TensorBoard event files, inside its dvclive directory: a trial's
#: are ``<trials>/trial_NNNN/tensorboard/``, so ``tensorboard --logdir tuning/trials``
#: shows every trial as a run of its own.
TENSORBOARD_DIR = "tensorboard"


class TensorBoardLogger(LightningTensorBoardLogger):
    """TensorBoard event files whose scalars carry dvclive's names (``val_f1`` ->
    ``val/f1``, ``lr-AdamW/head`` as it is): both records of a run read the same, and
    TensorBoard groups the scalars by split."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        named = {standardize_metric_name(k, "dvclive.lightning"): v for k, v in metrics.items()}
        super().log_metrics(named, step)


def run_loggers(names: Sequence[str], live_dir: str | Path) -> list[Logger]:
    """One logger per name of ``train.loggers``, writing under ``live_dir``. dvclive's files
    are what ``dvc plots`` and the figures read. A TensorBoard folder left by an earlier
    run in the same place is removed first, as dvclive removes its own files, so that
    TensorBoard shows this run alone."""
    loggers: list[Logger] = []
    for name in names:
        if name == "dvclive":
            loggers.append(
                DVCLiveLogger(dir=os.fspath(live_dir), dvcyaml=False, save_dvc_exp=False)
            )
        elif name == "tensorboard":
            if rank_zero_only.rank == 0:
                shutil.rmtree(Path(live_dir) / TENSORBOARD_DIR, ignore_errors=True)
            # version "": the events directly in the folder, not in a version_N below it;
            # no hp_metric: it would be a scalar of -1 that nothing measured
            loggers.append(
                TensorBoardLogger(
                    os.fspath(live_dir), name=TENSORBOARD_DIR, version="", default_hp_metric=False
                )
            )
        else:
            raise ValueError(f"unknown logger {name!r}")
    return loggers


def make_trainer(
    params: Params,
    epochs: int,
    live_dir: str | Path,
    callbacks: list[Callback],
    progress_bar: bool,
) -> L.Trainer:
    """The Trainer of one run: device and precision from params, the loggers, no sanity
    check; checkpointing only when a checkpoint callback is among ``callbacks``."""
    accelerator = resolve_accelerator(params.train)
    return L.Trainer(
        accelerator=accelerator,
        devices=params.train.devices,
        strategy=params.train.strategy,
        precision=resolve_precision(params.train, accelerator),
        max_epochs=epochs,
        limit_train_batches=params.train.max_train_batches or 1.0,
        logger=run_loggers(params.train.loggers, live_dir),
        callbacks=callbacks,
        enable_checkpointing=any(isinstance(c, TieBreakCheckpoint) for c in callbacks),
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        deterministic=accelerator == "cpu",
        num_sanity_val_steps=0,
    )


def train_model(
    params: Params,
    prepared_dir: str | Path,
    max_epochs: int,
    live_dir: str | Path,
    monitor: str,
    mode: str,
    checkpoint_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    progress_bar: bool = True,
    fold: Fold | None = None,
) -> tuple[StockClassifier, L.Trainer, PreparedDataModule]:
    """Train on train, validate every epoch on val, early-stop on the kept epoch's rule.

    The kept epoch is chosen on ``monitor`` (tune.metric) or, with ``train.keep_epoch_by:
    loss``, on the validation loss: on a validation split of ten windows macro F1 moves in
    steps of 0.1, and one lucky epoch at 1.0 would be kept (one exploratory run on UCR
    ItalyPowerDemand: test accuracy 0.81 kept by F1, 0.95 by loss; benchmarks/ACCURACY.md's
    lever run found the two equal). ``keep_epoch_by: last`` keeps the last epoch and never
    stops early.
    With ``checkpoint_dir`` the kept epoch is saved there and loaded back before return,
    so the returned module is that epoch's. With ``fold`` (tune.folds), train and val are
    that fold's rows.
    """
    quiet_lightning()
    L.seed_everything(params.seed, workers=True, verbose=False)
    data = PreparedDataModule(prepared_dir, params.train.batch_size, params.seed, fold)
    module = StockClassifier(params.model, params.train, data.in_channels, data.num_classes)
    module.data_meta = checkpoint_meta(params, prepared_dir)
    train_split = data.split("train")
    fit_to_training_split(module, train_split.X, train_split.y, params.train)
    budget = run_budget(max_epochs, len(train_split), params.train)
    module.warmup_epochs = budget.warmup_epochs
    keep_last = params.train.keep_epoch_by == "last"
    if params.train.keep_epoch_by in ("loss", "last"):
        monitor, mode = "val_loss", "min"
    checkpoint = kept_epoch_checkpoint(checkpoint_dir, monitor, mode, keep_last)
    averaging = (
        [KeptWeightAverage(decay=params.train.ema_decay)] if params.train.ema_decay > 0 else []
    )
    all_callbacks: list[Callback] = [
        *averaging,  # validation sees, and the checkpoint keeps, the averaged weights
        TieBreakEarlyStopping(monitor, mode=mode, patience=budget.patience, keep_last=keep_last),
        # each parameter group's learning rate at the start of every epoch, to every logger
        LearningRateMonitor(logging_interval="epoch"),
        *callbacks,
        *([checkpoint] if checkpoint is not None else []),
    ]
    trainer = make_trainer(params, budget.epochs, live_dir, all_callbacks, progress_bar)
    trainer.fit(module, datamodule=data)
    if checkpoint is not None and checkpoint.best_model_path:
        best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
        module.load_state_dict(best["state_dict"])
    return module, trainer, data
