"""Block-bootstrap intervals and the test predictions file."""

import re

import numpy as np
import pytest
from sklearn.metrics import f1_score

from stockclf.config import ParamsError
from stockclf.data.store import SplitData
from stockclf.evaluation.bootstrap import (
    bootstrap_macro_f1,
    circular_block_counts,
    confusion_by_date,
    macro_f1_from_confusion,
)
from stockclf.evaluation.predictions import PredictionsError, read_predictions, write_predictions

CLASSES = ["down", "flat", "up"]


def panel(n_days: int, n_symbols: int = 2) -> np.ndarray:
    """Dates of a (date, symbol)-ordered test split."""
    return np.repeat(np.datetime64("2016-01-04") + np.arange(n_days), n_symbols)


def test_vectorised_f1_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        y = rng.integers(0, 3, 50)
        p = rng.choice([0, 2], 50)  # class 1 never predicted: F1 0 by zero_division=0
        conf = confusion_by_date(np.zeros(50, dtype=np.int64), y, p, 3, 1)[0]
        expected = f1_score(y, p, labels=[0, 1, 2], average="macro", zero_division=0)
        assert macro_f1_from_confusion(conf, 3) == pytest.approx(expected)


def test_circular_blocks_keep_dates_contiguous() -> None:
    rng = np.random.default_rng(0)
    counts = circular_block_counts(30, 30, 50, rng)
    assert (counts == 1).all()  # one block of every date, wrapped: each date exactly once
    counts = circular_block_counts(30, 1, 2000, rng)
    assert (counts.sum(axis=1) == 30).all()
    assert counts.mean(axis=0) == pytest.approx(np.ones(30), abs=0.15)  # no date favoured
    assert (counts == 0).any() and (counts > 1).any()


def test_intervals_are_seeded_paired_and_blocked() -> None:
    n_days = 200
    dates = panel(n_days)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, len(dates))
    # the model is right in alternating runs of 20 dates (both symbols), wrong otherwise
    right = (np.arange(len(dates)) // 2 // 20) % 2 == 0
    model = np.where(right, y, (y + 1) % 3)
    preds = {"model": model, "majority": np.ones_like(y), "perfect": y}
    kw = {"n_boot": 400, "confidence": 0.95, "seed": 7}
    out = bootstrap_macro_f1(dates, y, preds, 3, block_days=20, **kw)
    assert out == bootstrap_macro_f1(dates, y, preds, 3, block_days=20, **kw)  # seeded
    assert out != bootstrap_macro_f1(dates, y, preds, 3, block_days=20, **{**kw, "seed": 8})
    point = f1_score(y, model, average="macro")
    assert out["model"]["f1_macro"] == pytest.approx(point)
    assert out["model"]["f1_macro_ci_low"] < point < out["model"]["f1_macro_ci_high"]
    assert out["perfect"]["f1_macro_ci_low"] == out["perfect"]["f1_macro_ci_high"] == 1.0
    # paired difference: the perfect predictor beats the model in every resample
    assert out["perfect"]["model_gain_ci_high"] < 0
    assert out["majority"]["model_gain"] == pytest.approx(
        point - f1_score(y, np.ones_like(y), average="macro")
    )
    assert "model_gain" not in out["model"]
    # errors come in runs of 20 dates: resampling single dates understates the spread
    iid = bootstrap_macro_f1(dates, y, preds, 3, block_days=1, **kw)

    def width(o: dict) -> float:
        return o["model"]["f1_macro_ci_high"] - o["model"]["f1_macro_ci_low"]

    assert width(out) > 1.5 * width(iid)


def test_predictions_file_round_trip_and_errors(tmp_path) -> None:
    n = 6
    split = SplitData(
        X=np.zeros((n, 1, 4), dtype=np.float32),
        y=np.array([0, 1, 2, 0, 1, 2]),
        dates=panel(3),
        symbols=np.array([0, 1, 0, 1, 0, 1], dtype=np.int32),
        forward_return=np.array([0.01, -0.02, np.nan, 0.0, 1e-9, -0.3]),
    )
    preds = {name: np.array([2, 1, 0, 0, 1, 2]) for name in ("model", "majority")}
    preds.update(stratified=np.zeros(n, dtype=int), logreg=np.full(n, 2), minirocket=np.ones(n))
    path = tmp_path / "predictions.csv"
    write_predictions(path, split, ["^GSPC", "NA"], CLASSES, preds)
    header = path.read_text().splitlines()[0]
    assert header == (
        "date,symbol,actual,model,majority,stratified,logreg,minirocket,forward_return"
    )
    table = read_predictions(path, CLASSES, ["^GSPC", "NA"])  # "NA" stays a symbol name
    assert (table.dates == split.dates).all() and (table.symbols == split.symbols).all()
    assert (table.y_true == split.y).all() and (table.predicted["logreg"] == 2).all()
    assert (table.predicted["minirocket"] == 1).all()
    np.testing.assert_array_equal(table.forward_return, split.forward_return)

    with pytest.raises(PredictionsError, match=re.escape("has ['NA'], not in ['^GSPC']")):
        read_predictions(path, CLASSES, ["^GSPC"])
    with pytest.raises(PredictionsError, match=re.escape("'actual' has ['down']")):
        read_predictions(path, ["flat", "up"], ["^GSPC", "NA"])
    path.write_text(header.replace(",logreg", "") + "\n")
    with pytest.raises(PredictionsError, match=r"missing column.*logreg"):
        read_predictions(path, CLASSES, ["^GSPC", "NA"])
    with pytest.raises(PredictionsError, match="not found"):
        read_predictions(tmp_path / "absent.csv", CLASSES, ["^GSPC"])


def test_evaluate_params_are_validated(make_params) -> None:
    assert make_params().evaluate.cost_bps == 0.0
    with pytest.raises(ParamsError, match=r"evaluate\.confidence"):
        make_params({"evaluate": {"confidence": 1.5}})
    with pytest.raises(ParamsError, match=r"evaluate\.cost_bps"):
        make_params({"evaluate": {"cost_bps": -1}})
    with pytest.raises(ParamsError, match=r"evaluate\.block"):
        make_params({"evaluate": {"block": 5}})
