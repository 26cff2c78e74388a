"""`stockclf study show`: the best trial, trial counts, top trials and importances."""

from __future__ import annotations

import json
import statistics
from typing import Any

import optuna

EVALUATOR = "fANOVA (optuna.importance.FanovaImportanceEvaluator, seed 0)"


def importance_evaluator() -> optuna.importance.FanovaImportanceEvaluator:
    """fANOVA with a fixed seed: its random forest otherwise reorders close importances
    from one call to the next (the report and the contour plot must agree)."""
    return optuna.importance.FanovaImportanceEvaluator(seed=0)


def study_summary(study: optuna.Study, top: int = 5) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    counts = {s.name.lower(): 0 for s in optuna.trial.TrialState}
    for t in trials:
        counts[t.state.name.lower()] += 1
    durations = [t.duration.total_seconds() for t in trials if t.duration is not None]
    reverse = study.direction == optuna.study.StudyDirection.MAXIMIZE
    ranked = sorted(complete, key=lambda t: t.value, reverse=reverse)[:top]
    importances: dict[str, float] = {}
    if len(complete) >= 2:
        try:
            importances = optuna.importance.get_param_importances(
                study, evaluator=importance_evaluator()
            )
        except (RuntimeError, ValueError):
            importances = {}
    best = study.best_trial if complete else None
    return {
        "study_name": study.study_name,
        "direction": study.direction.name.lower(),
        "metric": study.user_attrs.get("metric"),
        "best_trial": best.number if best else None,
        "best_value": best.value if best else None,
        "best_params": best.params if best else {},
        "n_trials": len(trials),
        "n_complete": counts["complete"],
        "n_pruned": counts["pruned"],
        "n_fail": counts["fail"],
        "n_running": counts["running"],
        "top_trials": [{"number": t.number, "value": t.value, "params": t.params} for t in ranked],
        "importances": {k: float(v) for k, v in importances.items()},
        "importance_evaluator": EVALUATOR if importances else None,
        "total_duration_s": sum(durations),
        "median_duration_s": statistics.median(durations) if durations else None,
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_summary(s: dict[str, Any]) -> str:
    lines = [f"study {s['study_name']} ({s['direction']} {s['metric'] or 'objective'})"]
    lines.append(
        f"trials: {s['n_trials']} total, {s['n_complete']} complete, {s['n_pruned']} pruned, "
        f"{s['n_fail']} failed, {s['n_running']} running"
    )
    if s["best_trial"] is None:
        lines.append("no complete trial yet")
        return "\n".join(lines)
    lines.append(f"best trial #{s['best_trial']}: value {_fmt(s['best_value'])}")
    for k, v in sorted(s["best_params"].items()):
        lines.append(f"  {k:<18} {_fmt(v)}")
    names = sorted(s["best_params"])
    lines.append(f"\ntop {len(s['top_trials'])} trials:")
    header = ["#", "value", *names]
    rows = [
        [str(t["number"]), _fmt(t["value"]), *(_fmt(t["params"].get(n)) for n in names)]
        for t in s["top_trials"]
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        lines.append("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    if s["importances"]:
        lines.append(f"\nparameter importances, by {s['importance_evaluator']}:")
        for k, v in s["importances"].items():
            lines.append(f"  {k:<18} {v:.3f}")
    else:
        lines.append("\nparameter importances: need at least 2 complete trials")
    median = s["median_duration_s"]
    lines.append(
        f"\nduration: {s['total_duration_s']:.1f} s total"
        + (f", {median:.1f} s median per trial" if median is not None else "")
    )
    return "\n".join(lines)


def to_json(s: dict[str, Any]) -> str:
    return json.dumps(s, indent=2, default=str)
