"""Which study a set of params belongs to, where it is stored, and how it samples and prunes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import optuna
import yaml

from stockclf.config import Params, TuneParams, tunable_is_int
from stockclf.errors import StockclfError

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
        if k not in tuned and k not in ("max_epochs", "num_workers", "accelerator", "devices")
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


def sqlite_path(storage: str) -> Path | None:
    """The file behind a ``sqlite:///relative/or/absolute`` URL, or None for other URLs."""
    prefix = "sqlite:///"
    return Path(storage[len(prefix) :]) if storage.startswith(prefix) else None


def locked_outputs(lock_file: str | Path = "dvc.lock", stage: str = "tune") -> set[str]:
    path = Path(lock_file)
    if not path.exists():
        return set()
    lock = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    outs = lock.get("stages", {}).get(stage, {}).get("outs", [])
    return {Path(o["path"]).as_posix() for o in outs if "path" in o}


def check_study_present(storage: str, lock_file: str | Path = "dvc.lock") -> None:
    """Refuse to start when dvc.lock records the study file but it is not on disk.

    Connecting would create an empty database, after which ``dvc pull`` refuses to
    overwrite it and every earlier trial is silently lost.
    """
    db = sqlite_path(storage)
    if db is None or db.exists():
        return
    if db.as_posix() in locked_outputs(lock_file):
        raise StudyError(
            f"{db}: dvc.lock records this study but the file is missing. "
            f"Run `dvc pull tune` to fetch it from the remote. To discard it and start a "
            f"new study on purpose, remove the `tune` entry from {lock_file} first."
        )


def make_sampler(tune: TuneParams, seed: int, n_existing: int) -> optuna.samplers.BaseSampler:
    """A sampler seeded from ``seed + n_existing``: a seeded sampler that is simply
    re-created after a resume replays the same parameters (optuna issue 3255)."""
    s = seed + n_existing
    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=s)
    if tune.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=s, n_startup_trials=tune.n_startup_trials)
    return optuna.samplers.TPESampler(seed=s, n_startup_trials=tune.n_startup_trials)


def make_pruner(tune: TuneParams) -> optuna.pruners.BasePruner:
    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=tune.n_startup_trials, n_warmup_steps=1)
    if tune.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=tune.tuning_max_epochs)
    return optuna.pruners.NopPruner()


def open_study(params: Params, name: str) -> optuna.Study:
    """Create or load the study ``name`` in ``tune.storage`` with a resume-safe sampler."""
    storage = params.tune.storage
    check_study_present(storage)
    db = sqlite_path(storage)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction=params.tune.direction,
        pruner=make_pruner(params.tune),
        load_if_exists=True,
    )
    study.sampler = make_sampler(params.tune, params.seed, len(study.trials))
    return study


def load_existing_study(storage: str, name: str | None) -> optuna.Study:
    """Open a study for reading; a missing storage or study is an error naming what exists."""
    db = sqlite_path(storage)
    if db is not None and not db.exists():
        raise StudyError(f"{db}: study storage not found; run `dvc repro tune` or `dvc pull tune`")
    summaries = optuna.get_all_study_summaries(storage)
    names = [s.study_name for s in summaries]
    if name is None:
        if len(names) != 1:
            raise StudyError(f"{storage}: holds studies {names}; choose one with --study")
        name = names[0]
    if name not in names:
        raise StudyError(f"{storage}: no study named {name!r}; it holds {names}")
    return optuna.load_study(study_name=name, storage=storage)


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
