"""Optuna storages for the three URL kinds of :mod:`stockclf.storage_url`, two ways.

- :func:`open_tuning_storage` is what the tune stage and its workers write to, shared by
  several processes (busy timeouts, heartbeats, the retry of stale trials).
- :func:`open_reading_storage` and :func:`load_study_for_reading` are for everything that
  only reads a study (visualize, ``stockclf study show``). A file storage that is not there
  is an error naming what is there: connecting to a missing SQLite path would silently
  create an empty database, which ``dvc pull`` then refuses to overwrite (checked with
  dvc 3.67.1).

A PostgreSQL password belongs in the ``PGPASSWORD`` environment variable (read by libpq),
never in the URL in params.yaml.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from stockclf.config import TuneParams
from stockclf.errors import StockclfError
from stockclf.storage_url import StorageURL, parse_storage_url, redact
from stockclf.tuning.trials import RetryTrial

#: File names that look like a study storage, listed when the asked-for one is missing.
STORAGE_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".log", ".journal")


class StorageError(StockclfError, RuntimeError):
    """A storage URL that cannot be opened; the message says what exists instead."""


def _what_exists(path: Path) -> str:
    """The storage-like files next to ``path``, or that its directory is missing."""
    folder = path.parent
    if not folder.is_dir():
        return f"directory {folder}/ does not exist"
    found = sorted(p.name for p in folder.iterdir() if p.suffix in STORAGE_SUFFIXES)
    return f"{folder}/ holds {found}" if found else f"{folder}/ holds no study storage files"


def _parse(url: str) -> StorageURL:
    try:
        return parse_storage_url(url)
    except ValueError as err:
        raise StorageError(str(err)) from None


def open_reading_storage(url: str) -> BaseStorage:
    """An existing storage, to read: a missing SQLite or journal file is a
    :class:`StorageError` that lists the storage files that do exist; an unreachable
    server is one too, with the password redacted."""
    parsed = _parse(url)
    if parsed.path is not None and not parsed.path.is_file():
        raise StorageError(
            f"{url}: study storage not found ({_what_exists(parsed.path)}); run the tune stage "
            "(`dvc repro tune`) or fetch it (`dvc pull tune`)"
        )
    if parsed.kind == "journal":
        return JournalStorage(JournalFileBackend(str(parsed.path)))
    try:
        return RDBStorage(_with_driver(url))
    except Exception as err:  # sqlalchemy's OperationalError, a missing driver, ...
        raise StorageError(f"{redact(url)}: cannot open the study storage: {err}") from err


def _with_driver(url: str) -> str:
    """Name the installed PostgreSQL driver (psycopg 3): SQLAlchemy < 2.1 picks psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def study_names(storage: BaseStorage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def has_study(storage: BaseStorage, name: str) -> bool:
    return name in study_names(storage)


def load_study_for_reading(url: str, name: str | None) -> optuna.Study:
    """Open an existing study; a missing storage or study is an error naming what exists.

    ``name=None`` picks the only study in the storage, and is an error when it holds
    several (their names are listed).
    """
    storage = open_reading_storage(url)
    names = study_names(storage)
    shown = redact(url)
    if not names:
        raise StorageError(f"{shown}: holds no study yet; run the tune stage (`dvc repro tune`)")
    if name is None:
        if len(names) != 1:
            raise StorageError(f"{shown}: holds studies {names}; choose one with --study")
        name = names[0]
    if name not in names:
        raise StorageError(f"{shown}: no study named {name!r}; it holds {names}")
    return optuna.load_study(study_name=name, storage=storage)


#: Seconds a SQLite writer waits for another process's lock before "database is locked".
#: pysqlite's default is 5 s. Measured on 2 cores, 6 processes x 40 trivial trials on one
#: file: a 0.05 s wait failed about one trial in two, 5 s none; real trials write far less
#: often than that, so 60 s leaves a wide margin. The file stays in rollback-journal mode
#: (not WAL): DVC caches and pushes the .db file alone, and in WAL mode committed trials can
#: sit in the -wal file next to it.
SQLITE_BUSY_TIMEOUT_S = 60


def open_tuning_storage(url: str, tune: TuneParams | None = None) -> BaseStorage:
    """The storage the tune stage and its workers write to, shared by several processes.

    SQLite gets a long busy timeout (above). With ``tune``, SQLite and PostgreSQL get
    Optuna's heartbeats, so a trial whose worker died is failed after ``tune.grace_period``
    and queued again (:class:`RetryTrial`, up to ``tune.max_retry`` times); without it the
    storage is plain (for tests and tools that only look). A journal file has no heartbeats
    (the tuning workers sweep its stale trials themselves) and its half-written last line,
    if any, is repaired first.
    """
    parsed = _parse(url)
    if parsed.path is not None:
        parsed.path.parent.mkdir(parents=True, exist_ok=True)
    if parsed.kind == "journal":
        repair_journal(parsed.path)
        return JournalStorage(JournalFileBackend(str(parsed.path)))
    engine_kwargs: dict = (
        {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
        if parsed.kind == "sqlite"
        else {"pool_pre_ping": True}  # a server restart must not kill a long-running worker
    )
    heartbeats: dict = {}
    if tune is not None:
        heartbeats = {
            "heartbeat_interval": tune.heartbeat_interval,
            "grace_period": tune.grace_period,
            "heartbeat_stale_trial_callback": RetryTrial(tune.max_retry),
        }
    attempts = 6
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(_with_driver(url), engine_kwargs=engine_kwargs, **heartbeats)
        except Exception as err:  # sqlalchemy's OperationalError, a missing driver, ...
            # Workers creating the tables of a new database at once (Optuna checks, then
            # creates): the loser gets "table ... already exists" or a duplicate version row.
            # Measured: 3 processes on a new SQLite file, 1 in 3 lost; the next try works.
            if attempt < attempts - 1 and _creation_race(err):
                time.sleep(0.5)
                continue
            raise StorageError(f"{redact(url)}: cannot open the study storage: {err}") from err
    raise AssertionError("unreachable")


def _creation_race(err: Exception) -> bool:
    text = str(err)
    return any(m in text for m in ("already exists", "UNIQUE constraint", "duplicate key"))


def repair_journal(path: Path) -> Path | None:
    """Cut a half-written last line off a journal file; return the backup of the original.

    A crash or a full disk in the middle of an append leaves a line without its newline,
    after which every ``create_new_trial`` raises ``AttributeError`` (measured, optuna 5.0). The
    whole lines before it are complete operations, so the file is truncated to its last
    newline, under the same lock file Optuna's writers take, after a copy is kept.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return None
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        with path.open("rb+") as fh:
            end = fh.seek(0, os.SEEK_END)
            fh.seek(end - 1)
            if fh.read(1) == b"\n":
                return None
            keep = _last_newline(fh, end) + 1
            backup = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%dT%H%M%S')}")
            shutil.copy2(path, backup)
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        lock.release()
    print(
        f"warning: {path}: dropped a half-written last line ({end - keep} bytes); "
        f"the original is kept as {backup}",
        file=sys.stderr,
    )
    return backup


def _last_newline(fh, end: int, chunk: int = 1 << 16) -> int:
    """Offset of the last newline before ``end`` (-1 if none), reading backwards."""
    pos = end
    while pos > 0:
        start = max(0, pos - chunk)
        fh.seek(start)
        found = fh.read(pos - start).rfind(b"\n")
        if found >= 0:
            return start + found
        pos = start
    return -1
