"""The test predictions file: written by train_best, read by the visualize stage.

One row per test sample (date, symbol, actual class, the prediction of the model and of
each baseline, the realised forward return). The visualize stage computes the
block-bootstrap intervals and the backtest from it, so changing ``evaluate.cost_bps`` or
the bootstrap settings reruns only that cheap stage, never the training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stockclf.data.store import SplitData
from stockclf.errors import StockclfError
from stockclf.files import atomic_file

#: The predictors train_best scores, the model first (the bootstrap's reference).
PREDICTORS = ("model", "majority", "stratified", "logreg", "minirocket")


class PredictionsError(StockclfError, ValueError):
    """The predictions file does not match what the stage expects."""


@dataclass(frozen=True)
class PredictionTable:
    """Test samples in (date, symbol) order with every predictor's class ids."""

    dates: np.ndarray  # datetime64[D]
    symbols: np.ndarray  # int, index into the symbol list
    y_true: np.ndarray  # int class ids
    predicted: dict[str, np.ndarray]  # predictor name -> int class ids
    forward_return: np.ndarray  # float64 log return over the horizon, NaN where unknown


def write_predictions(
    path: Path,
    test: SplitData,
    symbols: Sequence[str],
    classes: Sequence[str],
    predicted: Mapping[str, np.ndarray],
) -> None:
    """One CSV row per test sample; classes and symbols by name, so people can read it."""
    names = np.asarray(classes)
    frame = pd.DataFrame(
        {
            "date": np.asarray(test.dates, dtype="datetime64[D]").astype(str),
            "symbol": np.asarray(symbols)[np.asarray(test.symbols)],
            "actual": names[np.asarray(test.y, dtype=np.int64)],
            **{k: names[np.asarray(v, dtype=np.int64)] for k, v in predicted.items()},
            "forward_return": np.asarray(test.forward_return, dtype=np.float64),
        }
    )
    with atomic_file(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g")


def read_predictions(path: Path, classes: Sequence[str], symbols: Sequence[str]) -> PredictionTable:
    """Read the file back, checking columns, class names and symbol names."""
    if not path.is_file():
        raise PredictionsError(f"{path}: not found; run the train_best stage (dvc repro)")
    frame = pd.read_csv(path, dtype={"symbol": str}, keep_default_na=False, na_values=[""])
    wanted = ["date", "symbol", "actual", *PREDICTORS, "forward_return"]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise PredictionsError(f"{path}: missing column(s) {missing}; rerun train_best")
    if frame.empty:
        raise PredictionsError(f"{path}: no rows; the test split is empty")
    class_id = {c: i for i, c in enumerate(classes)}
    symbol_id = {s: i for i, s in enumerate(symbols)}

    def ids(column: str, mapping: dict[str, int]) -> np.ndarray:
        unknown = sorted(set(frame[column].astype(str)) - set(mapping))
        if unknown:
            raise PredictionsError(
                f"{path}: column {column!r} has {unknown[:5]}, not in {list(mapping)} "
                "(prepared data meta.json); rerun train_best"
            )
        return frame[column].astype(str).map(mapping).to_numpy(dtype=np.int64)

    try:
        dates = pd.to_datetime(frame["date"], format="%Y-%m-%d").to_numpy().astype("datetime64[D]")
    except ValueError as err:
        raise PredictionsError(f"{path}: column 'date': {err}") from None
    return PredictionTable(
        dates=dates,
        symbols=ids("symbol", symbol_id),
        y_true=ids("actual", class_id),
        predicted={name: ids(name, class_id) for name in PREDICTORS},
        forward_return=pd.to_numeric(frame["forward_return"], errors="raise").to_numpy(
            dtype=np.float64
        ),
    )
