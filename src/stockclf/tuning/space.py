"""The search space: one value per name of ``tune.parameter_ranges`` for a trial."""

from __future__ import annotations

from typing import Any

import optuna

from stockclf.config import TuneParams, tunable_is_int


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
