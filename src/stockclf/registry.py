"""The names params choose from, each with the factory that implements it: one registry per
kind (features, encodings, samplers, pruners, plots).

The params validation checks every name against these when params.yaml is read, so a
typo in ``visualize.plots`` stops ``prepare`` and not the last stage hours later. Each entry
names its factory as ``"module:attribute"`` and is imported only when used: validating
params must not import torch, optuna or matplotlib, and DVC must not rerun every stage when
a drawing function changes (each stage lists this file, not every implementation, as a
dependency). A test resolves every entry.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any


class Registry:
    """Names of one kind, each with the ``module:attribute`` of its factory."""

    def __init__(self, kind: str, entries: dict[str, str]) -> None:
        self.kind = kind
        self.entries = entries

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def check(self, names: str | Iterable[str]) -> None:
        """Raise ``ValueError`` naming the unknown or repeated names and the valid ones."""
        listed = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in listed if n not in self.entries]
        if unknown:
            shown = unknown[0] if len(unknown) == 1 else unknown
            raise ValueError(f"unknown {self.kind} {shown!r}; choose from {sorted(self.entries)}")
        repeated = sorted({n for n in listed if listed.count(n) > 1})
        if repeated:
            raise ValueError(f"{self.kind}s repeated: {repeated}")

    def get(self, name: str) -> Any:
        """The factory registered as ``name`` (its module is imported now)."""
        self.check(name)
        module, _, attribute = self.entries[name].partition(":")
        return getattr(importlib.import_module(module), attribute)


FEATURES = Registry(
    "feature",
    {
        name: f"stockclf.data.features:{name}"
        for name in ("log_return", "hl_range", "volume_change", "close_open")
    },
)
ENCODINGS = Registry(
    "encoding", {name: f"stockclf.encode:{name}_image" for name in ("gasf", "gadf", "mtf")}
)
SAMPLERS = Registry(
    "sampler",
    {name: f"stockclf.tuning.samplers:{name}_sampler" for name in ("tpe", "random", "cmaes", "gp")},
)
PRUNERS = Registry(
    "pruner",
    {
        name: f"stockclf.tuning.samplers:{name}_pruner"
        for name in ("none", "median", "successive_halving", "hyperband", "wilcoxon")
    },
)
PLOTS = Registry(
    "plot",
    {
        name: f"stockclf.reporting.plots:{name.upper()}"
        for name in (
            "optimization_history",
            "param_importances",
            "parallel_coordinate",
            "slice",
            "contour",
            "intermediate_values",
            "timeline",
        )
    },
)
