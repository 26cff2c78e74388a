"""Read and validate daily OHLCV CSV files, one symbol per file.

A bad file must stop the prepare stage with a message a person can act on: every
:class:`DataError` names the file, the line (1-based, header = line 1) or the column,
and the problem. Nothing is silently repaired except the one documented quirk of
real index data, a zero volume (see :func:`load_csv`).

Reading a file into strings with its line numbers is :mod:`stockclf.data.csv_table`;
this module checks and converts the values.
"""

# Over 300 lines: reading a CSV (decoding, the yfinance header, column matching, line numbers)
# and the validation cases with their messages live together because every message needs
# the file's own line numbers and column spellings (:class:`CsvTable`). If it grows, split
# there: reading into one module, the checks of an OHLCV series into another.

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stockclf.data.csv_table import CsvTable, first_bad_row, read_table
from stockclf.errors import DataError

PRICE_COLUMNS = ("open", "high", "low", "close")
#: Columns whose cells are numbers; a missing one is filled or refused per ``data.max_gap``.
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")
#: Cell values read as "missing" (case-insensitive), as written by pandas, yfinance, R, Excel.
MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none", "-", "#n/a"})
#: Relative tolerance for the high >= low and low <= close <= high checks: vendors round
#: prices independently, so an exact comparison would reject correct files.
REL_TOL = 1e-9


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
    table = read_table(path)
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


def _dates(table: CsvTable) -> np.ndarray:
    """The date column as datetime64[D]: parsable, unique and strictly increasing."""
    raw = table.cells("date")
    try:
        parsed = pd.to_datetime(raw, format="ISO8601", errors="coerce")
    except (ValueError, TypeError) as err:  # e.g. mixed time zones
        raise DataError(f"{table.path}: column {table.name('date')!r}: {err}") from None
    if (i := first_bad_row(parsed.isna())) is not None:
        raise table.fail(i, "date", f"unparsable date {raw.iloc[i]!r} (expected YYYY-MM-DD)")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    dates = parsed.to_numpy().astype("datetime64[D]")
    if (i := first_bad_row(pd.Series(dates).duplicated())) is not None:
        first = table.line_of(int(np.flatnonzero(dates == dates[i])[0]))
        raise table.fail(i, "date", f"duplicate date {dates[i]} (first seen on line {first})")
    if (i := first_bad_row(np.diff(dates) <= np.timedelta64(0, "D"))) is not None:
        raise table.fail(
            i + 1,
            "date",
            f"date {dates[i + 1]} is earlier than the previous row's {dates[i]}; dates must be "
            "strictly increasing (the file is not sorted automatically)",
        )
    return dates


def _values(table: CsvTable, max_gap: int) -> dict[str, np.ndarray]:
    """Prices and volume as float64, gaps filled, each bar checked for consistency."""
    raw = {key: table.cells(key) for key in VALUE_COLUMNS}
    values = {key: _numeric(raw[key], key, table) for key in VALUE_COLUMNS}
    _fill_missing(values, raw, max_gap, table)
    for key in PRICE_COLUMNS:
        if (i := first_bad_row(values[key] <= 0)) is not None:
            raise table.fail(i, key, f"non-positive price {values[key][i]:g}")
    h, lo, c = values["high"], values["low"], values["close"]
    if (i := first_bad_row(h < lo - REL_TOL * np.abs(lo))) is not None:
        raise table.fail(i, "high", f"high {h[i]:g} is below low {lo[i]:g}")
    outside = (c < lo - REL_TOL * np.abs(lo)) | (c > h + REL_TOL * np.abs(h))
    if (i := first_bad_row(outside)) is not None:
        raise table.fail(
            i, "close", f"close {c[i]:g} is outside [low, high] = [{lo[i]:g}, {h[i]:g}]"
        )
    if (i := first_bad_row(values["volume"] < 0)) is not None:
        raise table.fail(i, "volume", f"negative volume {values['volume'][i]:g}")
    values["volume"] = _fill_zero_volume(values["volume"])
    return values


def _numeric(values: pd.Series, key: str, table: CsvTable) -> np.ndarray:
    """Parse a column as float64; missing cells become NaN, anything else non-finite fails."""
    missing = values.str.lower().isin(MISSING_TOKENS).to_numpy()
    # copy=True: pandas 3 (copy-on-write) hands out read-only arrays
    numbers = pd.to_numeric(values.where(~missing, ""), errors="coerce").to_numpy(
        dtype=np.float64, copy=True
    )
    if (i := first_bad_row(~np.isfinite(numbers) & ~missing)) is not None:
        raw = str(values.iloc[i])
        problem = f"non-finite number {raw!r}" if np.isinf(numbers[i]) else f"not a number: {raw!r}"
        raise table.fail(i, key, problem)
    numbers[missing] = np.nan
    return numbers


def _missing_problem(raw: str) -> str:
    return "empty cell (missing value)" if raw == "" else f"missing value {raw!r}"


def _fill_missing(
    values: dict[str, np.ndarray], raw: dict[str, pd.Series], max_gap: int, table: CsvTable
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
