"""Input windows and the chronological train/val/test split with a purge gap.

Index conventions (per symbol, ``t`` = trading-day index into that symbol's calendar,
``L`` = window, ``h`` = horizon):

- the window of decision day ``t`` holds the features of days ``t-L+1 .. t``; since the
  log return of day ``t-L+1`` uses the close of day ``t-L``, the window *reads* prices
  of days ``t-L .. t``;
- the label of day ``t`` reads closes of days ``t .. t+h`` (its "label span").

Purge rule (see :func:`purge_limit`): at each boundary, with ``b`` the first decision
index of the later split, every sample of the earlier split with ``t > b - L - h - 1``
is dropped, i.e. only ``t <= b - L - h - 1`` is kept. Then the earlier sample's label
span ends at ``t + h <= b - L - 1``, strictly before day ``b - L``, the first day any
later-split window reads. The gap between the last kept earlier index and ``b`` is
``b - t >= L + h + 1`` trading days, more than the ``L + h - 1`` the design asks for.
Because later samples only have later windows and labels, this one comparison covers
every pair of samples across the boundary.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from stockclf.data.store import SPLITS


def candidate_days(
    n_days: int, window: int, horizon: int, vol_window: int, stride: int = 1
) -> np.ndarray:
    """Decision indices ``t`` whose window, trailing volatility and label all exist.

    Needs ``t - L + 1 >= 1`` (windows start at day 1, day 0 has no return),
    ``t >= vol_window`` and ``t + h <= n_days - 1``. With ``stride`` only every
    ``stride``-th candidate, counted from the symbol's first candidate, is kept.
    """
    first = max(window, vol_window)
    last = n_days - 1 - horizon
    if last < first:
        return np.empty(0, dtype=np.int64)
    return np.arange(first, last + 1, stride, dtype=np.int64)


def cut_windows(features: np.ndarray, days: np.ndarray, window: int) -> np.ndarray:
    """Windows ending at each of ``days``: float32, N x C x L, from C x n_days features.

    ``sliding_window_view`` makes a zero-copy view whose entry ``k`` covers days
    ``k .. k+L-1``; the window ending at ``t`` is entry ``t-L+1``. One fancy-index
    gathers all samples without a Python loop.
    """
    days = np.asarray(days, dtype=np.int64)
    if days.size and (days.min() < window or days.max() >= features.shape[1]):
        raise ValueError("a window would start before day 1 or end after the last day")
    view = sliding_window_view(features, window, axis=1)  # C x (n-L+1) x L
    out = view[:, days - window + 1, :].transpose(1, 0, 2)  # N x C x L
    return np.ascontiguousarray(out, dtype=np.float32)


def purge_limit(boundary: int, window: int, horizon: int) -> int:
    """Largest earlier-split decision index allowed before later-split index ``boundary``.

    ``t <= b - L - h - 1`` so that the label span ``t .. t+h`` ends before day
    ``b - L``, the first day the later split's first window reads (module docstring).
    """
    return boundary - window - horizon - 1


def split_days(
    days: np.ndarray,
    dates: np.ndarray,
    val_start: dt.date,
    test_start: dt.date,
    window: int,
    horizon: int,
) -> dict[str, np.ndarray]:
    """Assign sorted decision indices ``days`` of one symbol to splits, then purge.

    ``dates`` is the symbol's calendar (datetime64[D] per trading day). A decision
    date before ``val_start`` is train, before ``test_start`` val, else test. The
    boundary ``b`` for an earlier split is the first index of any later split before
    purging, so when a later split is short or empty for this symbol the purge still
    holds against the split after it.
    """
    days = np.asarray(days, dtype=np.int64)
    decision = dates[days]
    vs = np.datetime64(val_start, "D")
    ts = np.datetime64(test_start, "D")
    parts = {
        "train": days[decision < vs],
        "val": days[(decision >= vs) & (decision < ts)],
        "test": days[decision >= ts],
    }
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(SPLITS):
        kept = parts[name]
        later = [parts[n] for n in SPLITS[i + 1 :] if parts[n].size]
        if later:
            b = int(min(p[0] for p in later))
            kept = kept[kept <= purge_limit(b, window, horizon)]
        out[name] = kept
    return out
