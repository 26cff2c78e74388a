"""One CSV file read into strings, its header found and its columns located, with what an
error message needs: the file, the 1-based line (header = line 1) and the column as the
file spells it.

Parsing is vectorised with pandas; line numbers for messages are recovered only on the
error path (:func:`_data_line_numbers`), so the happy path has no per-row loop.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stockclf.errors import DataError

#: Columns every file needs, in their normalised spelling (see :func:`normalise_column`).
REQUIRED_COLUMNS = ("date", "open", "high", "low", "close", "volume")


#: Recognised but unused: features are computed from ``Close`` (see :func:`load_csv`).
OPTIONAL_COLUMNS = ("adjclose",)


def normalise_column(name: str) -> str:
    """Spelling-insensitive column key: ``"Adj Close"``, ``"adj_close"`` -> ``"adjclose"``."""
    return re.sub(r"[\s_.\-]+", "", name).lower()


@dataclass(frozen=True)
class CsvTable:
    """One file's data rows as strings, with what an error message names: file, line, column."""

    path: Path
    text: str
    header: list[str]
    header_rows: int
    columns: dict[str, int]  # normalised column name -> position
    body: pd.DataFrame

    def cells(self, key: str) -> pd.Series:
        return self.body.iloc[:, self.columns[key]].fillna("").astype(str).str.strip()

    def line_of(self, row: int) -> int:
        return _data_line_numbers(self.text, self.header_rows)[row]

    def name(self, key: str) -> str:
        """The column's name as the file spells it, for messages."""
        return self.header[self.columns[key]]

    def fail(self, row: int, key: str, problem: str) -> DataError:
        line = self.line_of(row)
        return DataError(f"{self.path}: line {line}, column {self.name(key)!r}: {problem}")


def first_bad_row(bad: np.ndarray | pd.Series) -> int | None:
    """The first row where ``bad`` holds, or None: every check reports the first bad row."""
    rows = np.flatnonzero(np.asarray(bad))
    return int(rows[0]) if rows.size else None


def read_table(path: Path) -> CsvTable:
    """The file parsed into strings, its header found and its required columns located."""
    text = _read_text(path)
    table = _parse_table(path, text)
    header, skip = _header(path, table)
    body = table.iloc[skip:].reset_index(drop=True)
    if len(body) == 0:
        raise DataError(f"{path}: header only, no data rows (header: {', '.join(header)})")
    return CsvTable(path, text, header, skip, _match_columns(path, header), body)


def _read_text(path: Path) -> str:
    """File contents as text; binary or non-UTF-8 files are refused with the file named."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read file: {err.strerror or err}") from None
    if b"\x00" in raw:
        raise DataError(f"{path}: not a UTF-8 text CSV (contains NUL bytes: a binary file?)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}: not UTF-8 text (invalid byte 0x{raw[err.start]:02x} on line {line}); "
            "save it as a UTF-8 CSV"
        ) from None
    if not text.strip():
        raise DataError(f"{path}: empty file (no header, no data rows)")
    return text


def _parse_table(path: Path, text: str) -> pd.DataFrame:
    """All rows as strings, header included, so pandas cannot guess an index or types.

    ``header=None`` makes the header line fix the field count: a longer row is then a
    parser error with its line number instead of being silently shifted into an index.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                io.StringIO(text),
                header=None,
                dtype=str,
                keep_default_na=False,
                index_col=False,
            )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file (no header, no data rows)") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as err:
        msg = str(err).strip()
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
        if m:
            msg = f"line {m[2]}: {m[3]} fields, but the header has {m[1]}"
        raise DataError(f"{path}: malformed CSV: {msg}") from None


def _header(path: Path, table: pd.DataFrame) -> tuple[list[str], int]:
    """Column names and the number of header lines (1, or 3 for recent yfinance files).

    ``yfinance.download(...).to_csv()`` (yfinance >= 0.2.48) writes the column names, then
    a ``Ticker`` line, then a ``Date`` line with empty cells; the first column holds the
    dates. A file with several tickers side by side is refused: one file per symbol.
    """
    first = [str(c) for c in table.iloc[0]]
    if (
        len(table) >= 3
        and normalise_column(first[0]) == "price"
        and normalise_column(str(table.iloc[1, 0])) == "ticker"
        and normalise_column(str(table.iloc[2, 0])) == "date"
    ):
        tickers = sorted({str(t).strip() for t in table.iloc[1, 1:]} - {""})
        if len(tickers) > 1:
            raise DataError(
                f"{path}: line 2: a yfinance file with several tickers ({', '.join(tickers)}); "
                "save one CSV per symbol"
            )
        return ["Date", *first[1:]], 3
    return first, 1


def _match_columns(path: Path, header: Sequence[str]) -> dict[str, int]:
    """Map normalised required/optional names to column positions."""
    positions: dict[str, int] = {}
    for i, name in enumerate(header):
        key = normalise_column(name)
        if key in REQUIRED_COLUMNS or key in OPTIONAL_COLUMNS:
            if key in positions:
                raise DataError(
                    f"{path}: columns {header[positions[key]]!r} and {name!r} both mean {key!r}"
                )
            positions[key] = i
    missing = [k for k in REQUIRED_COLUMNS if k not in positions]
    if missing:
        raise DataError(
            f"{path}: missing required column(s) {', '.join(missing)}; "
            f"found columns: {', '.join(header)}"
        )
    return positions


def _data_line_numbers(text: str, header_rows: int = 1) -> list[int]:
    """1-based file line of each data row (error path only).

    Mirrors pandas: lines that are empty or whitespace-only are skipped, the first
    ``header_rows`` remaining rows are the header; ``csv`` keeps quoted multi-line cells
    in one row.
    """
    lines: list[int] = []
    reader = csv.reader(io.StringIO(text))
    start = 1
    for row in reader:
        if row and not (len(row) == 1 and not row[0].strip()):
            lines.append(start)
        start = reader.line_num + 1
    return lines[header_rows:]
