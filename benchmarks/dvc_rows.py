"""Row 6: ``dvc repro`` with nothing to do against a plain ``dvc status``.

Both commands are timed as users run them (a fresh ``dvc`` process each, interpreter
start included) in a throwaway git + DVC copy of this repository after one real, shrunk run
of the whole pipeline, so every stage has outputs and a ``dvc.lock`` entry. A ``dvc repro``
that has nothing to do should cost about what ``dvc status`` costs: both hash-check the
same deps and outs; anything more is what repro adds on top. The row function returns the
wall seconds of every run and a profile of each command; :mod:`benchmarks.report.dvc`
words it.
"""

from __future__ import annotations

import os
import pstats
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import REPO, Context, interleaved, median, timed, tiny_updates
from stockclf.config import merge_params

LIMIT = 1.3
UP_TO_DATE = "Data and pipelines are up to date."

#: Smoke mode, on top of ``configs/tiny.yaml``: one trial of one batch, since the row times
#: DVC's checks and needs only that every stage ran once and left outputs.
SMOKE_DELTA: dict[str, Any] = {
    "train": {"max_train_batches": 1},
    "tune": {"n_trials": 1, "n_startup_trials": 0},
}


def shrunk_updates(ctx: Context) -> dict[str, Any]:
    """The params the throwaway pipeline runs with: the one shrunk config, and smaller
    still in smoke mode."""
    return merge_params(tiny_updates(), SMOKE_DELTA) if ctx.smoke else tiny_updates()


def dvc_env(workdir: Path) -> dict[str, str]:
    """Git identity for the commits, no analytics, and DVC's site cache (its state database
    of file hashes) inside the scratch directory rather than in ``/var/tmp``."""
    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(workdir / "dvc-site-cache"),
        "STOCKCLF_QUIET": "1",
    }


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a command; its stdout and stderr together, or an error that shows them."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {done.returncode}:\n{output[-4000:]}")
    return output


def dvc(*args: str) -> list[str]:
    """``dvc`` of this interpreter (the one the suite runs in)."""
    return [sys.executable, "-m", "dvc", *args]


def copy_repo(dest: Path, env: dict[str, str]) -> Path:
    """This repository's files (tracked or not ignored; no outputs, no ``dvc.lock``) as a
    fresh git repository, so DVC sees the project as a user's clone would."""
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], REPO, env)
    for rel in listed.splitlines():
        if rel == "dvc.lock" or not (REPO / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)
    run(["git", "init", "-q"], dest, env)
    commit(dest, env, "init")
    return dest


def commit(repo: Path, env: dict[str, str], message: str) -> None:
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "--allow-empty", "-m", message], repo, env)


def shrink_params(repo: Path, updates: dict[str, Any]) -> None:
    path = repo / "params.yaml"
    data = merge_params(yaml.safe_load(path.read_text(encoding="utf-8")), updates)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def snapshot(repo: Path) -> dict[str, tuple[int, int]]:
    """(mtime, size) of every file outside ``.git`` and ``.dvc``: a stage that ran rewrites
    its outputs, so a changed snapshot means ``dvc repro`` did something."""
    files: dict[str, tuple[int, int]] = {}
    for path in repo.rglob("*"):
        rel = path.relative_to(repo)
        if rel.parts[0] in (".git", ".dvc") or not path.is_file():
            continue
        stat = path.stat()
        files[rel.as_posix()] = (stat.st_mtime_ns, stat.st_size)
    return files


def lock_mismatches(repo: Path) -> list[str]:
    """Values of params-file deps whose ``dvc.lock`` entry differs from the file: why a
    freshly run pipeline can be out of date at once."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    found = []
    for name, stage in lock.get("stages", {}).items():
        for file, values in (stage.get("params") or {}).items():
            current = yaml.safe_load((repo / file).read_text(encoding="utf-8"))
            for key, value in values.items():
                now = current
                for part in key.split("."):
                    now = now.get(part) if isinstance(now, dict) else None
                if as_number(now) != as_number(value):
                    found.append(
                        f"{name}: {file} {key} = {now!r} in the file, {value!r} in dvc.lock"
                    )
    return found


def as_number(value: Any) -> Any:
    """PyYAML reads ``5e-05`` (no dot) as a string; DVC's YAML 1.2 reader as a float."""
    if isinstance(value, dict):
        return {k: as_number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_number(v) for v in value]
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def setup(ctx: Context, env: dict[str, str]) -> tuple[Path, list[str]]:
    """Copy the repo, run the shrunk pipeline once, commit; then make sure it is up to date.

    Returns the repo and notes on the setup. A pipeline that is out of date right after its
    own run (a ``dvc.lock`` that does not match what the stages wrote) is reported, and run
    once more, so that what is timed is a ``dvc repro`` with nothing to do.
    """
    repo = ctx.workdir / "dvc-row"
    repo.mkdir(parents=True)
    copy_repo(repo, env)
    shrink_params(repo, shrunk_updates(ctx))
    run(dvc("repro"), repo, env)
    commit(repo, env, "pipeline run")
    notes: list[str] = []
    for attempt in range(2):
        status = run(dvc("status"), repo, env)
        if UP_TO_DATE in status:
            return repo, notes
        mismatches = lock_mismatches(repo)
        notes.append(
            f"after {'the' if attempt == 0 else 'a second'} full `dvc repro`, `dvc status` was "
            "not clean: "
            + " ".join(status.split())
            + ("; dvc.lock vs file: " + "; ".join(mismatches) if mismatches else "")
        )
        run(dvc("repro"), repo, env)
        commit(repo, env, "pipeline rerun")
    raise RuntimeError("the pipeline is still out of date after three runs:\n" + status)


def timed_command(
    args: list[str], repo: Path, env: dict[str, str], check: Callable[[str], None]
) -> Callable[[], float]:
    """A case of :func:`interleaved`: wall seconds of one run of ``args``, then ``check``
    of its output (outside the timing)."""

    def case() -> float:
        output: list[str] = []
        seconds = timed(lambda: output.append(run(args, repo, env)))
        check(output[0])
        return seconds

    return case


def profile_split(repo: Path, env: dict[str, str], workdir: Path) -> dict[str, dict[str, float]]:
    """One cProfile run of each command: where repro's extra time goes (cProfile inflates
    the times; the shares are what matter). Seconds per part, and the YAML loads."""
    figures: dict[str, dict[str, float]] = {}
    for name in ("repro", "status"):
        dump = workdir / f"dvc-{name}.prof"
        run(dvc(name, "--cprofile-dump", str(dump)), repo, env)
        stats = pstats.Stats(str(dump)).stats  # type: ignore[attr-defined]
        parts = {"total": 0.0, "networkx import": 0.0, "collect_stages": 0.0, "yaml": 0.0}
        yaml_loads = 0
        for (file, _line, func), (_cc, calls, _tt, cum, _callers) in stats.items():
            path = file.replace("\\", "/")
            parts["total"] = max(parts["total"], cum)
            if path.endswith("networkx/__init__.py") and func == "<module>":
                parts["networkx import"] += cum
            if path.endswith("dvc/repo/reproduce.py") and func == "collect_stages":
                parts["collect_stages"] += cum
            if path.endswith("dvc/utils/strictyaml.py") and func == "load":
                parts["yaml"] += cum
                yaml_loads += calls
        parts["dvc.yaml/dvc.lock loads"] = yaml_loads
        figures[name] = parts
    return figures


@dataclass
class NoopRepro:
    """Row 6: wall seconds of every run of each command, and one profile of each."""

    shrunk: dict[str, Any]  # the params updates the pipeline ran with
    stages: list[str]
    repeats: int
    runs: dict[str, list[float]]  # "dvc repro", "dvc status", "dvc --version"
    profile: dict[str, dict[str, float]]  # "repro", "status" -> seconds per part
    setup_notes: list[str]  # how the pipeline was out of date after its own run, if it was
    dvc_version: str

    def median(self, command: str) -> float:
        return median(self.runs[command])

    @property
    def ratio(self) -> float:
        return self.median("dvc repro") / self.median("dvc status")

    @property
    def net(self) -> float:
        """The ratio without the start-up both pay (``dvc --version``); nan where the
        start-up is not below status."""
        start = self.median("dvc --version")
        if self.median("dvc status") <= start:
            return float("nan")
        return (self.median("dvc repro") - start) / (self.median("dvc status") - start)

    @property
    def met(self) -> bool:
        return bool(self.ratio <= LIMIT)


def noop_checks(repo: Path, env: dict[str, str]) -> tuple[Callable[[str], None], ...]:
    """Checks of each command's output: a repro that did nothing, a clean status, and
    nothing for ``--version``."""
    lock = (repo / "dvc.lock").read_bytes()
    before = snapshot(repo)

    def repro_did_nothing(output: str) -> None:
        if "Running stage" in output or UP_TO_DATE not in output:
            raise RuntimeError(f"`dvc repro` was not a no-op:\n{output}")
        if (repo / "dvc.lock").read_bytes() != lock:
            raise RuntimeError("`dvc repro` changed dvc.lock")
        changed = sorted(k for k, v in snapshot(repo).items() if before.get(k) != v)
        if changed or run(["git", "status", "--porcelain"], repo, env).strip():
            raise RuntimeError(f"`dvc repro` changed files: {changed}")

    def status_clean(output: str) -> None:
        if UP_TO_DATE not in output:
            raise RuntimeError(f"`dvc status` is not clean:\n{output}")

    return repro_did_nothing, status_clean, lambda _: None


def noop_repro_vs_status(ctx: Context) -> NoopRepro:
    """Wall times of a no-op ``dvc repro``, of ``dvc status`` and of the start-up."""
    env = dvc_env(ctx.workdir)
    repo, notes = setup(ctx, env)
    commands = (dvc("repro"), dvc("status"), dvc("--version"))
    cases = {
        f"dvc {args[-1]}": timed_command(args, repo, env, check)
        for args, check in zip(commands, noop_checks(repo, env), strict=True)
    }
    repeats = ctx.repeats if ctx.smoke else max(ctx.repeats, 7)
    runs = interleaved(cases, repeats)
    return NoopRepro(
        shrunk=shrunk_updates(ctx),
        stages=list(yaml.safe_load((repo / "dvc.lock").read_text())["stages"]),
        repeats=repeats,
        runs=runs,
        profile=profile_split(repo, env, ctx.workdir),
        setup_notes=notes,
        dvc_version=run(dvc("--version"), repo, env).strip(),
    )
