"""PNG versions of the training curves and the test confusion matrix, for people who
read results outside `dvc plots` (the DVC plots themselves come from dvc.yaml)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np


def _read_tsv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))[1:]
    data = np.array(rows, dtype=float).reshape(-1, 2)
    return data[:, 0], data[:, 1]


def plot_training_curves(live_dir: Path, out: Path, dpi: int) -> None:
    """Loss and macro F1 per epoch for train and val, from dvclive's TSV files."""
    metrics = live_dir / "plots" / "metrics"
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, name, label in ((axes[0], "loss", "cross-entropy loss"), (axes[1], "f1", "macro F1")):
        for split in ("train", "val"):
            path = metrics / split / f"{name}.tsv"
            if path.exists():
                steps, values = _read_tsv(path)
                ax.plot(steps, values, marker="o", label=split)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(label)
        ax.set_title(f"Training curves: {label}")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)


def plot_confusion(predictions_csv: Path, classes: list[str], out: Path, dpi: int) -> None:
    """Test confusion matrix of the model with counts, rows = actual, columns = predicted,
    from train_best's predictions (columns ``actual`` and ``model``)."""
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=int)
    with predictions_csv.open(newline="") as fh:
        for row in csv.DictReader(fh):
            counts[index[row["actual"]], index[row["model"]]] += 1
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.imshow(counts, cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            color = "white" if counts[i, j] > counts.max() / 2 else "black"
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=color)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"Test confusion matrix (n = {counts.sum()})")
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
