"""The prepare stage: OHLCV CSVs -> windows, labels and splits on disk, plus a summary.

Everything is loaded, validated and computed in memory first; only then is the output
directory written, through :func:`store.atomic_directory`, so a failure at any point
leaves the previous output untouched and no partial directory behind. The summary
JSON (a DVC metrics file) is written after the directory is swapped in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from stockclf.config import DataParams
from stockclf.data import store
from stockclf.data.features import compute_features
from stockclf.data.labels import CLASSES, classify, forward_log_return, z_scores
from stockclf.data.loading import OHLCV, DataError, load_directory
from stockclf.data.store import SPLITS, SplitData
from stockclf.data.windows import candidate_days, cut_windows, split_days


def source_directory(params: DataParams, sample_dir: Path) -> Path:
    """``source: sample`` means the bundled ``sample_dir``; anything else is a directory path."""
    return Path(sample_dir) if params.source == "sample" else Path(params.source)


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


def symbol_samples(series: OHLCV, symbol_id: int, params: DataParams) -> dict[str, SplitData]:
    """Windows, labels, dates and symbol ids of one series, per split (purged)."""
    features = compute_features(series, params.features)
    z = z_scores(series.close, params.horizon, params.vol_window)
    forward = forward_log_return(series.close, params.horizon)
    days = candidate_days(
        len(series), params.window, params.horizon, params.vol_window, params.stride
    )
    days = days[np.isfinite(z[days])]  # sigma_t == 0: no usable label
    parts = split_days(
        days, series.dates, params.val_start, params.test_start, params.window, params.horizon
    )
    out: dict[str, SplitData] = {}
    for name, idx in parts.items():
        X = cut_windows(features, idx, params.window)
        if not np.isfinite(X).all():  # defensive: validation should make this impossible
            raise DataError(f"{series.path}: non-finite feature values in the {name} windows")
        out[name] = SplitData(
            X=X,
            y=classify(z[idx], params.threshold),
            dates=series.dates[idx].astype("datetime64[D]"),
            symbols=np.full(len(idx), symbol_id, dtype=np.int32),
            forward_return=forward[idx].astype(np.float64),
        )
    return out


def build_dataset(series: list[OHLCV], params: DataParams) -> dict[str, SplitData]:
    """All symbols' samples per split, ordered by (date, symbol); empty splits are errors."""
    per_symbol = [symbol_samples(s, i, params) for i, s in enumerate(series)]
    n_channels = len(params.features)
    out: dict[str, SplitData] = {}
    for name in SPLITS:
        parts = [p[name] for p in per_symbol]
        dates = np.concatenate([p.dates for p in parts]).astype("datetime64[D]")
        symbols = np.concatenate([p.symbols for p in parts]).astype(np.int32)
        if dates.size == 0:
            first = min(s.dates[0] for s in series)
            last = max(s.dates[-1] for s in series)
            raise DataError(
                f"split {name!r} ({split_description(params, name)}) has no samples over "
                f"{len(series)} symbol(s) after purging window + horizon days at each "
                f"boundary; the data covers {first} to {last}. Adjust data.val_start / "
                "data.test_start"
            )
        order = np.lexsort((symbols, dates))
        X = np.concatenate([p.X for p in parts]).reshape(-1, n_channels, params.window)
        out[name] = SplitData(
            X=np.ascontiguousarray(X[order], dtype=np.float32),
            y=np.concatenate([p.y for p in parts]).astype(np.int64)[order],
            dates=dates[order],
            symbols=symbols[order],
            forward_return=np.concatenate([p.forward_return for p in parts])[order],
        )
    return out


def summarize(splits: dict[str, SplitData], n_symbols: int) -> dict[str, Any]:
    """Counts, date range and class balance per split (the DVC metrics file)."""
    summary: dict[str, Any] = {}
    for name in SPLITS:
        data = splits[name]
        n = len(data)
        counts = np.bincount(data.y, minlength=len(CLASSES))
        entry: dict[str, Any] = {
            "n": int(n),
            "first_date": str(data.dates.min()) if n else None,
            "last_date": str(data.dates.max()) if n else None,
        }
        for cls, count in zip(CLASSES, counts, strict=True):
            entry[f"frac_{cls}"] = round(float(count) / n, 6) if n else 0.0
        summary[name] = entry
    summary["n_symbols"] = int(n_symbols)
    return summary


def prepare(params: DataParams, out_dir: Path, sample_dir: Path) -> dict[str, Any]:
    """Run the stage: validate and compute in memory, then swap ``out_dir`` in atomically.

    Returns the summary dict; writing it is :func:`write_summary`'s job so that the
    caller decides where the metrics file goes.
    """
    series = load_directory(source_directory(params, sample_dir), min_rows=required_rows(params))
    splits = build_dataset(series, params)
    meta = {
        "symbols": [s.symbol for s in series],
        "features": list(params.features),
        "classes": list(CLASSES),
        "window": params.window,
        "horizon": params.horizon,
        "n_channels": len(params.features),
    }
    summary = summarize(splits, len(series))
    with store.atomic_directory(out_dir) as tmp:
        for name in SPLITS:
            store.save_split(tmp, name, splits[name])
        store.save_meta(tmp, meta)
    return summary


def write_summary(summary: dict[str, Any], path: Path) -> None:
    """Write the summary JSON atomically (a reader never sees half a metrics file)."""
    with store.atomic_file(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
