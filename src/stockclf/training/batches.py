"""Batches of a split that lives in memory as tensors: one index gather per batch.

A ``DataLoader`` over a ``TensorDataset`` does Python work per *sample*: the sampler yields
each index, the dataset returns each row, and ``default_collate`` stacks them again. Here a
batch is ``X.index_select(0, idx)`` with ``idx`` a slice of one permutation drawn per epoch,
so the hot loop does the same small amount of Python work whatever the batch size
(``python -m benchmarks`` measures the data path against the model:
``data_path_headroom`` in ``benchmarks/training_rows.py``).

Where the data live is :func:`place_split`'s decision: on the GPU when the split fits, so a
batch never crosses the bus; otherwise in pinned host memory, gathered into pinned buffers
that Lightning copies to the GPU with ``non_blocking=True``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: Share of the GPU's free memory the training data may take; the rest is the model's.
GPU_DATA_SHARE = 0.25


class TensorBatches:
    """An iterable of ``(x, y)`` batches (``B x C x L`` float32, ``B`` int64).

    ``shuffle``: a new permutation each epoch, drawn from ``seed + epoch`` so runs repeat.
    ``rank``/``world_size``: under data-parallel training each process takes every
    ``world_size``-th sample of the (padded) order, like ``DistributedSampler``, so that all
    processes run the same number of steps.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows, y has {len(y)}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._pinned = x.device.type == "cpu" and x.is_pinned()

    @property
    def samples_per_rank(self) -> int:
        return math.ceil(len(self.x) / self.world_size)

    def __len__(self) -> int:
        return math.ceil(self.samples_per_rank / self.batch_size)

    def order(self, epoch: int) -> Tensor:
        """This rank's sample indices for ``epoch`` (int64, on the data's device)."""
        n = len(self.x)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        if self.world_size > 1:
            padded = self.samples_per_rank * self.world_size
            order = torch.cat([order, order[: padded - n]])[self.rank :: self.world_size]
        return order.to(self.x.device)

    def _gather(self, source: Tensor, idx: Tensor) -> Tensor:
        if not self._pinned:
            return source.index_select(0, idx)
        # The caching host allocator reuses this buffer only after its copy to the GPU ended.
        out = torch.empty((len(idx), *source.shape[1:]), dtype=source.dtype, pin_memory=True)
        return torch.index_select(source, 0, idx, out=out)

    def __iter__(self):
        order = self.order(self.epoch)
        self.epoch += 1
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self._gather(self.x, idx), self._gather(self.y, idx)


def place_split(x: Tensor, y: Tensor, device: torch.device, budget_bytes: int | None = None):
    """Move a split to ``device`` when it is a GPU with room for it, else keep it on the host
    (pinned when a GPU will read it). Returns ``(x, y)``.

    ``budget_bytes`` defaults to :data:`GPU_DATA_SHARE` of the GPU's free memory.
    """
    if device.type != "cuda":
        return x, y
    if budget_bytes is None:
        free, _ = torch.cuda.mem_get_info(device)
        budget_bytes = int(free * GPU_DATA_SHARE)
    if x.nbytes + y.nbytes <= budget_bytes:
        return x.to(device), y.to(device)
    return x.pin_memory(), y.pin_memory()
