"""Bring a study to ``tune.n_trials`` finished trials, with one worker in this process or
several worker processes, and say why it stopped.

The tune stage (:func:`stockclf.pipeline.tune.run_tune`) calls :func:`run_trials` between
opening the study and writing its outputs; :func:`join_study`, behind ``stockclf tune
worker``, runs the same loop without the outputs, for extra workers on this or another
machine.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from tqdm.auto import tqdm

from stockclf.config import Params
from stockclf.errors import StudyError
from stockclf.progress import progress_enabled
from stockclf.storage_url import redact
from stockclf.tuning.identity import identify
from stockclf.tuning.objective import TrainFn
from stockclf.tuning.processes import run_processes
from stockclf.tuning.signals import StopSignals
from stockclf.tuning.study import open_tuning_study
from stockclf.tuning.trials import FINISHED, count_trials
from stockclf.tuning.worker import Callback, WorkerSpec, run_in_process


class TrialProgress:
    """A progress bar over finished trials (shown only on a terminal)."""

    def __init__(self, total: int, done: int) -> None:
        self.bar = tqdm(
            total=total, initial=done, desc="trials", unit="trial", disable=not progress_enabled()
        )

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state in FINISHED:
            self.bar.update(1)
        if trial.value is not None:
            self.bar.set_postfix({"last": f"{trial.value:.4f}", "state": trial.state.name})

    def set_done(self, done: int) -> None:
        """For workers in other processes: follow the study's finished count."""
        if done != self.bar.n:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def run_trials(
    spec: WorkerSpec,
    study: optuna.Study,
    storage: BaseStorage,
    n_workers: int,
    callbacks: Sequence[Callback] = (),
) -> str:
    """Bring ``study`` to ``n_trials`` finished trials with ``n_workers`` workers.

    Returns why it stopped: ``done``, ``timeout`` or ``failures``. Raises
    :class:`~stockclf.tuning.signals.TuneInterrupted` on SIGINT/SIGTERM.
    """
    target = spec.params.tune.n_trials
    count = count_trials(study, target)
    if count.reached:
        print(
            f"study {study.study_name}: already has {count.finished} finished trials",
            file=sys.stderr,
        )
        return "done"
    n_workers = min(n_workers, count.missing)
    print(
        f"study {study.study_name} at {redact(spec.storage_url)}: {count.finished} finished, "
        f"running {count.missing} more with {n_workers} worker "
        f"process{'es' if n_workers > 1 else ''}",
        file=sys.stderr,
    )
    progress = TrialProgress(target, count.finished)
    try:
        with StopSignals() as stops:
            if n_workers == 1:
                outcome = run_in_process(spec, study, storage, stops, [progress, *callbacks])
            else:
                failed = run_processes(
                    spec, n_workers, stops, lambda: progress.set_done(count_finished(study))
                )
                outcome = _outcome(study, spec, target, failed)
    finally:
        progress.close()
    if outcome != "done":
        print(
            f"study {study.study_name}: stopped ({_STOPPED[outcome]}) with "
            f"{count_finished(study)} of {target} finished trials",
            file=sys.stderr,
        )
    return outcome


_STOPPED = {
    "timeout": "tune.timeout reached; rerun to continue (`dvc repro -f tune`)",
    "failures": "too many failed trials in this run; see fail_reason in `stockclf study show`",
}


def _outcome(
    study: optuna.Study, spec: WorkerSpec, target: int, failed: list[tuple[str, int | None]]
) -> str:
    """Why the worker processes stopped, read from the study they left."""
    if count_trials(study, target).reached:
        if failed:
            print(f"warning: tuning workers {failed} (name, exit code) failed", file=sys.stderr)
        return "done"
    if failed:
        raise StudyError(
            f"study {study.study_name}: tuning workers {failed} (name, exit code) stopped "
            "with an error, printed above; the trials they finished are kept, rerun to continue"
        )
    if spec.deadline is not None and time.time() >= spec.deadline:
        return "timeout"
    return "failures"


def count_finished(study: optuna.Study) -> int:
    return count_trials(study, 0).finished


def worker_spec(
    params: Params,
    prepared_dir: Path,
    trials_root: Path,
    study: optuna.Study,
    url: str,
    train_fn: TrainFn | None = None,
    artifacts: Path | None = None,
) -> WorkerSpec:
    """What every worker of this run needs; the deadline counts from now. ``artifacts``:
    the store each worker uploads its top trials to (the tune stage's; extra workers
    started by :func:`join_study` upload nothing, the stage uploads when it next runs)."""
    timeout = params.tune.timeout
    return WorkerSpec(
        params=params,
        prepared_dir=prepared_dir,
        trials_root=trials_root,
        study_name=study.study_name,
        storage_url=url,
        deadline=time.time() + timeout if timeout else None,
        train_fn=train_fn,
        artifacts=artifacts,
    )


def join_study(
    params: Params,
    prepared_dir: Path,
    trials_root: Path,
    url: str | None = None,
    n_workers: int | None = None,
    train_fn: TrainFn | None = None,
) -> dict[str, Any]:
    """``stockclf tune worker``: add workers to the study the tune stage runs.

    The study name is computed exactly as the stage does, so this needs the same params
    and prepared data. Writes each trial's curves and checkpoint under ``trials_root`` on
    this machine; the stage writes the study's artifacts.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _, name = identify(params, prepared_dir)
    url = url or params.tune.storage
    study, storage = open_tuning_study(params, name, url, snapshot=None)
    spec = worker_spec(params, prepared_dir, trials_root, study, url, train_fn)
    outcome = run_trials(spec, study, storage, n_workers or params.tune.n_jobs)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {
        "study_name": name,
        "stopped": outcome,
        "n_finished": sum(s in FINISHED for s in states),
        "n_trials": params.tune.n_trials,
        "n_fail": states.count(optuna.trial.TrialState.FAIL),
    }
