"""Carrying the finished trials of an earlier study into a new one (``tune.warm_start_from``).

Editing the search space starts a new study (its name hashes the space), which would throw
away every trial run so far. A trial of an earlier study in the same storage is carried
over when it was measured the same way (same data, tuning budget, metric and direction,
and the same value of every param the new study does not search) and its params lie inside
the new space. Each carried trial is added with the new space's distributions, so the
sampler learns from it; each skipped one is reported with the reason.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from stockclf.config import CategoricalRange, Params, tunable_is_int
from stockclf.tuning.space import in_range, label
from stockclf.tuning.trials import FINISHED

#: What must be equal for two studies' trial values to be comparable ("folds" is absent
#: from an identity with tune.folds = 1, so it is compared with .get()).
SAME = ("data", "tuning_max_epochs", "metric", "direction", "folds")


@dataclass
class Carried:
    source: str | None = None
    carried: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)


def distributions(params: Params) -> dict[str, BaseDistribution]:
    """The new space as Optuna distributions (what :func:`~.space.suggest` asks for)."""
    out: dict[str, BaseDistribution] = {}
    for name, spec in params.tune.parameter_ranges.items():
        if isinstance(spec, CategoricalRange):
            out[name] = CategoricalDistribution([label(c) for c in spec.choices])
        elif tunable_is_int(name):
            step = int(spec.step or 1)
            out[name] = IntDistribution(int(spec.low), int(spec.high), log=spec.log, step=step)
        else:
            out[name] = FloatDistribution(spec.low, spec.high, log=spec.log, step=spec.step)
    return out


def source_study(
    storage: Any, identity: dict[str, Any], wanted: str, current: str
) -> optuna.study.StudySummary | None:
    """``previous``: the newest other study measured like this one; else the named one."""
    studies = [s for s in optuna.get_all_study_summaries(storage) if s.study_name != current]
    if wanted != "previous":
        return next((s for s in studies if s.study_name == wanted), None)
    like = [
        s
        for s in studies
        if all(s.user_attrs.get("identity", {}).get(k) == identity.get(k) for k in SAME)
    ]
    return like[-1] if like else None  # the storage lists studies in creation order


def _effective(old: dict[str, Any], trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """Every model and train value the old trial ran with (lists, not labels)."""
    values = {**old.get("model", {}), **old.get("train", {})}
    for name, stored in trial.params.items():
        choices = old.get("search_space", {}).get(name, {}).get("choices")
        values[name] = next((c for c in choices or [] if label(c) == stored), stored)
    return values


def why_not(
    trial_values: dict[str, Any], old: dict[str, Any], new: dict[str, Any], params: Params
) -> str | None:
    """Why a trial that ran with ``trial_values`` cannot join the new study, or None."""
    for key in SAME:
        if old.get(key) != new.get(key):
            return f"its study was measured with another {key}"
    for key, value in {**new["model"], **new["train"]}.items():
        if key in trial_values and trial_values[key] != value:
            return f"{key} was {trial_values[key]!r} there and is fixed at {value!r} here"
    for name, spec in params.tune.parameter_ranges.items():
        if name not in trial_values:
            return f"it has no value of {name}"
        if not in_range(spec, trial_values[name]):
            return f"{name} = {trial_values[name]!r} lies outside the new range"
    return None


def carry_trials(
    study: optuna.Study, storage: Any, params: Params, identity: dict[str, Any]
) -> Carried:
    """Add the comparable finished trials of the source study to the new ``study``."""
    result = Carried()
    wanted = params.tune.warm_start_from
    if wanted is None or study.get_trials(deepcopy=False):
        return result
    source = source_study(storage, identity, wanted, study.study_name)
    if source is None:
        print(f"study {study.study_name}: no earlier study to carry trials from", file=sys.stderr)
        return result
    result.source = source.study_name
    old = source.user_attrs.get("identity", {})
    space = distributions(params)
    for trial in optuna.load_study(study_name=source.study_name, storage=storage).trials:
        if trial.state not in FINISHED:
            continue
        values = _effective(old, trial)
        reason = why_not(values, old, identity, params)
        if reason is not None:
            result.skipped[trial.number] = reason
            continue
        study.add_trial(
            optuna.trial.create_trial(
                state=trial.state,
                value=trial.value,
                params={name: label(values[name]) for name in space},
                distributions=space,
                intermediate_values=trial.intermediate_values,
                user_attrs={
                    **trial.user_attrs,
                    "carried_from": f"{source.study_name}#{trial.number}",
                },
            )
        )
        result.carried.append(trial.number)
    _report(study.study_name, result)
    return result


def _report(name: str, result: Carried) -> None:
    print(
        f"study {name}: carried {len(result.carried)} trials from {result.source} "
        f"({result.carried}); skipped {len(result.skipped)}",
        file=sys.stderr,
    )
    for number, reason in sorted(result.skipped.items()):
        print(f"  trial {number} of {result.source} skipped: {reason}", file=sys.stderr)
