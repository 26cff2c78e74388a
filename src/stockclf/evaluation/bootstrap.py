"""Block-bootstrap confidence intervals for the test macro F1, blocks over dates.

Test samples are not independent: neighbouring days share most of their window and their
label spans overlap by ``horizon - 1`` days, and the symbols of one date move together. A
plain bootstrap over samples would make the interval too narrow. So the resampling unit is
a *block of consecutive test dates* with every symbol of those dates (the circular block
bootstrap of Politis and Romano, 1992: blocks wrap around the end, so the last dates are
drawn as often as the others).

Every predictor is scored on the same resampled dates, so the difference "model minus
baseline" gets a paired interval too: that is the number that says whether the model
really beats a baseline.

Why hand-written: a resample is summarised as how often each date was drawn, and a
date's confusion counts are summed once, so all resamples reduce to one matrix product
and a vectorised F1. Measured on 1,500 samples (750 dates x 2 symbols), 4 predictors,
1,000 resamples, shared 2-core CPU: 0.08 s, against 15 s for gathering each resample's
indices and calling ``sklearn.metrics.f1_score`` (``arch.bootstrap`` would draw the same
indices and still call the metric once per resample and predictor).
The vectorised F1 is checked against sklearn in tests/test_evaluation.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from stockclf.config import EvaluateParams


def date_index(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique dates and, per sample, the position of its date among them."""
    unique, inverse = np.unique(np.asarray(dates), return_inverse=True)
    return unique, inverse.reshape(-1)


def confusion_by_date(
    day: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, n_days: int
) -> np.ndarray:
    """Confusion counts per date, ``n_days x (n_classes * n_classes)``, actual-major."""
    cell = (day * n_classes + y_true) * n_classes + y_pred
    counts = np.bincount(cell, minlength=n_days * n_classes * n_classes)
    return counts.reshape(n_days, n_classes * n_classes).astype(np.float64)


def macro_f1_from_confusion(confusion: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro F1 of each confusion matrix in ``confusion`` (``... x K*K``, actual-major).

    Per class ``2 TP / (2 TP + FP + FN)``, 0 where the class is neither present nor
    predicted, averaged over all ``K`` classes: sklearn's ``f1_score(average="macro",
    labels=range(K), zero_division=0)``.
    """
    c = confusion.reshape(*confusion.shape[:-1], n_classes, n_classes)
    tp = np.diagonal(c, axis1=-2, axis2=-1)
    actual = c.sum(axis=-1)
    predicted = c.sum(axis=-2)
    denom = actual + predicted  # = 2 TP + FP + FN
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return f1.mean(axis=-1)


def circular_block_counts(
    n_days: int, block: int, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """How often each date is drawn in each resample: ``n_boot x n_days`` integers.

    Each resample concatenates ``ceil(n_days / block)`` blocks of ``block`` consecutive
    dates starting at uniform random dates (wrapping around the end) and keeps the
    first ``n_days`` dates, so every resample has as many dates as the test split.
    """
    block = max(1, min(block, n_days))
    n_blocks = -(-n_days // block)
    starts = rng.integers(0, n_days, size=(n_boot, n_blocks))
    drawn = (starts[:, :, None] + np.arange(block)) % n_days
    drawn = drawn.reshape(n_boot, n_blocks * block)[:, :n_days]
    flat = drawn + (np.arange(n_boot) * n_days)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n_days).reshape(n_boot, n_days)


def bootstrap_macro_f1(
    dates: np.ndarray,
    y_true: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    n_classes: int,
    *,
    n_boot: int,
    block_days: int,
    confidence: float,
    seed: int,
    reference: str = "model",
) -> dict[str, dict[str, float]]:
    """Percentile intervals of the macro F1 of each predictor, and of ``reference`` minus
    each other predictor, all over the same block-bootstrap resamples of the test dates.

    Returns ``{name: {"f1_macro", "f1_macro_ci_low", "f1_macro_ci_high"[, "<reference>_gain",
    "<reference>_gain_ci_low", "<reference>_gain_ci_high"]}}``; the gain keys are given
    for every predictor except ``reference``.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    unique, day = date_index(dates)
    counts = circular_block_counts(len(unique), block_days, n_boot, np.random.default_rng(seed))
    tail = (1.0 - confidence) / 2.0
    quantiles = (tail, 1.0 - tail)
    resampled: dict[str, np.ndarray] = {}
    point: dict[str, float] = {}
    for name, pred in predictions.items():
        per_day = confusion_by_date(
            day, y_true, np.asarray(pred, dtype=np.int64), n_classes, len(unique)
        )
        resampled[name] = macro_f1_from_confusion(counts @ per_day, n_classes)
        point[name] = float(macro_f1_from_confusion(per_day.sum(axis=0), n_classes))
    out: dict[str, dict[str, Any]] = {}
    for name, values in resampled.items():
        low, high = np.quantile(values, quantiles)
        entry = {
            "f1_macro": point[name],
            "f1_macro_ci_low": float(low),
            "f1_macro_ci_high": float(high),
        }
        if name != reference and reference in resampled:
            gain = resampled[reference] - values
            g_low, g_high = np.quantile(gain, quantiles)
            entry[f"{reference}_gain"] = point[reference] - point[name]
            entry[f"{reference}_gain_ci_low"] = float(g_low)
            entry[f"{reference}_gain_ci_high"] = float(g_high)
        out[name] = entry
    return out


def evaluate_intervals(
    dates: np.ndarray,
    y_true: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    n_classes: int,
    evaluate: EvaluateParams,
    seed: int,
) -> dict[str, dict[str, float]]:
    """:func:`bootstrap_macro_f1` with the ``evaluate`` params' settings: the intervals the
    visualize stage reports and the model card shows, computed one way."""
    return bootstrap_macro_f1(
        dates,
        y_true,
        predictions,
        n_classes,
        n_boot=evaluate.bootstrap_samples,
        block_days=evaluate.bootstrap_block_days,
        confidence=evaluate.confidence,
        seed=seed,
    )
