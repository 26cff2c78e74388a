"""The backtest's arithmetic on a series small enough to check by hand."""

import math

import numpy as np
import pytest

from stockclf.evaluation.backtest import (
    performance,
    portfolio_returns,
    run_backtest,
)

CLASSES = ["down", "flat", "up"]
DOWN, FLAT, UP = 0, 1, 2


def hand_series(off_grid_pred: int = UP, off_grid_return: float = 0.5):
    """Two symbols A, B; six dates; horizon 2 -> rebalance on dates 0, 2, 4.

    period  A: return, prediction   B: return, prediction
    0       +10 %, up              -5 %, down
    1       -10 %, up              +20 %, flat
    2       +5 %, down             +10 %, up
    Dates 1, 3, 5 carry a wild return and prediction that must not be traded.
    """
    on_grid = {0: [(0.10, UP), (-0.05, DOWN)], 2: [(-0.10, UP), (0.20, FLAT)],
               4: [(0.05, DOWN), (0.10, UP)]}  # fmt: skip
    dates, symbols, simple, pred = [], [], [], []
    for d in range(6):
        rows = on_grid.get(d, [(off_grid_return, off_grid_pred)] * 2)
        for s, (r, p) in enumerate(rows):
            dates.append(np.datetime64("2020-01-06") + d)
            symbols.append(s)
            simple.append(r)
            pred.append(p)
    return (
        np.array(dates, dtype="datetime64[D]"),
        np.array(symbols),
        np.log1p(np.array(simple)),
        np.array(pred),
    )


def test_hand_checked_totals_without_costs() -> None:
    dates, symbols, fwd, pred = hand_series()
    summary, rows = run_backtest(dates, symbols, 2, fwd, pred, CLASSES, 2, 1, 0.0)
    assert summary["costs"] == "no transaction costs"
    assert summary["n_periods"] == 3 and summary["rebalance_days"] == 2
    s, b = summary["strategy"], summary["buy_and_hold"]
    # strategy: 0.5*10% + (-0.5)*(-5%) = 7.5%; 0.5*(-10%) = -5%; -0.5*5% + 0.5*10% = 2.5%
    assert s["total_return"] == pytest.approx(1.075 * 0.95 * 1.025 - 1)
    # buy and hold: mean of both symbols each period: 2.5%, 5%, 7.5%
    assert b["total_return"] == pytest.approx(1.025 * 1.05 * 1.075 - 1)
    assert s["max_drawdown"] == pytest.approx(0.05)  # 1.075 -> 1.02125
    assert b["max_drawdown"] == 0.0
    assert s["hit_rate"] == pytest.approx(3 / 5)  # A0, B0, B2 gain; A1, A2 lose
    assert b["hit_rate"] == pytest.approx(4 / 6)
    periods_per_year = 252 / 2
    r = np.array([0.075, -0.05, 0.025])
    assert s["annual_return"] == pytest.approx(
        (1 + s["total_return"]) ** (periods_per_year / 3) - 1
    )
    assert s["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(periods_per_year))
    assert s["exposure"] == pytest.approx((1.0 + 0.5 + 1.0) / 3)
    assert [row["strategy"] for row in rows] == pytest.approx([1, 1.075, 1.02125, 1.04678125])
    assert [row["date"] for row in rows[:3]] == ["2020-01-06", "2020-01-08", "2020-01-10"]
    assert rows[-1]["date"] == "2020-01-12"  # one median period after the last rebalance


def test_costs_are_charged_on_turnover() -> None:
    dates, symbols, fwd, pred = hand_series()
    summary, _ = run_backtest(dates, symbols, 2, fwd, pred, CLASSES, 2, 1, 10.0)
    assert summary["costs"] == "10 bps per unit of turnover"
    # turnover 1.0 (open), 0.5 (close B), 1.5 (flip A, open B) + 1.0 to close at the end
    net = np.array([0.075 - 0.001, -0.05 - 0.0005, 0.025 - 0.0025])
    assert summary["strategy"]["total_return"] == pytest.approx(np.prod(1 + net) - 1)
    # buy and hold pays to enter (1.0) and to leave (1.0)
    assert summary["buy_and_hold"]["total_return"] == pytest.approx(1.024 * 1.05 * 1.074 - 1)


def test_off_grid_signals_are_not_traded() -> None:
    results = []
    for pred, ret in ((UP, 0.5), (DOWN, -0.3)):
        dates, symbols, fwd, y = hand_series(pred, ret)
        results.append(run_backtest(dates, symbols, 2, fwd, y, CLASSES, 2, 1, 0.0)[0])
    assert results[0]["strategy"] == results[1]["strategy"]
    assert results[0]["buy_and_hold"] == results[1]["buy_and_hold"]


def test_stride_sets_the_rebalance_step() -> None:
    # stride 2, horizon 4: every 2nd sample date is 4 trading days later
    dates, symbols, fwd, pred = hand_series()
    summary, _ = run_backtest(dates, symbols, 2, fwd, pred, CLASSES, 4, 2, 0.0)
    assert summary["rebalance_days"] == 4 and summary["n_periods"] == 3


def test_unknown_returns_are_flat_and_missing_classes_skip() -> None:
    dates, symbols, fwd, pred = hand_series()
    fwd = fwd.copy()
    fwd[1] = np.nan  # B in period 0: no known return -> flat, not held by buy and hold
    summary, _ = run_backtest(dates, symbols, 2, fwd, pred, CLASSES, 2, 1, 0.0)
    assert summary["strategy"]["total_return"] == pytest.approx(1.05 * 0.95 * 1.025 - 1)
    assert summary["buy_and_hold"]["total_return"] == pytest.approx(1.05 * 1.05 * 1.075 - 1)

    skipped, rows = run_backtest(dates, symbols, 2, fwd, pred, ["a", "b", "c"], 2, 1, 0.0)
    assert "no ['up', 'down']" in skipped["skipped"] and rows == []
    nan = np.full_like(fwd, np.nan)
    skipped, rows = run_backtest(dates, symbols, 2, nan, pred, CLASSES, 2, 1, 0.0)
    assert "no known forward return" in skipped["skipped"] and rows == []


def test_portfolio_and_performance_primitives() -> None:
    w = np.array([[0.5, -0.5], [0.5, 0.0]])
    r = np.array([[0.1, -0.05], [-0.1, 0.2]])
    assert portfolio_returns(w, r, 0.0) == pytest.approx([0.075, -0.05])
    assert portfolio_returns(w, r, 100.0) == pytest.approx([0.075 - 0.01, -0.05 - 0.01])
    perf = performance(np.array([0.1, -0.5, 0.2]), periods_per_year=1)
    assert perf["total_return"] == pytest.approx(1.1 * 0.5 * 1.2 - 1)
    assert perf["max_drawdown"] == pytest.approx(0.5)
    assert perf["annual_return"] == pytest.approx((1.1 * 0.5 * 1.2) ** (1 / 3) - 1)
    flat = performance(np.zeros(4), periods_per_year=52)
    assert flat["sharpe"] is None and flat["total_return"] == 0.0
