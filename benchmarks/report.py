"""The machine description and the markdown of ``RESULTS.md``."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

import torch

from benchmarks.common import Context, Row


def machine_section(info: dict[str, str]) -> list[str]:
    """The "Machine" section of a report: one table row per fact."""
    return [
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in info.items()],
    ]


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
        "| # | measure | result | target | met |",
        "| ---: | --- | --- | --- | --- |",
        *[f"| {r.number} | {r.measure} | {r.result} | {r.target} | {verdict(r)} |" for r in rows],
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
