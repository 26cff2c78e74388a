"""Which study a set of params belongs to, how it samples and prunes, and how a dead trial
is failed and retried."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.storages import BaseStorage

from stockclf.config import Params, TuneParams, tunable_is_int
from stockclf.errors import StockclfError
from stockclf.tuning.storage import same_file, storage_file

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class StudyError(StockclfError, RuntimeError):
    """The study cannot be opened or used; the message says what to do."""


def data_fingerprint(prepared_dir: str | Path) -> str:
    """Hash of every prepared array and the meta file: the data version a study belongs to."""
    digest = hashlib.sha256()
    root = Path(prepared_dir)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if not files:
        raise StudyError(f"{root}: no prepared data; run the prepare stage (dvc repro prepare)")
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode())
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def study_identity(params: Params, fingerprint: str) -> dict[str, Any]:
    """Everything that makes two trials comparable: the search space, the training params
    it does not tune, the tuning budget and metric, and the data version.

    ``n_trials``, ``timeout``, ``n_jobs``, the sampler and the pruner are left out on
    purpose: changing them continues the same study.
    """
    tuned = set(params.tune.parameter_ranges)
    model = {k: v for k, v in params.model.model_dump().items() if k not in tuned}
    train = {
        k: v
        for k, v in params.train.model_dump().items()
        if k not in tuned and k not in ("max_epochs", "accelerator", "devices")
    }
    return {
        "search_space": {
            k: v.model_dump() for k, v in sorted(params.tune.parameter_ranges.items())
        },
        "model": model,
        "train": train,
        "seed": params.seed,
        "tuning_max_epochs": params.tune.tuning_max_epochs,
        "metric": params.tune.metric,
        "direction": params.tune.direction,
        "data": fingerprint,
    }


def study_name(identity: dict[str, Any]) -> str:
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return f"stockclf-{hashlib.sha256(blob).hexdigest()[:12]}"


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


def make_sampler(
    tune: TuneParams, seed: int, n_existing: int, worker: int = 0
) -> optuna.samplers.BaseSampler:
    """A sampler seeded from ``seed + n_existing`` (+ a stride per worker process).

    A seeded sampler that is simply re-created after a resume replays the same parameters
    (optuna issue 3255), and workers started together with one seed would propose the same
    points. TPE's ``constant_liar`` keeps parallel workers from sampling next to each
    other's running trials; with one worker there are none and it changes nothing.
    """
    s = seed + n_existing + 100_003 * worker
    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=s)
    if tune.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(
            seed=s, n_startup_trials=tune.n_startup_trials, warn_independent_sampling=False
        )
    with warnings.catch_warnings():  # constant_liar is "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=s, n_startup_trials=tune.n_startup_trials, constant_liar=True
        )


def make_pruner(tune: TuneParams) -> optuna.pruners.BasePruner:
    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=tune.n_startup_trials, n_warmup_steps=1)
    if tune.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=tune.tuning_max_epochs)
    return optuna.pruners.NopPruner()


def has_study(storage: BaseStorage, name: str) -> bool:
    return name in (s.study_name for s in storage.get_all_studies())


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


def fail_trial(
    storage: BaseStorage, study: optuna.Study, number: int, reason: str, kind: str = "stale"
) -> bool:
    """Mark a RUNNING trial (possibly another process's) FAIL with ``fail_reason``.

    False when it had already finished (another worker got there first).
    """
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study.study_name), number
    )
    try:
        storage.set_trial_user_attr(trial_id, "failure", kind)
        storage.set_trial_user_attr(trial_id, "fail_reason", reason[:1000])
        return storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


class RetryTrial:
    """Queue a failed trial's params again (a WAITING trial) up to ``max_retry`` times.

    Same record as Optuna's ``RetryHeartbeatStaleTrialCallback`` (``failed_trial`` and
    ``retry_history`` system attributes, so its ``retried_trial_number`` works), but without
    copying the user attributes: the retry must not inherit the dead trial's
    ``fail_reason``. Also used as the RDB storages' heartbeat-stale callback.
    """

    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if len(history) > self.max_retry:
            return False
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                system_attrs={
                    "failed_trial": trial.system_attrs.get("failed_trial", trial.number),
                    "retry_history": history,
                },
            )
        )
        return True


def suggest(trial: optuna.Trial, tune: TuneParams) -> dict[str, Any]:
    """Draw one value per searched name from ``tune.parameter_ranges``."""
    values: dict[str, Any] = {}
    for name, spec in tune.parameter_ranges.items():
        if hasattr(spec, "choices"):
            values[name] = trial.suggest_categorical(name, spec.choices)
        elif tunable_is_int(name):
            values[name] = trial.suggest_int(
                name, int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log
            )
        else:
            values[name] = trial.suggest_float(
                name, spec.low, spec.high, step=spec.step, log=spec.log
            )
    return values
