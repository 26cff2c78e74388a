"""What every benchmark row shares: the result record, side-by-side timing, and inputs.

A row compares two or more *cases* (Lightning vs a raw loop, channels_last vs not, ...).
The machines here are shared and noisy, so cases are never timed one after the other in
blocks: :func:`interleaved` runs repeat ``r`` of every case before repeat ``r + 1`` of any,
rotating the order, and a row reports medians and their ratio.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from stockclf.config import DataParams, Params, merge_params, validate_params

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    """One row of ``RESULTS.md`` as text: what :func:`benchmarks.report.describe` makes of a
    row function's measurements, and what the suite writes (a failed row is one too)."""

    number: int
    measure: str  # what is compared: the row's name in the summary table and its heading
    target: str  # e.g. "overhead at most 3%"
    result: str  # the headline figure, e.g. "overhead 1.2%"
    met: bool | None  # None: the row picks something rather than passing a target
    method: str  # how it was measured: sizes, repeats, what is timed
    details: list[str] = field(default_factory=list)  # markdown lines (tables, figures)
    explanation: str = ""  # why a target is missed, or what was chosen and why


@dataclass
class Context:
    """Settings of one run of the suite."""

    smoke: bool  # tiny sizes, 1 repeat: checks that the code runs, measures nothing
    repeats: int  # interleaved repeats per case (median reported); at least 3 unless smoke
    workdir: Path  # scratch space, deleted after the run
    command: str  # how this run was started, e.g. "python -m benchmarks --only 1 2"

    def row_command(self, number: int) -> str:
        """The command that reproduces one row."""
        return f"python -m benchmarks --only {number}" + (" --smoke" if self.smoke else "")


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def interleaved(cases: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Run each case ``repeats`` times, interleaved and rotated; return each case's figures.

    A case returns its own figure (seconds of the timed part, usually), so that it can
    leave its setup and warm-up out of the measurement.
    """
    names = list(cases)
    figures: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            figures[name].append(float(cases[name]()))
    return figures


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def overlap(a: list[float], b: list[float]) -> bool:
    """Whether the ranges of two cases' runs overlap: then a few repeats cannot tell
    them apart, whatever their medians say."""
    return min(a) <= max(b) and min(b) <= max(a)


TINY_CONFIG = REPO / "configs" / "tiny.yaml"


@cache
def _tiny_text() -> str:
    return TINY_CONFIG.read_text(encoding="utf-8")


def tiny_updates() -> dict[str, Any]:
    """``configs/tiny.yaml``, the one shrunk config (the tests' too), as updates for
    :func:`~stockclf.config.merge_params`: the sizes of the smoke mode and of row 6's
    pipeline run. A fresh dict each call, so that a caller may change its copy."""
    return yaml.safe_load(_tiny_text())


def repo_params_dict() -> dict[str, Any]:
    return yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


def bench_params(ctx: Context, updates: dict[str, Any] | None = None) -> Params:
    """The repository's ``params.yaml`` (the defaults users run) with one network, shrunk
    in smoke mode, plus ``updates``; the tuning storage is moved into the scratch directory."""
    data = repo_params_dict()
    if ctx.smoke:
        data = merge_params(data, tiny_updates())
    # One network: the rows measure per-network speed (an ensemble of train.ensemble
    # networks costs that many times one), and a tuning trial trains one anyway.
    data = merge_params(data, {"train": {"ensemble": 1}})
    data = merge_params(data, updates or {})
    data["data"]["source"] = str(REPO / "data" / "sample")
    data["tune"]["storage"] = f"sqlite:///{ctx.workdir / 'tuning' / 'study.db'}"
    return validate_params(data, "<benchmark params>")


def prepared_data(ctx: Context, params: Params) -> Path:
    """The bundled sample prepared with ``params.data`` (once per distinct data section)."""
    return _prepared(ctx.workdir, params.data.model_dump_json())


@cache
def _prepared(workdir: Path, data_json: str) -> Path:
    from stockclf.data.prepare import prepare

    data = DataParams.model_validate_json(data_json)
    out = workdir / f"prepared-{hashlib.sha1(data_json.encode()).hexdigest()[:10]}"
    prepare(data, out, REPO / "data" / "sample")
    return out


def quote(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def publish(
    text: str, out: Path | None, prog: str, json_path: Path | None = None, figures: Any = None
) -> None:
    """A stand-alone benchmark's report: printed when there is no ``out`` (smoke mode),
    else written to ``out``; and ``figures`` as JSON to ``json_path`` when it is given."""
    if out is None:
        print(text)
    else:
        out.write_text(text, encoding="utf-8")
        print(f"[{prog}] wrote {out}", file=sys.stderr)
    if json_path is not None:
        json_path.write_text(json.dumps(figures, indent=2), encoding="utf-8")
