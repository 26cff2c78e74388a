"""The training step as a plain PyTorch loop: the reference that rows 1-3 and 7 and the GPU
script time.

It makes the calls Lightning makes for :class:`~stockclf.training.module.StockClassifier`
per batch (the module's own ``losses``, metric update, backward, its adaptive gradient
clipping, AdamW and the per-step schedule), without Lightning, so that the Lightning
overhead (row 1) is the difference and everything else times the project's real step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch
from torch import Tensor

from stockclf.training.module import StockClassifier


class TrainStep:
    """One optimiser step per call, on the device the module is on.

    ``autocast``: run the forward pass under bf16 autocast (training's ``bf16-mixed``).
    ``check_finite``: the ``isfinite(loss)`` check of ``training_step``, which on a GPU is
    one host-device synchronisation per step.
    """

    def __init__(
        self,
        module: StockClassifier,
        total_steps: int,
        autocast: bool = False,
        check_finite: bool = True,
    ) -> None:
        self.module = module.train()
        self.optimizer, self.scheduler = module.optimizer_and_schedule(total_steps, 1)
        self.metrics = module.metrics["train_metrics"]
        self.device_type = next(module.parameters()).device.type
        self.autocast = autocast
        self.check_finite = check_finite

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.autocast):
            losses = self.module.losses(x, y)
        self.metrics.update(losses.logits.detach(), y)
        losses.total.backward()
        self.module.configure_gradient_clipping(self.optimizer)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.check_finite and not torch.isfinite(losses.total):
            raise FloatingPointError(f"training loss is {losses.total.item()}")
        return losses.total

    def seconds(self, batches: Iterator[tuple[Tensor, Tensor]], warmup: int) -> float:
        """Seconds of the steps over ``batches`` after ``warmup`` untimed ones."""
        for _ in range(warmup):
            self(*next(batches))
        start = time.perf_counter()
        for x, y in batches:
            self(x, y)
        return time.perf_counter() - start
