"""Timing and profiling primitives of ``python -m benchmarks.gpu``: steps between two device
syncs, the data path alone, the GPU busy time of a profiler trace, and the host-device
synchronisations one step makes.

Nothing here knows the benchmark's cases; ``gpu_measure`` puts them together.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

Batches = Iterator[tuple[Tensor, Tensor]]
Step = Callable[[Tensor, Tensor], Tensor]

#: Chrome-trace categories of work on the GPU: kernels, copies, fills.
GPU_CATEGORIES = frozenset({"kernel", "gpu_memcpy", "gpu_memset"})
#: Where a CUDA trace with no kernel events has been reported (the busy share would read 0).
EMPTY_TRACE_ISSUE = "pytorch/kineto#859"

START = time.perf_counter()


def log(message: str) -> None:
    """Progress goes to stderr so that stdout stays free for whoever pipes the script."""
    print(f"[gpu-bench {time.perf_counter() - START:6.1f}s] {message}", file=sys.stderr)


def elapsed() -> float:
    return time.perf_counter() - START


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_steps(step: Step, batches: Batches, steps: int, device: torch.device) -> float:
    """Seconds for ``steps`` steps, the device drained before and after."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        x, y = next(batches)
        step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
    synchronize(device)
    return time.perf_counter() - start


def run_batches(batches: Batches, steps: int, device: torch.device) -> float:
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


def trace_summary(trace: dict[str, Any] | list[dict[str, Any]]) -> dict[str, float]:
    """GPU busy seconds (the union of kernel, copy and fill intervals), and the number of
    GPU kernels and of CPU ops, from a profiler chrome trace."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    spans = [e for e in events if e.get("ph") == "X" and "dur" in e]
    gpu = [e for e in spans if e.get("cat") in GPU_CATEGORIES]
    intervals = [(float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in gpu]
    return {
        "busy_s": merge_intervals(intervals) / 1e6,
        "kernels": sum(e.get("cat") == "kernel" for e in gpu),
        "cpu_ops": sum(e.get("cat") == "cpu_op" for e in spans),
    }


def gpu_busy_seconds(trace: dict[str, Any] | list[dict[str, Any]]) -> float:
    """Seconds in which the GPU ran a kernel, copy or fill, from a profiler chrome trace."""
    return trace_summary(trace)["busy_s"]


def profile_steps(step: Step, batches: Batches, steps: int, device: torch.device) -> dict:
    """``steps`` steps under torch.profiler, CPU and (on CUDA) CUDA activity: the CPU side
    is recorded too because CUDA-only traces without kernel events have been reported
    (``EMPTY_TRACE_ISSUE``). Returns the trace's summary and the profiled wall seconds."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with tempfile.TemporaryDirectory() as tmp:
        with profile(activities=activities) as prof:
            wall = run_steps(step, batches, steps, device)
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        summary = trace_summary(json.loads(path.read_text(encoding="utf-8")))
    return {**summary, "wall_s": wall}


def busy_share(profiled: dict, steps: int, step_wall_s: float, cuda: bool) -> dict[str, Any]:
    """The GPU busy share of a step from :func:`profile_steps`'s result, against the
    unprofiled wall time of a step. A CUDA trace with no kernels is an error, not 0 %."""
    per_step = {
        "steps": steps,
        "kernels_per_step": profiled["kernels"] / steps,
        "cpu_ops_per_step": profiled["cpu_ops"] / steps,
        "profiled_wall_ms_per_step": profiled["wall_s"] / steps * 1e3,
    }
    if not cuda:
        return {**per_step, "status": "n/a", "reason": "no CUDA device"}
    if profiled["kernels"] == 0:
        return {
            **per_step,
            "status": "failed",
            "reason": f"the trace holds no GPU kernel events ({profiled['cpu_ops']} CPU ops "
            f"recorded); see {EMPTY_TRACE_ISSUE}",
        }
    busy = profiled["busy_s"] / steps
    return {
        **per_step,
        "status": "measured",
        "busy_ms_per_step": busy * 1e3,
        "wall_ms_per_step": step_wall_s * 1e3,
        "share": busy / step_wall_s,
    }


def count_syncs(step: Step, batches: Batches, device: torch.device) -> int:
    """Host-device synchronisations in one step, as CUDA's sync debug mode reports them
    (one warning per synchronising call: ``.item()``, a blocking copy to the host, ...)."""
    x, y = next(batches)
    synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    synchronize(device)
    return sum("synchroniz" in str(w.message) for w in caught)
