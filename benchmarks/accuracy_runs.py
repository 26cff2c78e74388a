"""The runs of the accuracy benchmark: one (variant, set, seed) through the real pipeline.

:func:`pipeline` calls the library as the stage scripts do (``prepare`` -> ``run_tune`` ->
``load_best_params`` -> ``run_train_best``), in-process, so the time measured is the
pipeline's and a recipe change in ``params.yaml`` or a variant reaches it unchanged.
"""

from __future__ import annotations

import resource
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.accuracy_data import load_archive, write_npz
from benchmarks.common import REPO, repo_params_dict, tiny_updates
from stockclf.config import Params, merge_params, validate_params


@dataclass(frozen=True)
class Variant:
    """A recipe to measure: a name and a params override dict (``{}`` = params.yaml)."""

    name: str
    overrides: dict[str, Any]


@dataclass
class RunRecord:
    """One (variant, set, seed): test accuracies, validation score, time, or the error."""

    variant: str
    dataset: str
    seed: int
    ok: bool = False
    error: str = ""
    model: float | None = None  # test accuracy of the tuned, retrained model
    minirocket: float | None = None
    logreg: float | None = None
    model_f1: float | None = None  # test macro F1, for reference
    best_val: float | None = None  # train_best's best validation score (tune.metric)
    tune_best: float | None = None  # the best trial's validation score
    epochs_trained: int | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0  # this process and its waited-for children, user + system


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads) and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def params_dict(variant: Variant, smoke: bool) -> dict[str, Any]:
    """params.yaml, shrunk in smoke mode (``configs/tiny.yaml``), plus the variant's
    overrides."""
    data = repo_params_dict()
    if smoke:
        data = merge_params(data, tiny_updates())
    return merge_params(data, variant.overrides)


def run_params(variant: Variant, smoke: bool, npz: Path, seed: int, workdir: Path) -> Params:
    """The params of one run: the data source, seed and tuning storage point at ``workdir``."""
    data = params_dict(variant, smoke)
    data["data"]["source"] = str(npz)
    data["seed"] = seed
    data["tune"]["storage"] = f"sqlite:///{workdir / 'tuning' / 'study.db'}"
    return validate_params(data, f"<variant {variant.name}>")


def budget(params: Params) -> dict[str, Any]:
    """What a run spends, as read from the params actually used (for the report)."""
    return {
        "backbone": params.model.backbone,
        "image_size": params.model.image_size,
        "encodings": list(params.model.encodings),
        "n_trials": params.tune.n_trials,
        "tuning_max_epochs": params.tune.tuning_max_epochs,
        "pruner": params.tune.pruner,
        "metric": params.tune.metric,
        "max_epochs": params.train.max_epochs,
        "batch_size": params.train.batch_size,
        "max_train_batches": params.train.max_train_batches,
        "early_stopping_patience": params.train.early_stopping_patience,
        "min_steps": params.train.min_steps,
        "keep_epoch_by": params.train.keep_epoch_by,
        "accelerator": params.train.accelerator,
    }


def pipeline(
    params: Params, workdir: Path, tune: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """prepare -> tune -> train_best, called as the stage scripts call them. Without
    ``tune``, train_best runs on params.yaml's own values: one run per recipe, which is how
    the recipe's levers are compared (a tuned run mixes each lever with the search's luck).
    """
    from stockclf.config import load_best_params
    from stockclf.data.prepare import prepare
    from stockclf.pipeline.train_best import TrainBestPaths, run_train_best
    from stockclf.pipeline.tune import TunePaths, run_tune

    prepared = workdir / "prepared"
    prepare(params.data, prepared, REPO / "data" / "sample")
    summary: dict[str, Any] = {"best_value": None}
    best: dict[str, Any] = {}
    if tune:
        tune_out = TunePaths.under(workdir / "tuning", prepared)
        summary = run_tune(params, tune_out)
        best_file = tune_out.best_params
        best = load_best_params(best_file)
    else:  # params.yaml's own values, as if nothing was tuned
        best_file = workdir / "best_params.yaml"
        best_file.write_text("{}\n", encoding="utf-8")
    outputs = TrainBestPaths.under(workdir, prepared, best_file)
    results = run_train_best(params, outputs, progress_bar=False)
    if results is None:
        raise RuntimeError("run_train_best returned nothing (a DDP rank other than 0)")
    return summary, {**results, "best_params": best}


def run_one(
    variant: Variant, dataset: str, seed: int, smoke: bool, root: Path, tune: bool = True
) -> RunRecord:
    """One (variant, set, seed) in its own scratch directory; errors are recorded."""
    record = RunRecord(variant.name, dataset, seed)
    workdir = root / f"{variant.name}-{dataset}-{seed}"
    wall, cpu = time.perf_counter(), cpu_seconds()
    try:
        npz = workdir / f"{dataset}.npz"
        record.sizes = write_npz(load_archive(dataset), seed, npz)
        params = run_params(variant, smoke, npz, seed, workdir)
        summary, results = pipeline(params, workdir, tune)
        record.model = results["model"]["accuracy"]
        record.model_f1 = results["model"]["f1_macro"]
        record.logreg = results["logreg"]["accuracy"]
        if "minirocket" in results:
            record.minirocket = results["minirocket"]["accuracy"]
        record.best_val = results["best_val"]
        record.tune_best = summary["best_value"]
        record.epochs_trained = results["epochs_trained"]
        record.best_params = results["best_params"]
        record.ok = True
    except Exception as err:  # a failed run is reported; the others go on
        tb = traceback.format_exception(err)
        record.error = f"{type(err).__name__}: {err}\n" + "".join(tb[-3:]).rstrip()
    finally:
        record.wall_s = time.perf_counter() - wall
        record.cpu_s = cpu_seconds() - cpu
        shutil.rmtree(workdir, ignore_errors=True)
    return record


def warm_up_minirocket() -> None:
    """Compile MiniRocket's numba kernels once, so the first set's time does not carry
    the compilation. Skipped when the baseline is not there."""
    try:
        import numpy as np

        from stockclf.data.store import SplitData
        from stockclf.evaluation.minirocket import minirocket_predictions
    except ImportError:
        return
    rng = np.random.default_rng(0)
    n = 8
    split = SplitData(
        rng.normal(size=(n, 1, 16)).astype(np.float32),
        np.arange(n) % 2,
        np.datetime64("2000-01-01") + np.arange(n).astype("timedelta64[D]"),
        np.zeros(n, dtype=np.int32),
        np.zeros(n),
    )
    minirocket_predictions(split, split, 0)
