"""``python -m benchmarks.predict``: how long ``stockclf predict --date latest`` takes for
500 symbols on this machine, with the default model (params.yaml's backbone, window and
image size), split into its parts.

The weights are untrained: the time does not depend on their values. The prices are
synthetic random walks, 400 trading days per symbol, written as the CSV layout prepare
reads. The whole command runs in a child process, as a user runs it, so the figure
includes Python's and torch's start-up; the parts are timed in this process afterwards.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from benchmarks.common import REPO
from stockclf.config import validate_params
from stockclf.inference.checkpoint import load_classifier
from stockclf.inference.predict import predict
from stockclf.training.module import StockClassifier
from stockclf.training.record import CHECKPOINT_FORMAT, CHECKPOINT_KEY


def write_prices(folder: Path, n_symbols: int, n_days: int, seed: int = 0) -> None:
    """Random-walk OHLCV files, one per symbol, valid for prepare's checks."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=n_days).strftime("%Y-%m-%d")
    folder.mkdir(parents=True)
    for i in range(n_symbols):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n_days)))
        spread = np.abs(rng.normal(0, 0.005, n_days)) * close
        frame = pd.DataFrame(
            {
                "Date": dates,
                "Open": close,
                "High": close + spread,
                "Low": close - spread,
                "Close": close,
                "Volume": rng.integers(1_000, 10_000, n_days),
            }
        )
        frame.to_csv(folder / f"S{i:04d}.csv", index=False)


def write_checkpoint(path: Path) -> None:
    """A checkpoint of params.yaml's default model, laid out as train_best writes one."""
    params = validate_params(yaml.safe_load((REPO / "params.yaml").read_text()), "params.yaml")
    features = list(params.data.features)
    module = StockClassifier(params.model, params.train, len(features), 3)
    record = {
        "features": features,
        "window": params.data.window,
        "horizon": params.data.horizon,
        "classes": ["down", "flat", "up"],
        "n_channels": len(features),
        "params": params.data.model_dump(mode="json"),
    }
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            CHECKPOINT_KEY: {"format": CHECKPOINT_FORMAT, "data": record},
        },
        path,
    )


def measure(n_symbols: int, n_days: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_prices(root / "prices", n_symbols, n_days)
        write_checkpoint(root / "best.ckpt")
        cmd = [sys.executable, "-m", "stockclf.cli", "predict", "--data", str(root / "prices")]
        start = time.perf_counter()
        done = subprocess.run(
            [*cmd, "--model", str(root / "best.ckpt"), "--out", str(root / "p.csv")],
            capture_output=True,
            text=True,
        )
        command = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"stockclf predict failed ({done.returncode}):\n{done.stderr}")
        start = time.perf_counter()
        clf = load_classifier(root / "best.ckpt")
        loaded = time.perf_counter() - start
        start = time.perf_counter()
        result = predict(root / "prices", clf, "latest")
        predicted = time.perf_counter() - start
        assert len(result.table) == n_symbols
    return {"command_s": command, "load_s": loaded, "read_and_predict_s": predicted}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--days", type=int, default=400)
    args = parser.parse_args(argv)
    times = measure(args.symbols, args.days)
    print(f"stockclf predict --date latest, {args.symbols} symbols x {args.days} days, CPU")
    print(f"  the whole command (a new process): {times['command_s']:.1f} s")
    print(f"  load_classifier:                   {times['load_s']:.2f} s")
    print(f"  read, validate, featurise, predict: {times['read_and_predict_s']:.1f} s")


if __name__ == "__main__":
    main()
