"""``python -m benchmarks.samplers``: Optuna's GPSampler against TPE at the default budget.

The studies of row 4's synthetic problem (:func:`benchmarks.tuning_rows.synthetic_prepared`:
learnable, so a better point scores better, unlike the bundled prices, where most trials
sit at the one-class value), run through the real tune stage with ``tune.n_trials`` and
``tune.n_startup_trials`` as params.yaml sets them and no pruning, once per (sampler, seed).
Trial 0 is params.yaml's own point in every study (``tune.warm_start``), then
``n_startup_trials - 1`` random points, then the sampler's own: at the default budget
(6 trials, 3 of them startup) a model-based sampler chooses only the last 3, which is the
situation a user of the defaults is in. ``random`` runs beside them as the floor that a
model-based sampler has to beat.

``--pruner median`` runs the same studies under the default pruner: a pruned trial has no
value, and GP models only complete trials, while TPE also learns from pruned ones.

Reported per seed: each study's best value and its trials' values; per sampler: the median
best value, and against TPE the median difference and the seeds it wins, ties and loses.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    REPO,
    Context,
    bench_params,
    median,
    publish,
    quote,
    repo_params_dict,
)
from benchmarks.tuning_rows import (
    PRUNING_SMOKE_UPDATES,
    PRUNING_UPDATES,
    Study,
    synthetic_study,
    torch_threads,
)
from stockclf.config import Params, merge_params
from stockclf.reporting.markdown import table

DEFAULT_OUT = REPO / "benchmarks" / "SAMPLERS.md"
SAMPLERS = ("tpe", "gp", "random")
REFERENCE = "tpe"
#: Two best values closer than this are a tie (macro F1 on 600 validation windows).
TIE = 0.005
SUMMARY_HEADER = ["sampler", "median best", "median vs TPE", "wins / ties / losses vs TPE"]
SUMMARY_HEADER.append("median wall")


@dataclass
class SamplerStudies:
    """Every study of the comparison: sampler -> one study per seed, in ``seeds`` order."""

    params: Params  # of the studies, but for the seed and the sampler
    seeds: list[int]
    studies: dict[str, list[Study]]

    def gaps(self, sampler: str) -> list[float]:
        """Best value minus TPE's, per seed."""
        own, ref = self.studies[sampler], self.studies[REFERENCE]
        return [a.best - b.best for a, b in zip(own, ref, strict=True)]

    def record(self, sampler: str) -> tuple[int, int, int]:
        """Seeds on which ``sampler`` beats, ties and loses to TPE."""
        gaps = self.gaps(sampler)
        wins = sum(g > TIE for g in gaps)
        losses = sum(g < -TIE for g in gaps)
        return wins, len(gaps) - wins - losses, losses


def base_params(ctx: Context, pruner: str = "none") -> Params:
    """Row 4's problem, with the default trial budget of params.yaml and ``pruner``."""
    updates = PRUNING_SMOKE_UPDATES if ctx.smoke else PRUNING_UPDATES
    tune: dict[str, Any] = {"pruner": pruner}
    if not ctx.smoke:
        tune["n_trials"] = repo_params_dict()["tune"]["n_trials"]
    return bench_params(ctx, merge_params(updates, {"tune": tune}))


def compare(
    ctx: Context, samplers: list[str], n_seeds: int, pruner: str = "none"
) -> SamplerStudies:
    """One study per (seed, sampler), the samplers rotated from seed to seed."""
    base = base_params(ctx, pruner)
    seeds = [base.seed + r for r in range(n_seeds)]
    studies: dict[str, list[Study]] = {s: [] for s in samplers}
    # One thread: the figures are scores, not times (as in row 4).
    with torch_threads(1):
        for r, seed in enumerate(seeds):
            shift = r % len(samplers)
            for sampler in samplers[shift:] + samplers[:shift]:
                name = f"samplers/seed{seed}-{sampler}"
                studies[sampler].append(
                    synthetic_study(ctx, base, {"sampler": sampler}, name, seed)
                )
    return SamplerStudies(base, seeds, studies)


def fmt(value: float | None) -> str:
    return "no value" if value is None else f"{value:.4f}"  # a pruned (or failed) trial


def render(m: SamplerStudies, command: str) -> str:
    """The report: one line per (seed, sampler), then one per sampler."""
    rows = [
        [
            str(seed),
            s,
            f"{m.studies[s][r].best:.4f}",
            f"{m.gaps(s)[r]:+.4f}",
            ", ".join(fmt(v) for v in m.studies[s][r].values),
            f"{m.studies[s][r].seconds:.0f} s",
        ]
        for r, seed in enumerate(m.seeds)
        for s in m.studies
    ]
    summary = []
    for s in m.studies:
        wins, ties, losses = m.record(s)
        bests = [x.best for x in m.studies[s]]
        seconds = median([x.seconds for x in m.studies[s]])
        gap = median(m.gaps(s))
        record = f"{wins} / {ties} / {losses}"
        summary.append([s, f"{median(bests):.4f}", f"{gap:+.4f}", record, f"{seconds:.0f} s"])
    tune = m.params.tune
    return "\n".join(
        [
            "# GPSampler vs TPE at the default trial budget",
            "",
            f"Command: `{command}`",
            "",
            f"Row 4's synthetic problem ({m.params.model.backbone} at "
            f"{m.params.model.image_size} px, {tune.tuning_max_epochs} epochs a trial), "
            f"{tune.n_trials} trials a study with {tune.n_startup_trials} startup trials "
            f"(trial 0 is params.yaml's point), pruner {tune.pruner}, params.yaml's search "
            "space with "
            f"the batch size fixed; seeds {', '.join(map(str, m.seeds))}. Best value: the "
            f"study's best validation macro F1. A tie is a difference under {TIE}.",
            "",
            *table(SUMMARY_HEADER, "lrrrr", summary),
            "",
            *table(
                ["seed", "sampler", "best value", "vs TPE", "trial values", "wall"],
                "rlrrlr",
                rows,
            ),
            "",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.samplers", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="configs/tiny.yaml, 3 trials")
    parser.add_argument("--samplers", nargs="+", default=None, choices=SAMPLERS)
    parser.add_argument("--seeds", type=int, default=None, help="default 5 (1 with --smoke)")
    parser.add_argument(
        "--pruner", default="none", choices=["none", "median", "hyperband"], help="default none"
    )
    parser.add_argument("--out", type=Path, default=None, help=f"default {DEFAULT_OUT.name}")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures")
    args = parser.parse_args(argv)
    args.samplers = args.samplers or (["tpe", "gp"] if args.smoke else list(SAMPLERS))
    if REFERENCE not in args.samplers:
        parser.error(f"--samplers must include {REFERENCE}, the reference")
    args.seeds = args.seeds or (1 if args.smoke else 5)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = quote(["python", "-m", "benchmarks.samplers", *(argv or sys.argv[1:])])
    with tempfile.TemporaryDirectory(prefix="stockclf-samplers-") as work:
        ctx = Context(smoke=args.smoke, repeats=1, workdir=Path(work), command=command)
        measured = compare(ctx, args.samplers, args.seeds, args.pruner)
    figures = {
        "seeds": measured.seeds,
        "studies": {s: [asdict(x) for x in v] for s, v in measured.studies.items()},
        "gaps": {s: measured.gaps(s) for s in measured.studies},
    }
    out = args.out or (None if args.smoke else DEFAULT_OUT)
    publish(render(measured, command), out, "benchmarks.samplers", args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
