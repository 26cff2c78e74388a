"""``python -m benchmarks``: run the rows, write ``RESULTS.md``.

Each row is a function ``(Context) -> measurements`` in one of the row modules: it measures
and checks its target; :func:`benchmarks.report.describe` words what it returns. A row that
raises is reported as an error in the file (and makes the exit status 1) without losing the
others.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from benchmarks.common import REPO, Context, Row, quote
from benchmarks.report import describe, machine, render

#: row number -> "module:function". The numbers are the rows' names in RESULTS.md, in the
#: docs and in ``--only``: a new row takes the next number rather than renumbering these.
ROWS: dict[int, str] = {
    1: "benchmarks.training_rows:lightning_overhead",
    2: "benchmarks.training_rows:encoder_share",
    3: "benchmarks.training_rows:data_path_headroom",
    4: "benchmarks.tuning_rows:pruning_savings",
    5: "benchmarks.trial_rows:trial_overhead",
    6: "benchmarks.dvc_rows:noop_repro_vs_status",
    7: "benchmarks.speedup_rows:cpu_speedups",
}


def run_row(number: int, ctx: Context) -> Row:
    """Measure one row and word what it measured."""
    module_name, func_name = ROWS[number].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return describe(func(ctx))


def failed_row(number: int, error: BaseException) -> Row:
    tb = "".join(traceback.format_exception(error)).rstrip()
    return Row(
        number=number,
        measure=ROWS[number],
        target="",
        result=f"error: {type(error).__name__}",
        met=False,
        method="The row raised an error:",
        details=["```", tb, "```"],
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 repeat (a test)")
    parser.add_argument("--only", type=int, nargs="+", choices=sorted(ROWS), metavar="N")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --smoke)")
    parser.add_argument(
        "--out", type=Path, default=None, help="default benchmarks/RESULTS.md (smoke: not written)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the scratch files")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="the scratch folder (made if missing, and kept); default a new temporary one",
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.smoke else 3
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if not args.smoke and args.repeats < 3:
        parser.error("--repeats: at least 3 outside --smoke (a median of fewer is no median)")
    if args.out is None and not args.smoke:
        args.out = REPO / "benchmarks" / "RESULTS.md"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("STOCKCLF_QUIET", "1")  # no per-trial chatter in the measured runs
    numbers = args.only or sorted(ROWS)
    keep = args.keep_workdir or args.workdir is not None  # a folder the caller named stays
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="stockclf-bench-"))
    command = quote(["python", "-m", "benchmarks", *(argv if argv is not None else sys.argv[1:])])
    ctx = Context(smoke=args.smoke, repeats=args.repeats, workdir=workdir, command=command)
    info = machine()
    start = time.perf_counter()
    rows: list[Row] = []
    try:
        for number in numbers:
            print(f"[benchmarks] row {number}: {ROWS[number]}", file=sys.stderr, flush=True)
            row_start = time.perf_counter()
            try:
                row = run_row(number, ctx)
            except Exception as error:  # reported in the file; the other rows still run
                row = failed_row(number, error)
            rows.append(row)
            seconds = time.perf_counter() - row_start
            print(
                f"[benchmarks] row {number}: {row.result} ({seconds:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    text = render(ctx, info, rows, time.perf_counter() - start)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(args.out)
        print(f"[benchmarks] wrote {args.out}", file=sys.stderr)
    else:
        print(text)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2), encoding="utf-8")
    return 1 if any(r.result.startswith("error") for r in rows) else 0
