"""What ``dvc.lock`` says must be on disk: a study file it records but that is missing
stops the stage with the command that fetches it, before anything connects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from stockclf.errors import StudyError
from stockclf.storage_url import same_file, storage_file


def locked_outputs(lock_file: str | Path = "dvc.lock", stage: str = "tune") -> set[str]:
    path = Path(lock_file)
    if not path.exists():
        return set()
    lock = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    outs = lock.get("stages", {}).get(stage, {}).get("outs", [])
    return {Path(o["path"]).as_posix() for o in outs if "path" in o}


def _pull_message(path: Path, lock_file: str | Path) -> str:
    return (
        f"{path}: dvc.lock records this study but the file is missing. "
        f"Run `dvc pull tune` to fetch it from the remote. To discard it and start a "
        f"new study on purpose, remove the `tune` entry from {lock_file} first."
    )


def check_study_present(
    storage: str,
    lock_file: str | Path = "dvc.lock",
    snapshot: Path | None = None,
    storage_has_study: Callable[[], bool] | None = None,
) -> None:
    """Refuse to start when dvc.lock records the study's file but it is not on disk.

    Connecting would create an empty database, after which ``dvc pull`` refuses to
    overwrite it and every earlier trial is silently lost. ``snapshot`` is the SQLite copy
    the stage writes when the storage is a journal file or a server: if it is locked but
    missing, the study must be found in the storage itself (``storage_has_study``), or the
    snapshot pulled, since the stage would seed a new storage from it.
    """
    locked = locked_outputs(lock_file)
    db = storage_file(storage)
    if db is not None and not db.exists() and db.as_posix() in locked:
        raise StudyError(_pull_message(db, lock_file))
    if snapshot is None or snapshot.exists() or snapshot.as_posix() not in locked:
        return
    if db is not None and same_file(db, snapshot):
        return  # the storage is the snapshot: handled above
    if storage_has_study is None or not storage_has_study():
        raise StudyError(_pull_message(snapshot, lock_file))
