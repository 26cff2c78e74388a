"""Volatility-scaled forward-return labels (down / flat / up).

At decision day ``t`` the forward log return ``r = log(C_{t+h} / C_t)`` is divided by
the expected ``h``-day move ``sigma_t * sqrt(h)``, where ``sigma_t`` is the sample
standard deviation (ddof=1) of the ``vol_window`` daily log returns ending at day
``t`` inclusive. Scaling by volatility keeps the class balance steady between calm
and turbulent years, where raw-return thresholds drift badly.

Nothing here is fitted: the threshold is a fixed number from params and ``sigma_t``
only uses days up to ``t``, so no statistic of the validation or test period can leak
into the labels of the training period (or vice versa).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from stockclf.data.features import log_returns

#: Class names by id, as written to ``meta.json``.
CLASSES = ("down", "flat", "up")
DOWN, FLAT, UP = 0, 1, 2
#: A trailing volatility at or below this is treated as zero (constant prices give an
#: exact 0, but a constant non-zero return can leave rounding noise of ~1e-17).
MIN_SIGMA = 1e-12


def forward_log_return(close: np.ndarray, horizon: int) -> np.ndarray:
    """``log(C_{t+h} / C_t)`` per day; NaN for the last ``horizon`` days."""
    close = np.asarray(close, dtype=np.float64)
    out = np.full(close.shape, np.nan)
    if horizon < len(close):
        out[:-horizon] = np.log(close[horizon:] / close[:-horizon])
    return out


def trailing_volatility(close: np.ndarray, vol_window: int) -> np.ndarray:
    """Std (ddof=1) of the ``vol_window`` daily log returns ending at day ``t`` inclusive.

    The return of day ``s`` needs day ``s-1``, so the first defined value is at
    ``t = vol_window``; earlier days are NaN.
    """
    r = log_returns(close)
    out = np.full(r.shape, np.nan)
    if len(r) > vol_window:
        # Window k covers returns of days k+1 .. k+vol_window, i.e. it ends at t = k + vol_window.
        out[vol_window:] = sliding_window_view(r[1:], vol_window).std(axis=-1, ddof=1)
    return out


def z_scores(close: np.ndarray, horizon: int, vol_window: int) -> np.ndarray:
    """Forward return in units of the expected ``h``-day move; NaN where undefined.

    Undefined: no trailing volatility yet, no day ``t+h``, or ``sigma_t`` of (about) zero.
    """
    r = forward_log_return(close, horizon)
    sigma = trailing_volatility(close, vol_window)
    usable = np.isfinite(r) & np.isfinite(sigma) & (sigma > MIN_SIGMA)
    z = np.full(r.shape, np.nan)
    z[usable] = r[usable] / (sigma[usable] * np.sqrt(horizon))
    return z


def classify(z: np.ndarray, threshold: float) -> np.ndarray:
    """0 (down) if ``z < -threshold``, 2 (up) if ``z > threshold``, else 1 (flat); int64.

    Callers drop NaN ``z`` first (it would land in "flat").
    """
    z = np.asarray(z, dtype=np.float64)
    y = np.full(z.shape, FLAT, dtype=np.int64)
    y[z < -threshold] = DOWN
    y[z > threshold] = UP
    return y
