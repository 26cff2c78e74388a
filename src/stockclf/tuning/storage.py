"""Study storage URLs -> Optuna storage objects, for SQLite, journal files and PostgreSQL.

Optuna takes SQLAlchemy URLs (``sqlite:///...``, ``postgresql://...``) directly, but has no
URL for its journal file storage. Here ``journal:///path/to/study.log`` names one, with the
same rule for relative and absolute paths as SQLite (three slashes + a relative path, four
for an absolute one), so every command takes one ``--storage URL`` whatever the backend.

For reading (``create=False``) a file storage that is not there is an error naming what is
there: connecting to a missing SQLite path would silently create an empty database, which
``dvc pull`` then refuses to overwrite (checked with dvc 3.67.1). A PostgreSQL password
belongs in the ``PGPASSWORD`` environment variable (read by libpq), never in the URL in
params.yaml.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from sqlalchemy.engine import make_url

from stockclf.errors import StockclfError

SQLITE = "sqlite:///"
JOURNAL = "journal:///"
RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")
#: File names that look like a study storage, listed when the asked-for one is missing.
STORAGE_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".log", ".journal")


class StorageError(StockclfError, RuntimeError):
    """A storage URL that cannot be opened; the message says what exists instead."""


def storage_file(url: str) -> Path | None:
    """The file behind a ``sqlite:///`` or ``journal:///`` URL, or None for a server URL."""
    for prefix in (SQLITE, JOURNAL):
        if url.startswith(prefix):
            return Path(url[len(prefix) :])
    return None


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``, for messages and logs."""
    if storage_file(url) is not None or "://" not in url:
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: say nothing about its parts
        return url.split("://", 1)[0] + "://***"


def _what_exists(path: Path) -> str:
    """The storage-like files next to ``path``, or that its directory is missing."""
    folder = path.parent
    if not folder.is_dir():
        return f"directory {folder}/ does not exist"
    found = sorted(p.name for p in folder.iterdir() if p.suffix in STORAGE_SUFFIXES)
    return f"{folder}/ holds {found}" if found else f"{folder}/ holds no study storage files"


def open_storage(url: str, create: bool = False) -> BaseStorage:
    """An Optuna storage for ``url``: ``sqlite:///``, ``journal:///`` or a server URL.

    With ``create=False`` (reading) a missing SQLite or journal file is a
    :class:`StorageError` that lists the storage files that do exist; an unreachable
    server is one too, with the password redacted.
    """
    path = storage_file(url)
    if path is not None and not create and not path.is_file():
        raise StorageError(
            f"{url}: study storage not found ({_what_exists(path)}); run the tune stage "
            "(`dvc repro tune`) or fetch it (`dvc pull tune`)"
        )
    if path is not None and create:
        path.parent.mkdir(parents=True, exist_ok=True)
    if url.startswith(JOURNAL):
        return JournalStorage(JournalFileBackend(str(path)))
    scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else ""
    if scheme not in RDB_SCHEMES:
        raise StorageError(
            f"{redact(url)}: unknown storage URL; use sqlite:///path/study.db, "
            "journal:///path/study.log or postgresql://user@host/database"
        )
    try:
        return RDBStorage(url)
    except Exception as err:  # sqlalchemy's OperationalError, a missing driver, ...
        raise StorageError(f"{redact(url)}: cannot open the study storage: {err}") from err


def study_names(storage: BaseStorage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def load_study_for_reading(url: str, name: str | None) -> optuna.Study:
    """Open an existing study; a missing storage or study is an error naming what exists.

    ``name=None`` picks the only study in the storage, and is an error when it holds
    several (their names are listed).
    """
    storage = open_storage(url)
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


def open_tuning_storage(
    url: str,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    stale_callback: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> BaseStorage:
    """The storage the tune stage and its workers write to, shared by several processes.

    SQLite gets a long busy timeout (above); SQLite and PostgreSQL get Optuna's heartbeats, so
    a trial whose worker died is failed after ``grace_period`` and ``stale_callback`` (a
    retry) runs. A journal file has no heartbeats (the tuning workers sweep its stale trials
    themselves) and its half-written last line, if any, is repaired first.
    """
    path = storage_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if url.startswith(JOURNAL):
        repair_journal(path)
        return JournalStorage(JournalFileBackend(str(path)))
    scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else ""
    if scheme not in ("sqlite", "postgresql"):
        raise StorageError(
            f"{redact(url)}: the tuning engine writes to sqlite:///FILE, journal:///FILE "
            "or postgresql://USER@HOST/DB only"
        )
    engine_kwargs: dict = (
        {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
        if scheme == "sqlite"
        else {"pool_pre_ping": True}  # a server restart must not kill a long-running worker
    )
    if url.startswith("postgresql://"):
        # the installed driver (psycopg 3), named: SQLAlchemy < 2.1 would pick psycopg2
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    attempts = 6
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=stale_callback,
                )
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


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (relative paths resolved against the cwd)."""
    return Path(a).resolve() == Path(b).resolve()
