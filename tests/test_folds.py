"""Walk-forward folds (``tune.folds``) cannot leak the future, and stratified folds of an
``.npz`` keep the class balance and never touch the test rows.

1. Per-sample check on every fold, grounded in the CSVs (as ``test_leakage`` does for the
   prepared splits): each sample is located in its symbol's calendar, and for every fold
   every training label span ends before the first day any of the fold's validation windows
   reads; validation dates never reach ``data.test_start``; the folds expand. The check
   fails once the purge is taken away.
2. Null test: on random-walk prices a small model trained on each fold scores each fold's
   validation macro F1 inside the chance band of its own predictions.
3. ``.npz`` sources: stratified K-fold on the non-test rows, seeded.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_leakage import (
    EPISODE,
    HORIZON,
    N_DAYS,
    N_SYMBOLS,
    WINDOW,
    chance_band,
    data_params,
    macro_f1,
    overlapping_params,
    random_walk_prices,
    small_run_updates,
)

from stockclf.config import DataParams
from stockclf.data import folds as folds_module
from stockclf.data import store
from stockclf.data.folds import (
    Fold,
    FoldsError,
    Pool,
    fold_split,
    load_pool,
    make_folds,
    walk_forward_folds,
)
from stockclf.data.prepare import prepare

# ------------------------------------------------------------------ per-sample check


def pool_spans(csv_dir: Path, prepared: Path, window: int, horizon: int) -> pd.DataFrame:
    """Per pool row: its decision date, the first day its window reads and the day its
    label ends, from the symbol's own calendar in the CSV."""
    pool = load_pool(prepared)
    calendars = [
        pd.to_datetime(pd.read_csv(p)["Date"]).to_numpy().astype("datetime64[D]")
        for p in sorted(csv_dir.glob("*.csv"))
    ]
    window_start = np.empty(len(pool), dtype="datetime64[D]")
    label_end = np.empty(len(pool), dtype="datetime64[D]")
    for sym in np.unique(pool.symbols):
        rows = np.flatnonzero(pool.symbols == sym)
        cal = calendars[sym]
        t = np.searchsorted(cal, pool.dates[rows])
        assert (cal[t] == pool.dates[rows]).all(), "a decision date is not a trading day"
        window_start[rows] = cal[t - window]  # the first return reads the close before
        label_end[rows] = cal[t + horizon]
    return pd.DataFrame({"date": pool.dates, "window_start": window_start, "label_end": label_end})


def check_folds(cut: list[Fold], spans: pd.DataFrame, params: DataParams) -> None:
    """The rules every fold keeps, on dates (module docstring)."""
    test_start = np.datetime64(params.test_start, "D")
    dates = spans["date"].to_numpy()
    for k, fold in enumerate(cut):
        assert len(fold.train) and len(fold.val), k
        last_label = spans["label_end"].to_numpy()[fold.train].max()
        first_window = spans["window_start"].to_numpy()[fold.val].min()
        assert last_label < first_window, (
            f"fold {k}: a training label span (to {last_label}) reaches a validation "
            f"window (from {first_window})"
        )
        assert dates[fold.train].max() < dates[fold.val].min(), k
        assert dates[fold.val].max() < test_start, k
        assert np.intersect1d(fold.train, fold.val).size == 0, k
    for early, late in itertools.pairwise(cut):  # the window expands
        assert np.isin(early.train, late.train).all()
        assert len(early.train) < len(late.train)
        assert dates[early.val].max() < dates[late.val].min()


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, DataParams]:
    """Random walks with a sample every day (stride 1), so the purge has work to do."""
    root = tmp_path_factory.mktemp("overlapping")
    csv_dir = random_walk_prices(root / "csv", n_symbols=5, n_days=1500, seed=1)
    params = overlapping_params(csv_dir)
    prepare(params, root / "prepared", root)
    return csv_dir, root / "prepared", params


@pytest.mark.parametrize("k", [2, 3])
def test_every_fold_is_purged_and_expands(overlapping, k: int) -> None:
    csv_dir, prepared, params = overlapping
    cut = make_folds(prepared, k, seed=0, stride=params.stride)
    assert len(cut) == k
    spans = pool_spans(csv_dir, prepared, params.window, params.horizon)
    check_folds(cut, spans, params)
    # each symbol loses exactly L + h samples before each boundary: the purge is no wider
    # than prepare's own (stride 1, one sample per trading day)
    pool = load_pool(prepared)
    for fold in cut[:-1]:
        start = pool.dates[fold.val].min()
        for sym in np.unique(pool.symbols):
            before = np.sum((pool.symbols == sym) & (pool.dates < start))
            kept = np.sum(pool.symbols[fold.train] == sym)
            assert before - kept == params.window + params.horizon


def test_one_fold_is_the_prepared_split(overlapping) -> None:
    _, prepared, _ = overlapping
    (fold,) = make_folds(prepared, 1, seed=0, stride=1)
    for part in ("train", "val"):
        got, want = fold_split(prepared, fold, part), store.load_split(prepared, part)
        for name in store.ARRAYS:
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))


def test_the_last_of_k_folds_is_the_prepared_split(overlapping) -> None:
    _, prepared, _ = overlapping
    pool = load_pool(prepared)
    last = make_folds(prepared, 3, seed=0, stride=1)[-1]
    np.testing.assert_array_equal(last.train, np.arange(pool.n_train))
    np.testing.assert_array_equal(last.val, np.arange(pool.n_train, len(pool)))


def test_the_check_catches_folds_without_a_purge(
    overlapping, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_dir, prepared, params = overlapping
    monkeypatch.setattr(folds_module, "purge_count", lambda window, horizon, stride: 0)
    cut = make_folds(prepared, 3, seed=0, stride=1)
    spans = pool_spans(csv_dir, prepared, params.window, params.horizon)
    with pytest.raises(AssertionError, match=r"fold 0: a training label span .* reaches"):
        check_folds(cut, spans, params)


def test_a_stride_purges_in_its_own_steps(tmp_path: Path) -> None:
    """Every 20th day a sample, symbols out of phase: the boundary is one date for all
    symbols, and each symbol loses ceil((L + h) / stride) samples before it."""
    csv_dir = random_walk_prices(tmp_path / "csv", N_SYMBOLS, N_DAYS, seed=3)
    params = data_params(csv_dir)
    prepare(params, tmp_path / "prepared", tmp_path)
    cut = make_folds(tmp_path / "prepared", 3, seed=0, stride=EPISODE)
    spans = pool_spans(csv_dir, tmp_path / "prepared", WINDOW, HORIZON)
    # the folds cut here; the last is prepare's own split, whose purge is prepare's
    check_folds(cut[:-1], spans, params)
    pool = load_pool(tmp_path / "prepared")
    start = pool.dates[cut[0].val].min()
    lost = np.sum(pool.dates[: pool.n_train] < start) - len(cut[0].train)
    assert lost == N_SYMBOLS * math.ceil((WINDOW + HORIZON) / EPISODE)


def test_too_many_folds_name_the_key(overlapping) -> None:
    _, prepared, _ = overlapping
    with pytest.raises(FoldsError, match=r"tune\.folds = 9 needs 8 validation blocks of \d+"):
        make_folds(prepared, 9, seed=0, stride=1)


def test_a_stride_the_data_was_not_prepared_with_is_refused(overlapping) -> None:
    """Samples a day apart cannot be 2 trading days apart: a purge counted in steps of 2
    would fall short, so the folds are not cut."""
    _, prepared, _ = overlapping
    with pytest.raises(FoldsError, match=r"data\.stride is 2 but .* lie 1 day\(s\) apart"):
        make_folds(prepared, 2, seed=0, stride=2)


def test_a_fold_without_a_class_is_refused() -> None:
    """One symbol, 100 training and 40 validation days: three folds leave fold 0 the first
    20 days, and the purge of L + h = 19 of them one row, of one class."""
    dates = np.datetime64("2001-01-01") + np.arange(160).astype("timedelta64[D]")
    pool = Pool(
        dates=np.concatenate([dates[:100], dates[120:]]),
        symbols=np.zeros(140, dtype=np.int32),
        y=np.arange(140) % 3,
        n_train=100,
    )
    with pytest.raises(FoldsError, match=r"tune\.folds = 3: fold 0 \(1 training rows"):
        walk_forward_folds(pool, 3, window=16, horizon=3, stride=1, n_classes=3)
    cut = walk_forward_folds(pool, 2, window=16, horizon=3, stride=1, n_classes=3)
    assert [len(f.train) for f in cut] == [60 - 19, 100]


# ------------------------------------------------------------------------ null test


def test_null_random_walk_folds_score_inside_the_chance_band(
    make_params, tmp_path: Path, one_torch_thread
) -> None:
    """Each fold's own training and validation, as a trial runs it, on prices with nothing
    to learn: a leak across a fold boundary would lift a fold far above its band."""
    from stockclf.evaluation.scoring import predict
    from stockclf.training.run import train_model

    csv_dir = random_walk_prices(tmp_path / "csv", N_SYMBOLS, N_DAYS, seed=3)
    params = make_params(small_run_updates(csv_dir))
    prepare(params.data, tmp_path / "prepared", tmp_path)
    cut = make_folds(tmp_path / "prepared", 3, params.seed, params.data.stride)
    for k, fold in enumerate(cut):
        module, _, data = train_model(
            params,
            tmp_path / "prepared",
            max_epochs=2,
            live_dir=tmp_path / f"fold_{k}",
            monitor="val_f1",
            mode="max",
            progress_bar=False,
            fold=fold,
        )
        y_true = np.asarray(fold_split(tmp_path / "prepared", fold, "val").y)
        assert len(y_true) > 150 and np.bincount(y_true, minlength=3).min() > 25, k
        y_pred = predict(module, data.val_dataloader())
        observed = macro_f1(y_true, y_pred, 3)[0]
        low, high = chance_band(y_true, y_pred, 3)
        assert low <= observed <= high, (k, observed, (low, high))


# -------------------------------------------------------------------------- .npz


def npz_prepared(tmp_path: Path, y: np.ndarray, n_test: int) -> Path:
    """An ``.npz`` source prepared as the stage does: the last ``n_test`` rows are test."""
    rng = np.random.default_rng(0)
    n = len(y)
    split = np.array(["train"] * (n - n_test - 20) + ["val"] * 20 + ["test"] * n_test)
    np.savez(tmp_path / "rows.npz", X=rng.normal(size=(n, 2, 8)), y=y, split=split)
    out = tmp_path / "prepared"
    prepare(data_params(tmp_path / "rows.npz"), out, tmp_path)
    return out


def test_npz_folds_are_stratified_disjoint_and_leave_test_alone(tmp_path: Path) -> None:
    y = np.repeat([0, 1, 2], [60, 30, 30])  # 2:1:1
    prepared = npz_prepared(tmp_path, np.random.default_rng(1).permutation(y), n_test=24)
    pool = load_pool(prepared)
    cut = make_folds(prepared, 4, seed=7, stride=1)
    assert len(cut) == 4
    every = np.arange(len(pool))
    np.testing.assert_array_equal(np.sort(np.concatenate([f.val for f in cut])), every)
    share = np.bincount(pool.y, minlength=3) / len(pool)
    for fold in cut:
        np.testing.assert_array_equal(np.sort(np.concatenate([fold.train, fold.val])), every)
        counts = np.bincount(pool.y[fold.val], minlength=3)
        assert np.all(np.abs(counts - share * len(fold.val)) <= 1), counts
    # a fold's rows are the prepared train and val rows it names, never a test row
    test = store.load_split(prepared, "test")
    for part in ("train", "val"):
        rows = fold_split(prepared, cut[0], part)
        assert not np.isin(rows.dates, test.dates).any()
    same = make_folds(prepared, 4, seed=7, stride=1)
    assert all(np.array_equal(a.val, b.val) for a, b in zip(cut, same, strict=True))
    other = make_folds(prepared, 4, seed=8, stride=1)
    assert not all(np.array_equal(a.val, b.val) for a, b in zip(cut, other, strict=True))


def test_npz_with_too_few_rows_of_a_class_is_refused(tmp_path: Path) -> None:
    y = np.array([0] * 40 + [1] * 40 + [2] * 3 + [0, 1] * 10)
    prepared = npz_prepared(tmp_path, y, n_test=20)
    with pytest.raises(FoldsError, match=r"tune\.folds = 4: class '2' has 3 rows"):
        make_folds(prepared, 4, seed=0, stride=1)


def test_fold_rows_are_gathered_from_train_and_val(tmp_path: Path) -> None:
    y = np.arange(90) % 3
    prepared = npz_prepared(tmp_path, y, n_test=10)
    train, val = store.load_split(prepared, "train"), store.load_split(prepared, "val")
    fold = Fold(train=np.array([0, 5, 59, 61]), val=np.array([60, 79]))
    rows = fold_split(prepared, fold, "train")
    np.testing.assert_array_equal(rows.X, np.concatenate([train.X[[0, 5, 59]], val.X[[1]]]))
    np.testing.assert_array_equal(rows.y, np.concatenate([train.y[[0, 5, 59]], val.y[[1]]]))
    np.testing.assert_array_equal(fold_split(prepared, fold, "val").X, val.X[[0, 19]])
