"""Proof that the prepared data cannot leak the future, and that the pipeline can learn.

1. Per-sample check: every stored window is recomputed from the CSV and located in its
   symbol's calendar, every label is recomputed from the closes of its span, and then, on
   dates: each window ends before its label span starts, no train label span reaches any
   val/test window, no val label span reaches any test window.
2. Null test: on random-walk prices (nothing to learn), prepare + a small train_best must
   score a test macro F1 inside the chance band, computed by permuting the test labels
   against the model's own predictions. A leak (the window seeing the label's days) puts
   the score far above the band; :func:`test_null_band_catches_a_leaking_pipeline` shows
   it does for a deliberately shifted window.
3. Positive controls: on prices with a planted pattern that fixes the label (a strong
   drift over the last days of the window that goes on through the horizon), the same
   small run reaches a test macro F1 above 0.9, so a pass of the null test is not just a
   pipeline that cannot learn anything. With the pattern buried in noise until a logistic
   regression on the raw window scores about 0.6, params.yaml's own recipe (backbone,
   encodings, image size and training options, with the step floor halved to 100) must
   come within 0.05 of it.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import timm

import stockclf.data.prepare as prepare_module
from stockclf.config import DataParams, ModelParams, Params, merge_params, validate_params
from stockclf.data import store, windows
from stockclf.data.prepare import prepare
from stockclf.evaluation.scoring import baseline_predictions
from stockclf.pipeline.train_best import TrainBestPaths, run_train_best

# The small run shared by the null test and the positive control. Episodes of EPISODE
# trading days: a sample every EPISODE days (data.stride), each with its own window and
# label span, so the labels of a random walk are independent and a permutation of them is
# an exact null distribution.
WINDOW, HORIZON, VOL_WINDOW, EPISODE, DRIFT_DAYS = 16, 2, 16, 20, 4
N_SYMBOLS, N_DAYS = 8, 3000  # business days from 2000-01-03 to 2011-07-01
VAL_START, TEST_START = "2007-01-01", "2009-06-01"
FIRST_DAY = "2000-01-03"
#: Two-sided level of the chance band (a correct pipeline falls outside it 1 time in 1000).
ALPHA = 0.001


# ------------------------------------------------------------------------ price makers


def write_prices(path: Path, log_returns: np.ndarray, rng: np.random.Generator, start: str) -> None:
    """An OHLCV CSV whose closes follow ``log_returns`` (open = previous close)."""
    n = len(log_returns)
    close = 100 * np.exp(np.cumsum(log_returns))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.002, n)))
    frame = pd.DataFrame(
        {
            "Date": pd.bdate_range(start, periods=n).strftime("%Y-%m-%d"),
            "Open": open_,
            "High": high,
            "Low": low,
            "Close": close,
            "Volume": rng.integers(1_000_000, 2_000_000, n),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.10g")


def random_walk_prices(directory: Path, n_symbols: int, n_days: int, seed: int) -> Path:
    """Gaussian random walks, 1% daily volatility: the future is independent of the past.

    Symbols start on different days (up to 60 business days apart) so that calendars differ.
    """
    rng = np.random.default_rng(seed)
    for i in range(n_symbols):
        r = rng.normal(0, 0.01, n_days)
        r[0] = 0.0
        start = (pd.Timestamp(FIRST_DAY) + pd.offsets.BDay(int(rng.integers(0, 60)))).strftime(
            "%Y-%m-%d"
        )
        write_prices(directory / f"RW{i:02d}.csv", r, rng, start)
    return directory


def planted_prices(
    directory: Path, seed: int, noise: float = 0.001
) -> dict[tuple[int, np.datetime64], int]:
    """Prices whose every sampled label is fixed by its window; returns (symbol, date) -> class.

    Quiet noise (0.1% a day) except around each decision day ``t`` (every EPISODE days from
    the first candidate day, matching ``data.stride``): over the last DRIFT_DAYS days of the
    window and on through the HORIZON days after ``t`` the log return is +2% a day (up),
    -2% (down) or alternates +2%/-2% (flat: the horizon's two days cancel). The drift makes
    ``|z|`` about 3 for up/down, the zigzag keeps it near 0 for flat, so the label is
    deterministic, and the last days of the window show which it is.
    """
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(FIRST_DAY, periods=N_DAYS).to_numpy().astype("datetime64[D]")
    planted: dict[tuple[int, np.datetime64], int] = {}
    m = 0.02
    for i in range(N_SYMBOLS):
        r = rng.normal(0, noise, N_DAYS)
        r[0] = 0.0
        for t in range(max(WINDOW, VOL_WINDOW), N_DAYS - HORIZON, EPISODE):
            cls = int(rng.integers(0, 3))
            span = np.arange(t - DRIFT_DAYS + 1, t + HORIZON + 1)
            if cls == 2:
                r[span] += m
            elif cls == 0:
                r[span] -= m
            else:
                r[span] += m * np.where((span - span[0]) % 2 == 0, 1.0, -1.0)
            planted[(i, dates[t])] = cls
        write_prices(directory / f"PL{i:02d}.csv", r, rng, FIRST_DAY)
    return planted


# ----------------------------------------------------------------------- small run


#: timm's smallest test network (100k parameters) when this timm version has it, else
#: resnet10t. Both learn the planted pattern in two epochs on ~700 windows (measured: test
#: macro F1 1.0, at 15-19 s CPU for test_efficientnet and 35-44 s for resnet10t per run),
#: where EfficientNet-B0 needs many more (0.79 after four epochs).
BACKBONE = "test_efficientnet" if timm.is_model("test_efficientnet") else "resnet10t"


def small_run_updates(source: Path) -> dict[str, Any]:
    """Params for the null test and the positive control (on top of the tiny test config).

    ``encodings: [gasf, gadf]``: each window is min-max scaled before encoding, and both
    GASF and MTF are unchanged when a window is negated, so with them alone a drift up and
    the same drift down give identical images; GADF is sign-sensitive.
    """
    return {
        "data": {
            "source": str(source),
            "window": WINDOW,
            "horizon": HORIZON,
            "vol_window": VOL_WINDOW,
            "stride": EPISODE,
            "val_start": VAL_START,
            "test_start": TEST_START,
        },
        "model": {"backbone": BACKBONE, "image_size": WINDOW, "encodings": ["gasf", "gadf"]},
        "train": {
            "max_epochs": 2,
            "batch_size": 32,
            "max_train_batches": None,
            "early_stopping_patience": 3,
            "accelerator": "cpu",
        },
    }


def small_train_best(params: Params, work: Path) -> tuple[dict[str, Any], np.ndarray]:
    """prepare + train_best into ``work``; returns the metrics and the model's test predictions."""
    prepared = work / "prepared"
    prepare(params.data, prepared, work / "unused-sample")
    no_tuning = work / "best_params.yaml"
    no_tuning.write_text("{}\n")  # params.yaml's own values, as if nothing was tuned
    outputs = TrainBestPaths.under(work / "out", prepared, no_tuning)
    results = run_train_best(params, outputs, progress_bar=False)
    assert results is not None
    classes = store.load_meta(prepared)["classes"]
    with outputs.predictions.open(newline="") as fh:
        y_pred = np.array([classes.index(row["model"]) for row in csv.DictReader(fh)])
    return results, y_pred


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro F1 of ``y_pred`` against each row of ``y_true`` (P x N, or N), vectorised.

    Per class ``F1 = 2 TP / (n_pred + n_true)`` (0 when both are 0), as sklearn's
    ``f1_score(average="macro", zero_division=0)`` with every class listed.
    """
    y_true = np.atleast_2d(y_true)
    scores = np.zeros(len(y_true))
    for k in range(n_classes):
        hits = y_true[:, y_pred == k] == k
        tp = hits.sum(axis=1)
        denom = (y_pred == k).sum() + (y_true == k).sum(axis=1)
        scores += np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return scores / n_classes


def chance_band(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, n_perm: int = 20_000, seed: int = 0
) -> tuple[float, float]:
    """Central 1 - ALPHA interval of macro F1 when the predictions are unrelated to the labels.

    Permuting the true labels keeps both the label balance and the predictions' own
    balance (a model that always says "flat" gets a narrow band around its fixed score).
    """
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(y_true) for _ in range(n_perm)])
    scores = macro_f1(perms, y_pred, n_classes)
    low, high = np.quantile(scores, [ALPHA / 2, 1 - ALPHA / 2])
    return float(low), float(high)


def data_params(source: Path, **overrides: Any) -> DataParams:
    values: dict[str, Any] = {
        "source": str(source),
        "features": ["log_return", "hl_range", "volume_change"],
        "window": WINDOW,
        "horizon": HORIZON,
        "vol_window": VOL_WINDOW,
        "threshold": 0.5,
        "val_start": dt.date.fromisoformat(VAL_START),
        "test_start": dt.date.fromisoformat(TEST_START),
        "stride": EPISODE,
    }
    values.update(overrides)
    return DataParams(**values)


def shift_windows_into_the_future(monkeypatch: pytest.MonkeyPatch, days: int) -> None:
    """Make prepare leak: each window ends ``days`` after its decision day."""
    original = prepare_module.cut_windows
    monkeypatch.setattr(
        prepare_module, "cut_windows", lambda f, d, w: original(f, np.asarray(d) + days, w)
    )


# ------------------------------------------------------------------ per-sample check


def check_no_leakage(csv_dir: Path, prepared: Path, params: DataParams) -> dict[str, int]:
    """Assert the per-sample rules on dates, after grounding each window and label in the CSV.

    Returns the number of samples checked per split.
    """
    L, h = params.window, params.horizon
    frames = [pd.read_csv(p) for p in sorted(csv_dir.glob("*.csv"))]
    calendars = [pd.to_datetime(f["Date"]).to_numpy().astype("datetime64[D]") for f in frames]
    log_close = [np.log(f["Close"].to_numpy(dtype=np.float64)) for f in frames]
    spans: dict[str, dict[str, np.ndarray]] = {}
    counts: dict[str, int] = {}
    for name in store.SPLITS:
        s = store.load_split(prepared, name)
        n = len(s)
        window_start = np.empty(n, dtype="datetime64[D]")  # first day whose price is read
        window_end = np.empty(n, dtype="datetime64[D]")  # last day whose price is read
        label_start = np.empty(n, dtype="datetime64[D]")  # first day after the decision day
        label_end = np.empty(n, dtype="datetime64[D]")  # day of the close the label ends on
        for sym in np.unique(s.symbols):
            rows = np.flatnonzero(s.symbols == sym)
            cal, lc = calendars[sym], log_close[sym]
            t = np.searchsorted(cal, s.dates[rows])
            assert (cal[t] == s.dates[rows]).all(), "a decision date is not a trading day"
            # the stored window is exactly the log returns of days t-L+1 .. t (channel 0) ...
            returns = np.diff(lc)  # returns[k] is the return of day k + 1
            expected = returns[t[:, None] - L + np.arange(L)[None, :]]
            np.testing.assert_allclose(s.X[rows, 0, :], expected, rtol=1e-5, atol=1e-7)
            # ... and the label is the forward return from the close of t to that of t + h
            sigma = np.array([np.std(returns[ti - params.vol_window : ti], ddof=1) for ti in t])
            z = (lc[t + h] - lc[t]) / (sigma * math.sqrt(h))
            label = np.where(z < -params.threshold, 0, np.where(z > params.threshold, 2, 1))
            np.testing.assert_array_equal(s.y[rows], label)
            window_start[rows] = cal[t - L]  # the first return reads the close before
            window_end[rows] = cal[t]
            label_start[rows] = cal[t + 1]
            label_end[rows] = cal[t + h]
        assert (window_end < label_start).all(), f"{name}: a window reaches its label span"
        spans[name] = {"window_start": window_start, "label_end": label_end}
        counts[name] = n
    for early, late in [("train", "val"), ("train", "test"), ("val", "test")]:
        last_label = spans[early]["label_end"].max()
        first_window = spans[late]["window_start"].min()
        assert last_label < first_window, (
            f"a {early} label span (to {last_label}) overlaps a {late} window (from {first_window})"
        )
    return counts


def overlapping_params(csv_dir: Path) -> DataParams:
    """Every day a sample (stride 1): overlapping windows, so the purge has work to do."""
    return data_params(
        csv_dir, stride=1, horizon=3, val_start=dt.date(2003, 6, 2), test_start=dt.date(2004, 9, 1)
    )


def test_every_window_precedes_its_label_and_splits_never_overlap(tmp_path: Path) -> None:
    csv_dir = random_walk_prices(tmp_path / "csv", n_symbols=5, n_days=1500, seed=1)
    params = overlapping_params(csv_dir)
    prepare(params, tmp_path / "prepared", tmp_path)
    counts = check_no_leakage(csv_dir, tmp_path / "prepared", params)
    assert min(counts.values()) > 1000  # every sample of every split was checked


def test_per_sample_check_catches_a_window_that_sees_the_future(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_dir = random_walk_prices(tmp_path / "csv", n_symbols=2, n_days=1500, seed=2)
    params = overlapping_params(csv_dir)
    shift_windows_into_the_future(monkeypatch, 1)
    prepare(params, tmp_path / "prepared", tmp_path)
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        check_no_leakage(csv_dir, tmp_path / "prepared", params)


def test_per_sample_check_catches_a_missing_purge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_dir = random_walk_prices(tmp_path / "csv", n_symbols=2, n_days=1500, seed=2)
    params = overlapping_params(csv_dir)
    monkeypatch.setattr(windows, "purge_limit", lambda boundary, window, horizon: boundary - 1)
    prepare(params, tmp_path / "prepared", tmp_path)
    with pytest.raises(AssertionError, match=r"a train label span .* overlaps a val window"):
        check_no_leakage(csv_dir, tmp_path / "prepared", params)


# ------------------------------------------------------------------------ null test


def test_macro_f1_matches_sklearn() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 3, 200), rng.integers(0, 2, 200)  # class 2 never predicted
    expected = f1_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=0)
    assert macro_f1(y, pred, 3)[0] == pytest.approx(expected, abs=1e-12)


@pytest.mark.slow
def test_null_random_walk_scores_inside_the_chance_band(make_params, tmp_path: Path) -> None:
    csv_dir = random_walk_prices(tmp_path / "csv", N_SYMBOLS, N_DAYS, seed=3)
    params = make_params(small_run_updates(csv_dir))
    results, y_pred = small_train_best(params, tmp_path)
    test = store.load_split(tmp_path / "prepared", "test")
    y_true = np.asarray(test.y)
    assert len(y_true) > 200 and np.bincount(y_true).min() > 40  # all classes present
    observed = results["model"]["f1_macro"]
    assert macro_f1(y_true, y_pred, 3)[0] == pytest.approx(observed, abs=1e-9)
    low, high = chance_band(y_true, y_pred, 3)
    assert low <= observed <= high, (observed, (low, high))
    # the logistic-regression baseline on the raw windows must be at chance too
    train = store.load_split(tmp_path / "prepared", "train")
    logreg = baseline_predictions(train, test, params.seed)["logreg"]
    assert macro_f1(y_true, logreg, 3)[0] == pytest.approx(results["logreg"]["f1_macro"])
    low, high = chance_band(y_true, logreg, 3)
    assert low <= results["logreg"]["f1_macro"] <= high, (results["logreg"], (low, high))


def test_null_band_catches_a_leaking_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same check fails once the window holds the label's days (logistic regression
    is enough to exploit it, and costs no network training)."""
    csv_dir = random_walk_prices(tmp_path / "csv", N_SYMBOLS, N_DAYS, seed=3)
    shift_windows_into_the_future(monkeypatch, HORIZON)
    prepare(data_params(csv_dir), tmp_path / "prepared", tmp_path)
    train = store.load_split(tmp_path / "prepared", "train")
    test = store.load_split(tmp_path / "prepared", "test")
    pred = baseline_predictions(train, test, seed=0)["logreg"]
    observed = macro_f1(np.asarray(test.y), pred, 3)[0]
    low, high = chance_band(np.asarray(test.y), pred, 3)
    assert observed > high + 0.2, (observed, (low, high))


# ----------------------------------------------------------------- positive control


@pytest.mark.slow
def test_positive_control_learns_a_planted_pattern(make_params, tmp_path: Path) -> None:
    planted = planted_prices(tmp_path / "csv", seed=4)
    params = make_params(small_run_updates(tmp_path / "csv"))
    results, _ = small_train_best(params, tmp_path)
    # the pipeline's own labels are the planted ones, sample by sample
    for name in store.SPLITS:
        s = store.load_split(tmp_path / "prepared", name)
        expected = [planted[(int(sym), d)] for sym, d in zip(s.symbols, s.dates, strict=True)]
        np.testing.assert_array_equal(s.y, expected)
    assert results["model"]["f1_macro"] > 0.9, results["model"]


#: Daily noise that buries the planted pattern until the logistic regression on the raw
#: window scores about 0.6 test macro F1 (measured over seeds 4 and 5: 0.59-0.65 at 0.014,
#: 0.59-0.60 at 0.016; 0.83 at 0.006).
NOISY_PATTERN = 0.015


@pytest.mark.slow
def test_default_recipe_learns_a_pattern_that_logreg_finds(
    repo_params_dict: dict[str, Any], tmp_path: Path, one_torch_thread
) -> None:
    """params.yaml's model section as it is and its train section with only the budget
    shrunk, so this tests the recipe a user runs, not a smaller stand-in: 100 steps instead
    of 400, and one network instead of the ensemble's three. Every member of the ensemble is
    this same recipe from its own seed, so one member learning alone is the stricter check
    (measured: 0.598 for one network against 0.641 for three, logreg 0.581; 42 s against
    128 s)."""
    planted_prices(tmp_path / "csv", seed=4, noise=NOISY_PATTERN)
    data = small_run_updates(tmp_path / "csv")["data"]
    updates = {
        "data": data,
        "train": {"accelerator": "cpu", "min_steps": 100, "ensemble": 1},
        "tune": {"storage": f"sqlite:///{tmp_path / 'study.db'}"},
    }
    params = validate_params(merge_params(repo_params_dict, updates), "<positive control>")
    assert params.model == ModelParams.model_validate(repo_params_dict["model"])
    recipe = {
        k: v for k, v in repo_params_dict["train"].items() if k not in ("min_steps", "ensemble")
    }
    assert {k: getattr(params.train, k) for k in recipe if k != "accelerator"} == {
        k: v for k, v in recipe.items() if k != "accelerator"
    }
    results, _ = small_train_best(params, tmp_path)
    logreg = results["logreg"]["f1_macro"]
    assert 0.5 <= logreg <= 0.7, results["logreg"]  # the pattern is no stronger than that
    assert results["model"]["f1_macro"] >= logreg - 0.05, (results["model"], logreg)
