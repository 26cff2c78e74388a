"""GPU throughput of stockclf's training step: images/s, GPU busy share, data-path starvation.

Why a separate script: the suite (``python -m benchmarks``) runs on the 2-core CPU machines
where the project is developed; this one needs a CUDA device and is run by hand on one, as
one command: ``benchmarks/README.md`` holds that command, with what the GPU machine needs
(the wheels to carry, the folder that comes back). It measures the library's own pieces:

- the network is :class:`stockclf.training.network.StockClassifierNet` with ``params.yaml``'s
  model section, the backbone and image size overridden per combo (``pretrained`` off);
- a step is :class:`benchmarks.steps.TrainStep` over the project's ``StockClassifier``: the
  calls Lightning makes per batch, without Lightning's hooks and logging;
- batches come from :class:`stockclf.training.batches.TensorBatches` over data placed by
  :func:`~stockclf.training.batches.place_split`, as ``PreparedDataModule`` does.

Measurement is in ``gpu_measure``, ``gpu_compile`` and ``gpu_timing``, rendering in
``gpu_report`` (from the JSON alone); this module parses the arguments, runs the combos
within ``--budget-s`` and writes the report and its JSON after every combo (atomically), so
a run stopped by a time limit keeps what it measured. A combo that fails is recorded with
its error and the run goes on (exit status 1). ``--smoke`` runs tiny sizes
(configs/tiny.yaml) on the CPU in seconds; it measures nothing and is what the tests run.
Without ``--smoke`` and without a CUDA device it exits with 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

try:
    import torch

    from benchmarks.common import REPO, median, repo_params_dict, tiny_updates
    from benchmarks.gpu_compile import run_compiles
    from benchmarks.gpu_measure import (
        CASE_GPU,
        Combo,
        Data,
        Settings,
        machine_info,
        measure_combo,
    )
    from benchmarks.gpu_report import fmt_rate, images_per_s, render
    from benchmarks.gpu_timing import elapsed, log
    from stockclf.config import merge_params
    from stockclf.training.batches import place_split
except ModuleNotFoundError as err:  # one clear line on a machine that lacks a dependency
    raise SystemExit(
        f"cannot import {err.name!r}: run from the repository root as "
        "`PYTHONPATH=src python3 -m benchmarks.gpu`; where pydantic is missing, carry its "
        "wheels (benchmarks/README.md, 'The GPU script on a GPU machine')"
    ) from None

EXIT_USAGE = 2
EXIT_FAILED = 1  # a combo failed: the report names it
#: The run's time limit: the GPU machine command's timeout_s (390 s, benchmarks/README.md)
#: less 90 s for the wheel install, the imports, a case that overruns its estimate and the
#: last write. Estimated run on an H200: the eager combos about 1.5 min, one cold compile
#: of a network 1-2.5 min, so at least one compile case fits, the most GPU-bound first.
DEFAULT_BUDGET_S = 300.0
#: Smoke batch: configs/tiny.yaml's 32 makes dm_nfnet_f0 four times slower on a CPU.
SMOKE_BATCH = 8


def default_out() -> Path:
    """``$OUT/RESULTS-gpu.md`` where ``OUT`` is set (on the GPU machine, the one folder that
    comes back), else ``benchmarks/RESULTS-gpu.md``."""
    out = os.environ.get("OUT")
    return Path(out) / "RESULTS-gpu.md" if out else REPO / "benchmarks" / "RESULTS-gpu.md"


def shown_path(value: str) -> str:
    """A path as the report's command shows it: relative to the repository or ``$OUT``,
    else ``.../`` and its name, so that no machine's folders end up in a committed report."""
    path = Path(value).resolve()
    roots = (
        [("", REPO), ("$OUT/", Path(os.environ["OUT"]).resolve())]
        if "OUT" in os.environ
        else [("", REPO)]
    )
    for prefix, root in roots:
        if path.is_relative_to(root):
            return prefix + path.relative_to(root).as_posix()
    return f".../{path.name}"


def shown_command(argv: list[str]) -> str:
    args, expect_path = [], False
    for arg in argv:
        if expect_path:
            arg, expect_path = shown_path(arg), False
        elif arg == "--out":
            expect_path = True
        elif arg.startswith("--out="):
            arg = "--out=" + shown_path(arg.split("=", 1)[1])
        args.append(arg)
    return " ".join(["python3", "-m", "benchmarks.gpu", *args])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu",
        description="Images/s of stockclf's training step on a GPU, its busy share, and "
        "whether the in-memory data path starves it.",
    )
    p.add_argument("--smoke", action="store_true", help="tiny sizes on CPU: measures nothing")
    p.add_argument(
        "--out",
        type=Path,
        help="markdown report ($OUT/RESULTS-gpu.md where OUT "
        "is set, else benchmarks/RESULTS-gpu.md); its .json beside it",
    )
    p.add_argument("--models", nargs="+", help="timm backbones (efficientnet_b0 dm_nfnet_f0)")
    p.add_argument("--sizes", nargs="+", type=int, help="image sizes in pixels (64 128)")
    p.add_argument("--window", type=int, help="window length L of the synthetic data (128)")
    p.add_argument("--windows", type=int, help="number of synthetic windows N (32768)")
    p.add_argument("--batch-size", type=int, help="batch size (256)")
    p.add_argument("--steps", type=int, help="timed steps per repeat (30)")
    p.add_argument("--warmup", type=int, help="untimed steps before timing (5)")
    p.add_argument("--repeats", type=int, help="interleaved repeats per case (3)")
    p.add_argument("--profile-steps", type=int, help="steps under the profiler (3)")
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compare torch.compile with eager (default: on, off in --smoke)",
    )
    p.add_argument("--compile-mode", default="default", help="torch.compile mode")
    p.add_argument(
        "--budget-s",
        type=float,
        default=DEFAULT_BUDGET_S,
        help="start no combo or compile case that would end the run past this "
        f"many seconds ({DEFAULT_BUDGET_S:.0f})",
    )
    return p


def parse_args(argv: list[str] | None) -> Settings:
    p = parser()
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not args.smoke and not cuda:
        print("no CUDA device; use --smoke", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    full = not args.smoke
    tiny = merge_params(repo_params_dict(), tiny_updates())  # --smoke's sizes
    s = Settings(
        smoke=args.smoke,
        device=torch.device("cuda" if cuda else "cpu"),
        models=args.models or ["efficientnet_b0", "dm_nfnet_f0"],
        sizes=args.sizes or ([64, 128] if full else [tiny["model"]["image_size"]]),
        window=args.window or (128 if full else tiny["data"]["window"]),
        windows=args.windows or (32768 if full else 64),
        batch_size=args.batch_size or (256 if full else SMOKE_BATCH),
        steps=args.steps or (30 if full else 2),
        warmup=args.warmup if args.warmup is not None else (5 if full else 0),
        repeats=args.repeats or (3 if full else 1),
        profile_steps=args.profile_steps or (3 if full else 1),
        compile=args.compile if args.compile is not None else full,
        compile_mode=args.compile_mode,
        budget_s=args.budget_s,
        out=args.out or default_out(),
        command=shown_command(sys.argv[1:] if argv is None else argv),
    )
    too_big = [size for size in s.sizes if size > s.window]
    if too_big:
        p.error(f"--sizes {too_big} exceed --window {s.window}: PAA only shrinks")
    if s.windows < s.batch_size:
        p.error(f"--windows {s.windows} is below --batch-size {s.batch_size}")
    return s


def make_data(s: Settings) -> Data:
    torch.manual_seed(0)
    x = torch.randn(s.windows, 3, s.window)
    y = torch.randint(0, 3, (s.windows,))
    data = Data((x, y), place_split(x, y, s.device), place_split(x, y, s.device, budget_bytes=0))
    pinned = data.pinned[0].is_pinned()
    log(f"data: {tuple(x.shape)} on {data.on_device[0].device}; pinned copy: {pinned}")
    return data


def run_eager(combos: list[Combo], s: Settings, data: Data, write) -> None:
    """Each combo's eager cases, while the longest combo so far still fits the budget."""
    for combo in combos:
        longest = max((c.eager_s for c in combos if c.status == "measured"), default=0.0)
        if elapsed() + longest > s.budget_s:
            combo.fail(
                "skipped",
                f"--budget-s {s.budget_s:.0f} s: at {elapsed():.0f} s, the "
                f"longest combo so far took {longest:.0f} s",
            )
        else:
            log(f"{combo.label}: building and timing the eager cases")
            measure_combo(combo, s, data)
        if combo.status == "measured":
            rate = images_per_s(
                combo.seconds[CASE_GPU], {"steps": s.steps, "batch_size": s.batch_size}
            )
            log(f"{combo.label}: {fmt_rate(rate)} images/s with data on {s.device.type}")
        else:
            log(f"{combo.label}: {combo.status}: {combo.reason}")
        write()


def results(
    combos: list[Combo], s: Settings, machine: dict, date: str, finished: bool
) -> dict[str, Any]:
    records = [c.record() for c in combos]
    for rec in records:
        rec["images_per_s"] = {
            case: s.steps * s.batch_size / median(v) for case, v in rec["seconds"].items()
        }
    return {
        "command": s.command,
        "date": date,
        "total_s": elapsed(),
        "finished": finished,
        "settings": s.record(),
        "machine": machine,
        "combos": records,
    }


def write_atomic(path: Path, text: str) -> None:
    """A temporary file, then ``os.replace``: a run killed mid-write keeps the last report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write(combos: list[Combo], s: Settings, machine: dict, date: str, finished: bool) -> None:
    data = results(combos, s, machine, date, finished)
    write_atomic(s.out.with_suffix(".json"), json.dumps(data, indent=2))
    write_atomic(s.out, render(data))


def main(argv: list[str] | None = None) -> int:
    s = parse_args(argv)
    if s.smoke and s.device.type == "cpu":
        # One thread: on a shared machine, OpenMP threads that wait on each other make a
        # smoke run several times slower; it measures nothing anyway.
        torch.set_num_threads(1)
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_info(s.device)
    log(
        f"device {s.device}, {s.precision}, models {s.models}, sizes {s.sizes}, batch "
        f"{s.batch_size}, {s.steps} steps x {s.repeats} repeats, compile {s.compile}, "
        f"budget {s.budget_s:.0f} s; writing {s.out}"
    )
    combos = [Combo(model, size) for size in s.sizes for model in s.models]

    def progress() -> None:
        write(combos, s, machine, date, finished=False)

    run_eager(combos, s, make_data(s), progress)
    if s.compile:
        run_compiles(combos, s, progress)
    for combo in combos:
        combo.release()
    write(combos, s, machine, date, finished=True)
    log(f"wrote {s.out} and {s.out.with_suffix('.json').name}")
    return EXIT_FAILED if any(c.status == "failed" for c in combos) else 0


if __name__ == "__main__":
    raise SystemExit(main())
