"""Using the trained model: load it from the checkpoint alone, predict on new prices and on
an .npz, refuse bad input with one line and exit 2, and its model card."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import run_cli

from stockclf import load_classifier
from stockclf.data.store import data_fingerprint, load_meta, load_split
from stockclf.inference.checkpoint import CheckpointError
from stockclf.training.record import CHECKPOINT_KEY


def test_a_missing_garbage_or_foreign_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope.ckpt: no such checkpoint; train one"):
        load_classifier(tmp_path / "nope.ckpt")
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"garbage.ckpt: not a PyTorch checkpoint"):
        load_classifier(tmp_path / "garbage.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "trial.ckpt")
    with pytest.raises(CheckpointError, match=r"trial.ckpt: not a stockclf model checkpoint"):
        load_classifier(tmp_path / "trial.ckpt")
    torch.save({CHECKPOINT_KEY: {"format": 99, "data": {}}}, tmp_path / "future.ckpt")
    with pytest.raises(CheckpointError, match=r"checkpoint format 99, but this stockclf reads"):
        load_classifier(tmp_path / "future.ckpt")


slow = pytest.mark.slow


def _predictions(repo: Path) -> pd.DataFrame:
    return pd.read_csv(repo / "reports/predictions.csv", dtype={"symbol": str})


@slow
def test_loaded_model_reproduces_train_best_test_predictions(pipeline_repo: Path) -> None:
    clf = load_classifier(pipeline_repo / "models/best.ckpt")
    meta = load_meta(pipeline_repo / "data/prepared")
    assert clf.classes == meta["classes"] and clf.features == meta["features"]
    assert clf.window == meta["window"] == 16 and clf.horizon == meta["horizon"] == 5
    test = load_split(pipeline_repo / "data/prepared", "test")
    probs = clf.predict_proba(np.asarray(test.X))
    assert probs.shape == (len(test), 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    predicted = np.asarray(clf.classes)[probs.argmax(axis=1)]
    assert list(predicted) == list(_predictions(pipeline_repo)["model"])


@slow
def test_predict_on_prices_uses_the_prepare_code_path(pipeline_repo: Path) -> None:
    """On a test date, the window cut from the CSV by predict is the prepared window:
    its prediction equals train_best's for that symbol and date."""
    rows = _predictions(pipeline_repo)
    row = rows.iloc[len(rows) // 2]
    done = run_cli(
        "predict", "--data", "data/sample", "--date", row["date"], "--json", cwd=pipeline_repo
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["classes"] == ["down", "flat", "up"] and out["horizon"] == 5
    by_symbol = {p["symbol"]: p for p in out["predictions"]}
    assert sorted(by_symbol) == ["NASDAQ", "SP500"]
    mine = by_symbol[row["symbol"]]
    assert mine["date"] == row["date"] and mine["predicted"] == row["model"]
    assert sum(mine[f"p_{c}"] for c in out["classes"]) == pytest.approx(1.0, abs=1e-6)

    latest = json.loads(
        run_cli("predict", "--data", "data/sample", "--json", cwd=pipeline_repo).stdout
    )
    for p in latest["predictions"]:
        with (pipeline_repo / "data/sample" / f"{p['symbol']}.csv").open() as fh:
            last = list(csv.reader(fh))[-1][0]
        assert p["date"] == last[:10]


@slow
def test_predict_npz_with_labels_prints_the_accuracy(pipeline_repo: Path, tmp_path: Path) -> None:
    test = load_split(pipeline_repo / "data/prepared", "test")
    np.savez(tmp_path / "test.npz", X=np.asarray(test.X), y=np.asarray(test.y))
    model = str(pipeline_repo / "models/best.ckpt")
    done = run_cli("predict", "--data", "test.npz", "--model", model, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    rows = _predictions(pipeline_repo)
    assert out["accuracy"] == pytest.approx(float(np.mean(rows["model"] == rows["actual"])))
    assert [p["predicted"] for p in out["predictions"]] == list(rows["model"])

    np.savez(tmp_path / "unlabelled.npz", X=np.asarray(test.X)[:5])
    out = run_cli(
        "predict", "--data", "unlabelled.npz", "--model", model, "--out", "p.csv", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(tmp_path / "p.csv")
    assert list(table["row"]) == [0, 1, 2, 3, 4] and "actual" not in table


@slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "1990-01-02"], "date 1990-01-02 is outside the file, which covers 1999-01-04"),
        (["--date", "1999-01-12"], "1999-01-12 has 6 rows before it; the model's window needs 16"),
        (["--date", "2016-02-30"], "--date '2016-02-30': expected latest or a date YYYY-MM-DD"),
        (["--model", "models/none.ckpt"], "models/none.ckpt: no such checkpoint"),
        (["--model", "params.yaml"], "params.yaml: not a PyTorch checkpoint"),
    ],
)
def test_predict_refuses_bad_input_and_writes_nothing(
    pipeline_repo: Path, args: list[str], message: str, tmp_path: Path
) -> None:
    out = tmp_path / "p.csv"
    done = run_cli("predict", "--data", "data/sample", *args, "--out", str(out), cwd=pipeline_repo)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


@slow
def test_predict_refuses_input_the_model_was_not_trained_on(
    pipeline_repo: Path, tmp_path: Path
) -> None:
    model = str(pipeline_repo / "models/best.ckpt")
    np.savez(tmp_path / "long.npz", X=np.zeros((4, 3, 32), np.float32))
    done = run_cli("predict", "--data", "long.npz", "--model", model, cwd=tmp_path)
    assert done.returncode == 2
    assert "windows of shape (3, 32) (channels, length), but" in done.stderr
    assert "trained on 3 channels x 16 days" in done.stderr
    np.savez(tmp_path / "four.npz", X=np.zeros((4, 3, 16), np.float32), y=np.arange(4))
    done = run_cli("predict", "--data", "four.npz", "--model", model, cwd=tmp_path)
    assert done.returncode == 2 and "'y' has class ids up to 3, but" in done.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "X.csv").write_text(
        "Date,Open,High,Low,Close,Volume\n2020-01-02,1,2,0.5,x,10\n"
    )
    done = run_cli("predict", "--data", "bad", "--model", model, cwd=tmp_path)
    assert done.returncode == 2 and "X.csv: line 2, column 'Close'" in done.stderr


@slow
def test_model_card_says_what_the_model_was_trained_on(pipeline_repo: Path) -> None:
    card = (pipeline_repo / "models/card.md").read_text()
    assert data_fingerprint(pipeline_repo / "data/prepared") in card
    metrics = json.loads((pipeline_repo / "reports/test_metrics.json").read_text())
    for name in ("model", "majority", "stratified", "logreg", "minirocket"):
        line = next(x for x in card.splitlines() if x.startswith(f"| {name} |"))
        assert f"| {metrics[name]['f1_macro']:.4f} | [" in line
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=pipeline_repo, capture_output=True, text=True
    ).stdout.strip()
    assert f"git revision: `{head}" in card
    for split in ("train", "val", "test"):
        assert f"| {split} | {len(load_split(pipeline_repo / 'data/prepared', split))} |" in card
    assert "stockclf predict --data" in card and "load_classifier" in card


def test_the_predict_benchmark_runs_and_predicts_every_symbol() -> None:
    from benchmarks.predict import measure

    times = measure(n_symbols=3, n_days=120)
    assert set(times) == {"command_s", "load_s", "read_and_predict_s"}
    assert all(0 < v < 300 for v in times.values())
