"""Feeds the prepared splits to Lightning as in-memory tensors (see :mod:`.batches`).

Samples within train are shuffled each epoch (the split itself is chronological; shuffling
inside it leaks nothing). There are no DataLoader workers: a batch is one index gather, so
there is nothing for a worker to overlap, and nothing that fails to start on Windows or
macOS (the old tool told Windows users to set ``num_workers: 0`` by hand).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor

from stockclf.data.folds import Fold, fold_split
from stockclf.data.store import SplitData, load_meta, load_split
from stockclf.training.batches import TensorBatches, place_split


class PreparedDataModule(L.LightningDataModule):
    def __init__(
        self, prepared_dir: str | Path, batch_size: int, seed: int, fold: Fold | None = None
    ) -> None:
        super().__init__()
        self.prepared_dir = Path(prepared_dir)
        self.batch_size = batch_size
        self.seed = seed
        self.fold = fold  # tune.folds: train and val are this fold's rows (test is as prepared)
        self._fold_rows: dict[str, SplitData] = {}  # gathered once, shared with the tensors
        meta = load_meta(self.prepared_dir)
        self.classes: list[str] = list(meta["classes"])
        self.in_channels = int(meta["n_channels"])
        self._tensors: dict[str, tuple[Tensor, Tensor]] = {}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        """Where training runs: the trainer's device once attached, else the CPU."""
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def split(self, split: str) -> SplitData:
        """The samples of ``split``: the prepared split, or the fold's train or val rows."""
        if self.fold is not None and split in ("train", "val"):
            if split not in self._fold_rows:
                self._fold_rows[split] = fold_split(self.prepared_dir, self.fold, split)
            return self._fold_rows[split]
        return load_split(self.prepared_dir, split)

    def tensors(self, split: str) -> tuple[Tensor, Tensor]:
        """``(X, y)`` of ``split`` (``N x C x L`` float32, ``N`` int64), loaded once and
        placed by :func:`place_split` for the training device."""
        if split not in self._tensors:
            data = self.split(split)
            copy = split not in self._fold_rows  # a fold's rows are in memory already
            x = torch.from_numpy(np.array(data.X, dtype=np.float32, copy=copy))  # out of the mmap
            y = torch.from_numpy(np.array(data.y, dtype=np.int64, copy=copy))
            self._tensors[split] = place_split(x, y, self.device)
        return self._tensors[split]

    def batches(self, split: str, shuffle: bool = False, shard: bool = False) -> TensorBatches:
        """Batches of ``split``; ``shard`` gives each data-parallel process its share."""
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if shard and trainer else (0, 1)
        x, y = self.tensors(split)
        return TensorBatches(x, y, self.batch_size, shuffle, self.seed, rank, world)

    def train_dataloader(self) -> TensorBatches:
        return self.batches("train", shuffle=True, shard=True)

    def val_dataloader(self) -> TensorBatches:
        return self.batches("val", shard=True)

    def test_dataloader(self) -> TensorBatches:
        """The whole test split in order, unsharded: predictions are made by one process."""
        return self.batches("test")
