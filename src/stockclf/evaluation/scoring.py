"""Test-split metrics for the model and for baselines, side by side."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader

from stockclf.data.store import SplitData
from stockclf.evaluation.minirocket import minirocket_predictions


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]
) -> dict[str, float]:
    labels = list(range(len(classes)))
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    metrics = {
        "f1_macro": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
    }
    metrics.update({f"f1_{name}": float(v) for name, v in zip(classes, per_class, strict=True)})
    return metrics


@torch.inference_mode()
def predict(module: torch.nn.Module, loader: DataLoader) -> np.ndarray:
    """Class ids for every sample of ``loader``, in order."""
    module.eval()
    device = next(module.parameters()).device
    out = [module(x.to(device)).argmax(dim=1).cpu() for x, _ in loader]
    return torch.cat(out).numpy()


def baseline_predictions(train: SplitData, test: SplitData, seed: int) -> dict[str, np.ndarray]:
    """Predictions of the baselines a model must beat, fitted on train only.

    ``majority`` always says the most frequent train class; ``stratified`` draws at random
    with the train class frequencies; ``logreg`` is a class-balanced logistic regression on
    the flattened, standardised window; ``minirocket`` is aeon's MiniRocket classifier on
    the windows as time series (see minirocket.py), the one a user would pick instead.
    """
    x_train = np.asarray(train.X, dtype=np.float32).reshape(len(train), -1)
    x_test = np.asarray(test.X, dtype=np.float32).reshape(len(test), -1)
    y_train = np.asarray(train.y)
    models = {
        "majority": DummyClassifier(strategy="most_frequent"),
        "stratified": DummyClassifier(strategy="stratified", random_state=seed),
        "logreg": make_pipeline(
            StandardScaler(),
            LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed),
        ),
    }
    predicted = {name: m.fit(x_train, y_train).predict(x_test) for name, m in models.items()}
    return {**predicted, "minirocket": minirocket_predictions(train, test, seed)}


STRATIFIED_DRAWS = 200  # random-guess draws behind the validation chance level


def stratified_val_f1(train: SplitData, val: SplitData, seed: int) -> tuple[float, float, float]:
    """The macro F1 that random guesses at the training class frequencies get on ``val``:
    the mean of ``STRATIFIED_DRAWS`` seeded draws, and the 2.5 and 97.5 percentiles.

    One draw is a noisy chance level: on the bundled validation split (1,374 windows) the
    draws' 95% range is 0.308-0.354 around a mean of 0.332, as wide as the gap between a weak
    model and chance (the single draw reported before was 0.355). The mean is the chance
    level; the range says how far luck reaches.
    """
    # Given a RandomState (not an int, which re-seeds every call) each predict() is a new
    # draw; the first is the one draw this summary used to report.
    guess = DummyClassifier(strategy="stratified", random_state=np.random.RandomState(seed))
    guess.fit(np.zeros((len(train), 1)), np.asarray(train.y))
    y_val, features = np.asarray(val.y), np.zeros((len(val), 1))
    scores = np.array(
        [
            f1_score(y_val, guess.predict(features), average="macro", zero_division=0)
            for _ in range(STRATIFIED_DRAWS)
        ]
    )
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(scores.mean()), float(low), float(high)


def validation_summary(
    kept_epoch: dict[str, float], train: SplitData, val: SplitData, n_classes: int, seed: int
) -> dict[str, float]:
    """The kept epoch's validation loss and macro F1, beside what chance gives on the same
    split: ``ln(K)`` (the loss of saying 1/K for every class) and the macro F1 of the
    stratified baseline (random guesses at the training class frequencies), as its mean
    over many draws and their 95% range."""
    mean, low, high = stratified_val_f1(train, val, seed)
    summary = {k: kept_epoch[k] for k in ("val_loss", "val_f1", "val_acc") if k in kept_epoch}
    summary.update(
        ln_classes=float(np.log(n_classes)),
        stratified_val_f1=mean,
        stratified_val_f1_low=low,
        stratified_val_f1_high=high,
    )
    if "epoch" in kept_epoch:
        summary["epoch"] = int(kept_epoch["epoch"])
    return summary
