"""Row 7: channels_last, bf16 autocast and torch.compile on the CPU, each against fp32.

Row 1's raw training step of the default model (:mod:`benchmarks.training_rows`), one case
per option. The row function returns every run's seconds per step and the compile times;
:meth:`CpuSpeedups.chosen` picks the options from them, and
:mod:`benchmarks.report.training` words the row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from benchmarks.common import Context, interleaved, median, overlap
from benchmarks.steps import TrainStep
from benchmarks.training_rows import (
    Setup,
    StepSizes,
    per_step,
    raw_loop_seconds,
    raw_seconds,
    setup,
)
from stockclf.training.run import resolve_precision
from stockclf.tuning.processes import environment


def compiled_case(s: Setup, channels_last: bool) -> tuple[Callable[[], float], float]:
    """A case timing the raw loop with a ``torch.compile``d network, and the seconds its
    first two (compiling) steps took."""
    module = s.module(channels_last=channels_last)
    module.net = torch.compile(module.net)
    warm = TrainStep(module, total_steps=s.warmup + s.steps)
    batches = s.batches()
    start = time.perf_counter()
    for _ in range(2):  # forward and backward graphs are compiled on the first step
        warm(*next(batches))
    first_two = time.perf_counter() - start
    return (lambda: raw_loop_seconds(s, module)), first_two


#: The compiled cases: name -> whether on top of channels_last.
COMPILED = {"torch.compile": False, "channels_last + torch.compile": True}
#: Each option's reference: the case it has to beat (for compile, also to pay back against).
REFERENCE = {
    "channels_last": "fp32",
    "bf16 autocast": "fp32",
    "torch.compile": "fp32",
    "channels_last + torch.compile": "channels_last",
}


@dataclass
class CpuSpeedups:
    """Row 7: seconds per step of each run of each case, the compile times, and from them
    the options a CPU run should use."""

    sizes: StepSizes
    runs: dict[str, list[float]]  # case -> seconds per step of each run; "fp32" first
    compile_seconds: dict[str, float]  # of the first two steps, per compiled case that ran
    compile_failures: dict[str, str]  # compiled case -> its error, where compiling failed
    trial_steps: int  # steps of one default tuning trial: the span a compile must pay back in
    defaults: dict[str, bool]  # what training does on a CPU with the repository's params
    compiled: bool  # whether the compiled cases were attempted (not in smoke mode)

    @property
    def met(self) -> None:
        """None: the row picks the options rather than passing a target."""
        return None

    def step(self, case: str) -> float:
        return median(self.runs[case])

    def speedup(self, case: str) -> float:
        return self.step("fp32") / self.step(case)

    def payback(self, case: str) -> float | None:
        """Steps after which a compiled case's compile time is saved back; None: never."""
        saved = self.step(REFERENCE[case]) - self.step(case)
        return self.compile_seconds[case] / saved if saved > 0 else None

    def faster(self, case: str) -> bool:
        """Every run beats every run of the reference: with 3 noisy repeats a smaller lead
        is not a measurement."""
        if case not in self.runs:
            return False
        ref = self.runs[REFERENCE[case]]
        return not overlap(self.runs[case], ref) and self.step(case) < median(ref)

    def chosen(self) -> dict[str, bool]:
        """The options the measurements pick. Compile is judged against the best eager
        choice (channels_last when that is on), and must pay back within one tuning trial
        (each trial compiles anew: its net has its own drop-path rate)."""
        layout = self.faster("channels_last")
        best = "channels_last + torch.compile" if layout else "torch.compile"
        payback = self.payback(best) if best in self.compile_seconds else None
        compile_on = self.faster(best) and payback is not None and payback < self.trial_steps
        return {
            "channels_last": layout,
            "bf16 autocast": self.faster("bf16 autocast"),
            "torch.compile": compile_on,
        }


def compiled_cases(ctx: Context, s: Setup) -> tuple[dict, dict[str, float], dict[str, str]]:
    """The compiled cases that compiled here, their compile seconds, and the failures."""
    cases: dict[str, Callable[[], float]] = {}
    seconds: dict[str, float] = {}
    failures: dict[str, str] = {}
    # A cold compile, as a user's first run pays it: an earlier run's on-disk cache
    # (inductor's default, in /tmp) would cut it from about a minute to a few seconds.
    with environment({"TORCHINDUCTOR_CACHE_DIR": str(ctx.workdir / "inductor")}):
        for name, channels_last in COMPILED.items():
            try:
                cases[name], seconds[name] = compiled_case(s, channels_last)
            except Exception as error:  # a compiler missing here is a finding, not a crash
                failures[name] = f"{type(error).__name__}: {error}"
    return cases, seconds, failures


def cpu_speedups(ctx: Context) -> CpuSpeedups:
    s = setup(ctx)
    cases: dict[str, Callable[[], float]] = {
        "fp32": lambda: raw_seconds(s, channels_last=False),
        "channels_last": lambda: raw_seconds(s, channels_last=True),
        "bf16 autocast": lambda: raw_seconds(s, autocast=True, channels_last=False),
    }
    seconds: dict[str, float] = {}
    failures: dict[str, str] = {}
    if not ctx.smoke:  # compiling takes minutes even for the smoke sizes
        compiled, seconds, failures = compiled_cases(ctx, s)
        cases.update(compiled)
    figures = interleaved(cases, ctx.repeats)
    defaults = {  # training on a CPU never compiles
        "channels_last": s.params.train.channels_last,
        "bf16 autocast": resolve_precision(s.params.train, "cpu") == "bf16-mixed",
        "torch.compile": False,
    }
    return CpuSpeedups(
        sizes=s.sizes(),
        runs={name: per_step(values, s.steps) for name, values in figures.items()},
        compile_seconds=seconds,
        compile_failures=failures,
        trial_steps=s.params.tune.tuning_max_epochs * len(s.data.batches("train")),
        defaults=defaults,
        compiled=not ctx.smoke,
    )
