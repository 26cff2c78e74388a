"""Tests of the prepare stage: loading/validation, features, labels, windows, purge, output."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import runpy
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import stockclf.data.prepare as prepare_module
from stockclf.config import DataParams, load_params
from stockclf.data import store
from stockclf.data.features import compute_features
from stockclf.data.labels import classify, trailing_volatility, z_scores
from stockclf.data.loading import OHLCV, load_csv, load_directory
from stockclf.data.prepare import prepare
from stockclf.data.windows import candidate_days, cut_windows, purge_limit, split_days
from stockclf.errors import DataError
from stockclf.files import write_json

REPO = Path(__file__).resolve().parents[1]
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"


# ----------------------------------------------------------------------------- helpers


def make_ohlcv(n: int, start: str = "2010-01-01", seed: int = 0) -> pd.DataFrame:
    """A plausible random-walk OHLCV frame on business days (prices > 0, close in [low, high])."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
    return pd.DataFrame(
        {
            "Date": pd.bdate_range(start, periods=n).strftime("%Y-%m-%d"),
            "Open": open_.round(6),
            "High": high.round(6),
            "Low": low.round(6),
            "Close": close.round(6),
            "Adj Close": close.round(6),
            "Volume": rng.integers(1_000_000, 2_000_000, n),
        }
    )


def write_frame(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


def csv_lines(n: int = 40) -> list[str]:
    """File lines (index 0 = line 1 = header) of a valid CSV, for targeted corruption."""
    return make_ohlcv(n).to_csv(index=False).splitlines()


def set_cell(lines: list[str], line: int, column: str, value: str) -> None:
    """Overwrite one cell, addressed by 1-based file line and header name."""
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = value
    lines[line - 1] = ",".join(cells)


def cell(lines: list[str], line: int, column: str) -> str:
    return lines[line - 1].split(",")[lines[0].split(",").index(column)]


def small_params(**overrides: object) -> DataParams:
    values: dict[str, object] = {
        "source": "unused",
        "features": ["log_return", "hl_range", "volume_change"],
        "window": 16,
        "horizon": 3,
        "vol_window": 5,
        "threshold": 0.5,
        "val_start": dt.date(2011, 6, 1),
        "test_start": dt.date(2011, 11, 1),
        "stride": 1,
    }
    values.update(overrides)
    return DataParams(**values)


def two_symbols(directory: Path) -> Path:
    """AAA: 600 business days from 2010-01-01; BBB: 560 days starting 40 days later."""
    write_frame(make_ohlcv(600, "2010-01-01", seed=1), directory / "AAA.csv")
    write_frame(make_ohlcv(560, "2010-02-26", seed=2), directory / "BBB.csv")
    return directory


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


# ---------------------------------------------------------------------- arithmetic


def test_feature_arithmetic_on_known_values(tmp_path: Path) -> None:
    path = tmp_path / "X.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "2020-01-02,99,105,95,100,1000\n"
        "2020-01-03,100,121,100,110,2000\n"
        "2020-01-06,110,110,88,99,500\n",
        encoding="utf-8",
    )
    s = load_csv(path)
    names = ["close_open", "log_return", "volume_change", "hl_range"]
    f = compute_features(s, names)
    assert f.shape == (4, 3) and f.dtype == np.float64
    assert np.isnan(f[:, 0]).all()  # day 0 has no previous day
    np.testing.assert_allclose(
        f[:, 1], [math.log(1.1), math.log(1.1), math.log(2.0), math.log(1.21)], rtol=1e-12
    )
    np.testing.assert_allclose(
        f[:, 2], [math.log(0.9), math.log(0.9), math.log(0.25), math.log(1.25)], rtol=1e-12
    )


def test_label_arithmetic_on_hand_made_series() -> None:
    x = 0.1
    e = math.exp
    # log returns of days 1..6: +x, -x, +x, +x, -2x, 0
    close = np.array([100, 100 * e(x), 100, 100 * e(x), 100 * e(2 * x), 100, 100])
    z = z_scores(close, horizon=2, vol_window=2)
    # t=2: sigma = std([x, -x], ddof=1) = x*sqrt(2); r = log(C4/C2) = 2x -> z = 2x / (x*sqrt2*sqrt2)
    assert z[2] == pytest.approx(1.0, rel=1e-9)
    # t=3: sigma = std([-x, x]) = x*sqrt(2); r = log(C5/C3) = -x -> z = -0.5
    assert z[3] == pytest.approx(-0.5, rel=1e-9)
    # independent check against the textbook formula
    r = [math.log(close[i] / close[i - 1]) for i in range(1, 7)]
    expected_t3 = math.log(close[5] / close[3]) / (statistics.stdev(r[1:3]) * math.sqrt(2))
    assert z[3] == pytest.approx(expected_t3, rel=1e-12)
    # t=4: returns [+x, +x] -> sigma 0 -> unusable; t<2: no volatility; t>4: no forward close
    assert np.isnan(z[[0, 1, 4, 5, 6]]).all()
    assert trailing_volatility(close, 2)[4] == pytest.approx(0.0, abs=1e-12)
    # classes: strict inequalities, so z = -0.5 is flat at threshold 0.5 and down below it
    assert classify(z[[2, 3]], 0.5).tolist() == [2, 1]
    assert classify(z[[2, 3]], 0.49).tolist() == [2, 0]
    assert classify(np.array([-3.0, 0.0, 3.0]), 0.0).tolist() == [0, 1, 2]


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


# --------------------------------------------------------------------- split / purge


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


# ------------------------------------------------------------------------- loading


CORRUPTIONS = {
    # id: (line, column, new value, expected fragments besides the file name)
    "unparsable_date": (5, "Date", "2020-13-45", ["line 5", "'Date'", "unparsable date"]),
    "non_numeric_price": (7, "Open", "abc", ["line 7", "'Open'", "not a number", "abc"]),
    "non_positive_price": (8, "Close", "-5", ["line 8", "'Close'", "non-positive"]),
    "zero_price": (8, "Low", "0", ["line 8", "'Low'", "non-positive"]),
    "empty_price": (11, "High", "", ["line 11", "'High'", "empty cell"]),
    "nan_price": (12, "Close", "NaN", ["line 12", "'Close'", "missing value"]),
    "negative_volume": (13, "Volume", "-100", ["line 13", "'Volume'", "negative volume"]),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_bad_cell_names_file_line_column_and_problem(tmp_path: Path, case: str) -> None:
    line, column, value, fragments = CORRUPTIONS[case]
    lines = csv_lines()
    set_cell(lines, line, column, value)
    path = tmp_path / "BAD.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_csv(path)
    msg = str(err.value)
    assert str(path) in msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_high_below_low(tmp_path: Path) -> None:
    lines = csv_lines()
    set_cell(lines, 9, "High", str(float(cell(lines, 9, "Low")) * 0.5))
    path = tmp_path / "HL.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"HL\.csv: line 9, column 'High': high .* is below low"):
        load_csv(path)


def test_close_outside_range_with_tolerance(tmp_path: Path) -> None:
    lines = csv_lines()
    high = float(cell(lines, 10, "High"))
    set_cell(lines, 10, "Close", repr(high * (1 + 1e-12)))  # rounding noise: accepted
    path = tmp_path / "C.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    assert len(load_csv(path)) == 40
    set_cell(lines, 10, "Close", repr(high * 1.01))
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"C\.csv: line 10, column 'Close': close .* outside"):
        load_csv(path)


def test_duplicate_dates(tmp_path: Path) -> None:
    lines = csv_lines()
    set_cell(lines, 6, "Date", cell(lines, 5, "Date"))
    path = tmp_path / "DUP.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_csv(path)
    msg = str(err.value)
    assert "DUP.csv: line 6, column 'Date': duplicate date" in msg
    assert "first seen on line 5" in msg


def test_unordered_dates_are_refused_not_sorted(tmp_path: Path) -> None:
    lines = csv_lines()
    lines[4], lines[5] = lines[5], lines[4]  # swap file lines 5 and 6
    path = tmp_path / "ORD.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_csv(path)
    msg = str(err.value)
    assert "ORD.csv: line 6, column 'Date'" in msg
    assert "strictly increasing" in msg


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    lines = csv_lines()
    set_cell(lines, 10, "Open", "x")
    lines.insert(3, "")  # blank line 4 pushes the bad row to line 11
    path = tmp_path / "BLANK.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"BLANK\.csv: line 11, column 'Open': not a number"):
        load_csv(path)


def test_row_with_extra_fields(tmp_path: Path) -> None:
    lines = csv_lines()
    lines[6] += ",999"
    path = tmp_path / "WIDE.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"WIDE\.csv: malformed CSV: line 7: 8 fields"):
        load_csv(path)


def test_missing_required_column(tmp_path: Path) -> None:
    path = write_frame(make_ohlcv(30).drop(columns=["Volume"]), tmp_path / "NOVOL.csv")
    with pytest.raises(DataError) as err:
        load_csv(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "missing required column(s) volume" in msg
    assert "found columns: Date, Open, High, Low, Close, Adj Close" in msg


def test_missing_directory_and_no_csv(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere: directory not found"):
        load_directory(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match=r"empty: no CSV files"):
        load_directory(tmp_path / "empty")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "EMPTY.csv"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"EMPTY\.csv: empty file"):
        load_csv(path)


def test_header_only(tmp_path: Path) -> None:
    path = tmp_path / "HDR.csv"
    path.write_text(HEADER + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"HDR\.csv: header only, no data rows"):
        load_csv(path)


def test_binary_file_renamed_csv(tmp_path: Path) -> None:
    path = tmp_path / "IMAGE.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    with pytest.raises(DataError, match=r"IMAGE\.csv: not a UTF-8 text CSV"):
        load_directory(tmp_path)


def test_non_utf8_text(tmp_path: Path) -> None:
    path = tmp_path / "LATIN.csv"
    path.write_bytes((HEADER + ",Note\n2020-01-02,1,1,1,1,1,1,caf\xe9\n").encode("latin-1"))
    with pytest.raises(
        DataError, match=r"LATIN\.csv: not UTF-8 text \(invalid byte 0xe9 on line 2"
    ):
        load_csv(path)


def test_series_too_short(tmp_path: Path) -> None:
    write_frame(make_ohlcv(40), tmp_path / "SHORT.csv")
    params = small_params(source=str(tmp_path), window=64, horizon=5, vol_window=20)
    with pytest.raises(DataError) as err:
        prepare(params, tmp_path / "out", tmp_path)
    assert "SHORT.csv: only 40 data rows; at least 90 are needed" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_zero_volume_is_filled_forward_and_first_day_backward(tmp_path: Path) -> None:
    lines = csv_lines()
    vol = {line: float(cell(lines, line, "Volume")) for line in (2, 3, 6, 7)}
    set_cell(lines, 2, "Volume", "0")  # first data row: filled from the next day
    set_cell(lines, 7, "Volume", "0")  # filled from line 6
    set_cell(lines, 8, "Volume", "0")  # consecutive zero: also from line 6
    path = tmp_path / "ZERO.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    v = load_csv(path).volume
    assert v[0] == vol[3]
    assert v[5] == vol[6] and v[6] == vol[6]
    assert (v > 0).all()


def test_negative_volume_is_not_filled(tmp_path: Path) -> None:
    lines = csv_lines()
    set_cell(lines, 4, "Volume", "-1")
    path = tmp_path / "NEG.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"NEG\.csv: line 4, column 'Volume': negative volume"):
        load_csv(path)


def test_kaggle_and_lowercase_layouts_load(tmp_path: Path) -> None:
    df = make_ohlcv(30)
    kaggle = df.drop(columns=["Adj Close"]).assign(OpenInt=0)
    write_frame(kaggle, tmp_path / "kaggle" / "aapl.us.csv")
    lower = df.rename(columns={"Adj Close": "adj_close"}).rename(columns=str.lower)
    lower = lower[["close", "adj_close", "volume", "date", "low", "high", "open"]]
    write_frame(lower, tmp_path / "lower" / "MSFT.csv")
    a = load_directory(tmp_path / "kaggle")[0]
    b = load_directory(tmp_path / "lower")[0]
    assert a.symbol == "aapl.us" and b.symbol == "MSFT"
    for s in (a, b):
        np.testing.assert_array_equal(s.close, df["Close"].to_numpy())
        np.testing.assert_array_equal(s.high, df["High"].to_numpy())
        assert str(s.dates[0]) == df["Date"][0]


def test_adj_close_is_not_used_for_features(tmp_path: Path) -> None:
    df = make_ohlcv(30)
    df["Adj Close"] = df["Close"] * 0.5
    s = load_csv(write_frame(df, tmp_path / "ADJ.csv"))
    np.testing.assert_array_equal(s.close, df["Close"].to_numpy())


def test_symbols_are_sorted_file_stems(tmp_path: Path) -> None:
    for name in ("ZZZ", "AAA", "MMM"):
        write_frame(make_ohlcv(30), tmp_path / f"{name}.csv")
    assert [s.symbol for s in load_directory(tmp_path)] == ["AAA", "MMM", "ZZZ"]


# --------------------------------------------------------------------------- prepare


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


def test_failed_run_leaves_previous_output_untouched(tmp_path: Path) -> None:
    data_dir = two_symbols(tmp_path / "csv")
    out = tmp_path / "results" / "prepared"
    summary_path = tmp_path / "results" / "prepare.json"
    params = small_params(source=str(data_dir))
    write_json(summary_path, prepare(params, out, tmp_path))
    before = snapshot(out)
    summary_before = summary_path.read_bytes()
    assert {"meta.json", "train/X.npy", "test/y.npy"} <= set(before)

    lines = (data_dir / "BBB.csv").read_text(encoding="utf-8").splitlines()
    set_cell(lines, 300, "Close", "oops")
    (data_dir / "BBB.csv").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"BBB\.csv: line 300"):
        prepare(params, out, tmp_path)
    assert snapshot(out) == before
    assert summary_path.read_bytes() == summary_before
    assert sorted(p.name for p in out.parent.iterdir()) == ["prepare.json", "prepared"]


def test_meta_and_dtypes(tmp_path: Path) -> None:
    data_dir = two_symbols(tmp_path / "csv")
    params = small_params(source=str(data_dir), features=["close_open", "log_return"])
    summary = prepare(params, tmp_path / "out", tmp_path)
    meta = store.load_meta(tmp_path / "out")
    assert meta == {
        "symbols": ["AAA", "BBB"],
        "features": ["close_open", "log_return"],
        "classes": ["down", "flat", "up"],
        "window": 16,
        "horizon": 3,
        "n_channels": 2,
    }
    s = store.load_split(tmp_path / "out", "val")
    assert s.X.dtype == np.float32 and s.X.shape == (summary["val"]["n"], 2, 16)
    assert s.y.dtype == np.int64 and s.symbols.dtype == np.int32
    assert s.dates.dtype == np.dtype("datetime64[D]")
    assert summary["n_symbols"] == 2
    assert summary["val"]["first_date"] == str(s.dates[0])
    fracs = [summary["val"][f"frac_{c}"] for c in ("down", "flat", "up")]
    assert sum(fracs) == pytest.approx(1.0, abs=1e-5)
    assert fracs[0] == pytest.approx(float((s.y == 0).mean()), abs=1e-6)


# ---------------------------------------------------------------------- stage script


def _stage_dir(tmp_path: Path, **data: object) -> Path:
    work = tmp_path / "work"
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["data"].update(
        source="csvs",
        window=16,
        horizon=3,
        vol_window=5,
        val_start="2011-06-01",
        test_start="2011-11-01",
        **data,
    )
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    two_symbols(work / "csvs")
    return work


def _run_stage(work: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "stages" / "prepare.py"),
            "--params",
            "params.yaml",
            "--out",
            "data/prepared",
            "--summary",
            "reports/prepare.json",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_stage_script_bad_then_good_data(tmp_path: Path) -> None:
    work = _stage_dir(tmp_path)
    good = (work / "csvs" / "AAA.csv").read_text(encoding="utf-8")
    lines = good.splitlines()
    set_cell(lines, 42, "Date", "not-a-date")
    (work / "csvs" / "AAA.csv").write_text("\n".join(lines), encoding="utf-8")
    bad = _run_stage(work)
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.startswith("error: ")
    assert "AAA.csv: line 42, column 'Date': unparsable date" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (work / "data").exists() and not (work / "reports").exists()

    (work / "csvs" / "AAA.csv").write_text(good, encoding="utf-8")
    ok = _run_stage(work)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads((work / "reports" / "prepare.json").read_text(encoding="utf-8"))
    assert summary["n_symbols"] == 2 and summary["train"]["n"] > 0
    assert (work / "data" / "prepared" / "meta.json").exists()


def test_stage_script_bad_params(tmp_path: Path) -> None:
    work = _stage_dir(tmp_path, windwo=3)
    res = _run_stage(work)
    assert res.returncode == 2
    assert res.stderr.startswith("error: ") and "data.windwo: unknown key" in res.stderr
    assert "Traceback" not in res.stderr


# ---------------------------------------------------------------------- real sample


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


# --------------------------------------------------- validation cases 1-13 via the stage
#
# Each case corrupts the input of a work directory that already holds a good prepare
# output, runs the stage script (in-process, through the same ``run_main`` as DVC's
# subprocess) and checks: exit status 2, one ``error:`` line naming the file, the row or
# column and the problem, no traceback, and the previous outputs byte for byte unchanged
# with no temporary leftovers.


def _set_data(work: Path, **values: object) -> None:
    raw = yaml.safe_load((work / "params.yaml").read_text(encoding="utf-8"))
    raw["data"].update(values)
    (work / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")


def _edit_lines(path: Path, edit) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _case_missing_directory(work: Path) -> list[str]:
    _set_data(work, source="nowhere")
    return ["nowhere: directory not found"]


def _case_no_csv_files(work: Path) -> list[str]:
    (work / "notes").mkdir()
    (work / "notes" / "README.txt").write_text("no prices here", encoding="utf-8")
    _set_data(work, source="notes")
    return ["notes: no CSV files (*.csv) found"]


def _case_empty_file(work: Path) -> list[str]:
    (work / "csvs" / "AAA.csv").write_text("", encoding="utf-8")
    return ["AAA.csv: empty file"]


def _case_header_only(work: Path) -> list[str]:
    (work / "csvs" / "AAA.csv").write_text(HEADER + "\n", encoding="utf-8")
    return ["AAA.csv: header only, no data rows"]


def _case_missing_column(work: Path) -> list[str]:
    write_frame(make_ohlcv(600, seed=2).drop(columns=["Low"]), work / "csvs" / "BBB.csv")
    return [
        "BBB.csv: missing required column(s) low",
        "found columns: Date, Open, High, Close, Adj Close, Volume",
    ]


def _case_unparsable_date(work: Path) -> list[str]:
    _edit_lines(work / "csvs" / "AAA.csv", lambda lines: set_cell(lines, 42, "Date", "2011-02-30"))
    return ["AAA.csv: line 42, column 'Date': unparsable date '2011-02-30'"]


def _case_duplicate_dates(work: Path) -> list[str]:
    _edit_lines(
        work / "csvs" / "BBB.csv",
        lambda lines: set_cell(lines, 101, "Date", cell(lines, 100, "Date")),
    )
    return ["BBB.csv: line 101, column 'Date': duplicate date", "first seen on line 100"]


def _case_dates_out_of_order(work: Path) -> list[str]:
    def swap(lines: list[str]) -> None:
        lines[199], lines[200] = lines[200], lines[199]  # file lines 200 and 201

    _edit_lines(work / "csvs" / "AAA.csv", swap)
    return ["AAA.csv: line 201, column 'Date'", "strictly increasing", "not sorted"]


def _case_non_numeric_price(work: Path) -> list[str]:
    _edit_lines(work / "csvs" / "AAA.csv", lambda lines: set_cell(lines, 50, "Open", "12.3.4"))
    return ["AAA.csv: line 50, column 'Open': not a number: '12.3.4'"]


def _case_non_positive_price(work: Path) -> list[str]:
    _edit_lines(work / "csvs" / "BBB.csv", lambda lines: set_cell(lines, 60, "Low", "-0.5"))
    return ["BBB.csv: line 60, column 'Low': non-positive price -0.5"]


def _case_high_below_low(work: Path) -> list[str]:
    _edit_lines(
        work / "csvs" / "AAA.csv",
        lambda lines: set_cell(lines, 70, "High", str(float(cell(lines, 70, "Low")) * 0.9)),
    )
    return ["AAA.csv: line 70, column 'High': high", "is below low"]


def _case_close_outside_range(work: Path) -> list[str]:
    _edit_lines(
        work / "csvs" / "AAA.csv",
        lambda lines: set_cell(lines, 80, "Close", str(float(cell(lines, 80, "High")) * 1.05)),
    )
    return ["AAA.csv: line 80, column 'Close': close", "is outside [low, high]"]


def _case_missing_values(work: Path) -> list[str]:
    def blank(lines: list[str]) -> None:
        set_cell(lines, 90, "Close", "")
        set_cell(lines, 91, "Volume", "null")

    _edit_lines(work / "csvs" / "BBB.csv", blank)
    _set_data(work, max_gap=1)
    return [
        "BBB.csv: line 90, column 'Close': empty cell (missing value)",
        "2 consecutive row(s) with missing values (lines 90-91)",
        "data.max_gap = 1",
    ]


def _case_series_too_short(work: Path) -> list[str]:
    write_frame(make_ohlcv(24, "2010-01-01"), work / "csvs" / "BBB.csv")
    return ["BBB.csv: only 24 data rows; at least 25 are needed"]


def _case_binary_file(work: Path) -> list[str]:
    (work / "csvs" / "AAA.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return ["AAA.csv: not a UTF-8 text CSV"]


def _case_not_utf8_text(work: Path) -> list[str]:
    text = (work / "csvs" / "BBB.csv").read_text(encoding="utf-8").replace("2010-03-01", "Mär")
    (work / "csvs" / "BBB.csv").write_bytes(text.encode("latin-1"))
    return ["BBB.csv: not UTF-8 text (invalid byte 0xe4 on line 3)"]


def _case_empty_split(work: Path) -> list[str]:
    _set_data(work, val_start="2011-06-01", test_start="2011-06-10")
    return [
        "split 'val' (decision dates from 2011-06-01 to before 2011-06-10) has no samples",
        "Adjust data.val_start / data.test_start",
    ]


def _case_npz_length_mismatch(work: Path) -> list[str]:
    np.savez(work / "arrays.npz", X=np.zeros((50, 16)), y=np.zeros(49, dtype=int))
    _set_data(work, source="arrays.npz")
    return ["arrays.npz: array 'X' has 50 rows but array 'y' has 49 labels"]


def _case_npz_non_integer_labels(work: Path) -> list[str]:
    y = np.arange(50) % 3.0
    y[7] = 1.5
    np.savez(work / "arrays.npz", X=np.zeros((50, 16)), y=y)
    _set_data(work, source="arrays.npz")
    return ["arrays.npz: array 'y', row 7: label 1.5 is not an integer class id"]


#: Issue case number -> corruption; several cases have two variants.
STAGE_CASES = {
    "01-missing-directory": _case_missing_directory,
    "01-no-csv-files": _case_no_csv_files,
    "02-empty-file": _case_empty_file,
    "02-header-only": _case_header_only,
    "03-missing-column": _case_missing_column,
    "04-unparsable-date": _case_unparsable_date,
    "05-duplicate-dates": _case_duplicate_dates,
    "06-dates-out-of-order": _case_dates_out_of_order,
    "07-non-numeric-price": _case_non_numeric_price,
    "07-non-positive-price": _case_non_positive_price,
    "08-high-below-low": _case_high_below_low,
    "08-close-outside-range": _case_close_outside_range,
    "09-missing-values-beyond-max-gap": _case_missing_values,
    "10-series-too-short": _case_series_too_short,
    "11-binary-file": _case_binary_file,
    "11-not-utf8-text": _case_not_utf8_text,
    "12-split-without-samples": _case_empty_split,
    "13-npz-length-mismatch": _case_npz_length_mismatch,
    "13-npz-non-integer-labels": _case_npz_non_integer_labels,
}


def _run_stage_in_process(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """Run stages/prepare.py as ``__main__`` in ``work``; returns (exit status, stderr)."""
    monkeypatch.chdir(work)
    argv = ["prepare.py", "--params", "params.yaml", "--out", "data/prepared"]
    monkeypatch.setattr(sys, "argv", [*argv, "--summary", "reports/prepare.json"])
    capsys.readouterr()
    try:
        runpy.run_path(str(REPO / "stages" / "prepare.py"), run_name="__main__")
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", sorted(STAGE_CASES))
def test_stage_refuses_bad_input_and_keeps_previous_output(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    work = _stage_dir(tmp_path)
    code, err = _run_stage_in_process(work, monkeypatch, capsys)
    assert code == 0, err
    before = {name: snapshot(work / name) for name in ("data", "reports")}
    assert "prepared/train/X.npy" in before["data"] and "prepare.json" in before["reports"]

    fragments = STAGE_CASES[case](work)
    code, err = _run_stage_in_process(work, monkeypatch, capsys)
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    after = {name: snapshot(work / name) for name in ("data", "reports")}
    assert after == before  # no file changed, none added (no temporary directory left)


# -------------------------------------------------------------------- missing values


def _gappy_file(tmp_path: Path) -> tuple[Path, list[str]]:
    lines = csv_lines(40)
    set_cell(lines, 10, "Close", "")  # one price missing: the whole bar is carried
    for column in ("Open", "High", "Low", "Close"):
        set_cell(lines, 11, column, "null")
    set_cell(lines, 11, "Volume", "NaN")
    set_cell(lines, 20, "Volume", "")  # a lone missing volume
    path = tmp_path / "GAP.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, lines


def test_missing_values_are_forward_filled_up_to_max_gap(tmp_path: Path) -> None:
    path, lines = _gappy_file(tmp_path)
    s = load_csv(path, max_gap=2)
    row = {line: line - 2 for line in range(2, 42)}  # file line -> data row
    for column, values in (("Open", s.open), ("High", s.high), ("Low", s.low), ("Close", s.close)):
        previous = float(cell(lines, 9, column))
        assert values[row[10]] == previous and values[row[11]] == previous, column
        assert values[row[12]] == float(cell(lines, 12, column))  # later rows untouched
    assert s.volume[row[11]] == float(cell(lines, 10, "Volume"))  # line 10 kept its volume
    assert s.volume[row[20]] == float(cell(lines, 19, "Volume"))
    assert len(s) == 40 and np.isfinite(s.close).all()


def test_missing_values_beyond_max_gap_name_the_run(tmp_path: Path) -> None:
    path, _ = _gappy_file(tmp_path)
    with pytest.raises(DataError) as err:
        load_csv(path, max_gap=1)
    assert (
        "GAP.csv: line 10, column 'Close': empty cell (missing value); 2 consecutive row(s) "
        "with missing values (lines 10-11), but data.max_gap = 1" in str(err.value)
    )
    with pytest.raises(DataError, match=r"line 10, column 'Close'.*data\.max_gap = 0"):
        load_csv(path)  # the default refuses any missing value


def test_missing_value_on_the_first_row_cannot_be_filled(tmp_path: Path) -> None:
    lines = csv_lines(40)
    set_cell(lines, 2, "High", "NA")
    path = tmp_path / "FIRST.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2, column 'High': missing value 'NA' on the first"):
        load_csv(path, max_gap=5)


def test_max_gap_does_not_excuse_garbage(tmp_path: Path) -> None:
    lines = csv_lines(40)
    set_cell(lines, 15, "Close", "n.a.")
    path = tmp_path / "JUNK.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 15, column 'Close': not a number: 'n\.a\.'"):
        load_csv(path, max_gap=5)


def test_max_gap_reaches_prepare(tmp_path: Path) -> None:
    data_dir = two_symbols(tmp_path / "csv")
    _edit_lines(data_dir / "AAA.csv", lambda lines: set_cell(lines, 300, "Close", ""))
    with pytest.raises(DataError, match=r"AAA\.csv: line 300"):
        prepare(small_params(source=str(data_dir)), tmp_path / "out", tmp_path)
    summary = prepare(small_params(source=str(data_dir), max_gap=1), tmp_path / "out", tmp_path)
    assert summary["train"]["n"] > 0


# ---------------------------------------------------------------------- more layouts


def test_yfinance_three_line_header(tmp_path: Path) -> None:
    df = make_ohlcv(40)
    body = df[["Date", "Adj Close", "Close", "High", "Low", "Open", "Volume"]]
    lines = [
        "Price,Adj Close,Close,High,Low,Open,Volume",
        "Ticker,AAPL,AAPL,AAPL,AAPL,AAPL,AAPL",
        "Date,,,,,,",
        *body.to_csv(index=False, header=False).splitlines(),
    ]
    path = tmp_path / "AAPL.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    s = load_csv(path)
    np.testing.assert_array_equal(s.close, df["Close"].to_numpy())
    assert str(s.dates[0]) == df["Date"][0] and len(s) == 40

    lines[6] = lines[6].replace(lines[6].split(",")[5], "abc", 1)  # line 7: Open
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"AAPL\.csv: line 7, column 'Open': not a number"):
        load_csv(path)

    lines[1] = "Ticker,AAPL,AAPL,AAPL,MSFT,MSFT,MSFT"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"several tickers \(AAPL, MSFT\); save one CSV per"):
        load_csv(path)


def test_column_spellings(tmp_path: Path) -> None:
    df = make_ohlcv(30).rename(
        columns={"Date": "DATE", "Adj Close": "Adj. Close", "Volume": "vol-ume", "Low": " low "}
    )
    s = load_csv(write_frame(df, tmp_path / "X.csv"))
    np.testing.assert_array_equal(s.low, df[" low "].to_numpy())


def test_source_that_is_a_plain_file_is_refused(tmp_path: Path) -> None:
    path = write_frame(make_ohlcv(40), tmp_path / "ONE.csv")
    with pytest.raises(DataError, match=r"ONE\.csv: data\.source names a file; expected a dir"):
        prepare(small_params(source=str(path)), tmp_path / "out", tmp_path)


def test_sample_alias_means_the_sample_directory(tmp_path: Path) -> None:
    data_dir = two_symbols(tmp_path / "bundled")
    alias = prepare(small_params(source="sample"), tmp_path / "a", data_dir)
    path = prepare(small_params(source=str(data_dir)), tmp_path / "b", tmp_path / "unused")
    assert alias == path
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")


# ------------------------------------------------------------------ chunked output


def test_chunked_windows_equal_one_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = two_symbols(tmp_path / "csv")
    params = small_params(source=str(data_dir))
    prepare(params, tmp_path / "one", tmp_path)
    # 7 samples per chunk: chunks mix both symbols and split them at odd places
    monkeypatch.setattr(prepare_module, "CHUNK_BYTES", 7 * 3 * params.window * 4)
    prepare(params, tmp_path / "many", tmp_path)
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "many")
    X = np.load(tmp_path / "many" / "train" / "X.npy", mmap_mode="r")
    assert X.dtype == np.float32 and X.shape[1:] == (3, params.window) and X.shape[0] > 7


def test_failure_while_writing_windows_keeps_previous_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = two_symbols(tmp_path / "csv")
    params = small_params(source=str(data_dir))
    out = tmp_path / "results" / "prepared"
    prepare(params, out, tmp_path)
    before = snapshot(out)
    original = prepare_module.compute_features

    def poisoned(series: OHLCV, names: list[str]) -> np.ndarray:
        values = original(series, names)
        if series.symbol == "BBB":
            values[1, 500] = np.nan  # a test-split window of BBB: found while writing test
        return values

    monkeypatch.setattr(prepare_module, "compute_features", poisoned)
    with pytest.raises(DataError, match=r"BBB\.csv: non-finite feature values in the window"):
        prepare(params, out, tmp_path)
    assert snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["prepared"]


def test_write_npy_stream_checks_row_count(tmp_path: Path) -> None:
    chunks = [np.ones((3, 2), np.float32), np.zeros((2, 2), np.float32)]
    store.write_npy_stream(tmp_path / "a.npy", np.float32, (5, 2), iter(chunks))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.concatenate(chunks))
    with pytest.raises(ValueError, match="4 rows written, 5 declared"):
        store.write_npy_stream(
            tmp_path / "b.npy", np.float32, (5, 2), iter(chunks[:1] * 1 + [chunks[0][:1]])
        )


# ------------------------------------------------------------------------ .npz input


def _npz_params(path: Path, **overrides: object) -> DataParams:
    return small_params(source=str(path), **overrides)


def test_npz_with_split_and_class_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2, 24))
    y = np.arange(60) % 4
    split = np.array(["train"] * 40 + ["VAL"] * 10 + [" test"] * 10)
    split[5] = "test"  # order is kept within a split, whatever the position
    names = np.array(["cat", "dog", "owl", "fox"])
    np.savez(tmp_path / "animals.npz", X=X, y=y, split=split, classes=names)
    summary = prepare(_npz_params(tmp_path / "animals.npz"), tmp_path / "out", tmp_path)
    meta = store.load_meta(tmp_path / "out")
    assert meta == {
        "symbols": ["animals"],
        "features": ["channel_0", "channel_1"],
        "classes": ["cat", "dog", "owl", "fox"],
        "window": 24,
        "horizon": None,
        "n_channels": 2,
    }
    rows = {
        "train": [r for r in range(40) if r != 5],
        "val": list(range(40, 50)),
        "test": [5, *range(50, 60)],
    }
    for name, idx in rows.items():
        s = store.load_split(tmp_path / "out", name)
        np.testing.assert_array_equal(s.X, X[idx].astype(np.float32))
        np.testing.assert_array_equal(s.y, y[idx])
        assert s.dates.tolist() == [dt.date(1970, 1, 1) + dt.timedelta(days=r) for r in idx]
        assert np.isnan(s.forward_return).all() and (s.symbols == 0).all()
        assert summary[name]["n"] == len(idx)
    assert summary["val"]["frac_cat"] == pytest.approx(0.3)  # rows 40, 44, 48


def test_npz_without_split_splits_by_position(tmp_path: Path) -> None:
    X = np.arange(100 * 24, dtype=np.float64).reshape(100, 24)
    y = np.arange(100) % 5
    np.savez_compressed(tmp_path / "series.npz", X=X, y=y.astype(np.float32))  # whole floats
    params = _npz_params(tmp_path / "series.npz", val_fraction=0.1, test_fraction=0.2)
    summary = prepare(params, tmp_path / "out", tmp_path)
    assert [summary[n]["n"] for n in store.SPLITS] == [70, 10, 20]
    test = store.load_split(tmp_path / "out", "test")
    assert test.X.shape == (20, 1, 24)
    np.testing.assert_array_equal(test.X[:, 0], X[80:].astype(np.float32))
    assert store.load_meta(tmp_path / "out")["classes"] == ["0", "1", "2", "3", "4"]
    assert set(summary["train"]) >= {"frac_0", "frac_4"}


NPZ_ERRORS = {
    # id: (arrays, expected message fragment after the file name)
    "missing-y": ({"X": np.zeros((5, 8))}, "missing array(s) y; found: X"),
    "unknown-key": (
        {"X": np.zeros((5, 8)), "y": np.arange(5) % 2, "labels": np.arange(5)},
        "unknown array(s) labels; allowed: X, y, split, classes",
    ),
    "object-array": (
        {"X": np.zeros((5, 8)), "y": np.array([0, 1, "x", 1, 0], dtype=object)},
        "array 'y' holds Python objects",
    ),
    "x-4d": ({"X": np.zeros((5, 1, 2, 8)), "y": np.arange(5) % 2}, "array 'X' has shape"),
    "x-nan": (
        {"X": np.where(np.arange(40).reshape(5, 8) == 19, np.nan, 1.0), "y": np.arange(5) % 2},
        "array 'X', row 2: non-finite value nan at channel 0, time step 3",
    ),
    "y-2d": ({"X": np.zeros((5, 8)), "y": np.zeros((5, 1), int)}, "array 'y' has shape (5, 1)"),
    "y-strings": ({"X": np.zeros((5, 8)), "y": np.array(list("abcab"))}, "array 'y' holds strings"),
    "y-negative": (
        {"X": np.zeros((5, 8)), "y": np.array([0, 1, -1, 1, 0])},
        "array 'y', row 2: negative class id -1",
    ),
    "single-class": (
        {"X": np.zeros((5, 8)), "y": np.zeros(5, int)},
        "array 'y' holds a single class",
    ),
    "classes-too-few": (
        {"X": np.zeros((5, 8)), "y": np.arange(5) % 3, "classes": np.array(["a", "b"])},
        "array 'classes' names 2 class(es) but 'y' uses ids up to 2",
    ),
    "split-bad-entry": (
        {"X": np.zeros((5, 8)), "y": np.arange(5) % 2, "split": np.array([0, 1, 2, 3, 0])},
        "array 'split', row 3: 3 is not one of 'train'/'val'/'test'",
    ),
    "split-empty": (
        {"X": np.zeros((5, 8)), "y": np.arange(5) % 2, "split": np.array(["train"] * 4 + ["val"])},
        "split 'test' has no samples with its 'split' array",
    ),
}


@pytest.mark.parametrize("case", sorted(NPZ_ERRORS))
def test_npz_errors_name_file_array_and_row(tmp_path: Path, case: str) -> None:
    arrays, fragment = NPZ_ERRORS[case]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError) as err:
        prepare(_npz_params(tmp_path / "bad.npz"), tmp_path / "out", tmp_path)
    assert f"{tmp_path / 'bad.npz'}: {fragment}" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_npz_that_is_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "text.npz").write_text("X,y\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"text\.npz: not a readable \.npz file"):
        prepare(_npz_params(tmp_path / "text.npz"), tmp_path / "out", tmp_path)
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(DataError, match=r"single\.npz: holds a single \.npy array"):
        prepare(_npz_params(tmp_path / "single.npz"), tmp_path / "out", tmp_path)
    with pytest.raises(DataError, match=r"absent\.npz: file not found"):
        prepare(_npz_params(tmp_path / "absent.npz"), tmp_path / "out", tmp_path)
    np.savez(tmp_path / "few.npz", X=np.zeros((3, 8)), y=np.arange(3) % 2)
    with pytest.raises(DataError, match=r"split 'val' has no samples with data\.val_fraction"):
        prepare(_npz_params(tmp_path / "few.npz"), tmp_path / "out", tmp_path)


# ------------------------------------------------------------ DVC follows data.source


def _sh(*cmd: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.mark.slow
def test_dvc_reruns_prepare_when_a_file_of_the_source_changes(tmp_path: Path) -> None:
    """The README flow: CSVs in data/raw, ``dvc add data/raw``, ``data.source: data/raw``."""
    listed = _sh("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=REPO)
    repo = tmp_path / "repo"
    for rel in listed.stdout.splitlines():
        if (REPO / rel).is_file() and rel != "dvc.lock":
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, repo / rel)
    _sh("git", "init", "-q", cwd=repo)
    _sh("git", "add", "-A", cwd=repo)
    _sh("git", "commit", "-qm", "init", cwd=repo)

    raw = repo / "data" / "raw"
    write_frame(make_ohlcv(600, "2010-01-01", seed=1), raw / "AAA.csv")
    write_frame(make_ohlcv(560, "2010-02-26", seed=2), raw / "BBB.csv")
    _sh("dvc", "add", "data/raw", cwd=repo)
    raw_params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    raw_params["data"].update(
        source="data/raw",
        window=16,
        horizon=3,
        vol_window=5,
        val_start="2011-06-01",
        test_start="2011-11-01",
    )
    (repo / "params.yaml").write_text(yaml.safe_dump(raw_params), encoding="utf-8")

    first = _sh("dvc", "repro", "prepare", cwd=repo)
    assert "Running stage 'prepare'" in first.stdout
    assert "up to date" in _sh("dvc", "status", "prepare", cwd=repo).stdout
    locked = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    deps = {d["path"] for d in locked["stages"]["prepare"]["deps"]}
    assert "data/raw" in deps and "data/sample" not in deps

    _edit_lines(raw / "BBB.csv", lambda lines: set_cell(lines, 500, "Volume", "1234567"))
    status = _sh("dvc", "status", "prepare", cwd=repo).stdout
    assert "modified:" in status and "data/raw" in status, status
    second = _sh("dvc", "repro", "prepare", cwd=repo)
    assert "Running stage 'prepare'" in second.stdout
    assert "up to date" in _sh("dvc", "status", "prepare", cwd=repo).stdout

    # a bad file now stops the stage with the file, line and problem, exit status non-zero
    _edit_lines(raw / "AAA.csv", lambda lines: set_cell(lines, 7, "Date", "2010-13-45"))
    bad = _sh("dvc", "repro", "prepare", cwd=repo, check=False)
    assert bad.returncode != 0
    assert "AAA.csv: line 7, column 'Date': unparsable date '2010-13-45'" in bad.stderr


@pytest.mark.slow
def test_npz_source_trains_with_its_own_classes(make_params, tmp_path: Path) -> None:
    """The generic input goes through the same train_best as prices, with K = 4 classes."""

    import timm

    from stockclf.pipeline.train_best import TrainBestPaths, run_train_best

    rng = np.random.default_rng(0)
    y = np.arange(240) % 4
    t = np.linspace(0, 1, 24)
    X = np.sin(2 * np.pi * (y[:, None] + 1) * t)[:, None, :] + rng.normal(0, 0.1, (240, 1, 24))
    names = np.array(["one", "two", "three", "four"])
    np.savez(tmp_path / "waves.npz", X=X, y=y, classes=names)
    backbone = "test_efficientnet" if timm.is_model("test_efficientnet") else "resnet10t"
    params = make_params(
        {
            "data": {"source": str(tmp_path / "waves.npz")},
            "model": {"backbone": backbone, "image_size": 16},
            "train": {"max_epochs": 1, "max_train_batches": 2, "accelerator": "cpu"},
        }
    )
    prepare(params.data, tmp_path / "prepared", tmp_path)
    no_tuning = tmp_path / "best_params.yaml"
    no_tuning.write_text("{}\n")  # nothing tuned: params.yaml's own values
    outputs = TrainBestPaths.under(tmp_path / "out", tmp_path / "prepared", no_tuning)
    results = run_train_best(params, outputs, progress_bar=False)
    assert results is not None and results["n_test"] == 36  # the last 15% of the rows
    for name in ("model", "logreg"):
        assert {f"f1_{c}" for c in names} <= set(results[name])
    import csv

    rows = list(csv.DictReader(outputs.predictions.open(newline="", encoding="utf-8")))
    assert len(rows) == 36 and {r["actual"] for r in rows} <= set(names)
    assert {r["model"] for r in rows} <= set(names)
