"""Every trial's training curves in one TSV, for ``dvc plots``.

Each trial's run writes its own dvclive directory, one TSV per metric: ``trials/trial_NNNN``
(with ``tune.folds`` > 1 the last fold's, the train/val split, and one ``fold_K`` directory
below it for each earlier fold). ``dvc plots`` draws one line per file and field, so a plot over
trials would need one declared file per trial; instead this writes one file with a row
per (trial, fold, epoch) and a ``trial`` column, which the ``trial_curves`` template
(``.dvc/plots/trial_curves.json``) colours lines by. Rebuilt from the trial directories
on every run of the stage, like the other outputs.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import optuna

from stockclf.files import atomic_file
from stockclf.tuning.checkpoints import trial_dir

#: The per-epoch metrics kept, as dvclive names their files below ``plots/metrics``.
METRICS = ("train/loss", "train/f1", "val/loss", "val/f1", "val/acc")
COLUMNS = ("trial", "state", "fold", "epoch", *(m.replace("/", "_") for m in METRICS))
_FOLD_DIR = re.compile(r"fold_(\d+)$")


def read_metric(path: Path) -> list[float]:
    """A dvclive metric file's values in the order they were logged."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    return [float(row[1]) for row in rows[1:] if len(row) >= 2]


def run_rows(live: Path) -> list[dict[str, float | int | None]]:
    """One row per epoch of one run's dvclive directory: the epoch and each metric.

    Every run validates once per epoch and logs its training metrics at each epoch's end,
    so the n-th value of a file is epoch n's. The steps dvclive keys them by are not used:
    it takes a step of 0 for none and counts on from its own last step, so a run of one
    optimizer step per epoch logs its first epoch after its second (dvclive 3.49).
    A pruned epoch has its validation values and no training ones (empty cells).
    """
    metrics_dir = live / "plots" / "metrics"
    values = {m: read_metric(metrics_dir / f"{m}.tsv") for m in METRICS}
    rows = []
    for epoch in range(max(len(v) for v in values.values())):
        row: dict[str, float | int | None] = {"epoch": epoch}
        for m, logged in values.items():
            row[m.replace("/", "_")] = logged[epoch] if epoch < len(logged) else None
        rows.append(row)
    return rows


def trial_runs(trials_root: Path, number: int) -> list[tuple[int, Path]]:
    """A trial's dvclive directories as (fold, directory): the earlier folds' ``fold_K``
    directories, then the trial directory itself, the last fold (fold 0 of one split)."""
    root = trial_dir(trials_root, number)
    folds = sorted(
        (int(m.group(1)), p)
        for p in root.glob("fold_*")
        if (m := _FOLD_DIR.match(p.name)) and p.is_dir()
    )
    if (root / "plots" / "metrics").is_dir():
        folds.append((len(folds), root))
    return folds


def write_trial_curves(study: optuna.Study, trials_root: Path, path: Path) -> int:
    """Write the merged TSV of every trial in ``study`` that left curves; returns the
    number of rows."""
    n = 0
    with atomic_file(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            for fold, live in trial_runs(trials_root, trial.number):
                for row in run_rows(live):
                    writer.writerow(
                        {"trial": trial.number, "state": trial.state.name, "fold": fold, **row}
                    )
                    n += 1
    return n
