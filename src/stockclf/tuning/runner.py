"""Runs the tune stage: open the study, run the missing trials, write the artifacts."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from dvclive import Live
from tqdm.auto import tqdm

from stockclf.config import Params
from stockclf.data.store import atomic_file
from stockclf.tuning.objective import Objective
from stockclf.tuning.study import FINISHED, data_fingerprint, open_study, study_identity, study_name

#: Trial failures the study survives; anything else (a bug in the stage) stops it.
SURVIVABLE = (Exception,)


@dataclass(frozen=True)
class TuneOutputs:
    """Where the tune stage writes; the paths come from dvc.yaml via the stage script."""

    root: Path

    @property
    def trials(self) -> Path:
        return self.root / "trials"

    @property
    def best_params(self) -> Path:
        return self.root / "best_params.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def study_info(self) -> Path:
        return self.root / "study.json"

    @property
    def live(self) -> Path:
        return self.root / "live"


class FailureLimit:
    """Stop the study after ``limit`` failed trials in this run (e.g. a broken backbone)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.failed = 0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == optuna.trial.TrialState.FAIL:
            self.failed += 1
            if self.failed >= self.limit:
                study.stop()


class TrialProgress:
    """A progress bar over finished trials (shown only on a terminal)."""

    def __init__(self, total: int, done: int) -> None:
        self.bar = tqdm(
            total=total, initial=done, desc="trials", unit="trial", disable=not sys.stderr.isatty()
        )

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state in FINISHED:
            self.bar.update(1)
        if trial.value is not None:
            self.bar.set_postfix({"last": f"{trial.value:.4f}", "state": trial.state.name})

    def close(self) -> None:
        self.bar.close()


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_tune(params: Params, prepared_dir: Path, outputs: TuneOutputs) -> dict[str, Any]:
    """Bring the study up to ``n_trials`` finished trials and write every artifact."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    identity = study_identity(params, data_fingerprint(prepared_dir))
    name = study_name(identity)
    study = open_study(params, name)
    for key, value in (("identity", identity), ("metric", params.tune.metric)):
        study.set_user_attr(key, json.loads(json.dumps(value, default=str)))

    missing = params.tune.n_trials - count_finished(study)
    if missing > 0:
        print(
            f"study {name}: {count_finished(study)} finished, running {missing} more",
            file=sys.stderr,
        )
        progress = TrialProgress(params.tune.n_trials, count_finished(study))
        # Failed trials do not count towards n_trials, so run until the finished count
        # reaches it; FailureLimit stops a study in which every trial fails.
        study.optimize(
            Objective(params, prepared_dir, outputs.trials),
            n_trials=None,
            timeout=params.tune.timeout,
            catch=SURVIVABLE,
            callbacks=[
                optuna.study.MaxTrialsCallback(params.tune.n_trials, states=FINISHED),
                FailureLimit(max(3, params.tune.n_trials)),
                progress,
            ],
            gc_after_trial=True,
        )
        progress.close()
    else:
        print(f"study {name}: already has {count_finished(study)} finished trials", file=sys.stderr)
    return write_artifacts(study, params, outputs)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
        reasons = {t.user_attrs.get("fail_reason", "unknown") for t in failed}
        raise RuntimeError(
            f"study {study.study_name}: no trial completed ({len(failed)} failed: "
            f"{sorted(reasons)[:3]}); nothing to write as best params"
        )
    return study.best_trial


def write_artifacts(study: optuna.Study, params: Params, outputs: TuneOutputs) -> dict[str, Any]:
    best = best_trial(study)
    states = [t.state for t in study.trials]
    summary = {
        "best_value": best.value,
        "best_trial": best.number,
        "n_complete": states.count(optuna.trial.TrialState.COMPLETE),
        "n_pruned": states.count(optuna.trial.TrialState.PRUNED),
        "n_fail": states.count(optuna.trial.TrialState.FAIL),
    }
    # Only searched names, with the exact value type the training params expect.
    best_params = {k: best.params[k] for k in params.tune.parameter_ranges}
    with atomic_file(outputs.best_params) as tmp:
        tmp.write_text(yaml.safe_dump(best_params, sort_keys=True), encoding="utf-8")
    with atomic_file(outputs.metrics) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    info = {
        "study_name": study.study_name,
        "storage": params.tune.storage,
        "metric": params.tune.metric,
        "direction": params.tune.direction,
    }
    with atomic_file(outputs.study_info) as tmp:
        tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    write_history(study, outputs.live)
    return summary


def write_history(study: optuna.Study, live_dir: Path) -> None:
    """One dvclive step per finished trial (value and best so far), rebuilt from the study
    every run so a resumed study gives the same record. Not ``dvclive.optuna``'s callback:
    it keeps only the last trial and rewrites dvc.yaml (FINDINGS.md)."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best_so_far = -math.inf if maximize else math.inf
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
