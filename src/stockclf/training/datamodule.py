"""Feeds the prepared splits to Lightning. Samples within train are shuffled each epoch
(the split itself is chronological; shuffling inside it leaks nothing)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from stockclf.data.store import load_meta, load_split


def safe_num_workers(requested: int) -> int:
    """Worker processes fail where ``fork`` is unavailable and the entry point is not
    importable (Windows, macOS notebooks); there we fall back to loading in-process."""
    if requested == 0:
        return 0
    if sys.platform == "win32" or ("ipykernel" in sys.modules and sys.platform == "darwin"):
        return 0
    return min(requested, os.cpu_count() or 1)


class PreparedDataModule(L.LightningDataModule):
    def __init__(
        self, prepared_dir: str | Path, batch_size: int, num_workers: int, seed: int
    ) -> None:
        super().__init__()
        self.prepared_dir = Path(prepared_dir)
        self.batch_size = batch_size
        self.num_workers = safe_num_workers(num_workers)
        self.seed = seed
        meta = load_meta(self.prepared_dir)
        self.classes: list[str] = list(meta["classes"])
        self.in_channels = int(meta["n_channels"])
        self._datasets: dict[str, TensorDataset] = {}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def dataset(self, split: str) -> TensorDataset:
        if split not in self._datasets:
            data = load_split(self.prepared_dir, split)
            self._datasets[split] = TensorDataset(
                torch.from_numpy(np.array(data.X, dtype=np.float32)),  # copy out of the mmap
                torch.from_numpy(np.array(data.y, dtype=np.int64)),
            )
        return self._datasets[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            self.dataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
