"""``stockclf predict``: what the trained model says about the window ending on a date.

Prices go through the prepare stage's own code: :func:`~stockclf.data.loading.load_csv`
(the same validation and messages), :func:`~stockclf.data.features.compute_features` and
:func:`~stockclf.data.windows.cut_windows`, with the features, window and ``max_gap`` the
checkpoint records, so a feature cannot mean one thing in training and another here.
An ``.npz`` holds windows as prepare reads them (:func:`~stockclf.data.npz.load_windows`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stockclf.data.features import compute_features
from stockclf.data.loading import list_csv_files, load_csv
from stockclf.data.npz import load_windows
from stockclf.data.windows import cut_windows
from stockclf.errors import DataError
from stockclf.files import atomic_file
from stockclf.inference.checkpoint import CheckpointError, Classifier


@dataclass(frozen=True)
class Predictions:
    """One row per window: its label (symbol and date, or row number), the probabilities
    and the predicted class; ``accuracy`` when the input carried labels."""

    table: pd.DataFrame
    accuracy: float | None = None


def parse_date(value: str) -> np.datetime64 | None:
    """``latest`` (None: each file's last row) or an ISO date."""
    if value == "latest":
        return None
    try:
        return np.datetime64(dt.date.fromisoformat(value), "D")
    except ValueError:
        raise DataError(f"--date {value!r}: expected latest or a date YYYY-MM-DD") from None


def window_on(path: Path, clf: Classifier, date: np.datetime64 | None) -> tuple[str, np.ndarray]:
    """The date and the window (C x L) of ``path`` ending on its last row on or before
    ``date`` (its last row for None)."""
    series = load_csv(path, max_gap=int(clf.data_params.get("max_gap", 0)))
    features = compute_features(series, clf.features).astype(np.float32)
    dates = series.dates.astype("datetime64[D]")
    first, last = dates[0], dates[-1]
    if date is not None and not first <= date <= last:
        raise DataError(f"{path}: date {date} is outside the file, which covers {first} to {last}")
    end = len(dates) - 1 if date is None else int(np.searchsorted(dates, date, side="right")) - 1
    # a window of L feature days starts at day 1 at the earliest: day 0 has no return
    if end < clf.window:
        raise DataError(
            f"{path}: {dates[end]} has {end} rows before it; the model's window needs "
            f"{clf.window} rows before the date ({clf.window} days of features, the first "
            "of which needs the close of the day before)"
        )
    return str(dates[end]), cut_windows(features, np.array([end]), clf.window)[0]


def predict_prices(data: Path, clf: Classifier, date: str) -> Predictions:
    """Every symbol of a CSV directory (or one CSV file), the window ending on ``date``."""
    day = parse_date(date)
    if data.is_file() and data.suffix.lower() != ".csv":
        raise DataError(f"{data}: expected a directory of OHLCV CSV files, a .csv or an .npz")
    files = [data] if data.is_file() else list_csv_files(data)
    labels, windows = [], []
    for path in files:
        on, window = window_on(path, clf, day)
        labels.append({"symbol": path.stem, "date": on})
        windows.append(window)
    probs = clf.predict_proba(np.stack(windows))
    return Predictions(_table(pd.DataFrame(labels), probs, clf))


def predict_npz(path: Path, clf: Classifier) -> Predictions:
    """Every row of an ``.npz`` of windows; with ``y``, the accuracy too."""
    x, y, classes = load_windows(path)
    clf.check_windows(x, str(path))
    if classes is not None and classes != clf.classes:
        raise CheckpointError(
            f"{path}: classes {classes}, but {clf.path} was trained on {clf.classes}"
        )
    if y is not None and int(y.max()) >= len(clf.classes):
        raise CheckpointError(
            f"{path}: 'y' has class ids up to {int(y.max())}, but {clf.path} knows "
            f"{len(clf.classes)} classes {clf.classes}"
        )
    probs = clf.predict_proba(x)
    table = _table(pd.DataFrame({"row": np.arange(len(x))}), probs, clf)
    if y is None:
        return Predictions(table)
    table["actual"] = np.asarray(clf.classes)[y]
    return Predictions(table, float(np.mean(probs.argmax(axis=1) == y)))


def _table(labels: pd.DataFrame, probs: np.ndarray, clf: Classifier) -> pd.DataFrame:
    table = labels.copy()
    table["horizon"] = clf.horizon
    for k, name in enumerate(clf.classes):
        table[f"p_{name}"] = probs[:, k]
    table["predicted"] = np.asarray(clf.classes)[probs.argmax(axis=1)]
    return table


def predict(data: Path, clf: Classifier, date: str = "latest") -> Predictions:
    """Prices (a directory or a .csv) or windows (an .npz), whichever ``data`` is."""
    if data.suffix.lower() == ".npz":
        if date != "latest":
            raise DataError(f"{data}: --date applies to prices; an .npz has no dates")
        return predict_npz(data, clf)
    if not data.exists():
        raise DataError(f"{data}: not found; expected a directory of CSV files, a .csv or an .npz")
    return predict_prices(data, clf, date)


def as_json(result: Predictions, clf: Classifier) -> str:
    out: dict[str, Any] = {
        "model": str(clf.path),
        "classes": clf.classes,
        "horizon": clf.horizon,
        "predictions": json.loads(result.table.to_json(orient="records")),
    }
    if result.accuracy is not None:
        out["accuracy"] = result.accuracy
    return json.dumps(out, indent=2)


def write_csv(result: Predictions, path: Path) -> None:
    """All rows, or nothing: a failure leaves no partial file."""
    with atomic_file(path) as tmp:
        result.table.to_csv(tmp, index=False, float_format="%.6f")


def as_text(result: Predictions, clf: Classifier) -> str:
    horizon = f"{clf.horizon} trading days" if clf.horizon is not None else "the label's own"
    lines = [f"model {clf.path}: classes {clf.classes}, horizon {horizon}"]
    lines.append(result.table.drop(columns=["horizon"]).to_string(index=False, float_format="%.4f"))
    if result.accuracy is not None:
        lines.append(f"accuracy {result.accuracy:.4f} on {len(result.table)} labelled rows")
    return "\n".join(lines)
