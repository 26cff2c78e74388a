"""A long/short backtest of the test-split predictions, next to buy-and-hold.

Scheme (chosen because it is exact with what the prepare stage stores):

- Each sample has ``forward_return`` = log(C[t+h] / C[t]), the log return from its
  decision day ``t`` over the label horizon ``h``. No daily returns are stored, so a
  daily-rebalanced book (1/h of the capital per daily signal, overlapping holdings) could
  not be marked to market day by day. Instead the book is **rebalanced every h trading
  days without overlap**: on every ``ceil(h / stride)``-th test date, each symbol's position
  is set from that date's prediction (long on ``up``, short on ``down``, flat otherwise)
  and held for ``h`` days, until the next rebalance date. Signals between rebalance dates
  are not traded, so the result is that of one phase of the signal; the other phases
  could differ.
- **Equal weight**: each of the ``S`` symbols owns ``1/S`` of the capital; a flat
  position, or a symbol without a sample on a rebalance date, keeps its share in cash at
  zero return. The period return of a symbol's sleeve is ``position * (exp(f) - 1)``:
  a short held for ``h`` days gains ``1 - C[t+h]/C[t]``.
- **Buy-and-hold** is the same book with every position long: equal weight, reset to
  ``1/S`` on every rebalance date.
- **Costs**: ``cost_bps`` basis points per unit of turnover, turnover being
  ``sum |w_new - w_old|`` over symbols at each rebalance (from cash at the start, back to
  cash at the end); weight drift inside a period is ignored. ``cost_bps = 0`` means no
  transaction costs, and the outputs say so.
- **Annualisation** assumes 252 trading days a year: a period of ``ceil(h/stride)*stride``
  trading days occurs ``252 / that`` times a year. The Sharpe ratio is the mean period
  return over its standard deviation times the square root of that, with a zero
  risk-free rate. Maximum drawdown is the largest fall from a running peak of the
  equity curve, as a positive fraction of the peak. Hit rate is the share of held
  (non-flat) symbol-periods whose position gained before costs.

It assumes the symbols share a trading calendar (true of the bundled S&P 500 and NASDAQ
data), so that ``ceil(h/stride)`` test dates later is ``h`` trading days later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

TRADING_DAYS = 252


@dataclass(frozen=True)
class Book:
    """Rebalance dates and, per date and symbol, weight and simple return over the period."""

    dates: np.ndarray  # datetime64[D], P rebalance dates
    weights: np.ndarray  # P x S, the strategy's weights (sum of |w| <= 1)
    held: np.ndarray  # P x S bool: a sample with a known return exists (buy-and-hold holds it)
    returns: np.ndarray  # P x S simple returns over the holding period (0 where not held)


def cost_label(cost_bps: float) -> str:
    return "no transaction costs" if cost_bps == 0 else f"{cost_bps:g} bps per unit of turnover"


def positions_from_classes(y_pred: np.ndarray, classes: list[str]) -> np.ndarray:
    """+1 for ``up``, -1 for ``down``, 0 for any other class."""
    pos = np.zeros(len(y_pred), dtype=np.float64)
    pos[np.asarray(y_pred) == classes.index("up")] = 1.0
    pos[np.asarray(y_pred) == classes.index("down")] = -1.0
    return pos


def portfolio_returns(weights: np.ndarray, returns: np.ndarray, cost_bps: float) -> np.ndarray:
    """Per-period return of a book: ``sum_s w[p,s] * r[p,s]`` minus costs on turnover.

    Turnover at period ``p`` is ``sum_s |w[p,s] - w[p-1,s]|`` (``w[-1] = 0``: the book
    starts in cash), and the last period also pays for closing every position.
    """
    gross = (weights * returns).sum(axis=1)
    previous = np.vstack([np.zeros((1, weights.shape[1])), weights[:-1]])
    turnover = np.abs(weights - previous).sum(axis=1)
    turnover[-1] += np.abs(weights[-1]).sum()
    return gross - cost_bps / 1e4 * turnover


def performance(period_returns: np.ndarray, periods_per_year: float) -> dict[str, float | None]:
    """Total and annualised return, annualised Sharpe and maximum drawdown of a return series."""
    r = np.asarray(period_returns, dtype=np.float64)
    equity = np.concatenate([[1.0], np.cumprod(1.0 + r)])
    total = float(equity[-1] - 1.0)
    years = len(r) / periods_per_year
    annual = float(equity[-1] ** (1.0 / years) - 1.0) if equity[-1] > 0 else -1.0
    std = float(r.std(ddof=1)) if len(r) > 1 else 0.0
    sharpe = float(r.mean() / std * math.sqrt(periods_per_year)) if std > 0 else None
    drawdown = float(np.max(1.0 - equity / np.maximum.accumulate(equity)))
    return {
        "total_return": total,
        "annual_return": annual,
        "sharpe": sharpe,
        "max_drawdown": drawdown,
    }


def hit_rate(weights: np.ndarray, returns: np.ndarray) -> float | None:
    """Share of non-flat symbol-periods whose position made money (before costs)."""
    held = weights != 0
    if not held.any():
        return None
    return float(((weights * returns)[held] > 0).mean())


def build_book(
    dates: np.ndarray,
    symbols: np.ndarray,
    n_symbols: int,
    forward_return: np.ndarray,
    positions: np.ndarray,
    step: int,
) -> Book:
    """Every ``step``-th distinct date is a rebalance date; each symbol's sample on it (if
    any, with a known forward return) sets that symbol's position for the period."""
    unique = np.unique(dates)
    grid = unique[::step]
    row = np.searchsorted(grid, dates)
    on_grid = (row < len(grid)) & (grid[np.minimum(row, len(grid) - 1)] == dates)
    known = on_grid & np.isfinite(forward_return)
    shape = (len(grid), n_symbols)
    held = np.zeros(shape, dtype=bool)
    returns = np.zeros(shape)
    weights = np.zeros(shape)
    r, s = row[known], np.asarray(symbols)[known]
    held[r, s] = True
    returns[r, s] = np.expm1(forward_return[known])
    weights[r, s] = positions[known] / n_symbols
    return Book(grid, weights, held, returns)


def decimal_year(dates: np.ndarray) -> np.ndarray:
    """2016-07-02 -> 2016.5: a numeric time axis for DVC's linear plot templates."""
    d = np.asarray(dates, dtype="datetime64[D]")
    year = d.astype("datetime64[Y]")
    start = year.astype("datetime64[D]")
    length = ((year + 1).astype("datetime64[D]") - start).astype(np.float64)
    return year.astype(np.int64) + 1970 + (d - start).astype(np.float64) / length


def run_backtest(
    dates: np.ndarray,
    symbols: np.ndarray,
    n_symbols: int,
    forward_return: np.ndarray,
    y_pred: np.ndarray,
    classes: list[str],
    horizon: int,
    stride: int,
    cost_bps: float,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Backtest the predictions; returns the metrics and the equity-curve rows.

    The metrics say why, instead, when no backtest is possible (classes without ``up`` and
    ``down``, or no known forward return), and the rows are then empty.
    """
    step = -(-horizon // stride)
    period_days = step * stride
    summary: dict[str, Any] = {
        "costs": cost_label(cost_bps),
        "cost_bps": cost_bps,
        "rebalance_days": period_days,
        "holding_days": horizon,
    }
    forward_return = np.asarray(forward_return, dtype=np.float64)
    missing = [c for c in ("up", "down") if c not in classes]
    if missing:
        return {**summary, "skipped": f"classes {classes} have no {missing}"}, []
    if not np.isfinite(forward_return).any():
        return {**summary, "skipped": "no known forward return in the test split"}, []
    dates = np.asarray(dates, dtype="datetime64[D]")
    positions = positions_from_classes(y_pred, classes)
    book = build_book(dates, symbols, n_symbols, forward_return, positions, step)
    long_all = book.held / n_symbols
    periods_per_year = TRADING_DAYS / period_days
    strategy = portfolio_returns(book.weights, book.returns, cost_bps)
    buy_hold = portfolio_returns(long_all, book.returns, cost_bps)
    summary.update(
        {
            "n_periods": len(book.dates),
            "first_date": str(book.dates[0]),
            "last_date": str(book.dates[-1]),
            "strategy": {
                **performance(strategy, periods_per_year),
                "hit_rate": hit_rate(book.weights, book.returns),
                "exposure": float(np.abs(book.weights).sum(axis=1).mean()),
            },
            "buy_and_hold": {
                **performance(buy_hold, periods_per_year),
                "hit_rate": hit_rate(long_all, book.returns),
                "exposure": float(long_all.sum(axis=1).mean()),
            },
        }
    )
    return summary, equity_rows(book.dates, strategy, buy_hold, period_days)


def equity_rows(
    grid: np.ndarray, strategy: np.ndarray, buy_hold: np.ndarray, period_days: int
) -> list[dict[str, Any]]:
    """Equity (start = 1) at each rebalance date and after the last period.

    The end of the last period lies beyond the last test decision date and has no stored
    date; it is placed one median period after the last rebalance date (or
    ``period_days`` trading days as calendar days when there is a single period).
    """
    if len(grid) > 1:
        gap = np.median(np.diff(grid).astype(np.int64))
    else:
        gap = round(period_days * 365.25 / TRADING_DAYS)
    when = np.concatenate([grid, [grid[-1] + np.timedelta64(int(gap), "D")]])
    eq_s = np.concatenate([[1.0], np.cumprod(1.0 + strategy)])
    eq_b = np.concatenate([[1.0], np.cumprod(1.0 + buy_hold)])
    years = decimal_year(when)
    return [
        {
            "date": str(d),
            "year": round(float(y), 5),
            "strategy": round(float(s), 6),
            "buy_and_hold": round(float(b), 6),
        }
        for d, y, s, b in zip(when, years, eq_s, eq_b, strict=True)
    ]
