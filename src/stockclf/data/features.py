"""Daily feature channels computed from one validated OHLCV series.

Every feature is a log ratio, so it is scale-free (an index at 1,000 and one at
10,000 give comparable inputs) and no statistics have to be fitted, which means
nothing from the validation or test period can leak into the inputs.

Arrays are aligned by trading day: column ``t`` holds the features of day ``t``.
Day 0 has no previous day, so its column is NaN for every channel (also for the
channels that would not need a previous day) and windows start at day 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from stockclf.data.loading import OHLCV, DataError


def log_returns(close: np.ndarray) -> np.ndarray:
    """``log(C_t / C_{t-1})`` per day; NaN on day 0."""
    close = np.asarray(close, dtype=np.float64)
    out = np.full(close.shape, np.nan)
    out[1:] = np.log(close[1:] / close[:-1])
    return out


def _log_return(s: OHLCV) -> np.ndarray:
    return log_returns(s.close)


def _hl_range(s: OHLCV) -> np.ndarray:
    return np.log(s.high / s.low)


def _volume_change(s: OHLCV) -> np.ndarray:
    if (s.volume <= 0).all():
        raise DataError(
            f"{s.path}: column 'Volume' is zero on every row, so the volume_change "
            "feature is undefined; remove it from data.features"
        )
    out = np.full(s.volume.shape, np.nan)
    out[1:] = np.log(s.volume[1:] / s.volume[:-1])
    return out


def _close_open(s: OHLCV) -> np.ndarray:
    return np.log(s.close / s.open)


#: Feature name (as in ``params.yaml`` ``data.features``) -> daily values.
FEATURES: dict[str, Callable[[OHLCV], np.ndarray]] = {
    "log_return": _log_return,
    "hl_range": _hl_range,
    "volume_change": _volume_change,
    "close_open": _close_open,
}


def compute_features(series: OHLCV, names: Sequence[str]) -> np.ndarray:
    """Channels ``names`` (in that order) of ``series`` as float64, shape C x n_days.

    Column 0 is NaN (no previous day). Computed in float64; the caller stores
    float32 once the windows are cut, so rounding happens once.
    """
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise DataError(f"unknown feature(s) {unknown}; known: {sorted(FEATURES)}")
    out = np.empty((len(names), len(series)), dtype=np.float64)
    for c, name in enumerate(names):
        out[c] = FEATURES[name](series)
    out[:, 0] = np.nan
    return out
