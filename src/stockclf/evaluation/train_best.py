"""The train_best stage: train with the tuned params, then score the test split once."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_only

from stockclf.config import Params
from stockclf.data.store import atomic_file, load_meta, load_split
from stockclf.evaluation.predictions import write_predictions
from stockclf.evaluation.scoring import (
    baseline_predictions,
    classification_metrics,
    confusion_rows,
    predict,
    validation_summary,
)
from stockclf.training.callbacks import kept_epoch
from stockclf.training.run import train_model


@dataclass(frozen=True)
class TrainBestOutputs:
    model_dir: Path  # best checkpoint, shared through the DVC remote
    live_dir: Path  # dvclive training curves
    metrics: Path  # test metrics of the model and the baselines
    confusion: Path  # per-sample actual/predicted CSV for `dvc plots`
    predictions: Path  # per-sample predictions of model and baselines, for the visualize stage


def run_train_best(
    params: Params, prepared_dir: Path, outputs: TrainBestOutputs, progress_bar: bool = True
) -> dict[str, Any] | None:
    """Train, then score the test split once; returns the metrics (None on DDP ranks > 0)."""
    mode = "max" if params.tune.direction == "maximize" else "min"
    # Under DDP every rank runs this stage script; only rank 0 touches the outputs.
    if rank_zero_only.rank == 0 and outputs.model_dir.exists():
        shutil.rmtree(outputs.model_dir)
    module, trainer, data = train_model(
        params,
        prepared_dir,
        max_epochs=params.train.max_epochs,
        live_dir=outputs.live_dir,
        monitor=params.tune.metric,
        mode=mode,
        checkpoint_dir=outputs.model_dir,
        progress_bar=progress_bar,
    )
    if not trainer.is_global_zero:
        return None
    test = load_split(prepared_dir, "test")
    y_true = test.y.astype(int)
    y_pred = predict(module, data.test_dataloader())
    classes = data.classes
    results: dict[str, Any] = {
        "n_test": len(test),
        "epochs_trained": trainer.current_epoch,
        # tune.metric on validation at the kept epoch
        "best_val": kept_epoch(trainer).get(params.tune.metric, float("nan")),
        "model": classification_metrics(y_true, y_pred, classes),
    }
    train = load_split(prepared_dir, "train")
    results["validation"] = validation_summary(
        kept_epoch(trainer), train, load_split(prepared_dir, "val"), data.num_classes, params.seed
    )
    baselines = baseline_predictions(train, test, params.seed)
    for name, pred in baselines.items():
        results[name] = classification_metrics(y_true, pred, classes)
    symbols = load_meta(prepared_dir)["symbols"]
    write_predictions(outputs.predictions, test, symbols, classes, {"model": y_pred, **baselines})
    with atomic_file(outputs.metrics) as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    with atomic_file(outputs.confusion) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["actual", "predicted"])
        writer.writeheader()
        writer.writerows(confusion_rows(y_true, y_pred, classes))
    return results
