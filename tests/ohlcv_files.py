"""Made-up OHLCV price files and small data params for the tests of loading and prepare:
a plausible random walk per symbol, and edits of single cells by file line and column, so a
test can corrupt exactly one value and look for it in the message."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from stockclf.config import DataParams

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"


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


def edit_lines(path: Path, edit: Callable[[list[str]], None]) -> None:
    """Rewrite a text file through ``edit``, which changes its list of lines in place."""
    lines = path.read_text(encoding="utf-8").splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


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
