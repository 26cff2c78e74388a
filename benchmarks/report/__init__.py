"""Every row of ``RESULTS.md`` rendered in one place: the row functions return what they
measured, :func:`describe` turns that into a :class:`~benchmarks.common.Row` (the words of
each row live in :mod:`.training`, :mod:`.tuning` and :mod:`.dvc`), and :func:`render`
writes the file: the machine, the summary table, a section per row.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import Context, Row, median
from stockclf.reporting.markdown import table


def fmt_seconds(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def figures_line(name: str, values: list[float], unit: Callable[[float], str] = fmt_seconds) -> str:
    """``- name: median 12.3 ms (runs: 12.1 ms, 12.3 ms, 13.0 ms)`` for the details."""
    runs = ", ".join(unit(v) for v in values)
    return f"- {name}: median {unit(median(values))} (runs: {runs})"


def span(values: list[float]) -> str:
    return f"{fmt_seconds(min(values))} to {fmt_seconds(max(values))}"


@dataclass(frozen=True)
class Words:
    """What a row's renderer writes from its measurements: the text of its ``Row`` but the
    name and target (its :class:`Renderer`'s) and ``met`` (the measurements')."""

    result: str
    method: str
    details: list[str]
    explanation: str = ""


@dataclass(frozen=True)
class Renderer:
    """A row's number, name and target, and the function that words its measurements."""

    number: int
    measure: str
    target: str
    words: Callable[[Any], Words]


def describe(measured: Any) -> Row:
    """The text of a row from what its row function measured (one renderer per type of
    measurement). The renderers are imported here, not at the top, so that the accuracy
    report can use :func:`machine_section` without the training stack's imports."""
    from benchmarks.report import dvc, training, tuning

    renderers: dict[type, Renderer] = {**training.ROWS, **tuning.ROWS, **dvc.ROWS}
    r = renderers[type(measured)]
    w = r.words(measured)
    return Row(
        r.number, r.measure, r.target, w.result, measured.met, w.method, w.details, w.explanation
    )


def machine_section(info: dict[str, str]) -> list[str]:
    """The "Machine" section of a report: one table row per fact."""
    return ["## Machine", "", *table(["", ""], "ll", [[k, v] for k, v in info.items()])]


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    gpu = "none"
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = f"{props.name}, {props.total_memory / 2**30:.0f} GiB ({torch.cuda.device_count()}x)"
    return {
        "CPU": cpu_name(),
        "cores": f"{os.cpu_count()} logical; torch uses {torch.get_num_threads()} threads",
        "GPU": gpu,
        "Python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "load average at start": ", ".join(f"{v:.1f}" for v in os.getloadavg())
        if hasattr(os, "getloadavg")
        else "n/a",
    }


def verdict(row: Row) -> str:
    return {True: "yes", False: "**no**", None: "n/a"}[row.met]


def render(ctx: Context, info: dict[str, str], rows: list[Row], seconds: float) -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = "SMOKE MODE: tiny sizes, figures mean nothing. " if ctx.smoke else ""
    lines = [
        "# Benchmark results",
        "",
        f"{mode}Written by `{ctx.command}` on {now} in {seconds / 60:.1f} min. Every "
        "comparison was measured side by side in this one run: the cases of a row run "
        f"interleaved, {ctx.repeats} repeat(s) each, and the median is reported. Absolute "
        "times depend on the machine and its load; the ratios are the figures to compare.",
        "",
        *machine_section(info),
        "",
        "## Summary",
        "",
        *table(
            ["#", "measure", "result", "target", "met"],
            "rllll",
            [[str(r.number), r.measure, r.result, r.target, verdict(r)] for r in rows],
        ),
        "",
    ]
    for r in rows:
        lines += [
            f"## {r.number}. {r.measure}",
            "",
            f"Command: `{ctx.row_command(r.number)}`",
            "",
            r.method,
            "",
            *r.details,
            "",
        ]
        if r.explanation:
            lines += [r.explanation, ""]
    return "\n".join(lines).rstrip() + "\n"
