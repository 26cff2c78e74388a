"""Runs the tune stage: open the study, run the missing trials, write the artifacts.

Also :func:`join_study`, behind ``stockclf tune worker``: the same trials loop without the
artifacts, for extra workers on this or another machine.
"""

# Over 300 lines: orchestration and the output writers share this module until the planned
# split of the tuning package moves the writers to their own (issue 11).

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from dvclive import Live
from optuna.storages import BaseStorage
from tqdm.auto import tqdm

from stockclf.config import Params
from stockclf.data.store import atomic_file
from stockclf.progress import progress_enabled
from stockclf.tuning.checkpoints import prune_checkpoints
from stockclf.tuning.objective import TrainFn
from stockclf.tuning.signals import StopSignals
from stockclf.tuning.snapshot import seed_from_snapshot, snapshot_has_study, write_snapshot
from stockclf.tuning.storage import redact, same_file, storage_file
from stockclf.tuning.study import (
    FINISHED,
    StudyError,
    check_study_present,
    data_fingerprint,
    has_study,
    open_study,
    study_identity,
    study_name,
)
from stockclf.tuning.workers import (
    Callback,
    WorkerSpec,
    claim_lock,
    connect,
    holding,
    run_in_process,
    run_processes,
)


@dataclass(frozen=True)
class TuneOutputs:
    """Where the tune stage writes; the paths come from dvc.yaml via the stage script."""

    root: Path

    @property
    def trials(self) -> Path:
        return self.root / "trials"

    @property
    def best_params(self) -> Path:
        return self.root / "best_params.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def study_info(self) -> Path:
        return self.root / "study.json"

    @property
    def live(self) -> Path:
        return self.root / "live"

    @property
    def study_db(self) -> Path:
        """The SQLite study DVC tracks: the storage itself by default, else a snapshot."""
        return self.root / "study.db"

    @property
    def trials_csv(self) -> Path:
        return self.root / "trials.csv"


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


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def identify(params: Params, prepared_dir: Path) -> tuple[dict[str, Any], str]:
    identity = study_identity(params, data_fingerprint(prepared_dir))
    return identity, study_name(identity)


def open_tuning_study(
    params: Params, name: str, url: str, snapshot: Path | None
) -> tuple[optuna.Study, BaseStorage]:
    """Open (or create) the study, after the checks that keep trials from being lost.

    A study file that dvc.lock records but that is missing stops the stage (``dvc pull``).
    A storage without the study is seeded from the snapshot when that holds it.
    """
    check_study_present(url)  # before connecting: connecting creates an empty SQLite file
    storage = connect(params, url)
    check_study_present(url, snapshot=snapshot, storage_has_study=lambda: has_study(storage, name))
    db = storage_file(url)
    with holding(claim_lock(url, storage, name)):
        if (
            snapshot is not None
            and not (db is not None and same_file(db, snapshot))
            and not has_study(storage, name)
            and snapshot_has_study(snapshot, name)
        ):
            copied = seed_from_snapshot(snapshot, name, storage)
            print(f"study {name}: restored {copied} trials from {snapshot}", file=sys.stderr)
        study = open_study(params, name, storage)
    return study, storage


def run_trials(
    params: Params,
    prepared_dir: Path,
    trials_root: Path,
    study: optuna.Study,
    storage: BaseStorage,
    url: str,
    n_workers: int,
    train_fn: TrainFn | None = None,
    callbacks: Sequence[Callback] = (),
) -> str:
    """Bring ``study`` to ``n_trials`` finished trials with ``n_workers`` workers.

    Returns why it stopped: ``done``, ``timeout`` or ``failures``. Raises
    :class:`~stockclf.tuning.signals.TuneInterrupted` on SIGINT/SIGTERM.
    """
    tune = params.tune
    done = count_finished(study)
    missing = tune.n_trials - done
    if missing <= 0:
        print(f"study {study.study_name}: already has {done} finished trials", file=sys.stderr)
        return "done"
    n_workers = min(n_workers, missing)
    print(
        f"study {study.study_name} at {redact(url)}: {done} finished, running {missing} more "
        f"with {n_workers} worker process{'es' if n_workers > 1 else ''}",
        file=sys.stderr,
    )
    spec = WorkerSpec(
        params=params,
        prepared_dir=prepared_dir,
        trials_root=trials_root,
        study_name=study.study_name,
        storage_url=url,
        deadline=time.time() + tune.timeout if tune.timeout else None,
        train_fn=train_fn,
    )
    progress = TrialProgress(tune.n_trials, done)
    try:
        with StopSignals() as stops:
            if n_workers == 1:
                outcome = run_in_process(spec, study, storage, stops, [progress, *callbacks])
            else:
                failed = run_processes(
                    spec, n_workers, stops, lambda: progress.set_done(count_finished(study))
                )
                outcome = _outcome(study, spec, failed)
    finally:
        progress.close()
    if outcome != "done":
        print(
            f"study {study.study_name}: stopped ({_STOPPED[outcome]}) with "
            f"{count_finished(study)} of {tune.n_trials} finished trials",
            file=sys.stderr,
        )
    return outcome


_STOPPED = {
    "timeout": "tune.timeout reached; rerun to continue (`dvc repro -f tune`)",
    "failures": "too many failed trials in this run; see fail_reason in `stockclf study show`",
}


def _outcome(study: optuna.Study, spec: WorkerSpec, failed: list[tuple[str, int | None]]) -> str:
    """Why the worker processes stopped, read from the study they left."""
    n_trials = spec.params.tune.n_trials
    if count_finished(study) >= n_trials:
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


def run_tune(
    params: Params,
    prepared_dir: Path,
    outputs: TuneOutputs,
    train_fn: TrainFn | None = None,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Bring the study up to ``n_trials`` finished trials and write every artifact.

    ``train_fn`` replaces the training of a trial (see :data:`TrainFn`; tests use it for
    worker processes, which a monkeypatch does not reach); ``callbacks`` run after each
    trial of an in-process worker (``n_jobs: 1``).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    identity, name = identify(params, prepared_dir)
    url = params.tune.storage
    study, storage = open_tuning_study(params, name, url, outputs.study_db)
    for key, value in (("identity", identity), ("metric", params.tune.metric)):
        study.set_user_attr(key, json.loads(json.dumps(value, default=str)))
    outcome = run_trials(
        params,
        prepared_dir,
        outputs.trials,
        study,
        storage,
        url,
        params.tune.n_jobs,
        train_fn,
        callbacks,
    )
    prune_checkpoints(study, outputs.trials, params.tune.keep_top_k)
    summary = write_artifacts(study, storage, params, outputs)
    return {**summary, "stopped": outcome}


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
    outcome = run_trials(
        params,
        prepared_dir,
        trials_root,
        study,
        storage,
        url,
        n_workers or params.tune.n_jobs,
        train_fn,
    )
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {
        "study_name": name,
        "stopped": outcome,
        "n_finished": sum(s in FINISHED for s in states),
        "n_trials": params.tune.n_trials,
        "n_fail": states.count(optuna.trial.TrialState.FAIL),
    }


#: Significant digits of a float in best_params.yaml (see :func:`lock_safe`).
LOCK_SAFE_DIGITS = 12


def lock_safe(value: Any) -> Any:
    """``value``, a float rounded to :data:`LOCK_SAFE_DIGITS` significant digits.

    DVC copies each params value into ``dvc.lock`` and rewrites the whole lock after every
    stage with ruamel.yaml, which re-emits a float it read in exponent form truncated
    rather than rounded (0.19.1: ``5.12429239312534e-05`` comes back as ``...533e-05``).
    ``train_best`` then looks changed right after a full ``dvc repro``. Measured over 4,000
    values in [1e-7, 1]: 425 broke at full precision, 32 at 14 digits, none at 13 or 12.
    """
    return float(f"{value:.{LOCK_SAFE_DIGITS}g}") if isinstance(value, float) else value


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
        reasons = {t.user_attrs.get("fail_reason", "unknown") for t in failed}
        raise RuntimeError(
            f"study {study.study_name}: no trial completed ({len(failed)} failed: "
            f"{sorted(reasons)[:3]}); nothing to write as best params"
        )
    return study.best_trial


def write_artifacts(
    study: optuna.Study, storage: BaseStorage, params: Params, outputs: TuneOutputs
) -> dict[str, Any]:
    best = best_trial(study)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    summary = {
        "best_value": best.value,
        "best_trial": best.number,
        "n_complete": states.count(optuna.trial.TrialState.COMPLETE),
        "n_pruned": states.count(optuna.trial.TrialState.PRUNED),
        "n_fail": states.count(optuna.trial.TrialState.FAIL),
    }
    # The plain cross-entropy of the best trial's kept epoch: below ln(K) means its
    # probabilities beat always saying 1/K per class.
    if "val_loss" in best.user_attrs.get("best_epoch", {}):
        summary["best_val_loss"] = best.user_attrs["best_epoch"]["val_loss"]
    # Only searched names, with the exact value type the training params expect.
    best_params = {k: lock_safe(best.params[k]) for k in params.tune.parameter_ranges}
    with atomic_file(outputs.best_params) as tmp:
        tmp.write_text(yaml.safe_dump(best_params, sort_keys=True), encoding="utf-8")
    with atomic_file(outputs.metrics) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    db = storage_file(params.tune.storage)
    if db is None or not same_file(db, outputs.study_db):
        write_snapshot(storage, study.study_name, outputs.study_db)
    info = {
        "study_name": study.study_name,
        # what visualize and `stockclf study show` read: the DVC-tracked SQLite file
        "storage": f"sqlite:///{outputs.study_db.as_posix()}",
        "tuned_in": redact(params.tune.storage),
        "metric": params.tune.metric,
        "direction": params.tune.direction,
    }
    with atomic_file(outputs.study_info) as tmp:
        tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    write_trials_csv(study, params, outputs.trials_csv)
    write_history(study, params, outputs.live)
    return summary


TRIAL_COLUMNS = ("number", "state", "value", "duration_s", "retry_of", "failure", "fail_reason")


def write_trials_csv(study: optuna.Study, params: Params, path: Path) -> None:
    """Every trial, one row each: state, value, duration, why it failed, its params."""
    names = sorted(params.tune.parameter_ranges)
    with atomic_file(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([*TRIAL_COLUMNS, *names])
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            duration = t.duration.total_seconds() if t.duration is not None else None
            writer.writerow(
                [
                    t.number,
                    t.state.name,
                    t.value,
                    None if duration is None else round(duration, 3),
                    t.system_attrs.get("failed_trial"),
                    t.user_attrs.get("failure"),
                    t.user_attrs.get("fail_reason"),
                    *(t.params.get(n) for n in names),
                ]
            )


def write_history(study: optuna.Study, params: Params, live_dir: Path) -> None:
    """One dvclive step per finished trial (value, best so far, pruned, the numeric params),
    rebuilt from the study every run so a resumed study gives the same record. Not
    ``dvclive.optuna``'s callback: it opens a new ``Live`` per trial that wipes the previous
    one, so only the last trial survives, and inside a stage it rewrites dvc.yaml."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best_so_far = -math.inf if maximize else math.inf
    names = sorted(params.tune.parameter_ranges)
    with Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, resume=False) as live:
        for trial in sorted(
            study.get_trials(deepcopy=False, states=FINISHED), key=lambda t: t.number
        ):
            value = trial.value
            if value is None and trial.intermediate_values:
                value = trial.intermediate_values[max(trial.intermediate_values)]
            if value is None or not math.isfinite(value):
                continue
            if trial.state == optuna.trial.TrialState.COMPLETE:
                best_so_far = max(best_so_far, value) if maximize else min(best_so_far, value)
            live.step = trial.number
            live.log_metric("trial_value", value)
            live.log_metric("pruned", int(trial.state == optuna.trial.TrialState.PRUNED))
            if math.isfinite(best_so_far):
                live.log_metric("best_value", best_so_far)
            for name in names:
                param = trial.params.get(name)
                if isinstance(param, (int, float)) and not isinstance(param, bool):
                    live.log_metric(f"params/{name}", param)
