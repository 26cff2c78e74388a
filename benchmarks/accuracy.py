"""``python -m benchmarks.accuracy``: test accuracy on UCR/UEA sets, MiniRocket side by side.

Every (variant, set, seed) runs the project's own pipeline in-process, in a scratch
directory: ``prepare`` on an ``.npz`` made from the archive's split
(:mod:`benchmarks.accuracy_data`), the tune stage's ``run_tune``, then ``run_train_best``
with the best params it wrote. The params are the repository's ``params.yaml`` (what a
user runs) plus the variant's overrides, so a recipe change shows up here as it would in
``dvc repro``. ``run_train_best`` scores the archive's test split once and fits MiniRocket
and the logistic-regression baseline on the same train rows.

A run that fails is recorded with its error and the others go on; the report and the JSON
are rewritten after every run, so a stopped benchmark keeps what it measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.accuracy_data import DATASETS, shipped_sets
from benchmarks.accuracy_runs import (
    RunRecord,
    Variant,
    budget,
    run_one,
    run_params,
    warm_up_minirocket,
)
from benchmarks.common import REPO, quote
from stockclf.config import ParamsError

DEFAULT_OUT = REPO / "benchmarks" / "ACCURACY.md"
DEFAULT_JSON = REPO / "benchmarks" / "accuracy.json"
DEFAULT_SEEDS = (0, 1, 2)
#: The smoke mode: one short set, one seed, the one shrunk config (``configs/tiny.yaml``).
SMOKE_SETS = ("ItalyPowerDemand",)
SMOKE_SEEDS = (0,)


def parse_variant(text: str) -> Variant:
    name, sep, overrides = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected NAME=JSON, NAME of letters, digits, '_', '.', '-'"
        )
    try:
        value = json.loads(overrides)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"{name}: not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{name}: the JSON must be an object of params")
    return Variant(name, value)


def names(text: str) -> list[str]:
    return [v for v in text.split(",") if v]


def seeds(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers like 0,1,2") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="one set, one seed, tiny budgets")
    parser.add_argument("--sets", type=names, default=None, help="e.g. GunPoint,ArrowHead")
    parser.add_argument("--seeds", type=seeds, default=None, help="e.g. 0,1,2")
    parser.add_argument(
        "--variant", type=parse_variant, action="append", default=[], metavar="NAME=JSON"
    )
    parser.add_argument(
        "--no-tune", action="store_true", help="train_best on the params as given, no study"
    )
    parser.add_argument("--out", type=Path, default=None, help="the markdown report")
    parser.add_argument("--json", type=Path, default=None, help="the raw numbers")
    parser.add_argument(
        "--from-json", type=Path, nargs="+", default=None, help="only re-render these runs"
    )
    parser.add_argument(
        "--headline",
        default=None,
        metavar="VARIANT",
        help="with --from-json: the variant of the Results table (default: the first run's)",
    )
    args = parser.parse_args(argv)
    smoke_dir = Path(tempfile.gettempdir()) / "stockclf-accuracy-smoke"
    if args.out is None:
        args.out = smoke_dir / "ACCURACY.md" if args.smoke else DEFAULT_OUT
    if args.json is None:
        args.json = (
            DEFAULT_JSON if args.out.resolve() == DEFAULT_OUT else args.out.with_suffix(".json")
        )
    args.sets = args.sets or list(SMOKE_SETS if args.smoke else DATASETS)
    args.seeds = args.seeds or list(SMOKE_SEEDS if args.smoke else DEFAULT_SEEDS)
    args.variant = args.variant or [Variant("default", {})]
    check_args(parser, args)
    return args


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse unknown sets, repeated variant names and invalid overrides before any run."""
    if args.headline and not args.from_json:
        parser.error("--headline re-renders saved runs: give it with --from-json")
    if args.from_json:
        return
    unknown = sorted(set(args.sets) - set(shipped_sets()))
    if unknown:
        parser.error(f"--sets: {unknown} not shipped with aeon; shipped: {shipped_sets()}")
    names = [v.name for v in args.variant]
    if len(set(names)) != len(names):
        parser.error(f"--variant: repeated names in {names}")
    for variant in args.variant:
        try:
            run_params(variant, args.smoke, Path("check.npz"), 0, Path("check"))
        except ParamsError as err:
            parser.error(f"--variant {variant.name}: {err}")


def new_doc(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    from benchmarks.report import machine

    return {
        "command": quote(["python", "-m", "benchmarks.accuracy", *argv]),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "smoke": args.smoke,
        "tuned": not args.no_tune,
        "machine": machine(),
        "sets": args.sets,
        "seeds": args.seeds,
        "variants": [
            {
                "name": v.name,
                "overrides": v.overrides,
                "tuned": not args.no_tune,
                "budget": budget(run_params(v, args.smoke, Path("x.npz"), 0, Path("x"))),
            }
            for v in args.variant
        ],
        "runs": [],
        "wall_s": 0.0,
    }


def write(doc: dict[str, Any], out: Path, json_path: Path) -> None:
    from benchmarks.accuracy_report import render

    for path, text in ((json_path, json.dumps(doc, indent=2) + "\n"), (out, render(doc))):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)


def progress_line(record: RunRecord, done: int, total: int, elapsed: float) -> str:
    where = f"[{done}/{total}] {record.variant} {record.dataset} seed {record.seed}"
    took = f"wall {record.wall_s:.0f} s, cpu {record.cpu_s:.0f} s; elapsed {elapsed / 60:.1f} min"
    if not record.ok:
        return f"{where}: FAILED ({record.error.splitlines()[0]}); {took}"
    mr = "n/a" if record.minirocket is None else f"{record.minirocket:.3f}"
    return (
        f"{where}: model {record.model:.3f}, minirocket {mr}, logreg {record.logreg:.3f}, "
        f"best val {record.best_val:.3f}; {took}"
    )


def join(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from several runs of the benchmark: new variants are added, and a variant
    that two files share is completed with the (set, seed) runs the first files lack, so a
    stopped benchmark can be finished by running only what is missing. A shared variant
    must have been run with the same overrides, tuning and budget, or the two are not one
    measurement."""
    doc = docs[0]
    for other in docs[1:]:
        mine = {v["name"]: v for v in doc["variants"]}
        for variant in other["variants"]:
            if variant["name"] not in mine:
                doc["variants"].append(variant)
            elif mine[variant["name"]] != variant:
                raise ValueError(
                    f"variant {variant['name']!r} was run with other params in the two files: "
                    f"{mine[variant['name']]} against {variant}"
                )
        have = {(r["variant"], r["dataset"], r["seed"]) for r in doc["runs"]}
        doc["runs"] += [
            r for r in other["runs"] if (r["variant"], r["dataset"], r["seed"]) not in have
        ]
        doc["sets"] += [s for s in other["sets"] if s not in doc["sets"]]
        doc["seeds"] += [s for s in other["seeds"] if s not in doc["seeds"]]
        doc["wall_s"] += other["wall_s"]
        doc.setdefault("joined", []).extend(
            [*other.get("joined", []), {"command": other["command"], "date": other["date"]}]
        )
    # each joined file once, and never the first file itself
    entries = [(j["command"], j["date"]) for j in doc.get("joined", [])]
    unique = dict.fromkeys(e for e in entries if e != (doc["command"], doc["date"]))
    if entries:
        doc["joined"] = [{"command": c, "date": d} for c, d in unique]
    return doc


def rerender(paths: list[Path], out: Path, json_path: Path, headline: str | None = None) -> int:
    """Re-render a report from saved runs; several files are joined (:func:`join`).
    ``headline`` names the variant of the Results table, kept in the JSON for later
    renders (a report grown over many runs is headed by the recipe it settled on)."""
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    try:
        doc = join(docs)
    except ValueError as err:
        print(f"--from-json: {err}", file=sys.stderr)
        return 2
    if headline is not None:
        names = [v["name"] for v in doc["variants"]]
        if headline not in names:
            print(f"--headline: no variant {headline!r}; the runs have {names}", file=sys.stderr)
            return 2
        doc["headline"] = headline
    write(doc, out, json_path)
    print(f"wrote {out} and {json_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.from_json:
        return rerender(args.from_json, args.out, args.json, args.headline)
    os.environ.setdefault("STOCKCLF_QUIET", "1")  # no progress bars in the log
    warm_up_minirocket()
    doc = new_doc(args, argv)
    jobs = [(v, s, seed) for v in args.variant for s in args.sets for seed in args.seeds]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stockclf-accuracy-") as root:
        for i, (variant, dataset, seed) in enumerate(jobs, 1):
            record = run_one(variant, dataset, seed, args.smoke, Path(root), not args.no_tune)
            doc["runs"].append(asdict(record))
            doc["wall_s"] = time.perf_counter() - start
            write(doc, args.out, args.json)
            print(progress_line(record, i, len(jobs), doc["wall_s"]), flush=True)
    print(f"wrote {args.out} and {args.json}")
    return 0 if all(r["ok"] for r in doc["runs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
