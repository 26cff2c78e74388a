"""Every check of ``load_csv`` gives its message word for word.

The other loading tests look for fragments of a message; these pin the whole text, so a
change to how the checks find the bad row or build the message cannot alter what a user
reads. Line numbers count the header as line 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stockclf.data.loading import load_csv
from stockclf.errors import DataError

HEADER = "Date,Open,High,Low,Close,Volume"


def rows() -> list[list[str]]:
    """Ten consistent daily bars, 2020-01-01 to 2020-01-10 (file lines 2 to 11)."""
    return [[f"2020-01-{day:02d}", "10", "12", "9", "11", str(1000 + day)] for day in range(1, 11)]


def write(path: Path, table: list[list[str]]) -> Path:
    path.write_text("\n".join([HEADER, *(",".join(r) for r in table)]) + "\n", encoding="utf-8")
    return path


def with_cell(line: int, column: int, value: str) -> list[list[str]]:
    """``rows()`` with one cell replaced; ``line`` is the file line (header = 1)."""
    table = rows()
    table[line - 2][column] = value
    return table


def swapped(line: int) -> list[list[str]]:
    """``rows()`` with file lines ``line`` and ``line + 1`` exchanged."""
    table = rows()
    table[line - 2], table[line - 1] = table[line - 1], table[line - 2]
    return table


DATE, OPEN, HIGH, LOW, CLOSE, VOLUME = range(6)

#: A case: the rows, data.max_gap, and the message after "<path>: ".
Case = tuple[list[list[str]], int, str]


def bad_cell(line: int, column: int, value: str, problem: str, max_gap: int = 0) -> Case:
    """The case of ``rows()`` with one cell set: the message names that line and column,
    then ``problem``."""
    where = f"line {line}, column '{HEADER.split(',')[column]}'"
    return with_cell(line, column, value), max_gap, f"{where}: {problem}"


CASES: dict[str, Case] = {
    "unparsable date": bad_cell(
        5, DATE, "2020-13-45", "unparsable date '2020-13-45' (expected YYYY-MM-DD)"
    ),
    "duplicate date": bad_cell(
        7, DATE, "2020-01-05", "duplicate date 2020-01-05 (first seen on line 6)"
    ),
    "dates out of order": (
        swapped(4),
        0,
        "line 5, column 'Date': date 2020-01-03 is earlier than the previous row's 2020-01-04; "
        "dates must be strictly increasing (the file is not sorted automatically)",
    ),
    "not a number": bad_cell(3, OPEN, "12.3.4", "not a number: '12.3.4'"),
    "non-finite number": bad_cell(4, HIGH, "inf", "non-finite number 'inf'"),
    "non-positive price": bad_cell(6, LOW, "-0.5", "non-positive price -0.5"),
    "high below low": bad_cell(8, HIGH, "8", "high 8 is below low 9"),
    "close outside the bar": bad_cell(9, CLOSE, "13", "close 13 is outside [low, high] = [9, 12]"),
    "negative volume": bad_cell(10, VOLUME, "-100", "negative volume -100"),
    "missing value on the first row": bad_cell(
        2,
        CLOSE,
        "",
        "empty cell (missing value) on the first data row: no earlier row to fill it from",
        max_gap=3,
    ),
    "missing value beyond max_gap": bad_cell(
        6,
        VOLUME,
        "NaN",
        "missing value 'NaN'; 1 consecutive row(s) with missing values (line 6), but "
        "data.max_gap = 0 allows forward-filling at most 0",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_check_gives_its_exact_message(tmp_path: Path, case: str) -> None:
    table, max_gap, expected = CASES[case]
    path = write(tmp_path / "BAD.csv", table)
    with pytest.raises(DataError) as err:
        load_csv(path, max_gap=max_gap)
    assert str(err.value) == f"{path}: {expected}"


def test_a_run_of_missing_rows_names_its_first_and_last_line(tmp_path: Path) -> None:
    table = rows()
    table[3][CLOSE] = "null"  # file line 5
    table[4][OPEN] = ""  # file line 6
    path = write(tmp_path / "GAP.csv", table)
    with pytest.raises(DataError) as err:
        load_csv(path, max_gap=1)
    assert str(err.value) == (
        f"{path}: line 5, column 'Close': missing value 'null'; 2 consecutive row(s) with "
        "missing values (lines 5-6), but data.max_gap = 1 allows forward-filling at most 1"
    )


def test_first_bad_row_is_reported_when_several_are_bad(tmp_path: Path) -> None:
    table = rows()
    for line in (9, 4, 7):
        table[line - 2][LOW] = "0"
    path = write(tmp_path / "MANY.csv", table)
    with pytest.raises(DataError, match=r"^.*MANY\.csv: line 4, column 'Low': non-positive"):
        load_csv(path)


def test_a_clean_file_loads_with_its_values(tmp_path: Path) -> None:
    series = load_csv(write(tmp_path / "OK.csv", rows()))
    assert series.symbol == "OK"
    assert len(series) == 10
    assert str(series.dates[0]) == "2020-01-01" and str(series.dates[-1]) == "2020-01-10"
    assert series.close.tolist() == [11.0] * 10
    assert series.volume.tolist() == [float(1000 + d) for d in range(1, 11)]


def test_a_filled_gap_copies_the_previous_bar(tmp_path: Path) -> None:
    table = rows()
    table[4][HIGH] = "NaN"  # file line 6: all four prices come from line 5
    table[4][OPEN] = "20"
    series = load_csv(write(tmp_path / "FILL.csv", table), max_gap=1)
    assert (series.open[4], series.high[4], series.low[4], series.close[4]) == (10, 12, 9, 11)
