"""The accuracy benchmark's data: UCR/UEA sets shipped in aeon's wheel, split and saved.

The sets are read from the ``.ts`` files inside the installed ``aeon`` package
(``aeon/datasets/data/<name>/<name>_TRAIN.ts`` and ``_TEST.ts``), never through a loader
that could download: the benchmark must run offline and give the same data everywhere.

Each (set, seed) becomes one ``.npz`` in the format of :mod:`stockclf.data.npz`. The
archive's own test split is kept as it is and scored once; validation is carved from the
archive's train split, stratified and seeded, so the model and MiniRocket both learn from
the same remaining train rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Share of the archive's train split that becomes validation (early stopping, tuning).
VAL_SHARE = 0.2

#: The default sets, in report order, with what makes each one worth its minutes.
DATASETS: dict[str, str] = {
    "GunPoint": "UCR, 2 classes, 50 train / 150 test, length 150: motion, shape-based",
    "ItalyPowerDemand": "UCR, 2 classes, 67 train / 1029 test, length 24: short series",
    "BasicMotions": "UEA multivariate, 6 channels x 100, 4 classes, 40 train / 40 test",
    "ArrowHead": "UCR, 3 classes, 36 train / 175 test, length 251: very few train samples",
    "OSULeaf": "UCR, 6 classes, 200 train / 242 test, length 427: more classes, imbalanced",
}

#: Where the published figures come from (each a test accuracy on the archive's split).
MINIROCKET_SOURCE = (
    "angus924/minirocket, results/accuracy_ucr109_resamples.csv, column `0` (resample 0 "
    "is the archive's own train/test split); UCR univariate only, so no UEA figure"
)
INCEPTION_SOURCE = (
    "hfawaz/InceptionTime, results-InceptionTime-128.csv (UCRArchive_2018, the 5-network "
    "ensemble) and, for BasicMotions, results-mts.csv (MultivariateTSCProblems; that "
    "repository's README links it only in a commented-out line)"
)


@dataclass(frozen=True)
class Published:
    """Published test accuracies on the archive's default split; None = not found."""

    minirocket: float | None
    inception_time: float | None


#: Copied from the files named in MINIROCKET_SOURCE and INCEPTION_SOURCE, never estimated.
PUBLISHED: dict[str, Published] = {
    "GunPoint": Published(0.993333, 1.0),
    "ItalyPowerDemand": Published(0.968902, 0.9650145772594751),
    "BasicMotions": Published(None, 1.0),
    "ArrowHead": Published(0.862857, 0.8457142857142858),
    "OSULeaf": Published(0.958678, 0.9421487603305784),
}


@dataclass(frozen=True)
class ArchiveSet:
    """One data set as the archive splits it; labels are the archive's strings."""

    name: str
    X_train: np.ndarray  # N x C x L
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def shipped_dir() -> Path:
    """The folder of data sets inside the installed aeon package."""
    import aeon

    return Path(os.path.dirname(aeon.__file__)) / "datasets" / "data"


def shipped_sets() -> list[str]:
    """Names of the classification sets aeon ships with both splits as ``.ts`` files
    (a ``.ts`` header says ``@classLabel true`` for classification, not for regression)."""
    names = []
    for d in sorted(shipped_dir().iterdir()):
        paths = [d / f"{d.name}_{split}.ts" for split in ("TRAIN", "TEST")]
        if all(p.is_file() for p in paths) and _is_classification(paths[0]):
            names.append(d.name)
    return names


def _is_classification(path: Path) -> bool:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.lower().startswith("@classlabel"):
                return line.split()[1].lower() == "true"
            if line.lower().startswith("@data"):
                break
    return False


def load_archive(name: str) -> ArchiveSet:
    """Read a set from aeon's wheel; refuse one that is not shipped (no download)."""
    from aeon.datasets import load_from_ts_file

    folder = shipped_dir() / name
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("TRAIN", "TEST"):
        path = folder / f"{name}_{split}.ts"
        if not path.is_file():
            raise FileNotFoundError(
                f"{name}: {path} is not in the installed aeon package; shipped sets: "
                f"{', '.join(shipped_sets())}"
            )
        X, y = load_from_ts_file(str(path))
        if not isinstance(X, np.ndarray) or X.ndim != 3:
            raise ValueError(f"{name}: unequal-length series; only equal-length sets fit")
        arrays[split] = (X, np.asarray(y).astype(str))
    (X_tr, y_tr), (X_te, y_te) = arrays["TRAIN"], arrays["TEST"]
    return ArchiveSet(name, X_tr, y_tr, X_te, y_te)


def class_names(*labels: np.ndarray) -> list[str]:
    """The distinct labels in a stable order: numeric order when all are numbers
    (so ``"10"`` follows ``"9"``), else alphabetical."""
    names = sorted({str(v) for part in labels for v in part})
    try:
        return sorted(names, key=float)
    except ValueError:
        return names


def carve_validation(y: np.ndarray, seed: int, share: float = VAL_SHARE) -> np.ndarray:
    """A boolean mask over the train rows, True for the rows that become validation.

    ``max(round(share * n), n_classes)`` rows, stratified on ``y`` and seeded (sklearn's
    ``train_test_split``). Stratification rounds a rare class's share down, possibly to
    none, so a class left without a validation row then gets one, drawn with the same
    seed: early stopping and tuning must see every class. A class needs two train rows.
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(y)
    classes = np.unique(y)
    n_val = max(round(share * len(y)), len(classes))
    _, val_rows = train_test_split(
        np.arange(len(y)), test_size=n_val, stratify=y, random_state=seed
    )
    mask = np.zeros(len(y), dtype=bool)
    mask[val_rows] = True
    rng = np.random.default_rng(seed)
    for cls in classes:
        if not mask[y == cls].any():
            mask[rng.choice(np.flatnonzero(y == cls))] = True
    return mask


def write_npz(data: ArchiveSet, seed: int, path: Path) -> dict[str, int]:
    """Save one (set, seed) as an ``.npz`` source: archive train rows first (split
    ``train``/``val``), then the archive's test rows unchanged (``test``)."""
    classes = class_names(data.y_train, data.y_test)
    ids = {name: i for i, name in enumerate(classes)}
    val = carve_validation(data.y_train, seed)
    split = np.concatenate([np.where(val, "val", "train"), np.full(len(data.y_test), "test")])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        X=np.concatenate([data.X_train, data.X_test]).astype(np.float32),
        y=np.array([ids[v] for v in np.concatenate([data.y_train, data.y_test])], np.int64),
        split=split.astype(str),
        classes=np.array(classes, dtype=str),
    )
    return {"n_train": int((~val).sum()), "n_val": int(val.sum()), "n_test": len(data.y_test)}
