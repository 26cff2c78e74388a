"""The prepare stage for an ``.npz`` source: labelled windows, split by their ``split``
array or by position, written in the store layout like the CSV path's output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stockclf.config import DataParams
from stockclf.data import store
from stockclf.data.npz import LabelledArrays
from stockclf.data.splits import CHUNK_BYTES, SplitIndex, summarize
from stockclf.data.store import SPLITS
from stockclf.errors import DataError
from stockclf.files import atomic_directory

#: First "date" of the rows of an ``.npz`` source: row i is dated ``NPZ_EPOCH + i`` days.
NPZ_EPOCH = np.datetime64("1970-01-01", "D")


def npz_split_rows(source: LabelledArrays, params: DataParams) -> dict[str, np.ndarray]:
    """Row indices per split: from the ``split`` array, else by position (first rows train).

    Without a ``split`` array the rows are taken in file order: the last ``test_fraction``
    of them are test, the ``val_fraction`` before those val, the rest train. No rows are
    purged: rows of a generic data set are assumed to be independent samples; if they are
    overlapping windows of one series, provide a ``split`` array with gaps instead.
    """
    n = len(source)
    if source.split is not None:
        ids = source.split
        how = "its 'split' array"
    else:
        n_test = round(n * params.test_fraction)
        n_val = round(n * params.val_fraction)
        ids = np.zeros(n, dtype=np.int64)
        ids[n - n_test - n_val :] = 1
        ids[n - n_test :] = 2
        how = (
            f"data.val_fraction = {params.val_fraction} and data.test_fraction = "
            f"{params.test_fraction} of {n} rows (no 'split' array)"
        )
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(SPLITS):
        rows = np.flatnonzero(ids == i)
        if rows.size == 0:
            raise DataError(f"{source.path}: split {name!r} has no samples with {how}")
        out[name] = rows
    return out


def prepare_npz(source: LabelledArrays, params: DataParams, out_dir: Path) -> dict[str, Any]:
    """Write an ``.npz`` source in the store layout (one symbol: the file's stem).

    Rows have no dates: row ``i`` is dated :data:`NPZ_EPOCH` + ``i`` days, which keeps
    the file order and lets date-based readers work. ``forward_return`` is NaN.
    """
    rows = npz_split_rows(source, params)
    _, n_channels, length = source.X.shape
    chunk = max(1, CHUNK_BYTES // (n_channels * length * 4))
    splits: dict[str, SplitIndex] = {}
    with atomic_directory(out_dir) as tmp:
        for name in SPLITS:
            idx = rows[name]
            splits[name] = SplitIndex(
                symbols=np.zeros(len(idx), dtype=np.int32),
                days=idx.astype(np.int64),
                y=source.y[idx],
                dates=NPZ_EPOCH + idx.astype("timedelta64[D]"),
                forward_return=np.full(len(idx), np.nan),
            )
            store.save_split_streamed(
                tmp,
                name,
                (len(idx), n_channels, length),
                (source.X[idx[i : i + chunk]] for i in range(0, len(idx), chunk)),
                y=splits[name].y,
                dates=splits[name].dates,
                symbols=splits[name].symbols,
                forward_return=splits[name].forward_return,
            )
        store.save_meta(
            tmp,
            {
                "symbols": [source.path.stem],
                "features": [f"channel_{c}" for c in range(n_channels)],
                "classes": source.classes,
                "window": length,
                "horizon": None,
                "n_channels": n_channels,
            },
        )
    return summarize(splits, 1, source.classes)
