"""Shared fixtures: shrunk configs and tiny prepared datasets the tests make themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
import yaml
from helpers import (
    OVERRIDES,
    REPO,
    SYNTHETIC_META,
    copy_repo,
    set_args,
    sh,
    synthetic_split,
    tiny_config,
)
from tune_fakes import PRUNED

from stockclf.config import Params, load_params, merge_params
from stockclf.data.store import SplitData, save_meta, save_split


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def repo_params_dict() -> dict[str, Any]:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def make_params(tmp_path: Path, repo_params_dict: dict[str, Any]):
    """Build validated Params from the repo's params.yaml, shrunk by configs/tiny.yaml, plus
    ``updates``; written to ``tmp_path/params.yaml`` for tests that start a stage on it."""

    def _make(updates: dict[str, Any] | None = None) -> Params:
        data = merge_params(merge_params(repo_params_dict, tiny_config()), updates or {})
        data["tune"]["storage"] = f"sqlite:///{tmp_path / 'tuning' / 'study.db'}"
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(data))
        return load_params(path)

    return _make


@pytest.fixture
def tiny_prepared(tmp_path: Path) -> Path:
    """A prepared-data directory (store layout) with 192/96/96 learnable samples."""
    out = tmp_path / "prepared"
    rng = np.random.default_rng(0)
    for split, n in (("train", 192), ("val", 96), ("test", 96)):
        save_split(out, split, synthetic_split(rng, n, channels=2, length=16))
    save_meta(out, SYNTHETIC_META)
    return out


@pytest.fixture
def fit_tiny(tiny_prepared: Path, tmp_path: Path, one_torch_thread):
    """``train_model`` on ``tiny_prepared`` for 2 epochs on val_f1, curves in ``tmp_path/live``,
    on one torch thread (measured with another process busy on one of the 2 cores: 2.5-2.9
    s a test of 4 epochs, against 18-21 s on two threads)."""
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
                study.tell(trial, state=PRUNED)
            else:
                study.tell(trial, 0.3 + 0.1 * np.log10(lr) / -4 + wd)
        return storage, study

    return _make


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repo as a fresh git + DVC repo after one shrunk ``dvc exp run`` (shared, read-only:
    tests that change it work on a copy)."""
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
