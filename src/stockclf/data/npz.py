"""Generic labelled input: any time series classification task from one ``.npz`` file.

``data.source`` may name an ``.npz`` file (``numpy.savez``) instead of a directory of
prices. It holds:

- ``X``: the windows, N x L (one channel) or N x C x L, any real dtype (stored float32);
- ``y``: N class ids, integers 0 .. K-1 (integer-valued floats are accepted); the number
  of classes K is ``max(y) + 1``, or the length of ``classes``;
- ``split`` (optional): N entries ``"train"``/``"val"``/``"test"`` or 0/1/2;
- ``classes`` (optional): K class names (strings), written to ``meta.json``; without it
  the names are ``"0"``, ``"1"``, ...

Any other key is refused, so that a misspelt ``Split`` or ``labels`` is not silently
ignored. Every problem is a :class:`DataError` naming the file, the key and the first
offending row.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stockclf.data.store import SPLITS
from stockclf.errors import DataError

REQUIRED_KEYS = ("X", "y")
OPTIONAL_KEYS = ("split", "classes")


@dataclass(frozen=True)
class LabelledArrays:
    """A validated ``.npz`` source, rows aligned on the first axis."""

    path: Path
    X: np.ndarray  # float32, N x C x L, finite
    y: np.ndarray  # int64, N, in 0 .. len(classes) - 1
    split: np.ndarray | None  # int64, N, index into SPLITS; None = split by position
    classes: list[str]

    def __len__(self) -> int:
        return len(self.y)


def load_npz(path: Path) -> LabelledArrays:
    """Read and validate one ``.npz`` source (see the module docstring for its keys)."""
    path = Path(path)
    arrays = _read_arrays(path, REQUIRED_KEYS)
    X = _windows(path, arrays["X"])
    y = _labels(path, arrays["y"], len(X))
    classes = _classes(path, arrays.get("classes"), y)
    split = _split(path, arrays["split"], len(X)) if "split" in arrays else None
    return LabelledArrays(path=path, X=X, y=y, split=split, classes=classes)


def load_windows(path: Path) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Windows to predict on, checked as :func:`load_npz` checks them: ``X``, and ``y`` and
    ``classes`` when present (``split`` is allowed and ignored). Returns ``(X, y, classes)``."""
    path = Path(path)
    arrays = _read_arrays(path, ("X",))
    X = _windows(path, arrays["X"])
    y = _labels(path, arrays["y"], len(X)) if "y" in arrays else None
    classes = None
    if "classes" in arrays:
        classes = _classes(path, arrays["classes"], y if y is not None else np.zeros(1, int))
    return X, y, classes


def _read_arrays(path: Path, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The file's arrays, with ``required`` present and no key outside the known ones."""
    arrays = _load_arrays(path)
    missing = [k for k in required if k not in arrays]
    if missing:
        raise DataError(
            f"{path}: missing array(s) {', '.join(missing)}; found: {', '.join(sorted(arrays))}"
        )
    unknown = sorted(set(arrays) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise DataError(
            f"{path}: unknown array(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}"
        )
    return arrays


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        what = "is not a file" if path.exists() else "file not found"
        raise DataError(f"{path}: {what}; data.source names an .npz file here")
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable .npz file (numpy.savez): {err}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds a single .npy array, not an .npz archive of X and y")
    arrays: dict[str, np.ndarray] = {}
    with npz:
        for key in npz.files:
            try:
                arrays[key] = npz[key]
            except ValueError:
                raise DataError(
                    f"{path}: array {key!r} holds Python objects (dtype=object); save "
                    "numbers, or strings as a fixed-width array (np.array(values, dtype=str))"
                ) from None
            except (OSError, EOFError, zipfile.BadZipFile) as err:
                raise DataError(f"{path}: array {key!r} cannot be read: {err}") from None
    return arrays


def _windows(path: Path, X: np.ndarray) -> np.ndarray:
    if X.dtype.kind not in "biuf":
        raise DataError(f"{path}: array 'X' has dtype {X.dtype}; expected numbers")
    if X.ndim == 2:
        X = X[:, None, :]
    if X.ndim != 3:
        raise DataError(f"{path}: array 'X' has shape {X.shape}; expected N x L or N x C x L")
    n, c, length = X.shape
    if n == 0 or c == 0 or length < 2:
        raise DataError(
            f"{path}: array 'X' has shape {X.shape}; it needs at least one row, one channel "
            "and two time steps"
        )
    X = np.ascontiguousarray(X, dtype=np.float32)
    finite = np.isfinite(X).all(axis=(1, 2))
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        ch, t = (int(v) for v in np.argwhere(~np.isfinite(X[row]))[0])
        raise DataError(
            f"{path}: array 'X', row {row}: non-finite value {X[row, ch, t]} at channel {ch}, "
            f"time step {t} (float32); fill or drop such rows before saving"
        )
    return X


def _labels(path: Path, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim != 1:
        raise DataError(f"{path}: array 'y' has shape {y.shape}; expected one label per row")
    if len(y) != n:
        raise DataError(
            f"{path}: array 'X' has {n} rows but array 'y' has {len(y)} labels; they must match"
        )
    if y.dtype.kind in "US":
        raise DataError(
            f"{path}: array 'y' holds strings (e.g. row 0: {str(y[0])!r}); class ids must be "
            "integers 0 .. K-1 (put the names in an optional 'classes' array)"
        )
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"{path}: array 'y', row {i}: label {y[i].item()!r} is not an integer class id"
            )
    elif y.dtype.kind not in "biu":
        raise DataError(f"{path}: array 'y' has dtype {y.dtype}; expected integer class ids")
    labels = y.astype(np.int64)
    bad = np.flatnonzero(labels < 0)
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{path}: array 'y', row {i}: negative class id {labels[i]}")
    return labels


def _classes(path: Path, names: np.ndarray | None, y: np.ndarray) -> list[str]:
    k = int(y.max()) + 1
    if names is None:
        if k < 2:
            raise DataError(f"{path}: array 'y' holds a single class (0); need at least two")
        return [str(i) for i in range(k)]
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(
            f"{path}: array 'classes' must be a 1-D array of names (strings), got "
            f"shape {names.shape}, dtype {names.dtype}"
        )
    out = [str(v) for v in names]
    if len(out) < max(k, 2):
        raise DataError(
            f"{path}: array 'classes' names {len(out)} class(es) but 'y' uses ids up to "
            f"{k - 1} (and at least two classes are needed)"
        )
    if len(set(out)) != len(out):
        raise DataError(f"{path}: array 'classes' has repeated names: {out}")
    return out


def _split(path: Path, split: np.ndarray, n: int) -> np.ndarray:
    if split.ndim != 1 or len(split) != n:
        raise DataError(
            f"{path}: array 'split' has shape {split.shape}; expected one entry per row ({n})"
        )
    if split.dtype.kind in "US":
        names = np.char.lower(np.char.strip(split.astype(str)))
        ids = np.full(n, -1, dtype=np.int64)
        for i, name in enumerate(SPLITS):
            ids[names == name] = i
    elif split.dtype.kind in "iu":
        ids = split.astype(np.int64)
    else:
        raise DataError(
            f"{path}: array 'split' has dtype {split.dtype}; expected 'train'/'val'/'test' "
            "strings or 0/1/2"
        )
    bad = np.flatnonzero((ids < 0) | (ids >= len(SPLITS)))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{path}: array 'split', row {i}: {split[i].item()!r} is not one of "
            "'train'/'val'/'test' (or 0/1/2)"
        )
    return ids
