"""Rows 1, 2, 3 and 7: what one training step costs, and what sits around it.

All four use the repository's default model (params.yaml: efficientnet_b0 on 32 x 32 images
of GASF/GADF/MTF, batch 128) on the train split of the bundled data, prepared with the
default ``data`` params, on the CPU this runs on. A *step* is what training does per batch:
forward through encoder, backbone and both heads, the main + auxiliary loss, metric update,
backward, adaptive gradient clipping, AdamW and the schedule.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.common import (
    Context,
    Row,
    bench_params,
    figures_line,
    fmt_seconds,
    interleaved,
    median,
    prepared_data,
)
from benchmarks.steps import TrainStep
from stockclf.config import Params
from stockclf.training.datamodule import PreparedDataModule
from stockclf.training.module import StockClassifier
from stockclf.training.run import quiet_lightning, resolve_precision


@dataclass
class Setup:
    params: Params
    data: PreparedDataModule
    steps: int  # timed steps per case and repeat
    warmup: int  # untimed steps before them

    def module(self, **train_updates) -> StockClassifier:
        torch.manual_seed(self.params.seed)
        train = self.params.train.model_copy(update=train_updates)
        return StockClassifier(self.params.model, train, self.data.in_channels, 3)

    def batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """As many training batches as a case uses, cycling over the split."""
        needed = self.warmup + self.steps
        while True:
            for batch in self.data.batches("train", shuffle=True):
                yield batch
                needed -= 1
                if needed == 0:
                    return


def setup(ctx: Context) -> Setup:
    params = bench_params(ctx)
    data = PreparedDataModule(prepared_data(ctx, params), params.train.batch_size, params.seed)
    steps, warmup = (3, 1) if ctx.smoke else (20, 3)
    return Setup(params, data, steps, warmup)


class StepClock(Callback):
    """Times Lightning's training batches from batch ``warmup`` to the last one."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = self.end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.end = time.perf_counter()


def lightning_seconds(s: Setup) -> float:
    """Seconds of the timed steps inside ``Trainer.fit`` (no logger, checkpoint or bar)."""
    quiet_lightning()
    clock = StepClock(s.warmup)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=s.warmup + s.steps,
        limit_val_batches=0,
        logger=False,
        callbacks=[clock],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(s.module(), datamodule=s.data)
    return clock.end - clock.start


def raw_seconds(s: Setup, autocast: bool = False, **train_updates) -> float:
    return raw_loop_seconds(s, s.module(**train_updates), autocast)


def raw_loop_seconds(s: Setup, module: StockClassifier, autocast: bool = False) -> float:
    loop = TrainStep(module, total_steps=s.warmup + s.steps, autocast=autocast)
    return loop.seconds(s.batches(), s.warmup)


def per_step(values: list[float], steps: int) -> list[float]:
    return [v / steps for v in values]


def overlap(a: list[float], b: list[float]) -> bool:
    """Whether the ranges of two cases' runs overlap: then a few repeats cannot tell
    them apart, whatever their medians say."""
    return min(a) <= max(b) and min(b) <= max(a)


def span(values: list[float]) -> str:
    return f"{fmt_seconds(min(values))} to {fmt_seconds(max(values))}"


def lightning_overhead(ctx: Context) -> Row:
    s = setup(ctx)
    # The two differ by a few percent, of the order of the run-to-run noise: more repeats.
    repeats = ctx.repeats if ctx.smoke else max(ctx.repeats, 5)
    figures = interleaved(
        {"lightning": lambda: lightning_seconds(s), "raw": lambda: raw_seconds(s)}, repeats
    )
    light, raw = (per_step(figures[k], s.steps) for k in ("lightning", "raw"))
    overhead = median(light) / median(raw) - 1
    explanation = ""
    if overlap(light, raw):
        explanation = (
            f"The runs of the two cases overlap ({span(light)} against {span(raw)} per step): "
            "the difference between the medians is run-to-run noise, not a cost or a gain "
            "of Lightning."
        )
    elif overhead > 0.03:
        explanation = (
            f"Not met in this run: every Lightning run ({span(light)} per step) was slower "
            f"than every raw run ({span(raw)}), by {fmt_seconds(median(light) - median(raw))} "
            "per step: Lightning's per-batch hooks, `self.log` and optimizer closure. The row "
            "does not break that down further."
        )
    return Row(
        number=1,
        measure="Lightning training step vs a raw PyTorch loop",
        target="overhead at most 3%",
        result=f"overhead {overhead:+.1%}",
        met=overhead <= 0.03,
        method=(
            f"The default model and batch ({s.params.model.backbone}, "
            f"{s.params.model.image_size} px, batch {s.params.train.batch_size}), the same "
            f"batches and {torch.get_num_threads()} threads in both cases. Lightning: "
            "`Trainer.fit` of the project's `StockClassifier` with no logger, checkpoint or "
            "progress bar (row 5 prices those), timed by a callback from the start of batch "
            f"{s.warmup} to the end of the last. Raw: `benchmarks/steps.py`, a loop making the "
            "same calls (the module's `losses`, metric update, backward, its AGC, AdamW, the "
            "schedule, the finite-loss check). "
            f"{s.steps} timed steps after {s.warmup} warm-up steps per case and repeat, "
            f"{repeats} repeats."
        ),
        details=[figures_line("Lightning, per step", light), figures_line("raw, per step", raw)],
        explanation=explanation,
    )


def encoder_share(ctx: Context) -> Row:
    s = setup(ctx)
    module = s.module()
    encoder = module.net.encoder
    x, _ = next(s.batches())
    calls = s.steps

    def encode() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            encoder(x)
        return (time.perf_counter() - start) / calls

    def step() -> float:
        return raw_loop_seconds(s, module) / s.steps

    encode()  # warm-up
    figures = interleaved({"encoder": encode, "step": step}, ctx.repeats)
    share = median(figures["encoder"]) / median(figures["step"])
    channels = encoder.out_channels(s.data.in_channels)
    return Row(
        number=2,
        measure="the device encoder's cost as a share of a backbone training step",
        target="at most 5%",
        result=f"{share:.1%} of a step",
        met=share <= 0.05,
        method=(
            f"The encoder (`ImageEncoder`: {', '.join(s.params.model.encodings)} of "
            f"{s.data.in_channels} channels -> {channels} images of "
            f"{s.params.model.image_size} px) on one training batch of "
            f"{s.params.train.batch_size} windows, {calls} calls, against the whole training "
            "step of row 1's raw loop (which includes the encoder), same batch size and threads."
        ),
        details=[
            figures_line("encoder, per batch", figures["encoder"]),
            figures_line("training step, per batch", figures["step"]),
        ],
    )


def _drain(batches) -> float:
    start = time.perf_counter()
    for _ in batches:
        pass
    return time.perf_counter() - start


def data_path_headroom(ctx: Context) -> Row:
    s = setup(ctx)
    module = s.module()
    train = s.data.batches("train", shuffle=True)
    n_batches = len(train)
    x, y = s.data.tensors("train")
    legacy = DataLoader(
        TensorDataset(x, y),
        batch_size=s.params.train.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    figures = interleaved(
        {
            "delivered": lambda: _drain(train) / n_batches,
            "legacy": lambda: _drain(legacy) / n_batches,
            "consumed": lambda: raw_loop_seconds(s, module) / s.steps,
        },
        ctx.repeats,
    )
    delivered, legacy_t, consumed = (
        median(figures[k]) for k in ("delivered", "legacy", "consumed")
    )
    headroom = consumed / delivered
    return Row(
        number=3,
        measure="the data path: batches per second delivered vs consumed by the model",
        target="at least 10x headroom",
        result=f"{headroom:,.0f}x headroom",
        met=headroom >= 10,
        method=(
            f"Delivered: one shuffled epoch of the train split ({len(y):,} windows, "
            f"{n_batches} batches of {s.params.train.batch_size}) from `TensorBatches`, the "
            "training data path (one index gather per batch from tensors in memory), with no "
            "model. Consumed: training steps of the default model (row 1's raw loop). For "
            "comparison, the data path it replaced: a `DataLoader` over a `TensorDataset` "
            "(per-sample indexing and collation), same batch size."
        ),
        details=[
            figures_line("TensorBatches, per batch", figures["delivered"]),
            figures_line("DataLoader(TensorDataset), per batch", figures["legacy"]),
            figures_line("training step, per batch", figures["consumed"]),
            f"- batches per second: delivered {1 / delivered:,.0f}, consumed "
            f"{1 / consumed:,.1f}; the DataLoader path delivered {1 / legacy_t:,.0f} "
            f"({legacy_t / delivered:.1f}x slower than `TensorBatches`)",
        ],
    )


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


@contextlib.contextmanager
def environment_variable(name: str, value: str) -> Iterator[None]:
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            del os.environ[name]
        else:
            os.environ[name] = saved


#: The compiled cases: name -> (channels_last, the case it is compared with for payback).
COMPILED = {
    "torch.compile": (False, "fp32"),
    "channels_last + torch.compile": (True, "channels_last"),
}


def cpu_speedups(ctx: Context) -> Row:
    s = setup(ctx)
    cases: dict[str, Callable[[], float]] = {
        "fp32": lambda: raw_seconds(s, channels_last=False),
        "channels_last": lambda: raw_seconds(s, channels_last=True),
        "bf16 autocast": lambda: raw_seconds(s, autocast=True, channels_last=False),
    }
    notes: list[str] = []
    compile_seconds: dict[str, float] = {}
    if ctx.smoke:  # compiling takes minutes even for the smoke sizes
        notes.append("- torch.compile: not run in smoke mode")
    else:
        # A cold compile, as a user's first run pays it: an earlier run's on-disk cache
        # (inductor's default, in /tmp) would cut it from about a minute to a few seconds.
        with environment_variable("TORCHINDUCTOR_CACHE_DIR", str(ctx.workdir / "inductor")):
            for name, (channels_last, _) in COMPILED.items():
                try:
                    cases[name], compile_seconds[name] = compiled_case(s, channels_last)
                except Exception as error:  # a compiler missing here is a finding, not a crash
                    notes.append(f"- {name} failed here: {type(error).__name__}: {error}"[:300])
    figures = interleaved(cases, ctx.repeats)
    step = {name: median(values) / s.steps for name, values in figures.items()}
    speedups = {name: step["fp32"] / t for name, t in step.items()}
    # A tuning trial at the defaults: its steps, the span over which a compile must pay back
    # (each trial compiles anew: its net has its own drop-path rate).
    trial_steps = s.params.tune.tuning_max_epochs * len(s.data.batches("train"))
    paybacks: dict[str, float | None] = {}
    for name, seconds in compile_seconds.items():
        reference = COMPILED[name][1]
        saved = step[reference] - step[name]
        paybacks[name] = seconds / saved if saved > 0 else None
        notes.append(
            f"- {name}: the first two (compiling) steps took {seconds:.1f} s; vs {reference} "
            f"{step[reference] / step[name]:.2f}x per step, "
            + (
                f"paying back after about {paybacks[name]:,.0f} steps"
                if paybacks[name] is not None
                else "never paying back"
            )
            + f" (a default tuning trial is {trial_steps} steps)"
        )
    # An option is on only if all its runs beat all of its reference's: with 3 noisy
    # repeats a smaller lead is not a measurement.
    faster = {
        name: not overlap(figures[name], figures[ref]) and step[name] < step[ref]
        for name, ref in [("channels_last", "fp32"), ("bf16 autocast", "fp32")]
        + [(n, COMPILED[n][1]) for n in compile_seconds]
    }
    # Compile is judged against the best eager choice (channels_last when it is on), and
    # must pay back within one tuning trial.
    best_compiled = "channels_last + torch.compile" if faster["channels_last"] else "torch.compile"
    compile_on = (
        faster.get(best_compiled, False)
        and paybacks.get(best_compiled) is not None
        and paybacks[best_compiled] < trial_steps
    )
    measured = {
        "channels_last": faster["channels_last"],
        "bf16 autocast": faster["bf16 autocast"],
        "torch.compile": compile_on,
    }
    chosen = [f"{k} {'on' if v else 'off'}" for k, v in measured.items()]
    # What training does on a CPU with the repository's params (it never compiles).
    defaults = {
        "channels_last": s.params.train.channels_last,
        "bf16 autocast": resolve_precision(s.params.train, "cpu") == "bf16-mixed",
        "torch.compile": False,
    }
    differ = [k for k in measured if measured[k] != defaults[k]]
    explanation = (
        "The project's CPU defaults (`train.channels_last: true`, `train.precision: auto` = "
        "fp32 on a CPU, no torch.compile) "
        + (f"differ from the measurement in: {', '.join(differ)}." if differ else "match it.")
        if not ctx.smoke
        else ""
    )
    details = [
        "| case | step | speed-up vs fp32 |",
        "| --- | ---: | ---: |",
        *[f"| {n} | {fmt_seconds(t)} | {speedups[n]:.2f}x |" for n, t in step.items()],
        "",
        *[figures_line(f"{n}, per step", per_step(v, s.steps)) for n, v in figures.items()],
        *notes,
    ]
    return Row(
        number=7,
        measure="channels_last, bf16 autocast and torch.compile on CPU, each vs plain fp32",
        target="pick the defaults from the measurements",
        result=", ".join(f"{k} {v:.2f}x" for k, v in speedups.items() if k != "fp32"),
        met=None,
        method=(
            "Row 1's raw training step of the default model, each option alone against fp32 "
            f"with the contiguous (NCHW) layout, and torch.compile also on top of "
            f"channels_last: {s.steps} timed steps after {s.warmup} warm-up steps per case and "
            "repeat. torch.compile (default mode) compiles the network before its case is "
            "first timed, with an empty compile cache; its compile time is given apart. An "
            "option counts as faster only if every run of it beats every run of its "
            "reference; compile is judged against "
            "the best eager choice and must also pay back within one default tuning trial "
            f"(each trial compiles anew). Measured choice for this CPU: {', '.join(chosen)}."
        ),
        details=details,
        explanation=explanation,
    )
