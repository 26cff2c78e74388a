"""Windows, the date splits and the purge between them: on made-up prices, where every
sample is recomputed from the CSV, and on the bundled sample."""

from __future__ import annotations

import datetime as dt
import math
import shutil
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import REPO
from ohlcv_files import make_ohlcv, small_params, two_symbols, write_frame

from stockclf.config import load_params
from stockclf.data import store
from stockclf.data.prepare import prepare
from stockclf.data.windows import candidate_days, cut_windows, purge_limit, split_days
from stockclf.errors import DataError


def test_windows_are_aligned_to_decision_day() -> None:
    feats = np.arange(2 * 30, dtype=np.float64).reshape(2, 30)
    days = candidate_days(30, window=8, horizon=3, vol_window=10, stride=1)
    assert days[0] == 10 and days[-1] == 26
    X = cut_windows(feats, days, 8)
    assert X.shape == (len(days), 2, 8) and X.dtype == np.float32
    assert X[0, 0].tolist() == list(range(3, 11))  # days t-L+1 .. t for t=10
    assert X[-1, 1].tolist() == [30 + d for d in range(19, 27)]
    assert candidate_days(30, 8, 3, 10, stride=3).tolist() == days[::3].tolist()
    assert purge_limit(100, 16, 3) == 80


# ----------------------------------------------------------------------------- split / purge


def _calendars(data_dir: Path) -> dict[int, pd.DataFrame]:
    return {i: pd.read_csv(p) for i, p in enumerate(sorted(data_dir.glob("*.csv")))}


def test_split_purge_on_dates(tmp_path: Path) -> None:
    data_dir = two_symbols(tmp_path / "csv")
    params = small_params(source=str(data_dir))
    L, h, vw = params.window, params.horizon, params.vol_window
    prepare(params, tmp_path / "out", tmp_path / "unused")
    splits = {n: store.load_split(tmp_path / "out", n, mmap=False) for n in store.SPLITS}
    frames = _calendars(data_dir)
    cal = {
        i: pd.to_datetime(f["Date"]).to_numpy().astype("datetime64[D]") for i, f in frames.items()
    }

    info: dict[str, dict[str, np.ndarray]] = {}
    for name, s in splits.items():
        assert len(s) > 0, name
        # chronological, ties broken by symbol
        order = np.lexsort((s.symbols, s.dates))
        assert (order == np.arange(len(s))).all(), name
        t = np.array(
            [np.searchsorted(cal[sym], d) for sym, d in zip(s.symbols, s.dates, strict=True)]
        )
        assert all(cal[sym][ti] == d for sym, ti, d in zip(s.symbols, t, s.dates, strict=True))
        first_label_day = np.array([cal[sym][ti + 1] for sym, ti in zip(s.symbols, t, strict=True)])
        assert (s.dates < first_label_day).all()
        info[name] = {
            "t": t,
            "label_end": np.array([cal[sym][ti + h] for sym, ti in zip(s.symbols, t, strict=True)]),
            "input_start": np.array(
                [cal[sym][ti - L] for sym, ti in zip(s.symbols, t, strict=True)]
            ),
        }
        # window content and label recomputed independently from the CSV
        for i in range(0, len(s), 37):
            close = frames[int(s.symbols[i])]["Close"].to_numpy()
            ti = int(t[i])
            assert s.X[i, 0, -1] == pytest.approx(math.log(close[ti] / close[ti - 1]), rel=1e-5)
            assert s.X[i, 0, 0] == pytest.approx(
                math.log(close[ti - L + 1] / close[ti - L]), rel=1e-5
            )
            r = np.diff(np.log(close[ti - vw : ti + 1]))
            z = math.log(close[ti + h] / close[ti]) / (statistics.stdev(r) * math.sqrt(h))
            assert s.y[i] == (0 if z < -0.5 else 2 if z > 0.5 else 1)

    assert splits["train"].dates.max() < splits["val"].dates.min()
    assert splits["val"].dates.max() < splits["test"].dates.min()
    assert splits["train"].dates.max() < np.datetime64(params.val_start)
    assert splits["test"].dates.min() >= np.datetime64(params.test_start)
    # no label span of an earlier split touches any input day of a later split (any symbol)
    for early, late in [("train", "val"), ("train", "test"), ("val", "test")]:
        assert info[early]["label_end"].max() < info[late]["input_start"].min(), (early, late)
    # per symbol, the gap in trading days is at least window + horizon - 1 (rule: L + h + 1)
    for sym in (0, 1):
        for early, late in [("train", "val"), ("val", "test")]:
            last = info[early]["t"][splits[early].symbols == sym].max()
            first = info[late]["t"][splits[late].symbols == sym].min()
            assert first - last >= L + h - 1
            assert first - last == L + h + 1


def test_split_days_purges_against_the_next_nonempty_split() -> None:
    dates = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-03-01"))
    days = np.arange(10, 50)
    # val would be days 30..31 only; it is empty after purging against test (first index 32)
    parts = split_days(days, dates, dt.date(2020, 1, 31), dt.date(2020, 2, 2), window=4, horizon=2)
    assert parts["val"].size == 0
    assert parts["train"].max() == 30 - 4 - 2 - 1
    assert parts["test"][0] == 32


def test_stride_two_halves_the_samples(tmp_path: Path) -> None:
    data_dir = two_symbols(tmp_path / "csv")
    one = prepare(small_params(source=str(data_dir)), tmp_path / "s1", tmp_path)
    two = prepare(small_params(source=str(data_dir), stride=2), tmp_path / "s2", tmp_path)
    for name in store.SPLITS:
        assert abs(2 * two[name]["n"] - one[name]["n"]) <= 4, name
    d1 = store.load_split(tmp_path / "s1", "train").dates
    d2 = store.load_split(tmp_path / "s2", "train").dates
    assert set(d2.tolist()) <= set(d1.tolist())


def test_empty_split_names_the_split(tmp_path: Path) -> None:
    data_dir = two_symbols(tmp_path / "csv")
    params = small_params(
        source=str(data_dir), val_start=dt.date(2011, 6, 1), test_start=dt.date(2011, 6, 10)
    )
    with pytest.raises(DataError) as err:
        prepare(params, tmp_path / "out", tmp_path)
    msg = str(err.value)
    assert "split 'val'" in msg
    assert "from 2011-06-01 to before 2011-06-10" in msg
    assert not (tmp_path / "out").exists()


def test_series_too_short(tmp_path: Path) -> None:
    write_frame(make_ohlcv(40), tmp_path / "SHORT.csv")
    params = small_params(source=str(tmp_path), window=64, horizon=5, vol_window=20)
    with pytest.raises(DataError) as err:
        prepare(params, tmp_path / "out", tmp_path)
    assert "SHORT.csv: only 40 data rows; at least 90 are needed" in str(err.value)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------ the bundled sample


def test_real_bundled_sample(tmp_path: Path) -> None:
    params = load_params(REPO / "params.yaml").data
    assert params.source == "data/sample"
    params = params.model_copy(update={"source": str(REPO / params.source)})
    summary = prepare(params, tmp_path / "prepared", tmp_path / "unused")
    splits = {n: store.load_split(tmp_path / "prepared", n) for n in store.SPLITS}
    for name, s in splits.items():
        assert s.X.dtype == np.float32
        assert s.X.shape == (len(s), len(params.features), params.window)
        assert np.isfinite(s.X).all()  # NASDAQ's zero volumes were filled
        for cls in ("down", "flat", "up"):
            assert 0.15 <= summary[name][f"frac_{cls}"] <= 0.6, (name, cls)
    assert len(splits["train"]) > 1000
    assert len(splits["val"]) > 300 and len(splits["test"]) > 300
    val_dates = splits["val"].dates
    assert val_dates.min() >= np.datetime64(params.val_start)
    assert val_dates.max() < np.datetime64(params.test_start)
    assert summary["n_symbols"] == 2
    assert store.load_meta(tmp_path / "prepared")["symbols"] == ["NASDAQ", "SP500"]


def test_sample_copy_matches_declared_shape(tmp_path: Path) -> None:
    """The repo defaults (3 features, window 64) give N x 3 x 64 windows."""
    shutil.copytree(REPO / "data" / "sample", tmp_path / "sample")
    params = small_params(
        source="sample",
        features=["log_return", "hl_range", "volume_change"],
        window=64,
        horizon=5,
        vol_window=20,
        val_start=dt.date(2013, 1, 1),
        test_start=dt.date(2016, 1, 1),
    )
    summary = prepare(params, tmp_path / "out", tmp_path / "sample")
    X = store.load_split(tmp_path / "out", "train").X
    assert X.shape == (summary["train"]["n"], 3, 64) and X.dtype == np.float32
