"""Running DVC in throwaway git repos made from this repo's files (for the slow tests)."""

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

OVERRIDES = [
    "tune.n_trials=2",
    "tune.tuning_max_epochs=1",
    "train.max_epochs=1",
    "train.max_train_batches=3",
    "model.image_size=16",
]


def sh(*cmd: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "DVC_NO_ANALYTICS": "1",
    }
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done


def copy_repo(repo: Path, source: Path = REPO) -> Path:
    """Copy this repo's files (not its outputs or dvc.lock) into ``repo`` as a fresh git repo."""
    files = sh("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=source).stdout
    for rel in files.splitlines():
        if not (source / rel).is_file() or rel == "dvc.lock":
            continue
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, repo / rel)
    sh("git", "init", "-q", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "init", cwd=repo)
    return repo


def set_args(overrides: list[str]) -> list[str]:
    """``-S key=value`` arguments for ``dvc exp run``."""
    return [a for o in overrides for a in ("-S", o)]
