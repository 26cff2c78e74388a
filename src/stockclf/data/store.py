"""On-disk layout of the prepare stage's output, shared by writer and readers.

One directory per split holding plain ``.npy`` arrays, so readers can memory-map
them (``mmap_mode="r"``) and storage grows with the series length; images are
made later, on the training device::

    <prepared>/
      meta.json              symbols, features, classes, window, horizon
      train/X.npy            float32, N x C x L (C = features, L = window)
      train/y.npy            int64,   N          class ids (0 = down, 1 = flat, 2 = up)
      train/dates.npy        datetime64[D], N    decision date (last day of the window)
      train/symbols.npy      int32,   N          index into meta["symbols"]
      train/forward_return.npy float64, N        realised log return over the label horizon
                                                 (NaN where unknown); used by the backtest only
      val/...  test/...
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("train", "val", "test")
ARRAYS = ("X", "y", "dates", "symbols", "forward_return")


@dataclass(frozen=True)
class SplitData:
    """The samples of one split, aligned on the first axis."""

    X: np.ndarray  # float32, N x C x L
    y: np.ndarray  # int64, N
    dates: np.ndarray  # datetime64[D], N
    symbols: np.ndarray  # int32, N
    forward_return: np.ndarray  # float64, N: log(C[t+h] / C[t]); never a model input

    def __len__(self) -> int:
        return len(self.y)


def save_split(directory: Path, split: str, data: SplitData) -> None:
    target = directory / split
    target.mkdir(parents=True, exist_ok=True)
    for name in ARRAYS:
        np.save(target / f"{name}.npy", getattr(data, name), allow_pickle=False)


def load_split(directory: str | Path, split: str, mmap: bool = True) -> SplitData:
    """Load one split; with ``mmap`` the arrays are read lazily from disk."""
    source = Path(directory) / split
    if not source.is_dir():
        raise FileNotFoundError(
            f"{source}: prepared split not found; run the prepare stage (dvc repro prepare)"
        )
    mode = "r" if mmap else None
    arrays = {n: np.load(source / f"{n}.npy", mmap_mode=mode, allow_pickle=False) for n in ARRAYS}
    return SplitData(**arrays)


def save_meta(directory: Path, meta: dict[str, Any]) -> None:
    (directory / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def load_meta(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / "meta.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run the prepare stage (dvc repro prepare)")
    return json.loads(path.read_text(encoding="utf-8"))


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory that replaces ``target`` only on success.

    On an exception the temporary directory is removed and ``target`` (if it
    existed) is left exactly as it was, so a failed stage leaves no partial output.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it 0700; outputs should be readable like any other
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    backup = target.with_name(f".{target.name}.old")
    if backup.exists():
        shutil.rmtree(backup)
    if target.exists():
        os.replace(target, backup)
    os.replace(tmp, target)
    shutil.rmtree(backup, ignore_errors=True)


@contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target`` that is renamed over it on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o644)  # mkstemp makes it 0600
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
