"""train_best with two CPU processes (DDP over gloo), as it would run on two GPUs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from stockclf.training.module import StockClassifier

pytestmark = pytest.mark.slow


def test_train_best_ddp_two_cpu_processes(
    make_params, tiny_prepared: Path, tmp_path: Path, repo_root: Path
) -> None:
    # two epochs: the logged step then shows that rank 0 counted the steps of both
    params = make_params(
        {"train": {"accelerator": "cpu", "devices": 2, "strategy": "ddp", "max_epochs": 2}}
    )
    params_file = tmp_path / "params.yaml"
    assert yaml.safe_load(params_file.read_text())["train"]["devices"] == 2
    best = tmp_path / "best_params.yaml"
    best.write_text(yaml.safe_dump({"lr_head": 0.003, "batch_size": 16}))
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            str(repo_root / "stages" / "train_best.py"),
            "--params",
            str(params_file),
            "--best-params",
            str(best),
            "--prepared",
            str(tiny_prepared),
            "--model-dir",
            str(out / "models"),
            "--live-dir",
            str(out / "train"),
            "--metrics",
            str(out / "metrics.json"),
            "--predictions",
            str(out / "predictions.csv"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # only rank 0 reports and writes: one line per scored model, one metrics file
    assert done.stdout.count("test macro F1") == 5, done.stdout  # the model and 4 baselines
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_test"] == 96 and 0.0 <= metrics["model"]["f1_macro"] <= 1.0
    # the checkpoint and its model card, each written once by rank 0
    assert sorted(p.name for p in (out / "models").iterdir()) == ["best.ckpt", "card.md"]
    assert len((out / "predictions.csv").read_text().splitlines()) == 96 + 1  # written once
    state = torch.load(out / "models" / "best.ckpt", map_location="cpu", weights_only=True)
    module = StockClassifier(params.model, params.train, in_channels=2, num_classes=3)
    module.load_state_dict(state["state_dict"])  # strict: every tensor present and shaped
    # the logged step is rank 0's: max_train_batches=3 steps per epoch, 2 epochs, 0-based
    steps = json.loads((out / "train" / "metrics.json").read_text())["step"]
    assert steps == 2 * 3 - 1
