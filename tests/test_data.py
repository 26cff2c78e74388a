"""Tests of the prepare stage: loading/validation, features, labels, windows, purge, output."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stockclf.config import DataParams, load_params
from stockclf.data import store
from stockclf.data.features import compute_features
from stockclf.data.labels import classify, trailing_volatility, z_scores
from stockclf.data.loading import DataError, load_csv, load_directory
from stockclf.data.prepare import prepare, write_summary
from stockclf.data.windows import candidate_days, cut_windows, purge_limit, split_days

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
    write_summary(prepare(params, out, tmp_path), summary_path)
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
    assert params.source == "sample"
    summary = prepare(params, tmp_path / "prepared", REPO / "data" / "sample")
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
