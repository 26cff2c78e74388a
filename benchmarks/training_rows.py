"""Rows 1, 2 and 3: what one training step costs, and what sits around it; and the setup
they share with row 7 (:mod:`benchmarks.speedup_rows`).

Each row function returns what it measured (seconds per step or per batch of every run of
every case, and the sizes it ran) and checks its target; :mod:`benchmarks.report.training`
words it. All the rows use the repository's default model (params.yaml: efficientnet_b0 on
32 x 32 images of GASF/GADF/MTF, batch 128) on the train split of the bundled data, prepared
with the default ``data`` params, on the CPU this runs on. A *step* is what training does
per batch: forward through encoder, backbone and both heads, the main + auxiliary loss,
metric update, backward, adaptive gradient clipping, AdamW and the schedule.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.common import Context, bench_params, interleaved, median, prepared_data
from benchmarks.steps import TrainStep
from stockclf.config import Params
from stockclf.training.datamodule import PreparedDataModule
from stockclf.training.module import StockClassifier
from stockclf.training.run import quiet_lightning


@dataclass(frozen=True)
class StepSizes:
    """What a training row ran: the model, the batch, the steps timed, the threads."""

    backbone: str
    image_size: int
    batch_size: int
    encodings: tuple[str, ...]
    in_channels: int
    steps: int  # timed steps per case and repeat
    warmup: int  # untimed steps before them
    threads: int


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

    def sizes(self) -> StepSizes:
        model = self.params.model
        return StepSizes(
            model.backbone,
            model.image_size,
            self.params.train.batch_size,
            tuple(model.encodings),
            self.data.in_channels,
            self.steps,
            self.warmup,
            torch.get_num_threads(),
        )


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


@dataclass
class BoundedRow(ABC):
    """What rows 1 to 3 share: the sizes they ran, and one figure (a ratio of two cases'
    medians) that meets the row's target when it is at most ``LIMIT`` (at least, where
    ``AT_LEAST``)."""

    LIMIT: ClassVar[float]
    AT_LEAST: ClassVar[bool] = False

    sizes: StepSizes

    @property
    @abstractmethod
    def figure(self) -> float:
        """The row's result, the number its target bounds."""

    @property
    def met(self) -> bool:
        return self.figure >= self.LIMIT if self.AT_LEAST else self.figure <= self.LIMIT


# --- row 1 ---------------------------------------------------------------------------------

OVERHEAD_LIMIT = 0.03


@dataclass
class LightningOverhead(BoundedRow):
    """Row 1: seconds per step of each run, in ``Trainer.fit`` and in the raw loop; the
    figure is Lightning's overhead over the raw loop."""

    LIMIT = OVERHEAD_LIMIT

    repeats: int
    lightning: list[float]
    raw: list[float]

    @property
    def figure(self) -> float:
        return median(self.lightning) / median(self.raw) - 1


def lightning_overhead(ctx: Context) -> LightningOverhead:
    s = setup(ctx)
    # The two differ by a few percent, of the order of the run-to-run noise: more repeats.
    repeats = ctx.repeats if ctx.smoke else max(ctx.repeats, 5)
    figures = interleaved(
        {"lightning": lambda: lightning_seconds(s), "raw": lambda: raw_seconds(s)}, repeats
    )
    light, raw = (per_step(figures[k], s.steps) for k in ("lightning", "raw"))
    return LightningOverhead(s.sizes(), repeats, light, raw)


# --- row 2 ---------------------------------------------------------------------------------

SHARE_LIMIT = 0.05


@dataclass
class EncoderShare(BoundedRow):
    """Row 2: seconds per batch of each run of the encoder alone and of a whole step; the
    figure is the encoder's share of the step."""

    LIMIT = SHARE_LIMIT

    images: int  # images the encoder makes of one window
    encoder: list[float]
    step: list[float]

    @property
    def figure(self) -> float:
        return median(self.encoder) / median(self.step)


def encoder_share(ctx: Context) -> EncoderShare:
    s = setup(ctx)
    module = s.module()
    encoder = module.net.encoder
    x, _ = next(s.batches())

    def encode() -> float:
        start = time.perf_counter()
        for _ in range(s.steps):
            encoder(x)
        return (time.perf_counter() - start) / s.steps

    def step() -> float:
        return raw_loop_seconds(s, module) / s.steps

    encode()  # warm-up
    figures = interleaved({"encoder": encode, "step": step}, ctx.repeats)
    images = encoder.out_channels(s.data.in_channels)
    return EncoderShare(s.sizes(), images, figures["encoder"], figures["step"])


# --- row 3 ---------------------------------------------------------------------------------

HEADROOM_TARGET = 10.0


@dataclass
class DataPathHeadroom(BoundedRow):
    """Row 3: seconds per batch of each run: the data path alone (today's and the
    ``DataLoader`` it replaced) and a training step; the figure is how many times faster
    the data path delivers a batch than a step consumes one."""

    LIMIT = HEADROOM_TARGET
    AT_LEAST = True

    windows: int  # of the train split
    batches: int  # of one epoch
    delivered: list[float]
    legacy: list[float]
    consumed: list[float]

    @property
    def figure(self) -> float:
        return median(self.consumed) / median(self.delivered)


def _drain(batches) -> float:
    start = time.perf_counter()
    for _ in batches:
        pass
    return time.perf_counter() - start


def data_path_headroom(ctx: Context) -> DataPathHeadroom:
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
    return DataPathHeadroom(
        s.sizes(), len(y), n_batches, figures["delivered"], figures["legacy"], figures["consumed"]
    )
