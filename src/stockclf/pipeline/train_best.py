"""The train_best stage: train with the tuned params, then score the test split once."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_only

from stockclf.config import Params, load_best_params
from stockclf.data.store import data_fingerprint, load_meta, load_split
from stockclf.evaluation.bootstrap import evaluate_intervals
from stockclf.evaluation.card import git_revision, render_card, write_card
from stockclf.evaluation.predictions import PREDICTORS, write_predictions
from stockclf.evaluation.scoring import (
    baseline_predictions,
    classification_metrics,
    predict,
    validation_summary,
)
from stockclf.files import write_json
from stockclf.progress import progress_enabled
from stockclf.training.callbacks import kept_epoch
from stockclf.training.run import train_model
from stockclf.tuning.space import with_values


@dataclass(frozen=True)
class TrainBestPaths:
    best_params: Path  # the tune stage's best values, overriding params.yaml's
    prepared: Path  # the prepare stage's output
    model_dir: Path  # the best checkpoint, shared through the DVC remote
    live_dir: Path  # dvclive training curves
    metrics: Path  # test metrics of the model and the baselines (details: a plain output;
    # visualize puts each test macro F1 in the headline metrics)
    predictions: Path  # per-sample test predictions of model and baselines (also the
    # source of DVC's confusion plot)

    @classmethod
    def under(cls, root: Path, prepared: Path, best_params: Path) -> TrainBestPaths:
        """Outputs below ``root`` (tests and benchmarks; the stage takes dvc.yaml's)."""
        return cls(
            best_params=best_params,
            prepared=prepared,
            model_dir=root / "model",
            live_dir=root / "live",
            metrics=root / "metrics.json",
            predictions=root / "predictions.csv",
        )


def run_train_best(
    params: Params, paths: TrainBestPaths, progress_bar: bool | None = None
) -> dict[str, Any] | None:
    """Train with the best params, then score the test split once; returns the metrics
    (None on DDP ranks > 0). ``progress_bar`` defaults to whether this is a terminal."""
    tuned = load_best_params(paths.best_params)
    params = with_values(params, tuned)
    # Under DDP every rank runs this stage script; only rank 0 touches the outputs.
    if rank_zero_only.rank == 0 and paths.model_dir.exists():
        shutil.rmtree(paths.model_dir)
    module, trainer, data = train_model(
        params,
        paths.prepared,
        max_epochs=params.train.max_epochs,
        live_dir=paths.live_dir,
        monitor=params.tune.metric,
        mode="max" if params.tune.direction == "maximize" else "min",
        checkpoint_dir=paths.model_dir,
        progress_bar=progress_enabled() if progress_bar is None else progress_bar,
    )
    if not trainer.is_global_zero:
        return None
    y_pred = predict(module, data.test_dataloader())
    results, predicted = score_test(
        params, paths, kept_epoch(trainer), trainer.current_epoch, y_pred
    )
    write_model_card(params, tuned, paths, results, predicted)
    return results


def score_test(
    params: Params, paths: TrainBestPaths, kept: dict[str, float], epochs: int, y_pred: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's test predictions beside every baseline's, written once; returns the
    metrics and every predictor's test predictions."""
    train, val, test = (load_split(paths.prepared, s) for s in ("train", "val", "test"))
    meta = load_meta(paths.prepared)
    classes = meta["classes"]
    y_true = test.y.astype(int)
    results: dict[str, Any] = {
        "n_test": len(test),
        "epochs_trained": epochs,
        "best_val": kept.get(params.tune.metric, float("nan")),  # tune.metric, kept epoch
        "model": classification_metrics(y_true, y_pred, classes),
        "validation": validation_summary(kept, train, val, len(classes), params.seed),
    }
    baselines = baseline_predictions(train, test, params.seed)
    for name, pred in baselines.items():
        results[name] = classification_metrics(y_true, pred, classes)
    predicted = {"model": y_pred, **baselines}
    write_predictions(paths.predictions, test, meta["symbols"], classes, predicted)
    write_json(paths.metrics, results)
    return results, predicted


def write_model_card(
    params: Params,
    tuned: dict[str, Any],
    paths: TrainBestPaths,
    results: dict[str, Any],
    predicted: dict[str, Any],
) -> None:
    """``card.md`` beside the checkpoint: provenance, params, test scores with intervals."""
    meta = load_meta(paths.prepared)
    splits = {s: load_split(paths.prepared, s) for s in ("train", "val", "test")}
    test = splits["test"]
    n_classes = len(meta["classes"])
    intervals = evaluate_intervals(
        test.dates, test.y, predicted, n_classes, params.evaluate, params.seed
    )
    text = render_card(
        params,
        tuned,
        meta,
        splits,
        data_fingerprint(paths.prepared),
        results,
        intervals,
        git_revision(),
    )
    write_card(paths.model_dir / "card.md", text)


def describe(results: dict[str, Any]) -> str:
    return "\n".join(
        f"{name:<10} test macro F1 {results[name]['f1_macro']:.4f}  "
        f"accuracy {results[name]['accuracy']:.4f}"
        for name in PREDICTORS
    )
