"""Daily feature channels computed from one validated OHLCV series.

Every feature is a log ratio, so it is scale-free (an index at 1,000 and one at
10,000 give comparable inputs) and no statistics have to be fitted, which means
nothing from the validation or test period can leak into the inputs.

Arrays are aligned by trading day: column ``t`` holds the features of day ``t``.
Day 0 has no previous day, so its column is NaN for every channel (also for the
channels that would not need a previous day) and windows start at day 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stockclf.data.loading import OHLCV
from stockclf.errors import DataError
from stockclf.registry import FEATURES


def log_returns(close: np.ndarray) -> np.ndarray:
    """``log(C_t / C_{t-1})`` per day; NaN on day 0."""
    close = np.asarray(close, dtype=np.float64)
    out = np.full(close.shape, np.nan)
    out[1:] = np.log(close[1:] / close[:-1])
    return out


def log_return(s: OHLCV) -> np.ndarray:
    return log_returns(s.close)


def hl_range(s: OHLCV) -> np.ndarray:
    return np.log(s.high / s.low)


def volume_change(s: OHLCV) -> np.ndarray:
    if (s.volume <= 0).all():
        raise DataError(
            f"{s.path}: column 'Volume' is zero on every row, so the volume_change "
            "feature is undefined; remove it from data.features"
        )
    out = np.full(s.volume.shape, np.nan)
    out[1:] = np.log(s.volume[1:] / s.volume[:-1])
    return out


def close_open(s: OHLCV) -> np.ndarray:
    return np.log(s.close / s.open)


def compute_features(series: OHLCV, names: Sequence[str]) -> np.ndarray:
    """Channels ``names`` (in that order) of ``series`` as float64, shape C x n_days.

    Column 0 is NaN (no previous day). Computed in float64; the caller stores
    float32 once the windows are cut, so rounding happens once.
    """
    try:
        makers = [FEATURES.get(name) for name in names]
    except ValueError as err:
        raise DataError(str(err)) from None
    out = np.empty((len(names), len(series)), dtype=np.float64)
    for c, make in enumerate(makers):
        out[c] = make(series)
    out[:, 0] = np.nan
    return out
