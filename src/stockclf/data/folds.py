"""Walk-forward validation folds inside the rows before ``data.test_start`` (``tune.folds``).

The *pool* is the prepared train rows followed by the val rows; a :class:`Fold` is two
index arrays into it. The test rows are never in the pool.

Price data (K folds): the last fold is the prepared train/val split itself, so K = 1 is
exactly the split every study used before. Each earlier fold validates on a block of as
many decision dates as the val split has, cut from the end of the train rows backwards,
and trains on the rows dated before its block: the window expands, and a fold never sees a
later date. At every fold boundary ``B`` (the block's first date) each symbol loses its last
``ceil((L + h) / stride)`` samples before ``B``: consecutive samples of a symbol are at least
``stride`` trading days apart, so every kept sample ``t`` is at least ``L + h + 1`` trading
days before ``B``, its label span ``t .. t + h`` ends before day ``B - L``, the first day a
window of the block reads. That is prepare's purge rule (:mod:`stockclf.data.windows`),
taken against the fold's first date for every symbol.

``.npz`` data (rows are independent samples): stratified K-fold over the pool, shuffled
with ``seed``; K = 1 is again the prepared split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stockclf.data.store import SplitData, load_meta, load_split
from stockclf.errors import StockclfError


class FoldsError(StockclfError, ValueError):
    """``tune.folds`` cannot be cut from the prepared data; the message says why."""


@dataclass(frozen=True)
class Fold:
    """Rows of one fold: sorted positions in the pool (train rows, then val rows)."""

    train: np.ndarray  # int64
    val: np.ndarray  # int64


@dataclass(frozen=True)
class Pool:
    """The per-sample arrays of the rows before the test split, train rows first."""

    dates: np.ndarray  # datetime64[D]
    symbols: np.ndarray  # int32
    y: np.ndarray  # int64
    n_train: int  # rows of the prepared train split, at the start

    def __len__(self) -> int:
        return len(self.y)


def load_pool(prepared_dir: str | Path) -> Pool:
    train, val = (load_split(prepared_dir, s) for s in ("train", "val"))
    return Pool(
        dates=np.concatenate([train.dates, val.dates]).astype("datetime64[D]"),
        symbols=np.concatenate([train.symbols, val.symbols]).astype(np.int32),
        y=np.concatenate([train.y, val.y]).astype(np.int64),
        n_train=len(train),
    )


def make_folds(prepared_dir: str | Path, folds: int, seed: int, stride: int) -> list[Fold]:
    """The ``folds`` folds of the prepared data, earliest first (``stride``: data.stride,
    the trading days between a symbol's samples; ``seed`` shuffles ``.npz`` folds)."""
    meta = load_meta(prepared_dir)
    pool = load_pool(prepared_dir)
    if folds == 1:
        return [Fold(np.arange(pool.n_train), np.arange(pool.n_train, len(pool)))]
    if meta.get("horizon") is None:  # an .npz source: no dates, independent rows
        return stratified_folds(pool.y, folds, seed, meta["classes"])
    window, horizon = int(meta["window"]), int(meta["horizon"])
    return walk_forward_folds(pool, folds, window, horizon, stride, len(meta["classes"]))


def purge_count(window: int, horizon: int, stride: int) -> int:
    """Samples each symbol loses before a fold boundary (module docstring)."""
    return math.ceil((window + horizon) / stride)


def walk_forward_folds(
    pool: Pool, folds: int, window: int, horizon: int, stride: int, n_classes: int
) -> list[Fold]:
    """K expanding-window folds of price data; the last is the prepared split."""
    train_dates = np.unique(pool.dates[: pool.n_train])
    block = len(np.unique(pool.dates[pool.n_train :]))
    first = len(train_dates) - (folds - 1) * block
    if first < 1:
        raise FoldsError(
            f"tune.folds = {folds} needs {folds - 1} validation blocks of {block} decision "
            f"dates (as many as the val split has) inside the train split, which has "
            f"{len(train_dates)}: lower tune.folds, or move data.val_start later"
        )
    bounds = [train_dates[first + k * block] for k in range(folds - 1)]
    dates, symbols = pool.dates[: pool.n_train], pool.symbols[: pool.n_train]
    # dates rise within a symbol, so its rows before a boundary are its first ones by rank
    rank = rank_in_symbol(dates, symbols)
    check_stride(dates, symbols, stride)
    q = purge_count(window, horizon, stride)
    out = []
    for k, start in enumerate(bounds):
        n_before = np.bincount(symbols[dates < start], minlength=int(symbols.max()) + 1)
        train = np.flatnonzero(rank < n_before[symbols] - q)
        in_block = dates >= start
        if k + 1 < len(bounds):
            in_block &= dates < bounds[k + 1]
        out.append(Fold(train.astype(np.int64), np.flatnonzero(in_block).astype(np.int64)))
    out.append(Fold(np.arange(pool.n_train), np.arange(pool.n_train, len(pool))))
    check_classes(out, pool.y, n_classes, folds)
    return out


def rank_in_symbol(dates: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Each row's position among its symbol's rows in date order (0 = its first)."""
    order = np.lexsort((dates, symbols))
    ordered = symbols[order]
    first = np.searchsorted(ordered, ordered, side="left")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - first
    return rank


def check_stride(dates: np.ndarray, symbols: np.ndarray, stride: int) -> None:
    """The purge counts samples as ``stride`` trading days each, so a symbol's samples must
    be at least ``stride`` calendar days apart; closer ones were prepared with a smaller
    stride than ``data.stride`` says, and the purge would fall short."""
    order = np.lexsort((dates, symbols))
    same = symbols[order][1:] == symbols[order][:-1]
    gaps = np.diff(dates[order]).astype(np.int64)[same]
    if gaps.size and gaps.min() < stride:
        raise FoldsError(
            f"tune.folds: data.stride is {stride} but a symbol's prepared samples lie "
            f"{gaps.min()} day(s) apart, so the folds could not be purged; the prepared "
            "data was made with other params: run the prepare stage (dvc repro prepare)"
        )


def check_classes(cut: list[Fold], y: np.ndarray, n_classes: int, folds: int) -> None:
    """Every fold trains on every class and validates on some rows."""
    for k, fold in enumerate(cut):
        missing = sorted(set(range(n_classes)) - set(np.unique(y[fold.train]).tolist()))
        if len(fold.val) == 0 or missing:
            what = "no validation rows" if len(fold.val) == 0 else f"no class {missing} rows"
            raise FoldsError(
                f"tune.folds = {folds}: fold {k} ({len(fold.train)} training rows after the "
                f"purge) has {what} to train or validate on; lower tune.folds, or move "
                "data.val_start later"
            )


def stratified_folds(y: np.ndarray, folds: int, seed: int, classes: list[str]) -> list[Fold]:
    """Stratified K-fold of independent rows (an ``.npz`` source), shuffled with ``seed``."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y, minlength=len(classes))
    present = np.flatnonzero(counts)
    fewest = int(present[np.argmin(counts[present])])
    if counts[fewest] < folds:
        raise FoldsError(
            f"tune.folds = {folds}: class {classes[fewest]!r} has {counts[fewest]} rows "
            f"outside the test split, and stratified folds need at least {folds} of each "
            "class; lower tune.folds"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [
        Fold(np.sort(train).astype(np.int64), np.sort(val).astype(np.int64))
        for train, val in splitter.split(np.zeros(len(y)), y)
    ]


def fold_split(prepared_dir: str | Path, fold: Fold, part: str) -> SplitData:
    """The rows of ``fold``'s ``part`` (``train`` or ``val``), gathered into memory from the
    prepared train and val splits, in pool order. Each array is written once into its
    output (``np.take``), never gathered and then concatenated."""
    index = {"train": fold.train, "val": fold.val}[part]
    train, val = (load_split(prepared_dir, s) for s in ("train", "val"))
    early, late = index[index < len(train)], index[index >= len(train)] - len(train)
    arrays = {}
    for name in ("X", "y", "dates", "symbols", "forward_return"):
        a, b = getattr(train, name), getattr(val, name)
        out = np.empty((len(index), *a.shape[1:]), dtype=a.dtype)
        np.take(a, early, axis=0, out=out[: len(early)])
        np.take(b, late, axis=0, out=out[len(early) :])
        arrays[name] = out
    return SplitData(**arrays)
