"""What several test files share: this repository's paths, the one shrunk config, small
synthetic data, and commands run in child processes or in throwaway git + DVC copies of
the repository.

Fixtures live in ``conftest.py``, stand-ins for tuning in ``tune_fakes.py`` and made-up
price files for the loading and prepare tests in ``ohlcv_files.py``; everything else that
more than one test file needs is here, so that each thing is defined once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks import dvc_rows
from stockclf.data.store import SplitData

REPO = Path(__file__).resolve().parents[1]

#: The one shrunk config: merged over params.yaml by ``make_params`` (section by section),
#: and given to ``dvc exp run`` as ``-S`` overrides by the pipeline tests and the notebook.
TINY_CONFIG = REPO / "configs" / "tiny.yaml"


def tiny_config() -> dict[str, Any]:
    """``configs/tiny.yaml`` as a fresh mapping (callers may change it)."""
    return yaml.safe_load(TINY_CONFIG.read_text(encoding="utf-8"))


def override_value(value: Any) -> str:
    """A value as ``dvc exp run -S key=value`` parses it back (Hydra's override grammar),
    without spaces, since the notebook splits its overrides on whitespace."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    return str(value)


def dotted_overrides(config: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"train": {"max_epochs": 1}}`` -> ``["train.max_epochs=1"]``, nested maps flattened."""
    out: list[str] = []
    for key, value in config.items():
        if isinstance(value, dict):
            out += dotted_overrides(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={override_value(value)}")
    return out


#: ``configs/tiny.yaml`` as ``key=value`` overrides for ``dvc exp run -S`` (and for the
#: notebook, through ``STOCKCLF_OVERRIDES``).
OVERRIDES = dotted_overrides(tiny_config())


def set_args(overrides: list[str]) -> list[str]:
    """``-S key=value`` arguments for ``dvc exp run``."""
    return [a for o in overrides for a in ("-S", o)]


#: A git identity for the commits, and no DVC analytics.
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "DVC_NO_ANALYTICS": "1",
}


def sh(
    *cmd: str, cwd: Path, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with :data:`ENV`, output captured; a failure (when ``check``) is an
    assertion error that shows both streams. The timeout turns a hung command into a
    failure instead of a CI job that never ends."""
    done = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done


def copy_repo(repo: Path) -> Path:
    """This repo's files (not its outputs or dvc.lock) in ``repo``, as a fresh git repo: the
    benchmarks' row 6 makes its throwaway repo the same way."""
    return dvc_rows.copy_repo(repo, ENV)


def write_params(repo: Path, updates: dict[str, Any]) -> None:
    """Merge ``updates`` into ``repo``'s params.yaml, for a plain ``dvc repro`` (the way the
    benchmarks' row 6 shrinks its run)."""
    dvc_rows.shrink_params(repo, updates)


def child_env() -> dict[str, str]:
    """The environment of a Python child process a test starts (a stage, a tune worker):
    one OpenMP thread, since tiny models train far slower when processes compete for the
    cores, and no progress bars in the captured output."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "STOCKCLF_QUIET": "1"}


def run_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``stockclf ARGS`` in a fresh interpreter (as a user runs it), in ``cwd``, output
    captured, with :func:`child_env`."""
    return subprocess.run(
        [sys.executable, "-m", "stockclf.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=timeout,
    )


#: The meta of a prepared directory of :func:`synthetic_split` data (2 channels of 16).
SYNTHETIC_META = {
    "symbols": ["SYN"],
    "features": ["log_return", "hl_range"],
    "classes": ["down", "flat", "up"],
    "window": 16,
    "horizon": 1,
    "n_channels": 2,
}


def synthetic_split(rng: np.random.Generator, n: int, channels: int, length: int) -> SplitData:
    """Windows whose class is readable from the last quarter of channel 0 (learnable)."""
    X = rng.normal(size=(n, channels, length)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    X[:, 0, -length // 4 :] += (y[:, None] - 1) * 2.0
    dates = np.datetime64("2000-01-01") + np.arange(n).astype("timedelta64[D]")
    forward = (y - 1) * 0.01 + rng.normal(scale=0.01, size=n)
    return SplitData(X, y.astype(np.int64), dates, np.zeros(n, dtype=np.int32), forward)
