"""The top trials' checkpoint and training-curve figure in Optuna's artifact store, so that
``optuna-dashboard <storage> --artifact-dir tuning/artifacts`` offers them on each trial.

Where a listing lives. ``optuna.artifacts.upload_artifact`` lists an artifact in the
trial's system attrs, which every storage (in-memory, RDB, journal) refuses to write once
the trial is finished (``UpdateFinishedTrialError``), and no storage can delete an attr. A
trial enters the top ``tune.keep_top_k`` when it finishes and leaves it later, so a listing
on the trial could never be withdrawn: the dashboard would go on offering a deleted file.
Each listing is therefore a study system attr under optuna-dashboard's own key for an
artifact of a trial, ``dashboard:artifacts:<trial_id>:<artifact_id>`` (the dashboard lists
those with the trial's; its delete button writes JSON ``null`` there, which it skips).
Removal writes ``null`` the same way; study attrs stay writable on every storage.

Several workers. Each worker uploads for its own trial when it completes in the top k,
then removes the listings of the trials outside the top k. It reads the listings before the
trials: a listed trial was finished before its listing was written, so it is ranked, and a
finished trial out of the top k never comes back; two workers removing at once agree. An
upload opens its source first, then writes the listing, then the file (under a temporary
name, renamed). Repairs (a listing without its file, a file nobody lists, a top trial
without its files, after a crash or a resume) happen only in :func:`sync_artifacts`, which
the tune stage runs while no worker of its own runs: before its workers start and after.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.storages import BaseStorage, RDBStorage

from stockclf.tuning.checkpoints import CHECKPOINT_DIR, top_trials, trial_dir

#: optuna-dashboard's prefix for a trial's artifact in the study's system attrs
#: (DASHBOARD_ARTIFACTS_ATTR_PREFIX in optuna_dashboard/artifact/_backend.py; tested).
TRIAL_KEY = "dashboard:artifacts:"
#: Optuna's prefix, for artifacts listed on a study or trial by ``upload_artifact``.
OPTUNA_KEY = "artifacts:"
NULL = json.dumps(None)
FIGURE_DPI = 100


def checkpoint_name(number: int) -> str:
    return f"trial_{number:04d}_best.ckpt"


def figure_name(number: int) -> str:
    return f"trial_{number:04d}_training_curves.png"


class ArtifactStore(FileSystemArtifactStore):
    """Optuna's file-system store in ``base_path`` (created), whose writes are atomic: its
    own ``write`` fills the final file in place, so a crash would leave a truncated
    checkpoint under a listed id."""

    def __init__(self, base_path: Path) -> None:
        base_path.mkdir(parents=True, exist_ok=True)
        super().__init__(base_path)
        self.base_path = base_path

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        tmp = f".{artifact_id}.tmp"
        super().write(tmp, content_body)
        (self.base_path / tmp).replace(self.base_path / artifact_id)

    def names(self) -> set[str]:
        return {p.name for p in self.base_path.iterdir()}


@dataclass(frozen=True)
class Listing:
    """One live listing: its attr key and the JSON meta the dashboard reads."""

    key: str
    trial_id: int
    value: str

    @property
    def artifact_id(self) -> str:
        return json.loads(self.value)["artifact_id"]

    @property
    def filename(self) -> str:
        return json.loads(self.value)["filename"]


def listings(storage: BaseStorage, study_id: int) -> list[Listing]:
    """The study's live (not ``null``) listings of trial artifacts, by key."""
    found = []
    for key, value in sorted(storage.get_study_system_attrs(study_id).items()):
        if key.startswith(TRIAL_KEY) and value != NULL:
            trial_id, _, _ = key[len(TRIAL_KEY) :].partition(":")
            found.append(Listing(key, int(trial_id), value))
    return found


def _trial_ids(storage: BaseStorage, study_id: int, numbers: set[int]) -> dict[int, int]:
    """Trial id -> number, for ``numbers`` (the dashboard keys trials by id)."""
    get = storage.get_trial_id_from_study_id_trial_number
    return {get(study_id, n): n for n in numbers}


def _upload(
    storage: BaseStorage, study_id: int, trial_id: int, path: Path, name: str, store: ArtifactStore
) -> None:
    mimetype, encoding = mimetypes.guess_type(name)
    artifact_id = str(uuid.uuid4())
    meta = {
        "artifact_id": artifact_id,
        "filename": name,
        "mimetype": mimetype or "application/octet-stream",
        "encoding": encoding,
    }
    with path.open("rb") as source:  # open first: a checkpoint pruned meanwhile stays readable
        storage.set_study_system_attr(
            study_id, f"{TRIAL_KEY}{trial_id}:{artifact_id}", json.dumps(meta)
        )
        store.write(artifact_id, source)


def upload_trial(
    storage: BaseStorage,
    study_id: int,
    number: int,
    trials_root: Path,
    store: ArtifactStore,
    have: frozenset[str] = frozenset(),
) -> list[str]:
    """Upload trial ``number``'s checkpoint and its training-curve figure (those it has, and
    not named in ``have``); return the file names uploaded."""
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    root = trial_dir(trials_root, number)
    done = []
    checkpoint = root / CHECKPOINT_DIR / "best.ckpt"
    if checkpoint_name(number) not in have and checkpoint.is_file():
        _upload(storage, study_id, trial_id, checkpoint, checkpoint_name(number), store)
        done.append(checkpoint_name(number))
    if figure_name(number) not in have and any((root / "plots" / "metrics").glob("*/*.tsv")):
        from stockclf.reporting.training_plots import plot_training_curves

        with tempfile.TemporaryDirectory() as tmp:
            png = Path(tmp) / figure_name(number)
            plot_training_curves(root, png, FIGURE_DPI)
            _upload(storage, study_id, trial_id, png, figure_name(number), store)
        done.append(figure_name(number))
    return done


def _remove(storage: BaseStorage, study_id: int, listing: Listing, store: ArtifactStore) -> None:
    storage.set_study_system_attr(study_id, listing.key, NULL)
    # ArtifactNotFound: removed by another worker, or never written (a crash)
    with contextlib.suppress(ArtifactNotFound):
        store.remove(listing.artifact_id)


def remove_outside_top(
    study: optuna.Study, storage: BaseStorage, store: ArtifactStore, keep_top_k: int
) -> list[Listing]:
    """Withdraw and delete the artifacts of trials outside the top ``keep_top_k``."""
    study_id = storage.get_study_id_from_name(study.study_name)
    listed = listings(storage, study_id)  # before the trials: see the module docstring
    keep = _trial_ids(storage, study_id, top_trials(study, keep_top_k))
    stale = [listing for listing in listed if listing.trial_id not in keep]
    for listing in stale:
        _remove(storage, study_id, listing, store)
    return stale


def referenced_ids(storage: BaseStorage) -> set[str]:
    """Every artifact id listed anywhere in ``storage``: by this module, by
    ``optuna.artifacts.upload_artifact`` or by the dashboard, for any study."""
    values: list[str] = []
    for study in storage.get_all_studies():
        study_id = storage.get_study_id_from_name(study.study_name)
        attrs = storage.get_study_system_attrs(study_id)
        values += [v for k, v in attrs.items() if k.startswith((TRIAL_KEY, OPTUNA_KEY))]
        for trial in storage.get_all_trials(study_id, deepcopy=False):
            values += [v for k, v in trial.system_attrs.items() if k.startswith(OPTUNA_KEY)]
    metas = [json.loads(v) if isinstance(v, str) else v for v in values]
    return {m["artifact_id"] for m in metas if isinstance(m, dict) and "artifact_id" in m}


def sync_artifacts(
    study: optuna.Study,
    storage: BaseStorage,
    trials_root: Path,
    store: ArtifactStore,
    keep_top_k: int,
) -> dict[str, list[str]]:
    """Make the store and the listings match the top ``keep_top_k`` trials: remove what left
    the top k, listings without their file and duplicates; upload what a top trial lacks;
    delete files nobody lists (and temporaries of a crashed write). Only while no worker of
    this store runs (an upload in flight would look broken)."""
    files = store.names()  # before the listings, so a listed file is never taken for an orphan
    removed = [listing.key for listing in remove_outside_top(study, storage, store, keep_top_k)]
    study_id = storage.get_study_id_from_name(study.study_name)
    have: dict[int, set[str]] = {}
    for listing in listings(storage, study_id):
        names = have.setdefault(listing.trial_id, set())
        if listing.artifact_id not in files or listing.filename in names:
            _remove(storage, study_id, listing, store)
            removed.append(listing.key)
        else:
            names.add(listing.filename)
    uploaded = []
    for trial_id, number in sorted(
        _trial_ids(storage, study_id, top_trials(study, keep_top_k)).items()
    ):
        owned = frozenset(have.get(trial_id, ()))
        uploaded += upload_trial(storage, study_id, number, trials_root, store, owned)
    orphans = sorted((files & store.names()) - referenced_ids(storage))
    for name in orphans:
        (store.base_path / name).unlink(missing_ok=True)
    return {"uploaded": uploaded, "removed": removed, "orphans": orphans}


def relink_snapshot(
    study: optuna.Study, storage: BaseStorage, snapshot: Path, keep_top_k: int
) -> None:
    """Point the listings in the SQLite snapshot of ``study`` at the snapshot's trial ids.

    ``optuna.copy_study`` copies the study's system attrs verbatim, and trial ids are not
    kept across storages: a copied key may name another trial of the copy. Only for a
    snapshot that is not the storage itself.
    """
    source_id = storage.get_study_id_from_name(study.study_name)
    numbers = _trial_ids(storage, source_id, top_trials(study, keep_top_k))
    target = RDBStorage(f"sqlite:///{snapshot}")
    try:
        copy_id = target.get_study_id_from_name(study.study_name)
        want = {}
        for listing in listings(storage, source_id):
            if listing.trial_id in numbers:
                trial_id = target.get_trial_id_from_study_id_trial_number(
                    copy_id, numbers[listing.trial_id]
                )
                want[f"{TRIAL_KEY}{trial_id}:{listing.artifact_id}"] = listing.value
        copied = target.get_study_system_attrs(copy_id)
        for key, value in copied.items():
            if key.startswith(TRIAL_KEY) and key not in want and value != NULL:
                target.set_study_system_attr(copy_id, key, NULL)
        for key, value in want.items():
            if copied.get(key) != value:
                target.set_study_system_attr(copy_id, key, value)
    finally:
        target.engine.dispose()


class ArtifactKeeper:
    """Optuna callback of a worker: upload its own trial's files when the trial completes
    in the top k, then remove what left the top k. Never raises: artifacts are a view of the
    study, and the stage's next :func:`sync_artifacts` repairs what a failure left."""

    def __init__(
        self, storage: BaseStorage, store_dir: Path, trials_root: Path, keep_top_k: int
    ) -> None:
        self.storage = storage
        self.store = ArtifactStore(store_dir)
        self.trials_root = trials_root
        self.keep_top_k = keep_top_k

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        try:
            if trial.state == optuna.trial.TrialState.COMPLETE and trial.number in top_trials(
                study, self.keep_top_k
            ):
                study_id = self.storage.get_study_id_from_name(study.study_name)
                upload_trial(self.storage, study_id, trial.number, self.trials_root, self.store)
            remove_outside_top(study, self.storage, self.store, self.keep_top_k)
        except Exception as err:
            print(
                f"warning: trial {trial.number}: its dashboard artifacts were not updated "
                f"({type(err).__name__}: {err}); the tune stage's next run repairs them",
                file=sys.stderr,
            )
