"""Opening the study the tune stage and its workers share, after the checks that keep
trials from being lost."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
from optuna.storages import BaseStorage

from stockclf.config import Params
from stockclf.storage_url import same_file, storage_file
from stockclf.tuning.claims import claim_lock, holding
from stockclf.tuning.lockfile import check_study_present
from stockclf.tuning.samplers import make_pruner, make_sampler
from stockclf.tuning.snapshot import seed_from_snapshot, snapshot_has_study
from stockclf.tuning.storage import has_study, open_tuning_storage


def open_study(params: Params, name: str, storage: BaseStorage, worker: int = 0) -> optuna.Study:
    """Create or load the study ``name`` with a resume-safe sampler and the pruner."""
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction=params.tune.direction,
        pruner=make_pruner(params.tune),
        load_if_exists=True,
    )
    n_existing = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(params.tune, params.seed, n_existing, worker)
    return study


def open_tuning_study(
    params: Params, name: str, url: str, snapshot: Path | None
) -> tuple[optuna.Study, BaseStorage]:
    """Open (or create) the study, after the checks that keep trials from being lost.

    A study file that dvc.lock records but that is missing stops the stage (``dvc pull``).
    A storage without the study is seeded from the snapshot when that holds it.
    """
    check_study_present(url)  # before connecting: connecting creates an empty SQLite file
    storage = open_tuning_storage(url, params.tune)
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
