"""The search space: one value per name of ``tune.parameter_ranges`` for a trial, the
checks that make a bad space an error before any trial starts, and params.yaml's own point
as a trial.

Optuna's categorical choices must be plain values (str, int, float, bool, None), so a
choice that is a list (``encodings: {choices: [[gasf, mtf], [gasf, gadf, mtf]]}``) is
stored in the study under a label (``gasf+mtf``) and turned back into the list for
training and for ``best_params.yaml``. Labels keep the importance and slice plots readable.
"""

from __future__ import annotations

import sys
from typing import Any

import optuna

from stockclf.config import (
    TUNABLE,
    CategoricalRange,
    FloatRange,
    Params,
    ParamsError,
    TuneParams,
    tunable_is_int,
    validate_params,
)

LIST_SEPARATOR = "+"


def label(choice: Any) -> Any:
    """The value Optuna stores for a choice: a list becomes ``"a+b"``."""
    if isinstance(choice, list | tuple):
        return LIST_SEPARATOR.join(str(c) for c in choice)
    return choice


def from_trial(tune: TuneParams, trial_params: dict[str, Any]) -> dict[str, Any]:
    """A trial's stored params as training params: labels back to their choices."""
    values = {}
    for name, value in trial_params.items():
        spec = tune.parameter_ranges.get(name)
        if isinstance(spec, CategoricalRange):
            value = next((c for c in spec.choices if label(c) == value), value)
        values[name] = value
    return values


def with_values(params: Params, values: dict[str, Any]) -> Params:
    """The params of one point of the search space: each searched name (``lr_head``,
    ``encodings``, ...) replaces the value of the section that owns it (``TUNABLE``), and
    the result is validated as params.yaml is. ``params`` itself is untouched."""
    sections: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    for name, value in values.items():
        if name not in TUNABLE:
            raise ParamsError(f"{name!r} is not a tunable parameter; known: {sorted(TUNABLE)}")
        sections[TUNABLE[name]][name] = value
    if "batch_size" in sections["train"] and params.train.min_steps_batch_size is None:
        # the step floor keeps counting params.yaml's batches (training/budget.py says why)
        sections["train"]["min_steps_batch_size"] = params.train.batch_size
    data = params.model_dump()
    for section, updates in sections.items():
        data[section].update(updates)
    return validate_params(data, "<tuned values>")


def suggest(trial: optuna.Trial, tune: TuneParams) -> dict[str, Any]:
    """Draw one value per searched name from ``tune.parameter_ranges``."""
    for name, spec in tune.parameter_ranges.items():
        if isinstance(spec, CategoricalRange):
            trial.suggest_categorical(name, [label(c) for c in spec.choices])
        elif tunable_is_int(name):
            trial.suggest_int(
                name, int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log
            )
        else:
            trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log)
    return from_trial(tune, trial.params)


def _probe(params: Params, name: str, value: Any) -> str | None:
    """Why training params with ``name = value`` are invalid, or None."""
    try:
        with_values(params, {name: value})
    except ParamsError as err:
        return " ".join(line.strip() for line in str(err).splitlines()[1:])
    if name == "backbone":
        import timm  # only here: the tune stage imports it anyway, params validation not

        if not timm.is_model(value):
            return f"{value!r} is not a timm model name (timm.list_models() lists them)"
    return None


def check_space(params: Params) -> None:
    """Every choice, and both ends of every range, make valid training params: a typo
    (an unknown backbone, an encoding list with a misspelt name, a dropout of 1.5) stops
    the stage before the first trial, naming the key."""
    for name, spec in params.tune.parameter_ranges.items():
        values = spec.choices if isinstance(spec, CategoricalRange) else [spec.low, spec.high]
        if isinstance(spec, FloatRange) and tunable_is_int(name):
            values = [int(spec.low), int(spec.high)]
        for value in values:
            problem = _probe(params, name, value)
            if problem is not None:
                raise ParamsError(
                    f"tune.parameter_ranges.{name}: {value!r} cannot be trained: {problem}"
                )


def in_range(spec: FloatRange | CategoricalRange, value: Any) -> bool:
    if isinstance(spec, CategoricalRange):
        return label(value) in [label(c) for c in spec.choices]
    return isinstance(value, int | float) and spec.low <= value <= spec.high


def default_point(params: Params) -> tuple[dict[str, Any], list[str]]:
    """params.yaml's value of every searched name, as Optuna stores it, for the names whose
    value lies in its range; and the names left to the sampler because it does not."""
    point, outside = {}, []
    sections = {"model": params.model, "train": params.train}
    for name, spec in params.tune.parameter_ranges.items():
        value = getattr(sections[TUNABLE[name]], name)
        if in_range(spec, value):
            point[name] = label(value)
        else:
            outside.append(name)
    return point, outside


def enqueue_defaults(study: optuna.Study, params: Params) -> None:
    """Make trial 0 of a new study params.yaml's point (``tune.warm_start``)."""
    if not params.tune.warm_start or study.get_trials(deepcopy=False):
        return
    point, outside = default_point(params)
    study.enqueue_trial(point, skip_if_exists=True)
    note = f"; {outside} lie outside their ranges and are sampled" if outside else ""
    print(f"study {study.study_name}: trial 0 is params.yaml's point{note}", file=sys.stderr)
