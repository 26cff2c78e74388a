"""The MiniRocket baseline: it learns, it repeats itself, and it reaches every report."""

import json
import os

import numpy as np
import pytest
import torch
from helpers import synthetic_split

from stockclf.data.store import SplitData
from stockclf.evaluation.minirocket import MIN_LENGTH, minirocket_predictions, pad_to_min_length
from stockclf.evaluation.predictions import PREDICTORS, read_predictions, write_predictions
from stockclf.reporting.results import compute_results, format_results, write_results

CLASSES = ["down", "flat", "up"]


def accuracy(split: SplitData, pred: np.ndarray) -> float:
    return float((np.asarray(split.y) == pred).mean())


def signal_in_channel(
    rng: np.random.Generator, n: int, channels: int, length: int, channel: int, shift: float = 1.5
) -> SplitData:
    """Noise windows whose class is a level shift of the last third (at least two steps) of
    one channel only."""
    X = rng.normal(size=(n, channels, length)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    X[:, channel, -max(2, length // 3) :] += (y[:, None] - 1) * shift
    dates = np.datetime64("2000-01-01") + np.arange(n).astype("timedelta64[D]")
    return SplitData(X, y, dates, np.zeros(n, dtype=np.int32), np.zeros(n))


def test_learns_a_learnable_split_and_repeats_itself() -> None:
    rng = np.random.default_rng(0)
    train, test = synthetic_split(rng, 150, 2, 32), synthetic_split(rng, 90, 2, 32)
    pred = minirocket_predictions(train, test, seed=0)
    assert pred.dtype == np.int64 and pred.shape == (90,)
    assert accuracy(test, pred) > 0.85  # chance is about 1/3
    np.testing.assert_array_equal(minirocket_predictions(train, test, seed=0), pred)
    # a seed of its own draws other kernel biases, yet learns the same pattern
    assert accuracy(test, minirocket_predictions(train, test, seed=1)) > 0.85


def test_leaves_torch_its_thread_count() -> None:
    """aeon sets numba's OpenMP threads to the core count on its way out, and torch shares
    that runtime: the networks trained after MiniRocket must keep the user's limit."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: any thread limit is the core count")
    rng = np.random.default_rng(0)
    train, test = synthetic_split(rng, 40, 2, 32), synthetic_split(rng, 10, 2, 32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        minirocket_predictions(train, test, seed=0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_uses_every_channel() -> None:
    """The class is in channel 2 of 3: a univariate view of channel 0 would be at chance."""
    rng = np.random.default_rng(1)
    train, test = (signal_in_channel(rng, n, 3, 24, channel=2, shift=2.5) for n in (150, 90))
    assert accuracy(test, minirocket_predictions(train, test, seed=0)) > 0.85
    only_0 = [
        SplitData(s.X[:, :1], s.y, s.dates, s.symbols, s.forward_return) for s in (train, test)
    ]
    assert accuracy(test, minirocket_predictions(*only_0, seed=0)) < 0.55


def test_windows_shorter_than_a_kernel_are_padded_in_front_with_their_first_step() -> None:
    X = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    padded = pad_to_min_length(X)
    assert padded.shape == (2, 3, MIN_LENGTH) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded[..., -4:], X)
    np.testing.assert_array_equal(padded[..., : MIN_LENGTH - 4], np.repeat(X[..., :1], 5, -1))
    long = np.ones((1, 1, MIN_LENGTH), dtype=np.float32)
    assert pad_to_min_length(long) is long  # long enough: untouched, not copied

    rng = np.random.default_rng(2)
    train, test = (signal_in_channel(rng, n, 1, 5, 0, shift=2.5) for n in (150, 90))
    assert accuracy(test, minirocket_predictions(train, test, seed=0)) > 0.8


def perfect_predictions(tmp_path, days, minirocket: str) -> tuple:
    """A predictions file of 2 symbols x 120 dates where the model is always right and
    MiniRocket is right too (``"same"``) or always says ``up`` (``"up"``)."""
    split, symbols, _ = days
    y = split.y
    preds = {name: np.ones_like(y) for name in PREDICTORS}
    preds.update(model=y, minirocket=y if minirocket == "same" else np.full_like(y, 2))
    path = tmp_path / "p.csv"
    write_predictions(path, split, symbols, CLASSES, preds)
    return path, {"classes": CLASSES, "symbols": symbols, "horizon": 5}, preds


def test_predictions_file_has_a_minirocket_column(tmp_path, two_symbol_test_days) -> None:
    path, meta, _ = perfect_predictions(tmp_path, two_symbol_test_days, "up")
    header = path.read_text().splitlines()[0].split(",")
    assert header == ["date", "symbol", "actual", *PREDICTORS, "forward_return"]
    assert "minirocket" in header
    table = read_predictions(path, CLASSES, meta["symbols"])
    assert (table.predicted["minirocket"] == 2).all()


@pytest.mark.parametrize("minirocket", ["same", "up"])
def test_bootstrap_and_backtest_include_minirocket(
    make_params, tmp_path, two_symbol_test_days, minirocket
) -> None:
    path, meta, _ = perfect_predictions(tmp_path, two_symbol_test_days, minirocket)
    # stride 1: the test days are consecutive, so the backtest rebalances every 5th (horizon)
    params = make_params({"data": {"stride": 1}, "evaluate": {"bootstrap_samples": 200}})
    results = compute_results(path, meta, params)
    boot, back = results.uncertainty["minirocket"], results.backtest
    if minirocket == "same":
        assert boot["f1_macro"] == 1.0 and boot["model_gain"] == 0.0
        assert boot["model_gain_ci_low"] == boot["model_gain_ci_high"] == 0.0
        assert back["minirocket"] == back["strategy"]
        assert all(r["minirocket"] == r["strategy"] for r in results.equity)
    else:
        # always "up": F1 of up only, 2 * p / (p + 1) with p the share of up samples, / 3
        share_up = float(np.mean(read_predictions(path, CLASSES, meta["symbols"]).y_true == 2))
        assert boot["f1_macro"] == pytest.approx(2 * share_up / (share_up + 1) / 3)
        assert boot["model_gain"] == pytest.approx(1.0 - boot["f1_macro"])
        assert boot["model_gain_ci_low"] > 0.5
        # always long: the same book as buy-and-hold (no costs)
        for key in ("total_return", "sharpe", "max_drawdown"):
            assert back["minirocket"][key] == pytest.approx(back["buy_and_hold"][key])
        assert back["minirocket"]["exposure"] == 1.0
        assert back["minirocket"]["total_return"] < back["strategy"]["total_return"]
    # the model's section keeps its keys; MiniRocket's has the same ones
    assert set(back["minirocket"]) == set(back["strategy"])
    files = [tmp_path / n for n in ("bootstrap.json", "backtest.json", "equity.tsv")]
    write_results(results, *files)
    assert json.loads(files[0].read_text())["minirocket"] == boot
    assert json.loads(files[1].read_text())["minirocket"] == back["minirocket"]
    lines = files[2].read_text().splitlines()
    assert lines[0] == "date\tyear\tstrategy\tbuy_and_hold\tminirocket"
    assert lines[1].endswith("\t1.0\t1.0\t1.0") and len(lines) == 120 // 5 + 2
    text = format_results(results, list(PREDICTORS))
    assert "  minirocket " in text and "  minirocket: total " in text
