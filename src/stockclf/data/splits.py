"""A split's samples without their windows, and the summary of counts, dates and class
balance that the prepare stage records; shared by the CSV and the ``.npz`` paths."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from stockclf.data import store
from stockclf.data.labels import CLASSES
from stockclf.data.store import SPLITS

#: Windows are cut and written in chunks of about this many bytes.
CHUNK_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class SplitIndex:
    """Everything about a split's samples except their windows (small per-sample arrays).

    ``days`` indexes each sample's own symbol calendar: the window is cut from the
    features of days ``days - L + 1 .. days`` of symbol ``symbols``.
    """

    symbols: np.ndarray  # int32
    days: np.ndarray  # int64, decision day index in the symbol's calendar
    y: np.ndarray  # int64
    dates: np.ndarray  # datetime64[D], decision date
    forward_return: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.y)

    @staticmethod
    def concatenate(parts: Sequence[SplitIndex]) -> SplitIndex:
        """All parts, ordered by (date, symbol): chronological, ties in symbol order."""
        joined = SplitIndex(
            symbols=np.concatenate([p.symbols for p in parts]).astype(np.int32),
            days=np.concatenate([p.days for p in parts]).astype(np.int64),
            y=np.concatenate([p.y for p in parts]).astype(np.int64),
            dates=np.concatenate([p.dates for p in parts]).astype("datetime64[D]"),
            forward_return=np.concatenate([p.forward_return for p in parts]).astype(np.float64),
        )
        order = np.lexsort((joined.symbols, joined.dates))
        return SplitIndex(*(getattr(joined, f.name)[order] for f in fields(SplitIndex)))


def summarize(
    splits: dict[str, SplitIndex] | dict[str, store.SplitData],
    n_symbols: int,
    classes: Sequence[str] = CLASSES,
) -> dict[str, Any]:
    """Counts, date range and class balance per split (the DVC metrics file)."""
    summary: dict[str, Any] = {}
    for name in SPLITS:
        data = splits[name]
        n = len(data)
        counts = np.bincount(np.asarray(data.y), minlength=len(classes))
        entry: dict[str, Any] = {
            "n": int(n),
            "first_date": str(data.dates.min()) if n else None,
            "last_date": str(data.dates.max()) if n else None,
        }
        for cls, count in zip(classes, counts, strict=True):
            entry[f"frac_{cls}"] = round(float(count) / n, 6) if n else 0.0
        summary[name] = entry
    summary["n_symbols"] = int(n_symbols)
    return summary
