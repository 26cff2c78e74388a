"""The prepare stage: validate the prices (or .npz), write windows, labels and splits, and
the summary of counts and class balance that DVC tracks as a metric."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stockclf.config import Params
from stockclf.data.prepare import prepare
from stockclf.files import write_json

#: Where the alias ``data.source: sample`` points, relative to the repository root (DVC's cwd).
SAMPLE_DIR = Path("data/sample")


@dataclass(frozen=True)
class PreparePaths:
    out: Path  # the prepared windows (a directory, replaced whole)
    summary: Path  # counts, dates and class balance per split (a DVC metrics file)


def run_prepare(params: Params, paths: PreparePaths) -> dict[str, Any]:
    """Validate every input, then write the prepared data and its summary.

    The summary is written after the directory is swapped in, so a failure in either
    leaves no summary of data that is not there.
    """
    summary = prepare(params.data, paths.out, SAMPLE_DIR)
    write_json(paths.summary, summary)
    return summary


def describe(summary: dict[str, Any]) -> str:
    """One line per split: samples, date range and class balance."""
    lines = []
    for name in ("train", "val", "test"):
        s = summary[name]
        balance = ", ".join(
            f"{key.removeprefix('frac_')} {value:.2f}"
            for key, value in s.items()
            if key.startswith("frac_")
        )
        lines.append(f"{name}: {s['n']} samples, {s['first_date']} .. {s['last_date']}, {balance}")
    return "\n".join(lines)
