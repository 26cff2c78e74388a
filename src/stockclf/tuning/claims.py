"""The claim lock: one worker at a time decides whether a new trial may start.

Under the lock a worker fails stale trials, counts finished and running ones, and creates
its trial only if the count allows (:func:`stockclf.tuning.trials.count_trials`); the lock
is released as soon as the trial exists, so training runs in parallel. That is what makes
several workers (processes on one machine, or machines sharing a PostgreSQL study) add up
to exactly ``n_trials`` finished trials, none twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage

from stockclf.storage_url import storage_file


class FileClaimLock:
    """``flock`` on a file in the temp directory, one per storage file: processes on this
    machine only (which is what SQLite and journal storages are for). Released by the
    kernel if the holder dies."""

    def __init__(self, storage_path: Path) -> None:
        key = hashlib.sha256(str(storage_path.resolve()).encode()).hexdigest()[:16]
        self.path = Path(tempfile.gettempdir()) / f"stockclf-claim-{key}.lock"
        self._fh: Any = None

    def acquire(self) -> None:
        if self._fh is None:
            self._fh = self.path.open("a")
            fcntl.flock(self._fh, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


class AdvisoryClaimLock:
    """A PostgreSQL session advisory lock keyed by the study name: one claim at a time over
    every machine. Released by the server if the holder's connection drops."""

    def __init__(self, engine: Any, study_name: str) -> None:
        self.engine = engine
        self.key = int.from_bytes(
            hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True
        )
        self._conn: Any = None

    def acquire(self) -> None:
        from sqlalchemy import text

        if self._conn is None:
            self._conn = self.engine.connect()
            self._conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
            self._conn.commit()

    def release(self) -> None:
        from sqlalchemy import text

        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None


def claim_lock(
    url: str, storage: BaseStorage, study_name: str
) -> FileClaimLock | AdvisoryClaimLock:
    path = storage_file(url)
    if path is not None:
        return FileClaimLock(path)
    return AdvisoryClaimLock(storage.engine, study_name)


@contextlib.contextmanager
def holding(lock: FileClaimLock | AdvisoryClaimLock) -> Iterator[None]:
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
