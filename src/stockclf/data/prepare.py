"""The prepare stage: prices (or labelled arrays) -> windows, labels and splits on disk.

``data.source`` is ``sample`` (the bundled ``data/sample``), a directory of OHLCV CSV
files (one symbol per file, the stem is the symbol), or an ``.npz`` file of labelled
windows (:mod:`stockclf.data.npz`).

For CSV sources the work is done in two passes so that memory stays bounded for large
inputs (500 symbols x 5,000 days):

1. each file is read, validated and reduced to its daily feature channels (float32,
   C x n_days) and, per split, the decision days, labels, dates and forward returns of
   its samples; the parsed table is dropped before the next file is read;
2. per split, the samples are ordered by (date, symbol) and their windows are cut in
   chunks of about :data:`CHUNK_BYTES` and appended to ``X.npy``
   (:func:`store.save_split_streamed`), so the N x C x L array is never in memory.

Memory then grows with the rows times channels (4 bytes each) plus about 40 bytes per
sample, not with rows times window length. Every file is validated before anything is
written, and all output goes to a temporary directory that :func:`stockclf.files.atomic_directory`
swaps in only when complete, so a failure at any point leaves the previous output
untouched and no partial directory behind. The summary JSON (a DVC metrics file) is
written after the directory is swapped in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stockclf.config import DataParams
from stockclf.data import store
from stockclf.data.features import compute_features
from stockclf.data.labels import CLASSES, classify, forward_log_return, z_scores
from stockclf.data.loading import OHLCV, check_length, list_csv_files, load_csv
from stockclf.data.npz import load_npz
from stockclf.data.prepare_npz import prepare_npz
from stockclf.data.splits import CHUNK_BYTES, SplitIndex, summarize
from stockclf.data.store import SPLITS
from stockclf.data.windows import candidate_days, cut_windows, split_days
from stockclf.errors import DataError
from stockclf.files import atomic_directory

#: ``data.source`` value that means the bundled sample directory.
SAMPLE_ALIAS = "sample"


def resolve_source(source: str, sample_dir: Path) -> Path:
    """``sample`` means the bundled ``sample_dir``; anything else is a path as given."""
    return Path(sample_dir) if source == SAMPLE_ALIAS else Path(source)


def required_rows(params: DataParams) -> int:
    """Minimum series length, ``window + horizon + vol_window + 1``.

    A bit more than the strict minimum (``max(window, vol_window) + horizon + 1``), so
    every accepted symbol contributes at least a few samples.
    """
    return params.window + params.horizon + params.vol_window + 1


def split_description(params: DataParams, split: str) -> str:
    """Human-readable decision-date range of a split, for messages."""
    return {
        "train": f"decision dates before {params.val_start}",
        "val": f"decision dates from {params.val_start} to before {params.test_start}",
        "test": f"decision dates from {params.test_start} on",
    }[split]


@dataclass(frozen=True)
class SymbolSamples:
    """One symbol after pass 1: its daily features and its samples per split."""

    path: Path
    first_date: np.datetime64
    last_date: np.datetime64
    features: np.ndarray  # float32, C x n_days (column 0 is NaN: no previous day)
    splits: dict[str, SplitIndex]


def symbol_samples(series: OHLCV, symbol_id: int, params: DataParams) -> SymbolSamples:
    """Features and per-split (purged) decision days, labels, dates of one series."""
    features = compute_features(series, params.features).astype(np.float32)
    z = z_scores(series.close, params.horizon, params.vol_window)
    forward = forward_log_return(series.close, params.horizon)
    days = candidate_days(
        len(series), params.window, params.horizon, params.vol_window, params.stride
    )
    days = days[np.isfinite(z[days])]  # sigma_t == 0: no usable label
    parts = split_days(
        days, series.dates, params.val_start, params.test_start, params.window, params.horizon
    )
    splits = {
        name: SplitIndex(
            symbols=np.full(len(idx), symbol_id, dtype=np.int32),
            days=idx,
            y=classify(z[idx], params.threshold),
            dates=series.dates[idx].astype("datetime64[D]"),
            forward_return=forward[idx].astype(np.float64),
        )
        for name, idx in parts.items()
    }
    return SymbolSamples(
        path=series.path,
        first_date=series.dates[0],
        last_date=series.dates[-1],
        features=features,
        splits=splits,
    )


def window_chunks(
    symbols: Sequence[SymbolSamples], index: SplitIndex, window: int
) -> Iterator[np.ndarray]:
    """The windows of ``index`` in its order, as float32 chunks of about CHUNK_BYTES."""
    n_channels = symbols[0].features.shape[0] if symbols else 0
    chunk = max(1, CHUNK_BYTES // max(1, n_channels * window * 4))
    for start in range(0, len(index), chunk):
        sym = index.symbols[start : start + chunk]
        days = index.days[start : start + chunk]
        dates = index.dates[start : start + chunk]
        out = np.empty((len(days), n_channels, window), dtype=np.float32)
        order = np.argsort(sym, kind="stable")  # group the chunk's samples by symbol
        bounds = np.flatnonzero(np.diff(sym[order])) + 1
        for group in np.split(order, bounds):
            s = symbols[int(sym[group[0]])]
            X = cut_windows(s.features, days[group], window)
            bad = ~np.isfinite(X).all(axis=(1, 2))
            if bad.any():  # defensive: validation should make this impossible
                date = dates[group][bad][0]
                raise DataError(f"{s.path}: non-finite feature values in the window ending {date}")
            out[group] = X
        yield out


def _csv_splits(
    files: list[Path], params: DataParams
) -> tuple[list[str], list[SymbolSamples], dict[str, SplitIndex]]:
    """Pass 1 over the CSV files: validate each and keep only what pass 2 needs."""
    names: list[str] = []
    per_symbol: list[SymbolSamples] = []
    for i, path in enumerate(files):
        series = load_csv(path, max_gap=params.max_gap)
        check_length(series, required_rows(params))
        names.append(series.symbol)
        per_symbol.append(symbol_samples(series, i, params))
    splits: dict[str, SplitIndex] = {}
    for name in SPLITS:
        index = SplitIndex.concatenate([s.splits[name] for s in per_symbol])
        if len(index) == 0:
            first = min(s.first_date for s in per_symbol)
            last = max(s.last_date for s in per_symbol)
            raise DataError(
                f"split {name!r} ({split_description(params, name)}) has no samples over "
                f"{len(files)} symbol(s) after purging window + horizon days at each "
                f"boundary; the data covers {first} to {last}. Adjust data.val_start / "
                "data.test_start"
            )
        splits[name] = index
    return names, per_symbol, splits


def prepare(params: DataParams, out_dir: Path, sample_dir: Path) -> dict[str, Any]:
    """Run the stage: validate everything, then write ``out_dir`` atomically.

    Returns the summary dict; the stage (:mod:`stockclf.pipeline.prepare`) writes it,
    after the directory is in place.
    """
    source = resolve_source(params.source, sample_dir)
    if source.suffix.lower() == ".npz":
        return prepare_npz(load_npz(source), params, out_dir)
    if source.is_file():
        raise DataError(
            f"{source}: data.source names a file; expected a directory of CSV files "
            "(one per symbol) or an .npz file"
        )
    names, per_symbol, splits = _csv_splits(list_csv_files(source), params)
    n_channels = len(params.features)
    meta = {
        "symbols": names,
        "features": list(params.features),
        "classes": list(CLASSES),
        "window": params.window,
        "horizon": params.horizon,
        "n_channels": n_channels,
    }
    with atomic_directory(out_dir) as tmp:
        for name in SPLITS:
            index = splits[name]
            store.save_split_streamed(
                tmp,
                name,
                (len(index), n_channels, params.window),
                window_chunks(per_symbol, index, params.window),
                y=index.y,
                dates=index.dates,
                symbols=index.symbols,
                forward_return=index.forward_return,
            )
        store.save_meta(tmp, meta)
    return summarize(splits, len(names), CLASSES)
