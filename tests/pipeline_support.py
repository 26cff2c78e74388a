"""Running DVC in throwaway git repos made from this repo's files (for the slow tests)."""

import os
import subprocess
from pathlib import Path
from typing import Any

from benchmarks import dvc_rows

REPO = Path(__file__).resolve().parents[1]

OVERRIDES = [
    "tune.n_trials=2",
    "tune.tuning_max_epochs=1",
    "train.max_epochs=1",
    "train.max_train_batches=3",
    "train.min_steps=0",
    "model.image_size=16",
    # every 5th window: the MiniRocket baseline's ridge fit grows with the square of the
    # training rows (about 100 s on all 6,776 bundled ones)
    "data.stride=5",
]


#: A git identity for the commits, and no DVC analytics.
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "DVC_NO_ANALYTICS": "1",
}


def sh(*cmd: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done


def copy_repo(repo: Path) -> Path:
    """This repo's files (not its outputs or dvc.lock) in ``repo``, as a fresh git repo: the
    benchmarks' row 6 makes its throwaway repo the same way."""
    return dvc_rows.copy_repo(repo, ENV)


def set_args(overrides: list[str]) -> list[str]:
    """``-S key=value`` arguments for ``dvc exp run``."""
    return [a for o in overrides for a in ("-S", o)]


def write_params(repo: Path, updates: dict[str, Any]) -> None:
    """Merge ``updates`` into ``repo``'s params.yaml, for a plain ``dvc repro`` (the way the
    benchmarks' row 6 shrinks its run)."""
    dvc_rows.shrink_params(repo, updates)
