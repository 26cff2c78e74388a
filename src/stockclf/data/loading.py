"""Read and validate daily OHLCV CSV files, one symbol per file.

A bad file must stop the prepare stage with a message a person can act on: every
:class:`DataError` names the file, the line (1-based, header = line 1) or the column,
and the problem. Nothing is silently repaired except the one documented quirk of
real index data, a zero volume (see :func:`load_csv`).

Parsing is vectorised with pandas; line numbers for messages are recovered only on
the error path (:func:`_data_line_numbers`), so the happy path has no per-row loop.
"""

# Over 300 lines: reading a CSV (decoding, the yfinance header, column matching, line numbers)
# and the validation cases with their messages live together because every message needs
# the file's own line numbers and column spellings (:class:`_Table`). If it grows, split
# there: reading into one module, the checks of an OHLCV series into another.

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

from stockclf.errors import StockclfError

#: Columns every file needs, in their normalised spelling (see :func:`normalise_column`).
REQUIRED_COLUMNS = ("date", "open", "high", "low", "close", "volume")
#: Recognised but unused: features are computed from ``Close`` (see :func:`load_csv`).
OPTIONAL_COLUMNS = ("adjclose",)
PRICE_COLUMNS = ("open", "high", "low", "close")
#: Columns whose cells are numbers; a missing one is filled or refused per ``data.max_gap``.
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")
#: Cell values read as "missing" (case-insensitive), as written by pandas, yfinance, R, Excel.
MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none", "-", "#n/a"})
#: Relative tolerance for the high >= low and low <= close <= high checks: vendors round
#: prices independently, so an exact comparison would reject correct files.
REL_TOL = 1e-9


class DataError(StockclfError, ValueError):
    """Input data that cannot be used; the message names the file, row or column and problem."""


@dataclass(frozen=True)
class OHLCV:
    """One validated daily series; all arrays are aligned by trading day."""

    symbol: str
    path: Path
    dates: np.ndarray  # datetime64[D], strictly increasing
    open: np.ndarray  # float64, > 0
    high: np.ndarray  # float64, >= low
    low: np.ndarray  # float64, > 0
    close: np.ndarray  # float64, in [low, high]
    volume: np.ndarray  # float64, >= 0 (zeros filled from neighbours unless all are zero)

    def __len__(self) -> int:
        return len(self.dates)


def normalise_column(name: str) -> str:
    """Spelling-insensitive column key: ``"Adj Close"``, ``"adj_close"`` -> ``"adjclose"``."""
    return re.sub(r"[\s_.\-]+", "", name).lower()


def list_csv_files(directory: Path) -> list[Path]:
    """The ``*.csv`` files of ``directory`` sorted by name (so symbol ids are stable).

    Hidden files (``.name.csv``, e.g. macOS ``._X.csv`` resource forks) are skipped.
    """
    directory = Path(directory)
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "directory not found"
        raise DataError(f"{directory}: {what}; expected a directory of OHLCV CSV files")
    files = sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and p.suffix.lower() == ".csv" and not p.name.startswith(".")
    )
    if not files:
        raise DataError(f"{directory}: no CSV files (*.csv) found")
    stems: dict[str, Path] = {}
    for p in files:
        if p.stem in stems:
            raise DataError(f"{p}: symbol {p.stem!r} also comes from {stems[p.stem]}")
        stems[p.stem] = p
    return files


def load_directory(directory: Path, min_rows: int = 0, max_gap: int = 0) -> list[OHLCV]:
    """Load every CSV of ``directory`` (sorted by name); each needs at least ``min_rows`` rows."""
    series = [load_csv(p, max_gap=max_gap) for p in list_csv_files(directory)]
    for s in series:
        check_length(s, min_rows)
    return series


def check_length(series: OHLCV, min_rows: int) -> None:
    """Refuse a series too short for one window, its trailing volatility and its horizon."""
    if len(series) < min_rows:
        raise DataError(
            f"{series.path}: only {len(series)} data rows; at least {min_rows} are needed "
            "(window + horizon + vol_window + 1 trading days)"
        )


def load_csv(path: Path, symbol: str | None = None, max_gap: int = 0) -> OHLCV:
    """Read and validate one OHLCV file; the symbol defaults to the file's stem.

    - Columns are matched case-insensitively, ignoring spaces, dots, hyphens and
      underscores, so Yahoo (``Adj Close``), Kaggle (``Date,Open,...,OpenInt``) and
      lowercase layouts load, and so does the three-line header that recent yfinance
      versions write (``Price,...`` / ``Ticker,...`` / ``Date,,,``). Extra columns are
      ignored. ``Adj Close`` is accepted but not used: the features and labels use
      ``Close`` so that high/low/open stay on the same scale.
    - Dates must be ISO 8601 (``YYYY-MM-DD``, an optional time and zone is dropped) and
      strictly increasing. An unsorted file is refused, not sorted: out-of-order rows
      usually mean a concatenation or export bug, and silently reordering would hide it.
    - Missing values (an empty cell, ``NaN``, ``null``, ...) in Open/High/Low/Close/Volume:
      a run of at most ``max_gap`` consecutive rows with missing values is forward-filled
      (all four prices of such a row are copied from the previous row, so the bar stays
      consistent; a missing volume is carried forward); a longer run, or one on the first
      data row, is an error. ``max_gap`` is ``data.max_gap``, 0 by default: filling invents
      prices, so it is the user's explicit choice.
    - Prices must be finite and positive, with high >= low and low <= close <= high
      (relative tolerance :data:`REL_TOL`).
    - Volume must be a number >= 0. A zero volume is a known data-source error in
      index data (the bundled NASDAQ file has two), so it is treated as missing and
      carried forward from the previous day (backward from the next day for a leading
      zero) without counting towards ``max_gap``. A negative volume is an error.
    """
    path = Path(path)
    table = _read_table(path)
    dates = _dates(table)
    values = _values(table, max_gap)
    return OHLCV(
        symbol=symbol if symbol is not None else path.stem,
        path=path,
        dates=dates,
        open=values["open"],
        high=values["high"],
        low=values["low"],
        close=values["close"],
        volume=values["volume"],
    )


@dataclass(frozen=True)
class _Table:
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


def _first(bad: np.ndarray | pd.Series) -> int | None:
    """The first row where ``bad`` holds, or None: every check reports the first bad row."""
    rows = np.flatnonzero(np.asarray(bad))
    return int(rows[0]) if rows.size else None


def _read_table(path: Path) -> _Table:
    """The file parsed into strings, its header found and its required columns located."""
    text = _read_text(path)
    table = _parse_table(path, text)
    header, skip = _header(path, table)
    body = table.iloc[skip:].reset_index(drop=True)
    if len(body) == 0:
        raise DataError(f"{path}: header only, no data rows (header: {', '.join(header)})")
    return _Table(path, text, header, skip, _match_columns(path, header), body)


def _dates(table: _Table) -> np.ndarray:
    """The date column as datetime64[D]: parsable, unique and strictly increasing."""
    raw = table.cells("date")
    try:
        parsed = pd.to_datetime(raw, format="ISO8601", errors="coerce")
    except (ValueError, TypeError) as err:  # e.g. mixed time zones
        raise DataError(f"{table.path}: column {table.name('date')!r}: {err}") from None
    if (i := _first(parsed.isna())) is not None:
        raise table.fail(i, "date", f"unparsable date {raw.iloc[i]!r} (expected YYYY-MM-DD)")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    dates = parsed.to_numpy().astype("datetime64[D]")
    if (i := _first(pd.Series(dates).duplicated())) is not None:
        first = table.line_of(int(np.flatnonzero(dates == dates[i])[0]))
        raise table.fail(i, "date", f"duplicate date {dates[i]} (first seen on line {first})")
    if (i := _first(np.diff(dates) <= np.timedelta64(0, "D"))) is not None:
        raise table.fail(
            i + 1,
            "date",
            f"date {dates[i + 1]} is earlier than the previous row's {dates[i]}; dates must be "
            "strictly increasing (the file is not sorted automatically)",
        )
    return dates


def _values(table: _Table, max_gap: int) -> dict[str, np.ndarray]:
    """Prices and volume as float64, gaps filled, each bar checked for consistency."""
    raw = {key: table.cells(key) for key in VALUE_COLUMNS}
    values = {key: _numeric(raw[key], key, table) for key in VALUE_COLUMNS}
    _fill_missing(values, raw, max_gap, table)
    for key in PRICE_COLUMNS:
        if (i := _first(values[key] <= 0)) is not None:
            raise table.fail(i, key, f"non-positive price {values[key][i]:g}")
    h, lo, c = values["high"], values["low"], values["close"]
    if (i := _first(h < lo - REL_TOL * np.abs(lo))) is not None:
        raise table.fail(i, "high", f"high {h[i]:g} is below low {lo[i]:g}")
    if (i := _first((c < lo - REL_TOL * np.abs(lo)) | (c > h + REL_TOL * np.abs(h)))) is not None:
        raise table.fail(
            i, "close", f"close {c[i]:g} is outside [low, high] = [{lo[i]:g}, {h[i]:g}]"
        )
    if (i := _first(values["volume"] < 0)) is not None:
        raise table.fail(i, "volume", f"negative volume {values['volume'][i]:g}")
    values["volume"] = _fill_zero_volume(values["volume"])
    return values


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


def _numeric(values: pd.Series, key: str, table: _Table) -> np.ndarray:
    """Parse a column as float64; missing cells become NaN, anything else non-finite fails."""
    missing = values.str.lower().isin(MISSING_TOKENS).to_numpy()
    # copy=True: pandas 3 (copy-on-write) hands out read-only arrays
    numbers = pd.to_numeric(values.where(~missing, ""), errors="coerce").to_numpy(
        dtype=np.float64, copy=True
    )
    if (i := _first(~np.isfinite(numbers) & ~missing)) is not None:
        raw = str(values.iloc[i])
        problem = f"non-finite number {raw!r}" if np.isinf(numbers[i]) else f"not a number: {raw!r}"
        raise table.fail(i, key, problem)
    numbers[missing] = np.nan
    return numbers


def _missing_problem(raw: str) -> str:
    return "empty cell (missing value)" if raw == "" else f"missing value {raw!r}"


def _fill_missing(
    values: dict[str, np.ndarray], raw: dict[str, pd.Series], max_gap: int, table: _Table
) -> None:
    """Forward-fill runs of at most ``max_gap`` rows with missing values, in place.

    A row with any missing price takes all four prices of the previous row (filling
    columns one by one could make high < low); a missing volume is carried forward.
    A longer run, or a missing value on the first data row, raises naming its first cell.
    """
    missing = {key: np.isnan(values[key]) for key in VALUE_COLUMNS}
    rows = np.logical_or.reduce([missing[key] for key in VALUE_COLUMNS])
    if not rows.any():
        return
    idx = np.flatnonzero(rows)
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = idx[np.r_[0, breaks + 1]]
    ends = idx[np.r_[breaks, len(idx) - 1]]
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        key = next(k for k in VALUE_COLUMNS if missing[k][start])
        what = _missing_problem(str(raw[key].iloc[start]))
        if start == 0:
            raise table.fail(
                start, key, f"{what} on the first data row: no earlier row to fill it from"
            )
        length = end - start + 1
        if length > max_gap:
            line = table.line_of
            span = f"line {line(start)}" if length == 1 else f"lines {line(start)}-{line(end)}"
            raise table.fail(
                start,
                key,
                f"{what}; {length} consecutive row(s) with missing values ({span}), but "
                f"data.max_gap = {max_gap} allows forward-filling at most {max_gap}",
            )
    prices_missing = np.logical_or.reduce([missing[key] for key in PRICE_COLUMNS])
    for key in PRICE_COLUMNS:
        column = values[key].copy()
        column[prices_missing] = np.nan
        values[key] = pd.Series(column).ffill().to_numpy(dtype=np.float64)
    values["volume"] = pd.Series(values["volume"]).ffill().to_numpy(dtype=np.float64)


def _fill_zero_volume(volume: np.ndarray) -> np.ndarray:
    """Zero volume -> previous day's volume (leading zeros: the first non-zero volume).

    An all-zero column stays zero: some indices publish no volume, which is only a
    problem if the ``volume_change`` feature is requested (checked there).
    """
    if not (volume == 0).any() or (volume == 0).all():
        return volume
    filled = pd.Series(np.where(volume > 0, volume, np.nan)).ffill().bfill()
    return filled.to_numpy(dtype=np.float64)


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
