"""The SQLite snapshot of the study: the tune stage's DVC output whatever the storage.

dvc.yaml declares ``tuning/study.db`` as a persisted output. With the default storage
(``sqlite:///tuning/study.db``) that file *is* the study. With a journal file or PostgreSQL
the stage copies the study into it at the end of every run, so DVC always finds its output,
``dvc push`` shares the study, and the visualize stage and ``stockclf study show`` read a
versioned file. In the other direction, a storage that lacks the study (a fresh clone with
a journal storage, a new database server) is seeded from the snapshot, so ``dvc pull`` then
``dvc repro`` resumes rather than starting an empty study.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import sqlite3
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, RDBStorage

from stockclf.tuning.storage import has_study

#: Trials that were not finished when the snapshot was taken cannot be resumed from it.
UNFINISHED_REASON = "still running when the snapshot this study was restored from was taken"


def _fast_sqlite(path: Path) -> RDBStorage:
    """A SQLite storage without fsync per commit (measured: 100 trials copy in 1.4 s
    instead of 4.0 s). Safe here because the file is a temporary that is synced once and
    renamed into place only when complete."""

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=60)
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA journal_mode=MEMORY")
        return conn

    return RDBStorage(f"sqlite:///{path}", engine_kwargs={"creator": connect})


def write_snapshot(storage: BaseStorage, name: str, path: Path) -> None:
    """Copy study ``name`` into the SQLite file ``path``, atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    target = _fast_sqlite(tmp)
    try:
        optuna.copy_study(from_study_name=name, from_storage=storage, to_storage=target)
        target.engine.dispose()
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        target.engine.dispose()
        tmp.unlink(missing_ok=True)


def seed_from_snapshot(path: Path, name: str, storage: BaseStorage) -> int:
    """Copy study ``name`` from the snapshot into ``storage``; return the trials copied.

    Trial numbers are kept (trials are added in order), so ``trials/trial_NNNN`` still
    matches. A trial that was RUNNING in the snapshot is added as FAIL with a reason (its
    worker is gone); WAITING retries stay queued.
    """
    snapshot = RDBStorage(f"sqlite:///{path}")
    try:
        source = optuna.load_study(study_name=name, storage=snapshot)
        trials = source.get_trials(deepcopy=True)
        directions, user_attrs = source.directions, source.user_attrs
    finally:
        snapshot.engine.dispose()
    target = optuna.create_study(
        study_name=name, storage=storage, directions=directions, load_if_exists=False
    )
    for key, value in user_attrs.items():
        target.set_user_attr(key, value)
    study_id = storage.get_study_id_from_name(name)
    for trial in trials:
        if trial.state == optuna.trial.TrialState.RUNNING:
            trial = copy.deepcopy(trial)
            trial.state = optuna.trial.TrialState.FAIL
            trial.datetime_complete = trial.datetime_start or dt.datetime.now()
            trial.set_user_attr("failure", "stale")
            trial.set_user_attr("fail_reason", UNFINISHED_REASON)
        storage.create_new_trial(study_id, template_trial=trial)
    return len(trials)


def snapshot_has_study(path: Path, name: str) -> bool:
    if not path.is_file():
        return False
    storage = RDBStorage(f"sqlite:///{path}", skip_compatibility_check=True)
    try:
        return has_study(storage, name)
    finally:
        storage.engine.dispose()
