"""torch.compile against eager in ``python -m benchmarks.gpu``: the compile cases, most
GPU-bound combo first, each from cold caches, while they fit the run's ``--budget-s``.

Compiling is the slowest part of the run (minutes per network on a GPU machine), so the
cases are ordered by what they can show: a combo bound by the CPU's kernel launches gains
least from a compiled network while its optimiser and clipping stay eager.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import torch

from benchmarks.common import interleaved, median
from benchmarks.gpu_measure import (
    CASE_COMPILED,
    CASE_REUSED,
    Combo,
    Settings,
    error_line,
    free_memory,
)
from benchmarks.gpu_timing import elapsed, log, run_steps
from stockclf.tuning.processes import environment

#: Guess of one compile's seconds before any was measured (fwd + bwd, Inductor, cold).
FIRST_COMPILE_GUESS_S = 120.0


def compile_order(combos: list[Combo]) -> list[Combo]:
    """The measured combos, most GPU-bound first (highest busy share, then the slowest
    step): a CPU-bound case shows least of what compiling the network can do."""

    def key(c: Combo) -> tuple[float, float]:
        share = (c.busy or {}).get("share") or 0.0
        return share, median(c.seconds[CASE_REUSED])

    return sorted((c for c in combos if c.status == "measured"), key=key, reverse=True)


@contextlib.contextmanager
def fresh_compile_state(root: Path) -> Iterator[None]:
    """A cold compile: Dynamo reset and empty Inductor and Triton caches, so that an earlier
    case's kernels do not make this one's compile time read warm."""
    torch._dynamo.reset()
    inductor_utils = sys.modules.get("torch._inductor.utils")  # in-memory caches, if loaded
    if inductor_utils is not None and hasattr(inductor_utils, "clear_caches"):
        inductor_utils.clear_caches()
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        caches = {"TORCHINDUCTOR_CACHE_DIR": tmp, "TRITON_CACHE_DIR": str(Path(tmp) / "triton")}
        try:
            with environment(caches):
                yield
        finally:
            torch._dynamo.reset()


def compile_needs(combo: Combo, s: Settings, guess_s: float) -> float:
    """Seconds a compile case is expected to take: compiling, then its timed steps."""
    eager_step = median(combo.seconds[CASE_REUSED]) / s.steps
    return guess_s + 2 * s.repeats * (s.steps + s.warmup) * eager_step


def measure_compile(combo: Combo, s: Settings, scratch: Path) -> None:
    """torch.compile of the network (of a second module: the step's optimiser and clipping
    stay eager) against eager, both on the reused batch; compile time = first two compiled
    steps (forward and backward graphs) minus two eager steps."""
    dev, reused = s.device, combo.sources[CASE_REUSED]
    failure = None
    try:
        with fresh_compile_state(scratch):
            step = combo.make_compiled_step()
            first = run_steps(step, reused, 2, dev)
            run_steps(step, reused, s.warmup, dev)
            figures = interleaved(
                {
                    CASE_REUSED: partial(run_steps, combo.step, reused, s.steps, dev),
                    CASE_COMPILED: partial(run_steps, step, reused, s.steps, dev),
                },
                s.repeats,
            )
            del step
    except Exception as err:  # a compiler failure is a finding, not the end of the run
        failure = error_line(err)
    free_memory(dev)  # the compiled module, or what the failure left
    if failure is not None:
        combo.compile = {"status": "failed", "reason": failure}
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


def run_compiles(combos: list[Combo], s: Settings, write: Callable[[], None]) -> None:
    """The compile cases, most GPU-bound first, each while it fits the budget; ``write``
    after each."""
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="gpu-bench-inductor-") as scratch:
        for combo in compile_order(combos):
            guess = 1.0 if s.smoke else (max(times) * 1.25 if times else FIRST_COMPILE_GUESS_S)
            needed = compile_needs(combo, s, guess)
            if elapsed() + needed > s.budget_s:
                combo.compile = {
                    "status": "skipped",
                    "reason": f"would end past --budget-s {s.budget_s:.0f} s (at "
                    f"{elapsed():.0f} s, needs about {needed:.0f} s)",
                }
            else:
                log(f"{combo.label}: torch.compile (cold caches)")
                measure_compile(combo, s, Path(scratch))
            info = combo.compile
            if info["status"] == "measured":
                times.append(info["compile_s"])
                log(f"{combo.label}: compiled {info['speedup']:.2f}x, {info['compile_s']:.0f} s")
            else:
                log(f"{combo.label}: compile {info['status']}: {info['reason']}")
            write()
