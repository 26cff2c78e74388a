"""Scale benchmark of the prepare stage: time and peak memory for 50, 200 and 500 symbols.

Generates random-walk OHLCV CSV files (5,000 trading days each by default) in a temporary
directory, then runs ``stockclf.data.prepare.prepare`` with the repository's ``data``
params in a fresh child process per size, and reports the wall time, the child's peak
resident memory (``ru_maxrss`` from ``os.wait4``) and the time of the ``prepare`` call per
input row, relative to the smallest size (1.0 = linear in the number of rows). Not part of
the test suite::

    python benchmarks/bench_prepare.py                      # 50, 200, 500 symbols
    python benchmarks/bench_prepare.py --symbols 20 40 --days 3000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
#: Prepare's memory requirement: at most this peak RSS for 500 symbols x 5,000 days, so that
#: a universe of that size prepares on an ordinary machine; the run says whether it held.
RSS_LIMIT_MIB = 4096

CHILD = """
import json, sys, time
from pathlib import Path
from stockclf.config import DataParams
from stockclf.data.prepare import prepare
data, out = json.loads(sys.argv[1]), Path(sys.argv[2])
start = time.perf_counter()
summary = prepare(DataParams(**data), out, Path("unused"))
seconds = time.perf_counter() - start
counts = {name: summary[name]["n"] for name in ("train", "val", "test")}
print(json.dumps({"samples": counts, "prepare_seconds": seconds}))
"""


def write_symbols(directory: Path, n_symbols: int, n_days: int, seed: int) -> None:
    """Random-walk OHLCV files ``S0000.csv`` ... on business days from 2000-01-03."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2000-01-03", periods=n_days).strftime("%Y-%m-%d")
    for i in range(n_symbols):
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.015, n_days)))
        open_ = close * np.exp(rng.normal(0, 0.004, n_days))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n_days)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n_days)))
        frame = pd.DataFrame(
            {
                "Date": dates,
                "Open": open_.round(4),
                "High": high.round(4),
                "Low": low.round(4),
                "Close": close.round(4),
                "Adj Close": close.round(4),
                "Volume": rng.integers(100_000, 10_000_000, n_days),
            }
        )
        frame.to_csv(directory / f"S{i:04d}.csv", index=False)


def run_once(data: dict, out: Path) -> dict:
    """Prepare in a child process: wall seconds (with interpreter start and imports), the
    seconds of the ``prepare`` call itself, peak RSS (MiB), sample counts, output size."""
    log = out.with_suffix(".log")
    start = time.perf_counter()
    with log.open("w+") as fh:  # a file, not a pipe: a chatty child cannot block on it
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(data), str(out)], stdout=fh, stderr=fh
        )
        _, status, usage = os.wait4(proc.pid, 0)  # the rusage of this child alone
        seconds = time.perf_counter() - start
        fh.seek(0)
        stdout = fh.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"prepare failed:\n{stdout}")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    reported = json.loads(stdout.strip().splitlines()[-1])
    return {
        "seconds": seconds,
        "prepare_seconds": reported["prepare_seconds"],
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux reports KiB
        "samples": reported["samples"],
        "output_mib": size / 2**20,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--days", type=int, default=5000)
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)

    data = yaml.safe_load(args.params.read_text(encoding="utf-8"))["data"]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-prepare-"))
    sizes = sorted(args.symbols)
    try:
        t0 = time.perf_counter()
        write_symbols(work / "all", sizes[-1], args.days, seed=0)
        print(f"generated {sizes[-1]} x {args.days} rows in {time.perf_counter() - t0:.1f} s")
        rows_out = []
        for n in sizes:
            source = work / f"n{n}"
            source.mkdir()
            for i in range(n):  # hard links: the same files, no second copy on disk
                os.link(work / "all" / f"S{i:04d}.csv", source / f"S{i:04d}.csv")
            result = run_once({**data, "source": str(source)}, work / f"out{n}")
            shutil.rmtree(work / f"out{n}")
            rows = n * args.days
            result.update(symbols=n, rows=rows, us_per_row=1e6 * result["prepare_seconds"] / rows)
            rows_out.append(result)
        base = rows_out[0]["us_per_row"]
        print()
        print(
            "| symbols | rows | samples | prepare s | process s | peak RSS MiB | output MiB "
            "| µs/row | per-row ratio |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in rows_out:
            r["per_row_ratio"] = r["us_per_row"] / base
            print(
                f"| {r['symbols']} | {r['rows']:,} | {sum(r['samples'].values()):,} | "
                f"{r['prepare_seconds']:.1f} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | "
                f"{r['output_mib']:.0f} | {r['us_per_row']:.2f} | {r['per_row_ratio']:.2f} |"
            )
        worst = max(r["peak_rss_mib"] for r in rows_out)
        print(f"\npeak RSS {worst:.0f} MiB (limit {RSS_LIMIT_MIB} MiB): ", end="")
        print("within the limit" if worst <= RSS_LIMIT_MIB else "OVER THE LIMIT")
        if args.json:
            args.json.write_text(json.dumps(rows_out, indent=2) + "\n", encoding="utf-8")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
