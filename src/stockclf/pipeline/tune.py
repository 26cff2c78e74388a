"""The tune stage: open the study, run the missing trials, write what the study found."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from stockclf.config import Params
from stockclf.data.folds import make_folds
from stockclf.files import write_json
from stockclf.storage_url import same_file, storage_file
from stockclf.tuning.artifacts import ArtifactStore, relink_snapshot, sync_artifacts
from stockclf.tuning.checkpoints import prune_checkpoints
from stockclf.tuning.curves import write_trial_curves
from stockclf.tuning.identity import identify
from stockclf.tuning.objective import TrainFn
from stockclf.tuning.outputs import (
    study_summary,
    write_best_params,
    write_history,
    write_study_record,
    write_trials_csv,
)
from stockclf.tuning.runner import run_trials, worker_spec
from stockclf.tuning.space import check_space, enqueue_defaults
from stockclf.tuning.study import open_tuning_study
from stockclf.tuning.warm_start import carry_trials
from stockclf.tuning.worker import Callback


@dataclass(frozen=True)
class TunePaths:
    prepared: Path  # the prepare stage's output
    study_db: Path  # the SQLite study DVC tracks: the storage itself by default, else a copy
    trials: Path  # per-trial curves and the top trials' checkpoints
    artifacts: Path  # the top trials' files for optuna-dashboard --artifact-dir
    best_params: Path  # the best trial's searched values, a params file for train_best
    metrics: Path  # best value, trial counts (a DVC metrics file)
    study_info: Path  # where readers find the study, and its name
    trials_csv: Path  # one row per trial
    live: Path  # the dvclive history, one step per trial

    @classmethod
    def under(cls, root: Path, prepared: Path) -> TunePaths:
        """The names dvc.yaml gives them, below ``root`` (tests and benchmarks; a test
        checks that dvc.yaml's tune command says the same)."""
        return cls(
            prepared=prepared,
            study_db=root / "study.db",
            trials=root / "trials",
            artifacts=root / "artifacts",
            best_params=root / "best_params.yaml",
            metrics=root / "metrics.json",
            study_info=root / "study.json",
            trials_csv=root / "trials.csv",
            live=root / "live",
        )


def run_tune(
    params: Params,
    paths: TunePaths,
    train_fn: TrainFn | None = None,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Bring the study up to ``n_trials`` finished trials and write every output.

    ``train_fn`` replaces the training of a trial (see :data:`TrainFn`; tests use it for
    worker processes, which a monkeypatch does not reach); ``callbacks`` run after each
    trial of an in-process worker (``n_jobs: 1``).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_space(params)
    # tune.folds that the prepared data cannot be cut into stops here, before any trial
    make_folds(paths.prepared, params.tune.folds, params.seed, params.data.stride)
    identity, name = identify(params, paths.prepared)
    url = params.tune.storage
    study, storage = open_tuning_study(params, name, url, paths.study_db)
    for key, value in (("identity", identity), ("metric", params.tune.metric)):
        study.set_user_attr(key, json.loads(json.dumps(value, default=str)))
    carry_trials(study, storage, params, identity)
    enqueue_defaults(study, params)
    keep, store = params.tune.keep_top_k, ArtifactStore(paths.artifacts)
    sync_artifacts(study, storage, paths.trials, store, keep)  # a resumed or crashed study
    spec = worker_spec(params, paths.prepared, paths.trials, study, url, train_fn, paths.artifacts)
    outcome = run_trials(spec, study, storage, params.tune.n_jobs, callbacks)
    prune_checkpoints(study, paths.trials, keep)
    sync_artifacts(study, storage, paths.trials, store, keep)
    summary = study_summary(study)
    write_best_params(study, params, paths.best_params)
    write_json(paths.metrics, summary)
    write_study_record(study, storage, params, paths.study_db, paths.study_info)
    db = storage_file(url)
    if db is None or not same_file(db, paths.study_db):
        relink_snapshot(study, storage, paths.study_db, keep)
    write_trials_csv(study, params, paths.trials_csv)
    write_history(study, params, paths.live)
    # after write_history: its dvclive Live clears plots/metrics/ (not this file) when it opens
    write_trial_curves(study, paths.trials, trial_curves_file(paths.live))
    return {**summary, "stopped": outcome}


def trial_curves_file(live: Path) -> Path:
    """The merged curves of every trial, inside the stage's dvclive output (dvc.yaml's
    trial-curve plots name it)."""
    return live / "plots" / "trial_curves.tsv"


def describe(summary: dict[str, Any]) -> str:
    return (
        f"best {summary['best_value']:.4f} (trial {summary['best_trial']}); "
        f"{summary['n_complete']} complete, {summary['n_pruned']} pruned, "
        f"{summary['n_fail']} failed"
    )
