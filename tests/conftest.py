"""Shared fixtures: shrunk configs and tiny prepared datasets the tests make themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
import yaml

from stockclf.config import Params, load_params, merge_params
from stockclf.data.store import SplitData, save_meta, save_split

REPO = Path(__file__).resolve().parents[1]


def tiny_overrides() -> dict[str, Any]:
    """Settings that keep one training run to a few seconds on a 2-core CPU."""
    return {
        "data": {"window": 16},
        "model": {"backbone": "efficientnet_b0", "image_size": 16, "encodings": ["gasf", "mtf"]},
        "train": {"max_epochs": 2, "batch_size": 32, "max_train_batches": 3, "min_steps": 0},
        "tune": {"n_trials": 2, "tuning_max_epochs": 2, "n_startup_trials": 1},
    }


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def repo_params_dict() -> dict[str, Any]:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def make_params(tmp_path: Path, repo_params_dict: dict[str, Any]):
    """Build validated Params from the repo's params.yaml, shrunk, plus ``updates``."""

    def _make(updates: dict[str, Any] | None = None) -> Params:
        data = merge_params(merge_params(repo_params_dict, tiny_overrides()), updates or {})
        data["tune"]["storage"] = f"sqlite:///{tmp_path / 'tuning' / 'study.db'}"
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(data))
        return load_params(path)

    return _make


def synthetic_split(rng: np.random.Generator, n: int, channels: int, length: int) -> SplitData:
    """Windows whose class is readable from the last quarter of channel 0 (learnable)."""
    X = rng.normal(size=(n, channels, length)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    X[:, 0, -length // 4 :] += (y[:, None] - 1) * 2.0
    dates = np.datetime64("2000-01-01") + np.arange(n).astype("timedelta64[D]")
    forward = (y - 1) * 0.01 + rng.normal(scale=0.01, size=n)
    return SplitData(X, y.astype(np.int64), dates, np.zeros(n, dtype=np.int32), forward)


@pytest.fixture
def tiny_prepared(tmp_path: Path) -> Path:
    """A prepared-data directory (store layout) with 192/96/96 learnable samples."""
    out = tmp_path / "prepared"
    rng = np.random.default_rng(0)
    for split, n in (("train", 192), ("val", 96), ("test", 96)):
        save_split(out, split, synthetic_split(rng, n, channels=2, length=16))
    save_meta(
        out,
        {
            "symbols": ["SYN"],
            "features": ["log_return", "hl_range"],
            "classes": ["down", "flat", "up"],
            "window": 16,
            "horizon": 1,
            "n_channels": 2,
        },
    )
    return out


@pytest.fixture
def fit_tiny(tiny_prepared: Path, tmp_path: Path):
    """``train_model`` on ``tiny_prepared`` for 2 epochs on val_f1, curves in ``tmp_path/live``."""
    from stockclf.training.run import train_model

    def _fit(params: Params, live: str = "live", max_epochs: int = 2, **kwargs: Any):
        return train_model(
            params,
            tiny_prepared,
            max_epochs=max_epochs,
            live_dir=tmp_path / live,
            monitor="val_f1",
            mode="max",
            progress_bar=False,
            **kwargs,
        )

    return _fit


@pytest.fixture
def one_torch_thread():
    """Tiny models train faster on one thread, and far faster when other processes share
    the cores (measured on 2 busy cores: 1.6-1.9 s a tiny training vs 8-23 s on 2)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _quiet_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def synthetic_study(tmp_path: Path):
    """A SQLite study with ``n`` complete trials over two params (and ``pruned`` pruned ones)."""

    def _make(n: int, pruned: int = 0, name: str = "demo") -> tuple[str, optuna.Study]:
        storage = f"sqlite:///{tmp_path / 'study.db'}"
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            direction="maximize",
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
        study.set_user_attr("metric", "val_f1")
        for i in range(n + pruned):
            trial = study.ask()
            lr = trial.suggest_float("lr_head", 1e-4, 1e-1, log=True)
            wd = trial.suggest_float("weight_decay", 0.0, 0.1)
            trial.report(0.1, step=0)
            if i < pruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(trial, 0.3 + 0.1 * np.log10(lr) / -4 + wd)
        return storage, study

    return _make


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repo as a fresh git + DVC repo after one shrunk ``dvc exp run`` (shared, read-only:
    tests that change it work on a copy)."""
    from pipeline_support import OVERRIDES, copy_repo, set_args, sh

    repo = copy_repo(tmp_path_factory.mktemp("pipeline") / "repo")
    sh("dvc", "exp", "run", *set_args(OVERRIDES), cwd=repo)
    return repo


@pytest.fixture
def two_symbol_test_days():
    """Test samples of 2 symbols x 120 dates with a forward return that follows the class:
    ``(split, symbols, rng)``, the generator left where the split's draws ended."""
    rng = np.random.default_rng(0)
    n_days, symbols = 120, ["AAA", "BBB"]
    dates = np.repeat(np.datetime64("2016-01-04") + np.arange(n_days), 2)
    y = rng.integers(0, 3, 2 * n_days)
    fwd = (y - 1) * 0.01 + rng.normal(scale=0.005, size=y.size)
    split = SplitData(np.zeros((y.size, 1, 4), np.float32), y, dates, np.tile([0, 1], n_days), fwd)
    return split, symbols, rng
