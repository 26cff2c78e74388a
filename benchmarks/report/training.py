"""The words of rows 1, 2, 3 and 7 (the training step and the options around it), from
what :mod:`benchmarks.training_rows` and :mod:`benchmarks.speedup_rows` measured."""

from __future__ import annotations

from benchmarks.common import median, overlap
from benchmarks.report import Renderer, Words, figures_line, fmt_seconds, span
from benchmarks.speedup_rows import REFERENCE, CpuSpeedups
from benchmarks.training_rows import (
    HEADROOM_TARGET,
    OVERHEAD_LIMIT,
    SHARE_LIMIT,
    DataPathHeadroom,
    EncoderShare,
    LightningOverhead,
)
from stockclf.reporting.markdown import table


def lightning_overhead(m: LightningOverhead) -> Words:
    z = m.sizes
    light, raw = m.lightning, m.raw
    explanation = ""
    if overlap(light, raw):
        explanation = (
            f"The runs of the two cases overlap ({span(light)} against {span(raw)} per step): "
            "the difference between the medians is run-to-run noise, not a cost or a gain "
            "of Lightning."
        )
    elif not m.met:
        explanation = (
            f"Not met in this run: every Lightning run ({span(light)} per step) was slower "
            f"than every raw run ({span(raw)}), by {fmt_seconds(median(light) - median(raw))} "
            "per step: Lightning's per-batch hooks, `self.log` and optimizer closure. The row "
            "does not break that down further."
        )
    return Words(
        result=f"overhead {m.figure:+.1%}",
        method=(
            f"The default model and batch ({z.backbone}, {z.image_size} px, batch "
            f"{z.batch_size}), the same batches and {z.threads} threads in both cases. "
            "Lightning: `Trainer.fit` of the project's `StockClassifier` with no logger, "
            "checkpoint or progress bar (row 5 prices those), timed by a callback from the "
            f"start of batch {z.warmup} to the end of the last. Raw: `benchmarks/steps.py`, a "
            "loop making the same calls (the module's `losses`, metric update, backward, its "
            "AGC, AdamW, the schedule, the finite-loss check). "
            f"{z.steps} timed steps after {z.warmup} warm-up steps per case and repeat, "
            f"{m.repeats} repeats."
        ),
        details=[figures_line("Lightning, per step", light), figures_line("raw, per step", raw)],
        explanation=explanation,
    )


def encoder_share(m: EncoderShare) -> Words:
    z = m.sizes
    return Words(
        result=f"{m.figure:.1%} of a step",
        method=(
            f"The encoder (`ImageEncoder`: {', '.join(z.encodings)} of {z.in_channels} "
            f"channels -> {m.images} images of {z.image_size} px) on one training batch of "
            f"{z.batch_size} windows, {z.steps} calls, against the whole training step of row "
            "1's raw loop (which includes the encoder), same batch size and threads."
        ),
        details=[
            figures_line("encoder, per batch", m.encoder),
            figures_line("training step, per batch", m.step),
        ],
    )


def data_path_headroom(m: DataPathHeadroom) -> Words:
    delivered, legacy, consumed = (median(v) for v in (m.delivered, m.legacy, m.consumed))
    return Words(
        result=f"{m.figure:,.0f}x headroom",
        method=(
            f"Delivered: one shuffled epoch of the train split ({m.windows:,} windows, "
            f"{m.batches} batches of {m.sizes.batch_size}) from `TensorBatches`, the "
            "training data path (one index gather per batch from tensors in memory), with no "
            "model. Consumed: training steps of the default model (row 1's raw loop). For "
            "comparison, the data path it replaced: a `DataLoader` over a `TensorDataset` "
            "(per-sample indexing and collation), same batch size."
        ),
        details=[
            figures_line("TensorBatches, per batch", m.delivered),
            figures_line("DataLoader(TensorDataset), per batch", m.legacy),
            figures_line("training step, per batch", m.consumed),
            f"- batches per second: delivered {1 / delivered:,.0f}, consumed "
            f"{1 / consumed:,.1f}; the DataLoader path delivered {1 / legacy:,.0f} "
            f"({legacy / delivered:.1f}x slower than `TensorBatches`)",
        ],
    )


def compile_notes(m: CpuSpeedups) -> list[str]:
    """What each compiled case cost to compile and whether it pays that back."""
    if not m.compiled:
        return ["- torch.compile: not run in smoke mode"]
    notes = [f"- {name} failed here: {error}"[:300] for name, error in m.compile_failures.items()]
    for name, seconds in m.compile_seconds.items():
        reference, payback = REFERENCE[name], m.payback(name)
        paying = (
            f"paying back after about {payback:,.0f} steps"
            if payback is not None
            else "never paying back"
        )
        notes.append(
            f"- {name}: the first two (compiling) steps took {seconds:.1f} s; vs {reference} "
            f"{m.step(reference) / m.step(name):.2f}x per step, {paying} (a default tuning "
            f"trial is {m.trial_steps} steps)"
        )
    return notes


def cpu_speedups(m: CpuSpeedups) -> Words:
    z, chosen = m.sizes, m.chosen()
    differ = [k for k, on in chosen.items() if on != m.defaults[k]]
    explanation = ""
    if m.compiled:
        explanation = (
            "The project's CPU defaults (`train.channels_last: true`, `train.precision: auto` "
            "= fp32 on a CPU, no torch.compile) "
            + (f"differ from the measurement in: {', '.join(differ)}." if differ else "match it.")
        )
    rows = [[n, fmt_seconds(m.step(n)), f"{m.speedup(n):.2f}x"] for n in m.runs]
    return Words(
        result=", ".join(f"{n} {m.speedup(n):.2f}x" for n in m.runs if n != "fp32"),
        method=(
            "Row 1's raw training step of the default model, each option alone against fp32 "
            "with the contiguous (NCHW) layout, and torch.compile also on top of "
            f"channels_last: {z.steps} timed steps after {z.warmup} warm-up steps per case and "
            "repeat. torch.compile (default mode) compiles the network before its case is "
            "first timed, with an empty compile cache; its compile time is given apart. An "
            "option counts as faster only if every run of it beats every run of its "
            "reference; compile is judged against "
            "the best eager choice and must also pay back within one default tuning trial "
            "(each trial compiles anew). Measured choice for this CPU: "
            + ", ".join(f"{k} {'on' if on else 'off'}" for k, on in chosen.items())
            + "."
        ),
        details=[
            *table(["case", "step", "speed-up vs fp32"], "lrr", rows),
            "",
            *[figures_line(f"{n}, per step", v) for n, v in m.runs.items()],
            *compile_notes(m),
        ],
        explanation=explanation,
    )


ROWS: dict[type, Renderer] = {
    LightningOverhead: Renderer(
        1,
        "Lightning training step vs a raw PyTorch loop",
        f"overhead at most {OVERHEAD_LIMIT:.0%}",
        lightning_overhead,
    ),
    EncoderShare: Renderer(
        2,
        "the device encoder's cost as a share of a backbone training step",
        f"at most {SHARE_LIMIT:.0%}",
        encoder_share,
    ),
    DataPathHeadroom: Renderer(
        3,
        "the data path: batches per second delivered vs consumed by the model",
        f"at least {HEADROOM_TARGET:.0f}x headroom",
        data_path_headroom,
    ),
    CpuSpeedups: Renderer(
        7,
        "channels_last, bf16 autocast and torch.compile on CPU, each vs plain fp32",
        "pick the defaults from the measurements",
        cpu_speedups,
    ),
}
