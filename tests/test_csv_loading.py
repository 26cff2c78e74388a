"""Reading price CSVs: each bad cell, row or file is refused with a message that names the
file, the line and column and the problem; the layouts that load; missing values filled up
to data.max_gap; and what data.source may name."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from ohlcv_files import (
    HEADER,
    cell,
    csv_lines,
    edit_lines,
    make_ohlcv,
    set_cell,
    small_params,
    snapshot,
    two_symbols,
    write_frame,
)

from stockclf.data.loading import load_csv, load_directory
from stockclf.data.prepare import prepare
from stockclf.errors import DataError

# ----------------------------------------------------------------- bad cells, rows and files


CORRUPTIONS = {
    # id: (line, column, new value, data.max_gap, expected fragments besides the file name)
    "unparsable_date": (5, "Date", "2020-13-45", 0, ["line 5", "'Date'", "unparsable date"]),
    "non_numeric_price": (7, "Open", "abc", 0, ["line 7", "'Open'", "not a number", "abc"]),
    "non_positive_price": (8, "Close", "-5", 0, ["line 8", "'Close'", "non-positive"]),
    "zero_price": (8, "Low", "0", 0, ["line 8", "'Low'", "non-positive"]),
    "empty_price": (11, "High", "", 0, ["line 11", "'High'", "empty cell"]),
    "nan_price": (12, "Close", "NaN", 0, ["line 12", "'Close'", "missing value"]),
    "negative_volume": (13, "Volume", "-100", 0, ["line 13", "'Volume'", "negative volume"]),
    # a negative volume is refused, not filled like a zero volume or a missing value
    "negative_volume_not_filled": (4, "Volume", "-1", 5, ["line 4, column 'Volume': negative"]),
    # max_gap fills missing values only: nothing earlier to fill from, or not missing at all
    "missing_on_the_first_row": (2, "High", "NA", 5, ["line 2, column 'High'", "on the first"]),
    "garbage_despite_max_gap": (15, "Close", "n.a.", 5, ["line 15", "not a number: 'n.a.'"]),
}


def refusal(path: Path, lines: list[str], max_gap: int = 0) -> str:
    """The message with which load_csv refuses a file of ``lines``."""
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_csv(path, max_gap=max_gap)
    return str(err.value)


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_bad_cell_names_file_line_column_and_problem(tmp_path: Path, case: str) -> None:
    line, column, value, max_gap, fragments = CORRUPTIONS[case]
    lines = csv_lines()
    set_cell(lines, line, column, value)
    path = tmp_path / "BAD.csv"
    msg = refusal(path, lines, max_gap)
    assert msg.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_high_below_low(tmp_path: Path) -> None:
    lines = csv_lines()
    set_cell(lines, 9, "High", str(float(cell(lines, 9, "Low")) * 0.5))
    msg = refusal(tmp_path / "HL.csv", lines)
    assert re.search(r"HL\.csv: line 9, column 'High': high [\d.]+ is below low [\d.]+$", msg), msg


def test_close_outside_range_with_tolerance(tmp_path: Path) -> None:
    lines = csv_lines()
    high = float(cell(lines, 10, "High"))
    set_cell(lines, 10, "Close", repr(high * (1 + 1e-12)))  # rounding noise: accepted
    path = tmp_path / "C.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    assert len(load_csv(path)) == 40
    set_cell(lines, 10, "Close", repr(high * 1.01))
    msg = refusal(path, lines)
    assert re.search(r"C\.csv: line 10, column 'Close': close [\d.]+ is outside", msg), msg


def test_duplicate_dates(tmp_path: Path) -> None:
    lines = csv_lines()
    set_cell(lines, 6, "Date", cell(lines, 5, "Date"))
    msg = refusal(tmp_path / "DUP.csv", lines)
    assert "DUP.csv: line 6, column 'Date': duplicate date" in msg
    assert "first seen on line 5" in msg


def test_unordered_dates_are_refused_not_sorted(tmp_path: Path) -> None:
    lines = csv_lines()
    lines[4], lines[5] = lines[5], lines[4]  # swap file lines 5 and 6
    msg = refusal(tmp_path / "ORD.csv", lines)
    assert "ORD.csv: line 6, column 'Date'" in msg
    assert "strictly increasing" in msg


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    lines = csv_lines()
    set_cell(lines, 10, "Open", "x")
    lines.insert(3, "")  # blank line 4 pushes the bad row to line 11
    msg = refusal(tmp_path / "BLANK.csv", lines)
    assert "BLANK.csv: line 11, column 'Open': not a number" in msg


def test_row_with_extra_fields(tmp_path: Path) -> None:
    lines = csv_lines()
    lines[6] += ",999"
    assert "WIDE.csv: malformed CSV: line 7: 8 fields" in refusal(tmp_path / "WIDE.csv", lines)


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


# ------------------------------------------------------------------------------------ volume


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


# ----------------------------------------------------------------------------------- layouts


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


# ---------------------------------------------------------------------------- missing values


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


def test_max_gap_reaches_prepare(tmp_path: Path) -> None:
    data_dir = two_symbols(tmp_path / "csv")
    edit_lines(data_dir / "AAA.csv", lambda lines: set_cell(lines, 300, "Close", ""))
    with pytest.raises(DataError, match=r"AAA\.csv: line 300"):
        prepare(small_params(source=str(data_dir)), tmp_path / "out", tmp_path)
    summary = prepare(small_params(source=str(data_dir), max_gap=1), tmp_path / "out", tmp_path)
    assert summary["train"]["n"] > 0


# ------------------------------------------------------------------------------- data.source


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
