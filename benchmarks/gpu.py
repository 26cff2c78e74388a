"""GPU throughput of stockclf's training step: images/s, GPU busy share, data-path starvation.

Why a separate script: the suite (``python -m benchmarks``) runs on the 2-core CPU machines
where the project is developed; this one needs a CUDA device and is run by hand on one, as
one command. It measures the library's own pieces, not a copy of them:

- the network is :class:`stockclf.training.network.StockClassifierNet` (image encoder, timm
  backbone, main and auxiliary heads) with ``params.yaml``'s model section, the backbone and
  image size overridden per case (``pretrained`` off: the machine is offline);
- a step is :class:`benchmarks.steps.TrainStep` over the project's ``StockClassifier``: the
  calls Lightning makes per batch (the module's ``losses`` under bf16 autocast with
  channels_last, the torchmetrics update, backward, its adaptive gradient clipping, AdamW,
  the per-step schedule, and ``training_step``'s ``isfinite(loss)`` check, one host-device
  synchronisation per step), without Lightning's hooks and logging (whose cost the suite's
  row 1 measures on the CPU);
- batches come from :class:`stockclf.training.batches.TensorBatches` over data placed by
  :func:`~stockclf.training.batches.place_split`, as ``PreparedDataModule`` does.

The windows are random float32 (``N x 3 x 128``): the step's cost does not depend on the
values. Cases are timed side by side (``--repeats`` interleaved, rotated repeats; the median
is reported), each repeat being ``--steps`` steps between two ``torch.cuda.synchronize()``.

Run on a GPU machine, from the repository root (one command; about 4-5 minutes on an H200)::

    PYTHONUNBUFFERED=1 PYTHONPATH=src python3 -m benchmarks.gpu --out benchmarks/RESULTS-gpu.md

``PYTHONPATH=src`` stands in for installing the package where only its dependencies are
missing (or ``pip install -e . --no-deps --no-build-isolation``). The script imports torch,
timm, pyyaml and pydantic (through ``stockclf.config``), and no Lightning. The H200 machines'
image has no pydantic in its package list: carry its wheels for that machine's Python (3.12),
fetched here into an ignored folder (``echo /.whl/ >> .git/info/exclude``)::

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux_2_17_x86_64 -d .whl \\
        pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 \\
        typing-inspection==0.4.2 typing-extensions==4.16.0

and there, before the command above::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site   # then PYTHONPATH=src:$PYTHONPATH python3 -m benchmarks.gpu

The report is rewritten after every case, so a run stopped by a time limit keeps what it
measured. ``torch.compile`` cases start only while the run can end within ``--budget-s``
(270 s); the others say "skipped".

Shrink the run with ``--models``, ``--sizes``, ``--batch-size``, ``--steps``, ``--repeats``
or ``--no-compile``. ``--smoke`` runs tiny sizes on the CPU (or the GPU if there is one) in
seconds and writes the same report; it measures nothing and is what the tests run. Without
``--smoke`` and without a CUDA device the script exits with status 2.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

try:
    from benchmarks.common import interleaved, median
    from benchmarks.steps import TrainStep
    from stockclf.config import validate_params
    from stockclf.training.batches import TensorBatches, place_split
    from stockclf.training.module import StockClassifier
except ModuleNotFoundError as err:  # one clear line on a machine that lacks a dependency
    raise SystemExit(
        f"cannot import {err.name!r}: run from the repository root as "
        "`PYTHONPATH=src python3 -m benchmarks.gpu`; where pydantic is missing, carry its "
        "wheels (see this script's docstring)"
    ) from None

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "RESULTS-gpu.md"
EXIT_USAGE = 2
#: A data case below this share of the reused-batch upper bound starves the GPU.
STARVE_RATIO = 0.95
#: Guess of one compile's seconds before any was measured (fwd + bwd, Inductor).
FIRST_COMPILE_GUESS_S = 90.0

# Case keys; :func:`case_label` gives the words the report uses.
CASE_GPU = "resident"
CASE_PINNED = "pinned"
CASE_REUSED = "reused"
CASE_NOSYNC = "nosync"
CASE_COMPILED = "compiled"


def case_label(case: str, device: torch.device) -> str:
    """What a case is, naming the device it ran on (``cpu`` in a smoke run on a CPU)."""
    dev = "GPU" if device.type == "cuda" else device.type.upper()
    return {
        CASE_GPU: f"data on {dev} (TensorBatches)",
        CASE_PINNED: f"pinned host -> {dev} (TensorBatches)"
        if device.type == "cuda"
        else "host data (TensorBatches; pinned only with CUDA)",
        CASE_REUSED: "one batch reused (upper bound)",
        CASE_NOSYNC: "one batch reused, no per-step sync",
        CASE_COMPILED: "one batch reused, torch.compile",
    }[case]


_START = time.perf_counter()


def log(message: str) -> None:
    """Progress goes to stderr so that stdout stays free for whoever pipes the script."""
    print(f"[gpu-bench {time.perf_counter() - _START:6.1f}s] {message}", file=sys.stderr)


@dataclass
class Settings:
    """One run's sizes; ``smoke`` shrinks everything so the code path runs in seconds."""

    smoke: bool
    device: torch.device
    models: list[str]
    sizes: list[int]
    window: int
    windows: int
    batch_size: int
    steps: int
    warmup: int
    repeats: int
    compile: bool
    compile_mode: str
    budget_s: float
    out: Path
    command: str

    @property
    def amp(self) -> bool:
        """bf16 autocast as training uses on CUDA; fp32 elsewhere (training does the same)."""
        return self.device.type == "cuda"

    @property
    def precision(self) -> str:
        return "bf16 autocast" if self.amp else "fp32"


@dataclass
class Combo:
    """One model at one image size, with its measurements."""

    model: str
    size: int
    step: TrainStep
    step_nosync: TrainStep  # the same without the finite-loss check's sync
    make_compiled_step: Callable[[], TrainStep]  # a fresh module with its net compiled
    sources: dict[str, Iterator[tuple[Tensor, Tensor]]]
    figures: dict[str, list[float]] = field(default_factory=dict)  # case -> seconds per repeat
    batch_alone: dict[str, list[float]] = field(default_factory=dict)  # case -> s per repeat
    busy: dict[str, float] | None = None
    compile: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return f"{self.model} {self.size} px"


# --------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu",
        description="Images/s of stockclf's training step on a GPU, its busy share, and "
        "whether the in-memory data path starves it.",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on CPU: measures nothing")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown report path")
    parser.add_argument("--models", nargs="+", help="timm backbones (efficientnet_b0 dm_nfnet_f0)")
    parser.add_argument("--sizes", nargs="+", type=int, help="image sizes in pixels (64 128)")
    parser.add_argument("--window", type=int, help="window length L of the synthetic data (128)")
    parser.add_argument("--windows", type=int, help="number of synthetic windows N (32768)")
    parser.add_argument("--batch-size", type=int, help="batch size (256)")
    parser.add_argument("--steps", type=int, help="timed steps per repeat (30)")
    parser.add_argument("--warmup", type=int, help="untimed steps before timing (5)")
    parser.add_argument("--repeats", type=int, help="interleaved repeats per case (3)")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compare torch.compile with eager (default: on, off in --smoke)",
    )
    parser.add_argument("--compile-mode", default="default", help="torch.compile mode")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=270.0,
        help="skip a compile case that would end the run past this many seconds (270)",
    )
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    if not args.smoke and not cuda:
        print("no CUDA device; use --smoke", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    full = not args.smoke
    settings = Settings(
        smoke=args.smoke,
        device=torch.device("cuda" if cuda else "cpu"),
        models=args.models or ["efficientnet_b0", "dm_nfnet_f0"],
        sizes=args.sizes or ([64, 128] if full else [16]),
        window=args.window or (128 if full else 16),
        windows=args.windows or (32768 if full else 64),
        batch_size=args.batch_size or (256 if full else 8),
        steps=args.steps or (30 if full else 2),
        warmup=args.warmup if args.warmup is not None else (5 if full else 0),
        repeats=args.repeats or (3 if full else 1),
        compile=args.compile if args.compile is not None else full,
        compile_mode=args.compile_mode,
        budget_s=args.budget_s,
        out=args.out,
        command=" ".join(["python", "-m", "benchmarks.gpu", *(argv or sys.argv[1:])]),
    )
    too_big = [s for s in settings.sizes if s > settings.window]
    if too_big:
        parser.error(f"--sizes {too_big} exceed --window {settings.window}: PAA only shrinks")
    if settings.windows < settings.batch_size:
        parser.error(f"--windows {settings.windows} is below --batch-size {settings.batch_size}")
    return settings


# --------------------------------------------------------------------------- building


def load_params(model: str, size: int, window: int):
    """The repo's params.yaml with this case's backbone, image size and window: validated,
    so a key the library no longer accepts fails here as it would in training."""
    path = REPO / "params.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["model"] = {**raw["model"], "backbone": model, "image_size": size, "pretrained": False}
    raw["model"]["pretrained_path"] = None
    raw["data"] = {**raw["data"], "window": window}
    return validate_params(raw, f"{path.name} (backbone={model}, image_size={size})")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_combo(
    settings: Settings,
    model: str,
    size: int,
    host: tuple[Tensor, Tensor],
    on_device: tuple[Tensor, Tensor],
    pinned: tuple[Tensor, Tensor],
) -> Combo:
    """The project's LightningModule on the device, and the step training makes with it."""
    params = load_params(model, size, settings.window)
    in_channels = host[0].shape[1]
    steps_per_epoch = settings.windows // settings.batch_size
    total_steps = steps_per_epoch * params.train.max_epochs

    def new_module() -> StockClassifier:
        module = StockClassifier(params.model, params.train, in_channels, num_classes=3)
        return module.to(settings.device)

    def make_step(module: StockClassifier, check: bool = True) -> TrainStep:
        return TrainStep(module, total_steps, autocast=settings.amp, check_finite=check)

    def make_compiled_step() -> TrainStep:
        module = new_module()
        module.net = torch.compile(module.net, mode=settings.compile_mode)
        return make_step(module)

    module = new_module()
    reused = (on_device[0][: settings.batch_size], on_device[1][: settings.batch_size])
    reused = tuple(t.to(settings.device) for t in reused)
    sources = {
        CASE_GPU: forever(TensorBatches(*on_device, settings.batch_size, shuffle=True)),
        CASE_PINNED: forever(TensorBatches(*pinned, settings.batch_size, shuffle=True)),
        CASE_REUSED: itertools.repeat(reused),
    }
    return Combo(
        model=model,
        size=size,
        step=make_step(module),
        step_nosync=make_step(module, check=False),
        make_compiled_step=make_compiled_step,
        sources=sources,
    )


def forever(batches: Any) -> Iterator[tuple[Tensor, Tensor]]:
    """Epoch after epoch of a ``TensorBatches`` (a new permutation each)."""
    return itertools.chain.from_iterable(itertools.repeat(batches))


# --------------------------------------------------------------------------- timing


def run_steps(
    step: Callable[[Tensor, Tensor], Tensor],
    batches: Iterator[tuple[Tensor, Tensor]],
    steps: int,
    device: torch.device,
) -> float:
    """Seconds for ``steps`` steps, the device drained before and after."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        x, y = next(batches)
        step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
    synchronize(device)
    return time.perf_counter() - start


def run_batches(batches: Iterator[tuple[Tensor, Tensor]], steps: int, device: torch.device):
    """Seconds to produce ``steps`` batches on the device with no model: the data path alone."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        x, y = next(batches)
        x.to(device, non_blocking=True)
        y.to(device, non_blocking=True)
    synchronize(device)
    return time.perf_counter() - start


def merge_intervals(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by ``(start, end)`` intervals, overlaps counted once."""
    total = 0.0
    current: tuple[float, float] | None = None
    for start, end in sorted(intervals):
        if current is None or start > current[1]:
            if current is not None:
                total += current[1] - current[0]
            current = (start, end)
        else:
            current = (current[0], max(current[1], end))
    if current is not None:
        total += current[1] - current[0]
    return total


#: Chrome-trace categories of work on the GPU: kernels, copies, fills.
GPU_CATEGORIES = frozenset({"kernel", "gpu_memcpy", "gpu_memset"})


def gpu_busy_seconds(trace: dict[str, Any] | list[dict[str, Any]]) -> float:
    """Seconds in which the GPU ran a kernel, copy or fill, from a profiler chrome trace."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    intervals = [
        (float(e["ts"]), float(e["ts"]) + float(e["dur"]))
        for e in events
        if e.get("ph") == "X" and e.get("cat") in GPU_CATEGORIES and "dur" in e
    ]
    return merge_intervals(intervals) / 1e6


def measure_busy(combo: Combo, settings: Settings) -> dict[str, float]:
    """GPU busy time per step under torch.profiler (CUDA activity only, to keep the
    profiler's own host overhead small), over the real configuration (data on the GPU)."""
    from torch.profiler import ProfilerActivity, profile

    with tempfile.TemporaryDirectory() as tmp:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            wall = run_steps(combo.step, combo.sources[CASE_GPU], settings.steps, settings.device)
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        busy = gpu_busy_seconds(json.loads(path.read_text(encoding="utf-8")))
    step_wall = median(combo.figures[CASE_GPU]) / settings.steps
    busy_step = busy / settings.steps
    return {
        "busy_ms_per_step": busy_step * 1e3,
        "wall_ms_per_step": step_wall * 1e3,
        "profiled_wall_ms_per_step": wall / settings.steps * 1e3,
        "share": busy_step / step_wall,
    }


def measure_eager(combo: Combo, settings: Settings) -> None:
    """The four eager cases side by side, then the data path alone, then the busy share."""
    s, dev = settings, settings.device
    reused = combo.sources[CASE_REUSED]
    if s.warmup:  # cuDNN/cuBLAS set-up, the first pinned buffers, the allocator's pools
        run_steps(combo.step, reused, s.warmup, dev)
        for name in (CASE_GPU, CASE_PINNED):
            run_steps(combo.step, combo.sources[name], 1, dev)
    cases = {
        name: (lambda name=name: run_steps(combo.step, combo.sources[name], s.steps, dev))
        for name in (CASE_GPU, CASE_PINNED, CASE_REUSED)
    }
    cases[CASE_NOSYNC] = lambda: run_steps(combo.step_nosync, reused, s.steps, dev)
    combo.figures = interleaved(cases, s.repeats)
    combo.batch_alone = interleaved(
        {
            name: (lambda name=name: run_batches(combo.sources[name], s.steps, dev))
            for name in (CASE_GPU, CASE_PINNED)
        },
        s.repeats,
    )
    if dev.type == "cuda":
        try:
            combo.busy = measure_busy(combo, s)
        except Exception as err:  # a profiler that does not work here is a finding, not a stop
            log(f"{combo.label}: profiler failed: {error_line(err)}")
            combo.busy = {"error": error_line(err)}


def error_line(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:300]


def measure_compile(combo: Combo, settings: Settings, guess_s: float) -> None:
    """torch.compile of the network (of a second module: the step's optimiser and clipping
    stay eager) against eager, both on the reused batch; compile time = first two compiled
    steps (forward and backward graphs) minus two eager steps."""
    s, dev = settings, settings.device
    eager_step = median(combo.figures[CASE_REUSED]) / s.steps
    needed = guess_s + 2 * s.repeats * (s.steps + s.warmup) * eager_step
    elapsed = time.perf_counter() - _START
    if elapsed + needed > s.budget_s:
        combo.compile = {
            "status": "skipped",
            "reason": f"would end past --budget-s {s.budget_s:.0f} s (at {elapsed:.0f} s, "
            f"needs about {needed:.0f} s)",
        }
        return
    reused = combo.sources[CASE_REUSED]
    try:
        step = combo.make_compiled_step()
        first = run_steps(step, reused, 2, dev)
        run_steps(step, reused, s.warmup, dev)
        figures = interleaved(
            {
                CASE_REUSED: lambda: run_steps(combo.step, reused, s.steps, dev),
                CASE_COMPILED: lambda: run_steps(step, reused, s.steps, dev),
            },
            s.repeats,
        )
    except Exception as err:  # a compiler failure is a finding, not the end of the run
        log(f"{combo.label}: torch.compile failed: {error_line(err)}")
        combo.compile = {"status": "failed", "reason": error_line(err)}
        torch._dynamo.reset()
        return
    eager_s = median(figures[CASE_REUSED]) / s.steps
    compiled_s = median(figures[CASE_COMPILED]) / s.steps
    compile_s = max(first - 2 * eager_s, 0.0)
    saved = eager_s - compiled_s
    combo.compile = {
        "status": "measured",
        "mode": s.compile_mode,
        "figures": figures,
        "eager_ms_per_step": eager_s * 1e3,
        "compiled_ms_per_step": compiled_s * 1e3,
        "speedup": eager_s / compiled_s,
        "compile_s": compile_s,
        "break_even_steps": compile_s / saved if saved > 0 else None,
        "helps": saved > 0,
    }


# --------------------------------------------------------------------------- report


def machine_lines(settings: Settings) -> list[str]:
    import timm

    lines = []
    if settings.device.type == "cuda":
        props = torch.cuda.get_device_properties(settings.device)
        lines.append(
            f"- GPU: {props.name}, {props.multi_processor_count} SMs, "
            f"{props.total_memory / 2**30:.1f} GiB"
        )
        lines.append(
            f"- CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
            f"cudnn.benchmark {torch.backends.cudnn.benchmark} (training leaves it so)"
        )
    else:
        lines.append(f"- GPU: none (CPU only: {platform.processor() or platform.machine()})")
    lines.append(
        f"- torch {torch.__version__}, timm {timm.__version__}, Python {platform.python_version()}"
        f", CPU threads: {torch.get_num_threads()}"
    )
    return lines


def fmt_rate(images_per_s: float) -> str:
    return f"{images_per_s:,.0f}" if images_per_s >= 100 else f"{images_per_s:.1f}"


def rates(seconds: list[float], settings: Settings) -> list[float]:
    return [settings.steps * settings.batch_size / t for t in seconds]


def data_ratios(combo: Combo) -> dict[str, float]:
    upper = median(combo.figures[CASE_REUSED])
    return {name: upper / median(combo.figures[name]) for name in (CASE_GPU, CASE_PINNED)}


def verdict_line(combos: list[Combo], device: torch.device) -> str:
    worst = [
        (ratio, case_label(name, device), c.label)
        for c in combos
        for name, ratio in data_ratios(c).items()
    ]
    starved = [w for w in worst if w[0] < STARVE_RATIO]
    low = min(worst)
    if not starved:
        return (
            f"**Data path verdict:** does not starve the GPU: every data case runs at "
            f"{STARVE_RATIO:.0%} or more of the reused-batch upper bound (lowest "
            f"{low[0]:.2f}, {low[1]}, {low[2]})."
        )
    cases = "; ".join(f"{label}, {name}: {ratio:.2f}" for ratio, name, label in starved)
    return (
        f"**Data path verdict:** starves the GPU in {len(starved)} of {len(worst)} cases "
        f"(below {STARVE_RATIO:.0%} of the reused-batch upper bound): {cases}."
    )


def throughput_table(combos: list[Combo], settings: Settings) -> list[str]:
    lines = [
        "| model | image | batch | case | images/s (median) | runs (images/s) | ms/step "
        "| vs reused batch |",
        "| --- | ---: | ---: | --- | ---: | --- | ---: | ---: |",
    ]
    for c in combos:
        upper = median(c.figures[CASE_REUSED])
        for name, seconds in c.figures.items():
            runs = ", ".join(fmt_rate(r) for r in rates(seconds, settings))
            rate = settings.steps * settings.batch_size / median(seconds)
            ms = median(seconds) / settings.steps * 1e3
            lines.append(
                f"| {c.model} | {c.size} | {settings.batch_size} "
                f"| {case_label(name, settings.device)} | {fmt_rate(rate)} "
                f"| {runs} | {ms:.2f} | {upper / median(seconds):.2f} |"
            )
    return lines


def busy_table(combos: list[Combo]) -> list[str]:
    if not any(c.busy for c in combos):
        return ["n/a: no CUDA device (smoke run on CPU)."]
    lines = [
        "| model | image | GPU busy ms/step | wall ms/step | busy share | wall ms/step profiled |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in combos:
        if c.busy and "error" in c.busy:
            lines.append(f"| {c.model} | {c.size} | profiler failed: {c.busy['error']} | | | |")
        elif c.busy:
            b = c.busy
            lines.append(
                f"| {c.model} | {c.size} | {b['busy_ms_per_step']:.2f} | "
                f"{b['wall_ms_per_step']:.2f} | {b['share']:.0%} | "
                f"{b['profiled_wall_ms_per_step']:.2f} |"
            )
    return lines


def data_table(combos: list[Combo], settings: Settings) -> list[str]:
    lines = [
        "| model | image | GPU data / reused | pinned / reused | batch alone, GPU data "
        "| batch alone, pinned | step (reused batch) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in combos:
        ratios = data_ratios(c)
        per = {k: median(v) / settings.steps * 1e3 for k, v in c.batch_alone.items()}
        step = median(c.figures[CASE_REUSED]) / settings.steps * 1e3
        lines.append(
            f"| {c.model} | {c.size} | {ratios[CASE_GPU]:.2f} | {ratios[CASE_PINNED]:.2f} | "
            f"{per[CASE_GPU]:.3f} ms ({per[CASE_GPU] / step:.1%}) | "
            f"{per[CASE_PINNED]:.3f} ms ({per[CASE_PINNED] / step:.1%}) | {step:.2f} ms |"
        )
    return lines


def compile_table(combos: list[Combo], settings: Settings) -> list[str]:
    if not settings.compile:
        return ["Not run (`--no-compile`, or `--smoke` without `--compile`)."]
    lines = [
        "| model | image | eager images/s | compiled images/s | speedup | compile s "
        "| break-even steps | verdict |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in combos:
        info = c.compile or {"status": "skipped", "reason": "not reached"}
        if info["status"] != "measured":
            lines.append(f"| {c.model} | {c.size} | | | | | | {info['status']}: {info['reason']} |")
            continue
        b = settings.batch_size
        eager = b / info["eager_ms_per_step"] * 1e3
        compiled = b / info["compiled_ms_per_step"] * 1e3
        even = info["break_even_steps"]
        lines.append(
            f"| {c.model} | {c.size} | {fmt_rate(eager)} | {fmt_rate(compiled)} | "
            f"{info['speedup']:.2f}x | {info['compile_s']:.1f} | "
            f"{'never' if even is None else f'{even:,.0f}'} | "
            f"{'helps' if info['helps'] else 'does not help'} |"
        )
    return lines


def report(combos: list[Combo], settings: Settings, total_s: float, finished: bool) -> str:
    s = settings
    mib = s.windows * 3 * s.window * 4 / 2**20
    label = {case: case_label(case, s.device) for case in (CASE_GPU, CASE_PINNED, CASE_REUSED)}
    label[CASE_NOSYNC] = case_label(CASE_NOSYNC, s.device)
    lines = [
        "# GPU throughput of the training step",
        "",
        f"Command: `{s.command}` (from the repository root; total {total_s:.0f} s).",
    ]
    if not finished:
        lines += ["", f"**Partial: written at {total_s:.0f} s, before the run ended.**"]
    if s.smoke:
        lines += [
            "",
            "**Smoke run: tiny sizes, one repeat. It checks the code; it measures nothing.**",
        ]
    lines += [
        "",
        "## Machine",
        "",
        *machine_lines(s),
        "",
        "## Setup",
        "",
        f"- Network: `StockClassifierNet` from params.yaml's model section (encodings, mtf "
        f"bins, drop path, aux head), backbone and image size per row, random init; "
        f"{s.precision}, channels_last.",
        f"- Step: `benchmarks/steps.py` over the project's `StockClassifier`: its losses (main +"
        f" aux head), the metric update, backward, its AGC, AdamW, the schedule, and "
        f"training_step's `isfinite(loss)` check (one sync per step; the "
        f"`{label[CASE_NOSYNC]}` case drops it). Lightning's hooks and logging are left out.",
        f"- Data: {s.windows:,} random float32 windows x 3 channels x {s.window} ({mib:.0f} MiB),"
        f" 3 classes; batch {s.batch_size}. `{label[CASE_GPU]}`: place_split put them on "
        f"{s.device.type}; `{label[CASE_PINNED]}`: place_split with budget 0 (pinned host "
        f"memory on CUDA), each batch copied with `non_blocking=True`; `{label[CASE_REUSED]}`: "
        f"one batch "
        f"already on the device, every step.",
        f"- Timing: {s.warmup} warm-up steps, then {s.repeats} interleaved repeats of "
        f"{s.steps} steps per case between `torch.cuda.synchronize()` calls; images/s = "
        f"steps x batch / seconds, median of the repeats.",
        f"- GPU busy share: torch.profiler with CUDA activity only over the "
        f"`{label[CASE_GPU]}` case; "
        "the union of kernel, memcpy and memset intervals per step divided by the unprofiled "
        "median wall time per step.",
        f"- Data path: a data case below {STARVE_RATIO:.0%} of the reused-batch upper bound "
        "starves the GPU. 'Batch alone' is the time to produce one batch on the device with "
        "no model (share of a step in brackets).",
        "",
        "## Images per second",
        "",
        *throughput_table(combos, s),
        "",
        "## GPU busy share",
        "",
        *busy_table(combos),
        "",
        "## Data path",
        "",
        *data_table(combos, s),
        "",
        verdict_line(combos, s.device),
        "",
        "## torch.compile",
        "",
        f"`torch.compile(module.net, mode={s.compile_mode!r})` (optimiser and clipping stay "
        "eager), against eager on the reused batch, interleaved; compile s = the first two "
        "compiled steps minus two eager steps; break-even = compile s / seconds saved per step.",
        "",
        *compile_table(combos, s),
        "",
    ]
    return "\n".join(lines)


def as_json(combos: list[Combo], settings: Settings, total_s: float) -> dict[str, Any]:
    return {
        "command": settings.command,
        "smoke": settings.smoke,
        "device": str(settings.device),
        "precision": settings.precision,
        "batch_size": settings.batch_size,
        "steps": settings.steps,
        "total_s": total_s,
        "combos": [
            {
                "model": c.model,
                "size": c.size,
                "images_per_s": {k: median(rates(v, settings)) for k, v in c.figures.items()},
                "seconds": c.figures,
                "batch_alone_seconds": c.batch_alone,
                "data_ratios": data_ratios(c),
                "busy": c.busy,
                "compile": c.compile,
            }
            for c in combos
        ],
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    s = settings
    if s.smoke and s.device.type == "cpu":
        # One thread: on a shared machine, OpenMP threads that wait on each other make a
        # smoke run several times slower; it measures nothing anyway.
        torch.set_num_threads(1)
    log(
        f"device {s.device}, {s.precision}, models {s.models}, sizes {s.sizes}, batch "
        f"{s.batch_size}, {s.steps} steps x {s.repeats} repeats, compile {s.compile}"
    )
    torch.manual_seed(0)
    x = torch.randn(s.windows, 3, s.window)
    y = torch.randint(0, 3, (s.windows,))
    on_device = place_split(x, y, s.device)
    pinned = place_split(x, y, s.device, budget_bytes=0)
    log(f"data: {tuple(x.shape)} on {on_device[0].device}; pinned copy: {pinned[0].is_pinned()}")

    combos: list[Combo] = []
    for size in s.sizes:
        for model in s.models:
            combo = build_combo(s, model, size, (x, y), on_device, pinned)
            log(f"{combo.label}: built; timing eager cases")
            measure_eager(combo, s)
            rate = s.steps * s.batch_size / median(combo.figures[CASE_GPU])
            log(f"{combo.label}: {fmt_rate(rate)} images/s with data on {s.device.type}")
            combos.append(combo)
            write(combos, s, finished=False)
    if s.compile:
        compile_times: list[float] = []
        for combo in combos:
            guess = max(compile_times) * 1.25 if compile_times else FIRST_COMPILE_GUESS_S
            log(f"{combo.label}: torch.compile")
            measure_compile(combo, s, 1.0 if s.smoke else guess)
            info = combo.compile or {}
            if info.get("status") == "measured":
                compile_times.append(info["compile_s"])
                log(f"{combo.label}: compiled {info['speedup']:.2f}x, {info['compile_s']:.0f} s")
            else:
                log(f"{combo.label}: compile {info.get('status')}: {info.get('reason')}")
            write(combos, s, finished=False)

    write(combos, s, finished=True)
    log(f"wrote {s.out} and {s.out.with_suffix('.json').name}")
    return 0


def write(combos: list[Combo], settings: Settings, finished: bool) -> None:
    """The report and its JSON, rewritten after every case so that a run stopped by a time
    limit still leaves what it measured."""
    total = time.perf_counter() - _START
    out = settings.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report(combos, settings, total, finished), encoding="utf-8")
    results = as_json(combos, settings, total)
    results["finished"] = finished
    out.with_suffix(".json").write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
