"""Feeds the prepared splits to Lightning. Samples within train are shuffled each epoch
(the split itself is chronological; shuffling inside it leaks nothing)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from stockclf.data.store import load_meta, load_split


def workers_can_start() -> bool:
    """Whether DataLoader worker processes work here.

    They are started with ``spawn`` on Windows and macOS, which re-imports ``__main__``;
    from a notebook or an interactive session that fails (the old tool told Windows users
    to set ``num_workers: 0`` by hand).
    """
    if sys.platform == "win32":
        return False
    if sys.platform == "darwin":
        main = sys.modules.get("__main__")
        return getattr(main, "__file__", None) is not None
    return True


def resolve_num_workers(requested: int | str, use_gpu: bool) -> int:
    """``auto``: 0 on CPU (workers would compete with training for the same cores, and
    the windows are already in memory), 2 on GPU to overlap batching with compute.
    Any value becomes 0, with a warning, where worker processes cannot start."""
    wanted = (2 if use_gpu else 0) if requested == "auto" else int(requested)
    if wanted > 0 and not workers_can_start():
        warnings.warn(
            f"train.num_workers={requested}: worker processes cannot start on this platform "
            "(spawn from a notebook or Windows); loading in the main process instead",
            stacklevel=2,
        )
        return 0
    return min(wanted, os.cpu_count() or 1)


class PreparedDataModule(L.LightningDataModule):
    def __init__(
        self, prepared_dir: str | Path, batch_size: int, num_workers: int, seed: int
    ) -> None:
        """``num_workers`` is the resolved count (see :func:`resolve_num_workers`)."""
        super().__init__()
        self.prepared_dir = Path(prepared_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
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
