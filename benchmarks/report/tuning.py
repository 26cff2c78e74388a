"""The words of rows 4 and 5 (pruning, and the cost of a trial beyond its training), from
what :mod:`benchmarks.tuning_rows` and :mod:`benchmarks.trial_rows` measured."""

from __future__ import annotations

from benchmarks.common import median
from benchmarks.report import Renderer, Words, figures_line, fmt_seconds, pct
from benchmarks.trial_rows import COMPUTE, OVERHEAD_LIMIT, TRIAL_PARTS, TrialOverhead
from benchmarks.tuning_rows import (
    EPOCH_SHARE_TARGET,
    PRUNING_CASES,
    SYNTHETIC_SIGNAL,
    VALUE_TOLERANCE,
    PruningSavings,
)
from stockclf.reporting.markdown import table


def pruning_table(m: PruningSavings) -> list[str]:
    """One line per (seed, pruner), then each pruner's verdict."""
    rows = []
    for r, seed in enumerate(m.seeds):
        for p in m.pruners:
            x = m.studies[p][r]
            rows.append(
                [
                    str(seed),
                    p,
                    str(x.epochs),
                    pct(m.share(p, r)),
                    f"{x.best:.4f}",
                    f"{m.gap(p, r):+.4f}",
                    f"{x.n_complete} / {x.n_pruned}",
                    fmt_seconds(x.seconds),
                ]
            )
    header = ["seed", "pruner", "epochs", "share of unpruned", "best value", "vs unpruned"]
    header += ["complete / pruned", "wall"]
    lines = [*table(header, "rlrrrrrr", rows), ""]
    for p in m.pruned:
        v = m.verdict(p)
        lines.append(
            f"- {p} (vs {m.reference(p)}): median share of epochs {pct(v.share)}, median "
            f"best-value gap {v.gap:+.4f}, target {'met' if v.met else 'not met'}"
        )
    return lines


def case_words(m: PruningSavings) -> str:
    """What each case sets on top of the studies' params, and what it is compared with."""
    parts = []
    for name in m.pruners:
        case = PRUNING_CASES[name]
        sets = ", ".join(f"{k} {v}" for k, v in case.tune.items())
        parts.append(f"{name} ({sets}" + (f"; vs {case.reference})" if name in m.pruned else ")"))
    return "; ".join(parts)


def pruning_method(m: PruningSavings) -> str:
    base, tune = m.params, m.params.tune
    return (
        f"`run_tune` with the real objective (Lightning training) on a synthetic learnable "
        f"problem (see `synthetic_prepared`: {m.sizes['train']}/"
        f"{m.sizes['val']} train/val windows of {len(base.data.features)} x "
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
        f"run as one of the cases {case_words(m)}; same seed and trial count for all, "
        f"{len(m.seeds)} seeds ({', '.join(map(str, m.seeds))}), pruners interleaved and "
        f"rotated. Epochs used = the trials' reported intermediate values (one per validated "
        f"epoch), or with tune.folds the epochs of every fold a trial ran; a case's share and "
        f"gap are against its unpruned reference (the same folds); best value = the study's "
        f"best complete {tune.metric} (with folds, the mean over folds). Verdict on the "
        f"repository's pruner (median): met when the median over seeds of (pruned epochs / "
        f"unpruned epochs) is at most {pct(EPOCH_SHARE_TARGET)} and the median over seeds of "
        f"(pruned best - unpruned best) is at least -{VALUE_TOLERANCE}. One torch thread."
    )


def pruning_explanation(m: PruningSavings) -> str:
    """Why the median pruner cannot save more on this problem: its floor of epochs."""
    tune, v = m.params.tune, m.verdict("median")
    total = tune.n_trials * tune.tuning_max_epochs
    others = "; ".join(
        f"{p} {pct(m.verdict(p).share)} of the epochs, best-value gap {m.verdict(p).gap:+.3f}"
        for p in m.pruned
        if p != "median"
    )
    return (
        f"The median pruner used {pct(v.share)} of the unpruned epochs (best-value gap "
        f"{v.gap:+.3f}). It never prunes the first n_startup_trials = "
        f"{tune.n_startup_trials} trials ({pct(tune.n_startup_trials / tune.n_trials)} of "
        f"an unpruned study's {tune.n_trials} trials), and with n_warmup_steps = "
        f"{tune.n_warmup_steps} every later trial trains at least {tune.n_warmup_steps + 1} "
        f"epochs: pruning every later trial at its first "
        f"chance would still use {m.floor_epochs()} of {total} epochs "
        f"({pct(m.floor_epochs() / total)}), and it prunes only trials below the median of "
        f"the others at the same epoch. "
        + (f"Other pruners on the same studies: {others}." if others else "")
    )


def pruning_savings(m: PruningSavings) -> Words:
    v = m.verdict("median")
    result = (
        f"median pruner: {pct(v.share)} of the unpruned epochs, best value {v.gap:+.3f} vs "
        f"unpruned (medians of {len(m.seeds)} seeds)"
    )
    others = [p for p in m.pruned if p != "median" and m.verdict(p).met]
    if others:
        result += f"; target met by {', '.join(others)}"
    return Words(
        result=result,
        method=pruning_method(m),
        details=pruning_table(m),
        explanation="" if m.met else pruning_explanation(m),
    )


def trial_details(m: TrialOverhead) -> list[str]:
    """The trials' figures, each part of a trial against the compute, and what is not
    per trial."""
    compute = median(m.computes)
    parts = [
        [name, fmt_seconds(m.part(name)), pct(m.part(name) / compute)] for name, *_ in TRIAL_PARTS
    ]
    return [
        figures_line("trial wall", m.walls),
        figures_line("compute", m.computes),
        figures_line("overhead", m.overheads, pct),
        "",
        *table(["part of a trial", "median", "share of compute"], "lrr", parts),
        "",
        f"- trial 0 (the first in the process, not counted): overhead {pct(m.warm_overhead)}",
        f"- once per run of the stage, not per trial (open the study, fingerprint the data; "
        f"write best_params, the study snapshot, trials.csv, the dvclive history): "
        f"{fmt_seconds(m.per_run)}, {pct(m.per_run / (m.n_default * compute))} of the "
        f"compute if spread over the repository's n_trials ({m.n_default}) trials",
    ]


def trial_method(m: TrialOverhead) -> str:
    params, tune = m.params, m.params.tune
    cap = params.train.max_train_batches
    capped = f", capped at {cap} batches" if cap else ", all of it"
    return (
        f"`run_tune` (the tune stage's function) on a fresh SQLite study with the "
        f"repository's params.yaml ({params.model.backbone}, image {params.model.image_size}, "
        f"batch {params.train.batch_size} fixed in the search space, the train split of the "
        f"bundled sample{capped}), "
        f"tuning_max_epochs 1, keep_top_k {tune.keep_top_k}, dvclive logging, "
        f"{tune.n_trials} trials in one run; trial 0 warms up the process, the other "
        f"{len(m.trials)} are measured. A Lightning callback inside each trial stamps the fit "
        f"loop's hooks and a wrapper stamps the real `train_model`'s entry and return. "
        f"Compute = on_train_epoch_start to on_validation_epoch_end (the train and "
        f"validation batches, with Lightning's own per-batch work). Trial wall = from the "
        f"end of the previous trial's after-trial callbacks to the end of this trial's "
        f"(Optuna's datetime_start to datetime_complete, plus the worker loop's work "
        f"between trials and the callbacks after them). Overhead = (trial wall - compute) / "
        f"compute, median over the measured trials; torch threads as configured "
        f"({m.threads})."
    )


def trial_overhead(m: TrialOverhead) -> Words:
    compute = median(m.computes)
    explanation = ""
    if not m.met:
        costs = sorted(
            ((name, m.part(name)) for name, *_ in TRIAL_PARTS if name != COMPUTE),
            key=lambda kv: -kv[1],
        )
        explanation = "Missed. The largest parts besides the compute: " + "; ".join(
            f"{name} {fmt_seconds(sec)} ({pct(sec / compute)} of the compute)"
            for name, sec in costs[:3]
        )
    return Words(
        result=(
            f"overhead {pct(m.overhead)} of the compute ({fmt_seconds(median(m.walls))} trial "
            f"wall against {fmt_seconds(compute)} of compute)"
        ),
        method=trial_method(m),
        details=trial_details(m),
        explanation=explanation,
    )


ROWS: dict[type, Renderer] = {
    PruningSavings: Renderer(
        4,
        "pruning vs no pruning on a small fixed problem, same seed and trial count: "
        "epochs used, and best value",
        f"the pruned study reaches the unpruned study's best minus {VALUE_TOLERANCE} "
        f"with at most {pct(EPOCH_SHARE_TARGET)} of its epochs",
        pruning_savings,
    ),
    TrialOverhead: Renderer(
        5,
        "per-trial overhead (storage, logging, checkpointing) vs the compute of a "
        "one-epoch trial at default size",
        f"at most {OVERHEAD_LIMIT:.0%}",
        trial_overhead,
    ),
}
