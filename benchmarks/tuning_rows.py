"""Rows 4 and 5: what pruning saves, and what a tuning trial costs beyond its training.

Both rows drive the real tune stage (:func:`stockclf.tuning.runner.run_tune` with the real
objective, i.e. Lightning training of the real network) on the bundled sample data.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from lightning.pytorch.callbacks import Callback

from benchmarks.common import (
    REPO,
    Context,
    Row,
    bench_params,
    fmt_seconds,
    median,
    prepared_data,
)
from stockclf.config import Params, merge_params, validate_params
from stockclf.tuning import objective
from stockclf.tuning.runner import TuneOutputs, run_tune

# --- shared helpers ------------------------------------------------------------------------


def with_storage(params: Params, db: Path) -> Params:
    """``params`` with the study in its own SQLite file (``bench_params`` puts every study
    at the same path)."""
    data = params.model_dump()
    data["tune"]["storage"] = f"sqlite:///{db.as_posix()}"
    return validate_params(data, "<benchmark params>")


def load_only_study(params: Params) -> optuna.Study:
    """The one study in ``params``' storage (each study here gets a storage of its own)."""
    return optuna.load_study(study_name=None, storage=params.tune.storage)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


# --- row 4: pruning ------------------------------------------------------------------------

#: The small fixed problem of row 4 (full mode), on the data of :func:`synthetic_prepared`:
#: a small backbone at 16 x 16 pixels, 8 batches of 64 per epoch. The search space,
#: sampler, ``n_startup_trials`` and early stopping are the repository's.
PRUNING_UPDATES: dict[str, Any] = {
    "model": {"backbone": "mobilenetv3_small_050", "image_size": 16},
    "train": {"max_train_batches": 8, "min_steps": 0},  # epochs are what row 4 counts
    "tune": {
        "n_trials": 10,
        "tuning_max_epochs": 6,
        "parameter_ranges": {"batch_size": {"choices": [64]}},  # fixed cost per epoch
    },
}
#: Smoke mode: on top of ``SMOKE_UPDATES`` (window 16, image 16, 3 batches of 32).
PRUNING_SMOKE_UPDATES: dict[str, Any] = {
    "model": {"backbone": "mobilenetv3_small_050"},
    "train": {"max_train_batches": 2},
    "tune": {
        "n_trials": 3,
        "tuning_max_epochs": 2,
        "n_startup_trials": 1,
        "parameter_ranges": {"batch_size": {"choices": [32]}},
    },
}
#: The repository's pruner first (the verdict), then the alternatives ``tune.pruner`` offers.
PRUNERS_FULL = ("none", "median", "successive_halving", "hyperband")
PRUNERS_SMOKE = ("none", "median")
VALUE_TOLERANCE = 0.01
EPOCH_SHARE_TARGET = 0.40


#: Windows per split of the synthetic problem, and how far the class shifts its signal.
SYNTHETIC_SIZES = {"train": 3000, "val": 600, "test": 60}
SYNTHETIC_SIGNAL = 0.5


def synthetic_prepared(ctx: Context, params: Params) -> tuple[Params, Path]:
    """A learnable problem in the prepared layout, made once per run (seed 0).

    Stock windows barely carry a signal: on the bundled sample a small model's val F1 mostly
    sits at the one-class value, so every trial's curve looks alike and the best value is a
    lottery, which says nothing about pruning. Here the class (0, 1, 2) shifts the last
    quarter of channel 0 by ``(class - 1) * SYNTHETIC_SIGNAL`` standard deviations of noise:
    learnable, not trivial, so learning rates and the other searched params change how
    fast and how far a trial gets. Written as an ``.npz`` source and prepared by the real
    prepare stage.
    """
    from stockclf.data.prepare import prepare

    root = ctx.workdir / "row4-data"
    source, out = root / "synthetic.npz", root / "prepared"
    data = params.model_dump()
    data["data"]["source"] = source.as_posix()
    params = validate_params(data, "<row 4>")
    if not out.exists():
        rng = np.random.default_rng(0)
        n = sum(SYNTHETIC_SIZES.values())
        channels, length = len(params.data.features), params.data.window
        x = rng.normal(size=(n, channels, length)).astype(np.float32)
        y = rng.integers(0, 3, size=n)
        x[:, 0, -length // 4 :] += (y[:, None] - 1) * SYNTHETIC_SIGNAL
        split = np.repeat(np.arange(3), [SYNTHETIC_SIZES[k] for k in ("train", "val", "test")])
        root.mkdir(parents=True, exist_ok=True)
        np.savez(source, X=x, y=y, split=split, classes=np.array(["down", "flat", "up"]))
        prepare(params.data, out, REPO / "data" / "sample")
    return params, out


def run_study(ctx: Context, base: Params, pruner: str, seed: int) -> dict[str, float]:
    """One whole tuning study with ``pruner``; its epochs trained, best value and wall time."""
    data = base.model_dump()
    data["seed"] = seed
    data["tune"]["pruner"] = pruner
    root = ctx.workdir / "row4" / f"seed{seed}-{pruner}"
    params, prepared = synthetic_prepared(ctx, validate_params(data, "<row 4>"))
    params = with_storage(params, root / "study.db")
    start = time.perf_counter()
    summary = run_tune(params, prepared, TuneOutputs(root / "out"))
    seconds = time.perf_counter() - start
    trials = load_only_study(params).get_trials(deepcopy=False)
    # Each reported intermediate value is one validated epoch, i.e. one epoch trained.
    epochs = sum(len(t.intermediate_values) for t in trials)
    return {
        "epochs": epochs,
        "best": float(summary["best_value"]),
        "n_pruned": summary["n_pruned"],
        "n_complete": summary["n_complete"],
        "seconds": seconds,
    }


def pruning_savings(ctx: Context) -> Row:
    """Row 4: the same study (seed, trials, search space) with and without pruning."""
    pruners = PRUNERS_SMOKE if ctx.smoke else PRUNERS_FULL
    updates = PRUNING_SMOKE_UPDATES if ctx.smoke else PRUNING_UPDATES
    base = bench_params(ctx, updates)
    tune = base.tune
    seeds = [base.seed + r for r in range(ctx.repeats)]
    results: dict[str, list[dict[str, float]]] = {p: [] for p in pruners}
    # One thread: these tiny models run no faster on two, and far slower when other
    # processes share the cores; the row's figures (epochs, values) do not depend on speed.
    with torch_threads(1):
        for r, seed in enumerate(seeds):
            shift = r % len(pruners)
            for pruner in pruners[shift:] + pruners[:shift]:
                results[pruner].append(run_study(ctx, base, pruner, seed))

    def share(p: str, r: int) -> float:
        return results[p][r]["epochs"] / results["none"][r]["epochs"]

    def gap(p: str, r: int) -> float:
        return results[p][r]["best"] - results["none"][r]["best"]

    verdicts: dict[str, tuple[float, float, bool]] = {}
    for p in pruners[1:]:
        s = median([share(p, r) for r in range(len(seeds))])
        g = median([gap(p, r) for r in range(len(seeds))])
        verdicts[p] = (s, g, s <= EPOCH_SHARE_TARGET and g >= -VALUE_TOLERANCE)
    s, g, met = verdicts["median"]
    others = [p for p in pruners[2:] if verdicts[p][2]]
    result = (
        f"median pruner: {pct(s)} of the unpruned epochs, best value {g:+.3f} vs unpruned "
        f"(medians of {len(seeds)} seeds)"
    )
    if others:
        result += f"; target met by {', '.join(others)}"
    details = [
        "| seed | pruner | epochs | share of unpruned | best value | vs unpruned "
        "| complete / pruned | wall |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r, seed in enumerate(seeds):
        for p in pruners:
            x = results[p][r]
            details.append(
                f"| {seed} | {p} | {x['epochs']:.0f} | {pct(share(p, r))} | {x['best']:.4f} "
                f"| {gap(p, r):+.4f} | {x['n_complete']:.0f} / {x['n_pruned']:.0f} "
                f"| {fmt_seconds(x['seconds'])} |"
            )
    details.append("")
    for p in pruners[1:]:
        ps, pg, ok = verdicts[p]
        details.append(
            f"- {p}: median share of epochs {pct(ps)}, median best-value gap {pg:+.4f}, "
            f"target {'met' if ok else 'not met'}"
        )
    # The fewest epochs the median pruner can use: n_startup_trials whole trials, and two
    # epochs (n_warmup_steps = 1) for every later trial.
    floor_epochs = tune.n_startup_trials * tune.tuning_max_epochs + 2 * (
        tune.n_trials - tune.n_startup_trials
    )
    floor = floor_epochs / (tune.n_trials * tune.tuning_max_epochs)
    method = (
        f"`run_tune` with the real objective (Lightning training) on a synthetic learnable "
        f"problem (see `synthetic_prepared`: {SYNTHETIC_SIZES['train']}/"
        f"{SYNTHETIC_SIZES['val']} train/val windows of {len(base.data.features)} x "
        f"{base.data.window}, class signal {SYNTHETIC_SIGNAL} noise SDs; the bundled stock "
        f"sample gives one-class val F1 for most trials, which tells nothing about pruning), "
        f"prepared by the real prepare stage: "
        f"{base.model.backbone} at {base.model.image_size}x{base.model.image_size}, "
        f"{base.train.max_train_batches} batches of "
        f"{tune.parameter_ranges['batch_size'].choices[0]} per epoch; "
        f"{tune.n_trials} trials of at most "
        f"{tune.tuning_max_epochs} epochs, the repository's search space (batch size fixed), "
        f"TPE sampler, n_startup_trials {tune.n_startup_trials}, early stopping patience "
        f"{base.train.early_stopping_patience}. Each study has its own SQLite storage and is "
        f"run with tune.pruner {', '.join(pruners)}; same seed and trial count for all, "
        f"{len(seeds)} seeds ({', '.join(map(str, seeds))}), pruners interleaved and rotated. "
        f"Epochs used = the trials' reported intermediate values (one per validated epoch); "
        f"best value = the study's best complete {tune.metric}. Verdict on the repository's "
        f"pruner (median): met when the median over seeds of (pruned epochs / unpruned "
        f"epochs) is at most {pct(EPOCH_SHARE_TARGET)} and the median over seeds of (pruned "
        f"best - unpruned best) is at least -{VALUE_TOLERANCE}. One torch thread."
    )
    explanation = ""
    if not met:
        others_text = "; ".join(
            f"{p} {pct(verdicts[p][0])} of the epochs, best-value gap {verdicts[p][1]:+.3f}"
            for p in pruners[2:]
        )
        explanation = (
            f"The median pruner used {pct(s)} of the unpruned epochs (best-value gap "
            f"{g:+.3f}). It never prunes the first n_startup_trials = "
            f"{tune.n_startup_trials} trials ({pct(tune.n_startup_trials / tune.n_trials)} of "
            f"an unpruned study's {tune.n_trials} trials), and with n_warmup_steps = 1 every "
            f"later trial trains at least 2 epochs: pruning every later trial at its first "
            f"chance would still use {floor_epochs} of {tune.n_trials * tune.tuning_max_epochs} "
            f"epochs ({pct(floor)}), and it prunes only trials below the median of the others "
            f"at the same epoch. "
            + (f"Other pruners on the same studies: {others_text}." if others_text else "")
        )
    return Row(
        number=4,
        measure=(
            "pruning vs no pruning on a small fixed problem, same seed and trial count: "
            "epochs used, and best value"
        ),
        target=(
            f"the pruned study reaches the unpruned study's best minus {VALUE_TOLERANCE} "
            f"with at most {pct(EPOCH_SHARE_TARGET)} of its epochs"
        ),
        result=result,
        met=met,
        method=method,
        details=details,
        explanation=explanation,
    )


# --- row 5: per-trial overhead -------------------------------------------------------------


class FitClock(Callback):
    """Wall-clock stamps (``time.time()``, comparable with Optuna's trial datetimes) of the
    fit loop's hooks, first occurrence each: enough to split one trial into its parts."""

    def __init__(self) -> None:
        self.stamps: dict[str, float] = {}

    def _stamp(self, name: str) -> None:
        self.stamps.setdefault(name, time.time())

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._stamp("fit_start")

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._stamp("epoch_start")

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._stamp("validation_end")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._stamp("train_end")


@contextlib.contextmanager
def clocked_training(log: list[dict[str, float]]) -> Iterator[None]:
    """Run every trial's ``train_model`` (the real one) with a :class:`FitClock` added and
    its entry and return stamped; each trial's stamps are appended to ``log``."""
    from stockclf.training.run import train_model

    def clocked(*args: Any, callbacks: Any = (), **kwargs: Any) -> Any:
        clock = FitClock()
        clock.stamps["train_model"] = time.time()
        try:
            return train_model(*args, callbacks=[*callbacks, clock], **kwargs)
        finally:
            clock.stamps["returned"] = time.time()
            log.append(clock.stamps)

    saved = vars(objective).get("train_model")  # normally absent: a lazy module attribute
    objective.train_model = clocked  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if saved is None:
            del objective.train_model  # type: ignore[attr-defined]
        else:
            objective.train_model = saved  # type: ignore[attr-defined]


#: The parts of a trial, between consecutive stamps: (name, from, to).
TRIAL_PARTS = (
    ("between trials: memory release, stale-trial sweep, claim, new trial", "prev_done", "start"),
    ("suggest the params, owner record (storage writes)", "start", "train_model"),
    ("build: data module, model, dvclive logger, Trainer, fit setup", "train_model", "fit_start"),
    ("load the train split, loop setup", "fit_start", "epoch_start"),
    ("compute: train + validation batches", "epoch_start", "validation_end"),
    (
        "epoch end: metrics to dvclive, pruning report (storage), early stopping, checkpoint",
        "validation_end",
        "train_end",
    ),
    ("fit end: teardown, dvclive end, best checkpoint loaded back", "train_end", "returned"),
    ("tell (storage writes), keep-top-k checkpoint pruning", "returned", "done"),
)


def trial_parts(stamps: dict[str, float]) -> dict[str, float]:
    """Seconds of each part of one trial. (The checkpoint has no stamp of its own: a
    weights-only checkpoint calls no callback hook.)"""
    return {name: stamps[end] - stamps[begin] for name, begin, end in TRIAL_PARTS}


def trial_overhead(ctx: Context) -> Row:
    """Row 5: a tune-stage trial of one epoch, against the compute of that epoch."""
    probe = bench_params(ctx)
    n_measured = ctx.repeats
    updates = {
        "tune": {
            "n_trials": n_measured + 1,  # trial 0 warms the process up and is not counted
            "tuning_max_epochs": 1,
            "parameter_ranges": {"batch_size": {"choices": [probe.train.batch_size]}},
        }
    }
    if ctx.smoke:  # a short validation split too; the figures mean nothing in smoke mode
        updates = merge_params(updates, {"data": {"val_start": "2015-01-01"}})
    threads = 1 if ctx.smoke else torch.get_num_threads()
    root = ctx.workdir / "row5"
    params = with_storage(bench_params(ctx, updates), root / "study.db")
    prepared = prepared_data(ctx, params)
    fits: list[dict[str, float]] = []
    done: list[float] = []
    with torch_threads(threads), clocked_training(fits):
        run_start = time.time()
        run_tune(
            params,
            prepared,
            TuneOutputs(root / "out"),
            callbacks=[lambda study, trial: done.append(time.time())],
        )
        run_end = time.time()
    trials = sorted(load_only_study(params).get_trials(deepcopy=False), key=lambda t: t.number)
    if len(trials) != len(fits) or len(fits) != n_measured + 1:
        raise RuntimeError(f"expected {n_measured + 1} trials, got {len(trials)}/{len(fits)}")
    parts: list[dict[str, float]] = []
    for i, (trial, stamps) in enumerate(zip(trials, fits, strict=True)):
        assert trial.datetime_start is not None
        full = {**stamps, "start": trial.datetime_start.timestamp(), "done": done[i]}
        full["prev_done"] = done[i - 1] if i > 0 else full["start"]
        parts.append(trial_parts(full))
    compute_name = TRIAL_PARTS[4][0]
    measured = parts[1:]
    walls = [sum(p.values()) for p in measured]
    computes = [p[compute_name] for p in measured]
    overheads = [(w - c) / c for w, c in zip(walls, computes, strict=True)]
    overhead = median(overheads)
    n_default = probe.tune.n_trials
    per_run = (trials[0].datetime_start.timestamp() - run_start) + (run_end - done[-1])
    met = overhead <= 0.05
    details = [
        f"- trial wall: median {fmt_seconds(median(walls))} "
        f"(runs: {', '.join(fmt_seconds(w) for w in walls)})",
        f"- compute: median {fmt_seconds(median(computes))} "
        f"(runs: {', '.join(fmt_seconds(c) for c in computes)})",
        f"- overhead: median {pct(overhead)} (runs: {', '.join(pct(o) for o in overheads)})",
        "",
        "| part of a trial | median | share of compute |",
        "| --- | ---: | ---: |",
    ]
    for name, _, _ in TRIAL_PARTS:
        seconds = median([p[name] for p in measured])
        details.append(f"| {name} | {fmt_seconds(seconds)} | {pct(seconds / median(computes))} |")
    warm = parts[0]
    warm_over = (sum(warm.values()) - warm[compute_name]) / warm[compute_name]
    details += [
        "",
        f"- trial 0 (the first in the process, not counted): overhead {pct(warm_over)}",
        f"- once per run of the stage, not per trial (open the study, fingerprint the data; "
        f"write best_params, the study snapshot, trials.csv, the dvclive history): "
        f"{fmt_seconds(per_run)}, {pct(per_run / (n_default * median(computes)))} of the "
        f"compute if spread over the repository's n_trials ({n_default}) trials",
    ]
    explanation = ""
    if not met:
        costs = {name: median([p[name] for p in measured]) for name, _, _ in TRIAL_PARTS}
        del costs[compute_name]
        largest = sorted(costs.items(), key=lambda kv: -kv[1])[:3]
        explanation = "Missed. The largest parts besides the compute: " + "; ".join(
            f"{name} {fmt_seconds(sec)} ({pct(sec / median(computes))} of the compute)"
            for name, sec in largest
        )
    tune = params.tune
    cap = params.train.max_train_batches
    capped = f", capped at {cap} batches" if cap else ", all of it"
    method = (
        f"`run_tune` (the tune stage's function) on a fresh SQLite study with the "
        f"repository's params.yaml ({params.model.backbone}, image {params.model.image_size}, "
        f"batch {params.train.batch_size} fixed in the search space, the train split of the "
        f"bundled sample{capped}), "
        f"tuning_max_epochs 1, keep_top_k {tune.keep_top_k}, dvclive logging, "
        f"{tune.n_trials} trials in one run; trial 0 warms up the process, the other "
        f"{n_measured} are measured. A Lightning callback inside each trial stamps the fit "
        f"loop's hooks and a wrapper stamps the real `train_model`'s entry and return. "
        f"Compute = on_train_epoch_start to on_validation_epoch_end (the train and "
        f"validation batches, with Lightning's own per-batch work). Trial wall = from the "
        f"end of the previous trial's after-trial callbacks to the end of this trial's "
        f"(Optuna's datetime_start to datetime_complete, plus the worker loop's work "
        f"between trials and the callbacks after them). Overhead = (trial wall - compute) / "
        f"compute, median over the measured trials; torch threads as configured "
        f"({threads})."
    )
    return Row(
        number=5,
        measure=(
            "per-trial overhead (storage, logging, checkpointing) vs the compute of a "
            "one-epoch trial at default size"
        ),
        target="at most 5%",
        result=(
            f"overhead {pct(overhead)} of the compute ({fmt_seconds(median(walls))} trial "
            f"wall against {fmt_seconds(median(computes))} of compute)"
        ),
        met=met,
        method=method,
        details=details,
        explanation=explanation,
    )
