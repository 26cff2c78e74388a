"""What the tune stage writes from its study: the best params, the summary metrics, the
study record, one CSV row per trial and the dvclive history. Each file is rebuilt from the
study on every run, so a resumed or extended study writes what a fresh one would."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import optuna
import yaml
from dvclive import Live
from optuna.storages import BaseStorage

from stockclf.config import Params
from stockclf.files import atomic_file, write_json
from stockclf.storage_url import redact, same_file, storage_file
from stockclf.tuning.snapshot import write_snapshot
from stockclf.tuning.space import from_trial
from stockclf.tuning.trials import FINISHED

#: Significant digits of a float in best_params.yaml (see :func:`lock_safe`).
LOCK_SAFE_DIGITS = 12


def lock_safe(value: Any) -> Any:
    """``value``, a float rounded to :data:`LOCK_SAFE_DIGITS` significant digits.

    DVC copies each params value into ``dvc.lock`` and rewrites the whole lock after every
    stage with ruamel.yaml, which re-emits a float it read in exponent form truncated
    rather than rounded (0.19.1: ``5.12429239312534e-05`` comes back as ``...533e-05``).
    ``train_best`` then looks changed right after a full ``dvc repro``. Measured over 4,000
    values in [1e-7, 1]: 425 broke at full precision, 32 at 14 digits, none at 13 or 12.
    """
    return float(f"{value:.{LOCK_SAFE_DIGITS}g}") if isinstance(value, float) else value


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
        reasons = {t.user_attrs.get("fail_reason", "unknown") for t in failed}
        raise RuntimeError(
            f"study {study.study_name}: no trial completed ({len(failed)} failed: "
            f"{sorted(reasons)[:3]}); nothing to write as best params"
        )
    return study.best_trial


def study_summary(study: optuna.Study) -> dict[str, Any]:
    """The tune stage's metrics: the best value and trial, and the trial counts by state."""
    best = best_trial(study)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    summary = {
        # which validation metric best_value is (tune.metric), for a reader of this file alone
        "metric": study.user_attrs.get("metric"),
        "best_value": best.value,
        "best_trial": best.number,
        "n_complete": states.count(optuna.trial.TrialState.COMPLETE),
        "n_pruned": states.count(optuna.trial.TrialState.PRUNED),
        "n_fail": states.count(optuna.trial.TrialState.FAIL),
    }
    # The plain cross-entropy of the best trial's kept epoch: below ln(K) means its
    # probabilities beat always saying 1/K per class.
    if "val_loss" in best.user_attrs.get("best_epoch", {}):
        summary["best_val_loss"] = best.user_attrs["best_epoch"]["val_loss"]
    return summary


def write_best_params(study: optuna.Study, params: Params, path: Path) -> None:
    """The best trial's searched names only, with the value types training expects."""
    best = best_trial(study)
    values = from_trial(params.tune, best.params)
    best_params = {k: lock_safe(v) for k, v in values.items()}
    with atomic_file(path) as tmp:
        tmp.write_text(yaml.safe_dump(best_params, sort_keys=True), encoding="utf-8")


def write_study_record(
    study: optuna.Study, storage: BaseStorage, params: Params, study_db: Path, path: Path
) -> None:
    """Make ``study_db`` the DVC-tracked SQLite copy of the study (it is the storage itself
    by default; a journal or server storage is snapshotted into it), and record at ``path``
    where readers (visualize, ``stockclf study show``) find it."""
    db = storage_file(params.tune.storage)
    if db is None or not same_file(db, study_db):
        write_snapshot(storage, study.study_name, study_db)
    info = {
        "study_name": study.study_name,
        "storage": f"sqlite:///{study_db.as_posix()}",
        "tuned_in": redact(params.tune.storage),
        "metric": params.tune.metric,
        "direction": params.tune.direction,
    }
    write_json(path, info)


TRIAL_COLUMNS = ("number", "state", "value", "duration_s", "retry_of", "failure", "fail_reason")


def write_trials_csv(study: optuna.Study, params: Params, path: Path) -> None:
    """Every trial, one row each: state, value, duration, why it failed, its params."""
    names = sorted(params.tune.parameter_ranges)
    with atomic_file(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([*TRIAL_COLUMNS, *names])
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            duration = t.duration.total_seconds() if t.duration is not None else None
            writer.writerow(
                [
                    t.number,
                    t.state.name,
                    t.value,
                    None if duration is None else round(duration, 3),
                    t.system_attrs.get("failed_trial"),
                    t.user_attrs.get("failure"),
                    t.user_attrs.get("fail_reason"),
                    *(t.params.get(n) for n in names),
                ]
            )


def write_history(study: optuna.Study, params: Params, live_dir: Path) -> None:
    """One dvclive step per finished trial (value, best so far, pruned, the numeric params),
    rebuilt from the study every run so a resumed study gives the same record. Not
    ``dvclive.optuna``'s callback: it opens a new ``Live`` per trial that wipes the previous
    one, so only the last trial survives, and inside a stage it rewrites dvc.yaml."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best_so_far = -math.inf if maximize else math.inf
    names = sorted(params.tune.parameter_ranges)
    with Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, resume=False) as live:
        for trial in sorted(
            study.get_trials(deepcopy=False, states=FINISHED), key=lambda t: t.number
        ):
            value = trial.value
            if value is None and trial.intermediate_values:
                value = trial.intermediate_values[max(trial.intermediate_values)]
            if value is None or not math.isfinite(value):
                continue
            if trial.state == optuna.trial.TrialState.COMPLETE:
                best_so_far = max(best_so_far, value) if maximize else min(best_so_far, value)
            live.step = trial.number
            live.log_metric("trial_value", value)
            live.log_metric("pruned", int(trial.state == optuna.trial.TrialState.PRUNED))
            if math.isfinite(best_so_far):
                live.log_metric("best_value", best_so_far)
            for name in names:
                param = trial.params.get(name)
                if isinstance(param, (int, float)) and not isinstance(param, bool):
                    live.log_metric(f"params/{name}", param)
