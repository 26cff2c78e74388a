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

import hashlib
import json
from collections.abc import Iterable
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


def save_split_streamed(
    directory: Path,
    split: str,
    x_shape: tuple[int, ...],
    x_chunks: Iterable[np.ndarray],
    **arrays: np.ndarray,
) -> None:
    """Like :func:`save_split`, but ``X`` arrives in chunks along the sample axis.

    Only one chunk of windows is in memory at a time; the other arrays (one small value
    per sample) are passed whole. The files are the same ``.npy`` files as
    :func:`save_split` writes.
    """
    expected = set(ARRAYS) - {"X"}
    if set(arrays) != expected:
        raise ValueError(f"arrays {sorted(arrays)} given; expected {sorted(expected)}")
    target = directory / split
    target.mkdir(parents=True, exist_ok=True)
    for name, values in arrays.items():
        if len(values) != x_shape[0]:
            raise ValueError(f"{name}: {len(values)} rows, X has {x_shape[0]}")
        np.save(target / f"{name}.npy", values, allow_pickle=False)
    write_npy_stream(target / "X.npy", np.float32, x_shape, x_chunks)


def write_npy_stream(
    path: Path, dtype: np.dtype | type, shape: tuple[int, ...], chunks: Iterable[np.ndarray]
) -> None:
    """Write an ``.npy`` file (C order) from consecutive chunks along axis 0.

    Plain sequential writes rather than ``np.lib.format.open_memmap``: every page written
    through a memory map stays in the process's resident set until it is unmapped, so a
    memmap output counts its whole size towards peak RSS (measured: 759 MB RSS for a 768 MB
    array written in chunks through ``open_memmap``, 48 MB with this function).
    """
    dtype = np.dtype(dtype)
    header = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": tuple(int(v) for v in shape),
    }
    rows = 0
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for chunk in chunks:
            if tuple(chunk.shape[1:]) != tuple(shape[1:]):
                raise ValueError(f"{path}: chunk of shape {chunk.shape}, expected (*, {shape[1:]})")
            rows += len(chunk)
            fh.write(np.ascontiguousarray(chunk, dtype=dtype).data)
    if rows != shape[0]:
        raise ValueError(f"{path}: {rows} rows written, {shape[0]} declared")


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


def data_fingerprint(prepared_dir: str | Path) -> str:
    """Hash of every prepared array and the meta file: the data version (a study belongs to
    one; a model card names the one its model was trained on)."""
    digest = hashlib.sha256()
    root = Path(prepared_dir)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(
            f"{root}: no prepared data; run the prepare stage (dvc repro prepare)"
        )
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode())
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
