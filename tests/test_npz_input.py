"""An ``.npz`` of generic windows as data.source: splits, class names, each malformed
archive refused with the array and row it is about, and a training on its own classes."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from ohlcv_files import small_params

from stockclf.config import DataParams
from stockclf.data import store
from stockclf.data.prepare import prepare
from stockclf.errors import DataError


def _npz_params(path: Path, **overrides: object) -> DataParams:
    return small_params(source=str(path), **overrides)


def test_npz_with_split_and_class_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2, 24))
    y = np.arange(60) % 4
    split = np.array(["train"] * 40 + ["VAL"] * 10 + [" test"] * 10)
    split[5] = "test"  # order is kept within a split, whatever the position
    names = np.array(["cat", "dog", "owl", "fox"])
    np.savez(tmp_path / "animals.npz", X=X, y=y, split=split, classes=names)
    summary = prepare(_npz_params(tmp_path / "animals.npz"), tmp_path / "out", tmp_path)
    meta = store.load_meta(tmp_path / "out")
    assert meta == {
        "symbols": ["animals"],
        "features": ["channel_0", "channel_1"],
        "classes": ["cat", "dog", "owl", "fox"],
        "window": 24,
        "horizon": None,
        "n_channels": 2,
    }
    rows = {
        "train": [r for r in range(40) if r != 5],
        "val": list(range(40, 50)),
        "test": [5, *range(50, 60)],
    }
    for name, idx in rows.items():
        s = store.load_split(tmp_path / "out", name)
        np.testing.assert_array_equal(s.X, X[idx].astype(np.float32))
        np.testing.assert_array_equal(s.y, y[idx])
        assert s.dates.tolist() == [dt.date(1970, 1, 1) + dt.timedelta(days=r) for r in idx]
        assert np.isnan(s.forward_return).all() and (s.symbols == 0).all()
        assert summary[name]["n"] == len(idx)
    assert summary["val"]["frac_cat"] == pytest.approx(0.3)  # rows 40, 44, 48


def test_npz_without_split_splits_by_position(tmp_path: Path) -> None:
    X = np.arange(100 * 24, dtype=np.float64).reshape(100, 24)
    y = np.arange(100) % 5
    np.savez_compressed(tmp_path / "series.npz", X=X, y=y.astype(np.float32))  # whole floats
    params = _npz_params(tmp_path / "series.npz", val_fraction=0.1, test_fraction=0.2)
    summary = prepare(params, tmp_path / "out", tmp_path)
    assert [summary[n]["n"] for n in store.SPLITS] == [70, 10, 20]
    test = store.load_split(tmp_path / "out", "test")
    assert test.X.shape == (20, 1, 24)
    np.testing.assert_array_equal(test.X[:, 0], X[80:].astype(np.float32))
    assert store.load_meta(tmp_path / "out")["classes"] == ["0", "1", "2", "3", "4"]
    assert set(summary["train"]) >= {"frac_0", "frac_4"}


NPZ_ERRORS = {
    # id: (arrays, expected message fragment after the file name)
    "missing-y": ({"X": np.zeros((5, 8))}, "missing array(s) y; found: X"),
    "unknown-key": (
        {"X": np.zeros((5, 8)), "y": np.arange(5) % 2, "labels": np.arange(5)},
        "unknown array(s) labels; allowed: X, y, split, classes",
    ),
    "object-array": (
        {"X": np.zeros((5, 8)), "y": np.array([0, 1, "x", 1, 0], dtype=object)},
        "array 'y' holds Python objects",
    ),
    "x-4d": ({"X": np.zeros((5, 1, 2, 8)), "y": np.arange(5) % 2}, "array 'X' has shape"),
    "x-nan": (
        {"X": np.where(np.arange(40).reshape(5, 8) == 19, np.nan, 1.0), "y": np.arange(5) % 2},
        "array 'X', row 2: non-finite value nan at channel 0, time step 3",
    ),
    "y-2d": ({"X": np.zeros((5, 8)), "y": np.zeros((5, 1), int)}, "array 'y' has shape (5, 1)"),
    "y-strings": ({"X": np.zeros((5, 8)), "y": np.array(list("abcab"))}, "array 'y' holds strings"),
    "y-negative": (
        {"X": np.zeros((5, 8)), "y": np.array([0, 1, -1, 1, 0])},
        "array 'y', row 2: negative class id -1",
    ),
    "single-class": (
        {"X": np.zeros((5, 8)), "y": np.zeros(5, int)},
        "array 'y' holds a single class",
    ),
    "classes-too-few": (
        {"X": np.zeros((5, 8)), "y": np.arange(5) % 3, "classes": np.array(["a", "b"])},
        "array 'classes' names 2 class(es) but 'y' uses ids up to 2",
    ),
    "split-bad-entry": (
        {"X": np.zeros((5, 8)), "y": np.arange(5) % 2, "split": np.array([0, 1, 2, 3, 0])},
        "array 'split', row 3: 3 is not one of 'train'/'val'/'test'",
    ),
    "split-empty": (
        {"X": np.zeros((5, 8)), "y": np.arange(5) % 2, "split": np.array(["train"] * 4 + ["val"])},
        "split 'test' has no samples with its 'split' array",
    ),
}


@pytest.mark.parametrize("case", sorted(NPZ_ERRORS))
def test_npz_errors_name_file_array_and_row(tmp_path: Path, case: str) -> None:
    arrays, fragment = NPZ_ERRORS[case]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError) as err:
        prepare(_npz_params(tmp_path / "bad.npz"), tmp_path / "out", tmp_path)
    assert f"{tmp_path / 'bad.npz'}: {fragment}" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_npz_that_is_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "text.npz").write_text("X,y\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"text\.npz: not a readable \.npz file"):
        prepare(_npz_params(tmp_path / "text.npz"), tmp_path / "out", tmp_path)
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(DataError, match=r"single\.npz: holds a single \.npy array"):
        prepare(_npz_params(tmp_path / "single.npz"), tmp_path / "out", tmp_path)
    with pytest.raises(DataError, match=r"absent\.npz: file not found"):
        prepare(_npz_params(tmp_path / "absent.npz"), tmp_path / "out", tmp_path)
    np.savez(tmp_path / "few.npz", X=np.zeros((3, 8)), y=np.arange(3) % 2)
    with pytest.raises(DataError, match=r"split 'val' has no samples with data\.val_fraction"):
        prepare(_npz_params(tmp_path / "few.npz"), tmp_path / "out", tmp_path)


@pytest.mark.slow
def test_npz_source_trains_with_its_own_classes(make_params, tmp_path: Path) -> None:
    """The generic input goes through the same train_best as prices, with K = 4 classes."""
    # imported here, not at the top: torch and Lightning would slow every other test here
    import timm

    from stockclf.pipeline.train_best import TrainBestPaths, run_train_best

    rng = np.random.default_rng(0)
    y = np.arange(240) % 4
    t = np.linspace(0, 1, 24)
    X = np.sin(2 * np.pi * (y[:, None] + 1) * t)[:, None, :] + rng.normal(0, 0.1, (240, 1, 24))
    names = np.array(["one", "two", "three", "four"])
    np.savez(tmp_path / "waves.npz", X=X, y=y, classes=names)
    backbone = "test_efficientnet" if timm.is_model("test_efficientnet") else "resnet10t"
    params = make_params(
        {
            "data": {"source": str(tmp_path / "waves.npz")},
            "model": {"backbone": backbone},
            "train": {"max_train_batches": 2, "accelerator": "cpu"},
        }
    )
    prepare(params.data, tmp_path / "prepared", tmp_path)
    no_tuning = tmp_path / "best_params.yaml"
    no_tuning.write_text("{}\n")  # nothing tuned: params.yaml's own values
    outputs = TrainBestPaths.under(tmp_path / "out", tmp_path / "prepared", no_tuning)
    results = run_train_best(params, outputs, progress_bar=False)
    assert results is not None and results["n_test"] == 36  # the last 15% of the rows
    for name in ("model", "logreg"):
        assert {f"f1_{c}" for c in names} <= set(results[name])
    rows = list(csv.DictReader(outputs.predictions.open(newline="", encoding="utf-8")))
    assert len(rows) == 36 and {r["actual"] for r in rows} <= set(names)
    assert {r["model"] for r in rows} <= set(names)
