"""The eager measurements of ``python -m benchmarks.gpu`` (``gpu_compile`` has the compiled
ones): for one backbone at one image size (a *combo*), the project's training step over each
data case, timed side by side, then its GPU busy share and host-device syncs. Each lands on
the :class:`Combo` as plain numbers, or as the error that stopped it: a combo that fails (an
older timm, a non-finite loss, out of memory) is recorded and the run goes on."""

from __future__ import annotations

import copy
import gc
import itertools
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from benchmarks import report
from benchmarks.common import interleaved, median, repo_params_dict, tiny_updates
from benchmarks.gpu_timing import busy_share, count_syncs, profile_steps, run_batches, run_steps
from benchmarks.steps import TrainStep
from stockclf.config import Params, merge_params, validate_params
from stockclf.training.batches import TensorBatches
from stockclf.training.module import StockClassifier

# Case keys; gpu_report.case_label gives the words the report uses.
CASE_GPU = "resident"
CASE_PINNED = "pinned"
CASE_REUSED = "reused"
CASE_UNCHECKED = "unchecked"
CASE_COMPILED = "compiled"
DATA_CASES = (CASE_GPU, CASE_PINNED)


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
    profile_steps: int
    compile: bool
    compile_mode: str
    budget_s: float
    out: Path
    command: str  # as the report shows it: no machine paths

    @property
    def amp(self) -> bool:
        """bf16 autocast as training uses on CUDA; fp32 elsewhere (training does the same)."""
        return self.device.type == "cuda"

    @property
    def precision(self) -> str:
        return "bf16 autocast" if self.amp else "fp32"

    def record(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("device", "out", "command")}
        return {**out, "device": self.device.type, "precision": self.precision}


class Data(NamedTuple):
    """The synthetic windows and labels, as they are placed for each data case."""

    host: tuple[Tensor, Tensor]
    on_device: tuple[Tensor, Tensor]  # place_split's choice: on the GPU when it fits
    pinned: tuple[Tensor, Tensor]  # place_split with budget 0: pinned host memory on CUDA


@dataclass
class Combo:
    """One backbone at one image size: what its cases run, and what they measured."""

    model: str
    size: int
    status: str = "pending"  # then "measured", "failed" or "skipped"
    reason: str = "not reached yet"  # the error or the skip
    seconds: dict[str, list[float]] = field(default_factory=dict)  # case -> s per repeat
    batch_alone: dict[str, list[float]] = field(default_factory=dict)  # case -> s per repeat
    busy: dict[str, Any] | None = None
    syncs: dict[str, Any] | None = None
    compile: dict[str, Any] | None = None
    eager_s: float = 0.0  # wall seconds of building and timing the eager cases
    # What the cases run; dropped by release() (they hold GPU memory).
    step: TrainStep | None = field(default=None, repr=False)
    step_unchecked: TrainStep | None = field(default=None, repr=False)
    make_compiled_step: Callable[[], TrainStep] | None = field(default=None, repr=False)
    sources: dict[str, Iterator[tuple[Tensor, Tensor]]] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return f"{self.model} {self.size} px"

    def record(self) -> dict[str, Any]:
        keys = ("model", "size", "status", "reason", "seconds", "busy", "syncs", "compile")
        return {
            **{k: getattr(self, k) for k in keys},
            "batch_alone_seconds": self.batch_alone,
            "eager_s": self.eager_s,
        }

    def fail(self, status: str, reason: str) -> None:
        self.status, self.reason = status, reason
        self.release()

    def release(self) -> None:
        self.step = self.step_unchecked = self.make_compiled_step = None
        self.sources = {}


def error_line(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:300]


def free_memory(device: torch.device) -> None:
    """Give a failed combo's memory back, so that an out-of-memory error stays its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def driver_version() -> str:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return done.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError) as err:
        return f"n/a ({type(err).__name__})"


def machine_info(device: torch.device) -> dict[str, str]:
    """The suite's machine facts, the GPU's, and the versions of what the step runs."""
    import lightning
    import timm
    import torchmetrics

    info = report.machine()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["GPU"] = (
            f"{props.name}, {props.multi_processor_count} SMs, {props.total_memory / 2**30:.1f} GiB"
        )
        info["driver"] = driver_version()
        benchmark = torch.backends.cudnn.benchmark
        info["CUDA, cuDNN"] = (
            f"{torch.version.cuda}, {torch.backends.cudnn.version()} "
            f"(cudnn.benchmark {benchmark}, as training leaves it)"
        )
    info["timm, lightning, torchmetrics"] = (
        f"{timm.__version__}, {lightning.__version__}, {torchmetrics.__version__}"
    )
    return info


def load_params(model: str, size: int, window: int, smoke: bool) -> Params:
    """params.yaml (merged with configs/tiny.yaml in a smoke run) with this combo's backbone,
    image size and window, validated: a key the library no longer accepts fails here as it
    would in training. ``pretrained`` is off: the GPU machine is offline."""
    raw = repo_params_dict()
    if smoke:
        raw = merge_params(raw, tiny_updates())
    case = {"backbone": model, "image_size": size, "pretrained": False, "pretrained_path": None}
    # One network: the figures are per network (an ensemble trains train.ensemble of them,
    # one after the other in each step), and torch.compile of an ensemble's module.net
    # would compile nothing, since the training step calls its members directly.
    raw = merge_params(raw, {"model": case, "data": {"window": window}, "train": {"ensemble": 1}})
    return validate_params(raw, f"params.yaml (backbone={model}, image_size={size})")


def unvalidated(metrics: Any) -> Any:
    """A copy of the module's train metrics with torchmetrics' argument checks off: they
    call ``torch.unique`` on every update, a host-device sync on CUDA."""
    metrics = copy.deepcopy(metrics)
    for metric in metrics.values():
        metric.validate_args = False
    return metrics


def forever(batches: TensorBatches) -> Iterator[tuple[Tensor, Tensor]]:
    """Epoch after epoch of a ``TensorBatches`` (a new permutation each)."""
    return itertools.chain.from_iterable(itertools.repeat(batches))


def build(combo: Combo, s: Settings, data: Data) -> None:
    """The project's LightningModule on the device, and the steps training makes with it."""
    params = load_params(combo.model, combo.size, s.window, s.smoke)
    in_channels = data.host[0].shape[1]
    total_steps = s.windows // s.batch_size * params.train.max_epochs

    def new_module() -> StockClassifier:
        module = StockClassifier(params.model, params.train, in_channels, num_classes=3)
        return module.to(s.device)

    def make_compiled_step() -> TrainStep:
        module = new_module()
        module.net = torch.compile(module.net, mode=s.compile_mode)
        return TrainStep(module, total_steps, autocast=s.amp)

    module = new_module()
    combo.step = TrainStep(module, total_steps, autocast=s.amp)
    combo.step_unchecked = TrainStep(module, total_steps, autocast=s.amp, check_finite=False)
    combo.step_unchecked.metrics = unvalidated(combo.step_unchecked.metrics)
    combo.make_compiled_step = make_compiled_step
    reused = tuple(t[: s.batch_size].to(s.device) for t in data.on_device)
    combo.sources = {
        CASE_GPU: forever(TensorBatches(*data.on_device, s.batch_size, shuffle=True)),
        CASE_PINNED: forever(TensorBatches(*data.pinned, s.batch_size, shuffle=True)),
        CASE_REUSED: itertools.repeat(reused),
    }


def measure_combo(combo: Combo, s: Settings, data: Data) -> None:
    """Build the combo and time its eager cases; a failure is recorded on it, not raised."""
    start, failure = time.perf_counter(), None
    try:
        build(combo, s, data)
        time_cases(combo, s)
    except Exception as err:  # one combo's failure is a finding: the others still run
        failure = error_line(err)
    if failure is None:
        combo.status, combo.reason = "measured", ""
        combo.busy = guarded(partial(measure_busy, combo, s))
        if s.device.type == "cuda":
            combo.syncs = guarded(partial(measure_syncs, combo, s))
    else:  # out of the except block, whose traceback holds the failed step's tensors
        combo.fail("failed", failure)
        free_memory(s.device)
    combo.eager_s = time.perf_counter() - start


def guarded(measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A secondary measurement (busy share, syncs) whose failure is shown, not raised."""
    try:
        return measure()
    except Exception as err:
        return {"status": "failed", "reason": error_line(err)}


def time_cases(combo: Combo, s: Settings) -> None:
    """The four eager cases side by side, then the data path alone."""
    dev, reused = s.device, combo.sources[CASE_REUSED]
    if s.warmup:  # cuDNN/cuBLAS set-up, the first pinned buffers, both optimisers' state
        run_steps(combo.step, reused, s.warmup, dev)
        for name in DATA_CASES:
            run_steps(combo.step, combo.sources[name], 1, dev)
        run_steps(combo.step_unchecked, reused, 1, dev)
    cases = {
        name: partial(run_steps, combo.step, combo.sources[name], s.steps, dev)
        for name in (*DATA_CASES, CASE_REUSED)
    }
    cases[CASE_UNCHECKED] = partial(run_steps, combo.step_unchecked, reused, s.steps, dev)
    combo.seconds = interleaved(cases, s.repeats)
    combo.batch_alone = interleaved(
        {name: partial(run_batches, combo.sources[name], s.steps, dev) for name in DATA_CASES},
        s.repeats,
    )


def measure_busy(combo: Combo, s: Settings) -> dict[str, Any]:
    """The GPU busy share over ``profile_steps`` steps of the real configuration (data on
    the GPU); on a CPU the profiler still runs, so that its code path is exercised."""
    profiled = profile_steps(combo.step, combo.sources[CASE_GPU], s.profile_steps, s.device)
    wall = median(combo.seconds[CASE_GPU]) / s.steps
    return busy_share(profiled, s.profile_steps, wall, s.device.type == "cuda")


def measure_syncs(combo: Combo, s: Settings) -> dict[str, Any]:
    """Syncs per step with and without the checks. The checked step syncs at least once
    (``isfinite(loss)``): a count of 0 there means the debug mode reported nothing."""
    reused = combo.sources[CASE_REUSED]
    checked = count_syncs(combo.step, reused, s.device)
    if checked == 0:
        return {"status": "failed", "reason": "sync debug mode reported no sync in a step "
                "that has one (the finite-loss check)"}  # fmt: skip
    unchecked = count_syncs(combo.step_unchecked, reused, s.device)
    return {"status": "measured", CASE_REUSED: checked, CASE_UNCHECKED: unchecked}
