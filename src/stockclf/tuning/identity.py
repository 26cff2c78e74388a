"""Which study a set of params belongs to: the search space, the untuned params, the
tuning budget and the data version, hashed into the study name. Changing any of them
starts a fresh study; changing ``n_trials``, the sampler or the workers continues it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from stockclf.config import Params
from stockclf.data.store import data_fingerprint


def study_identity(params: Params, fingerprint: str) -> dict[str, Any]:
    """Everything that makes two trials comparable: the search space, the training params
    it does not tune, the tuning budget and metric, the validation folds and the data
    version.

    ``n_trials``, ``timeout``, ``n_jobs``, the sampler, the pruner and ``train.loggers``
    (where the curves are written, not what they are) are left out on purpose: changing
    them continues the same study.
    """
    tuned = set(params.tune.parameter_ranges)
    model = {k: v for k, v in params.model.model_dump().items() if k not in tuned}
    train = {
        k: v
        for k, v in params.train.model_dump().items()
        if k not in tuned and k not in ("max_epochs", "accelerator", "devices", "loggers")
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
        # a trial's value is the mean over its folds: not comparable across fold counts;
        # absent at 1, so the studies made before tune.folds existed keep their names
        **({"folds": params.tune.folds} if params.tune.folds != 1 else {}),
    }


def study_name(identity: dict[str, Any]) -> str:
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return f"stockclf-{hashlib.sha256(blob).hexdigest()[:12]}"


def identify(params: Params, prepared_dir: Path) -> tuple[dict[str, Any], str]:
    """The study identity of ``params`` on the prepared data, and the name it hashes to."""
    identity = study_identity(params, data_fingerprint(prepared_dir))
    return identity, study_name(identity)
