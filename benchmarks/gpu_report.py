"""The markdown of ``python -m benchmarks.gpu``, rendered from its JSON results alone.

:func:`render` takes what the script writes to ``RESULTS-gpu.json`` (settings, machine,
and each combo's :meth:`~benchmarks.gpu_measure.Combo.record`), so a report can be
re-rendered from the JSON that came back from the GPU machine. The machine section is the
suite's (:func:`benchmarks.report.machine_section`).
"""

from __future__ import annotations

from typing import Any

from benchmarks.common import median
from benchmarks.report import machine_section
from stockclf.reporting.markdown import table

#: A data case below this share of the reused-batch upper bound starves the GPU.
STARVE_RATIO = 0.95
DATA_CASES = ("resident", "pinned")


def case_label(case: str, device: str) -> str:
    """What a case is, naming the device it ran on (``cpu`` in a smoke run on a CPU)."""
    dev = "GPU" if device == "cuda" else device.upper()
    pinned = (
        f"pinned host -> {dev} (TensorBatches)"
        if device == "cuda"
        else "host data (TensorBatches; pinned only with CUDA)"
    )
    return {
        "resident": f"data on {dev} (TensorBatches)",
        "pinned": pinned,
        "reused": "one batch reused (upper bound)",
        "unchecked": "one batch reused, no finite-loss check, unvalidated metrics",
        "compiled": "one batch reused, torch.compile",
    }[case]


def fmt_rate(images_per_s: float) -> str:
    return f"{images_per_s:,.0f}" if images_per_s >= 100 else f"{images_per_s:.1f}"


def images_per_s(seconds: list[float], s: dict[str, Any]) -> float:
    return s["steps"] * s["batch_size"] / median(seconds)


def ms_per_step(seconds: list[float], s: dict[str, Any]) -> float:
    return median(seconds) / s["steps"] * 1e3


def measured(combos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in combos if c["status"] == "measured"]


def data_ratios(combo: dict[str, Any]) -> dict[str, float]:
    upper = median(combo["seconds"]["reused"])
    return {name: upper / median(combo["seconds"][name]) for name in DATA_CASES}


def combo_cells(c: dict[str, Any]) -> list[str]:
    """The first two cells of every table's row: the model and its image size."""
    return [c["model"], str(c["size"])]


def not_measured(c: dict[str, Any], columns: int) -> list[str]:
    """A table row for a combo or case that failed or was skipped: its reason in place."""
    return [*combo_cells(c), f"{c['status']}: {c['reason']}", *[""] * (columns - 3)]


def throughput_table(combos: list[dict[str, Any]], s: dict[str, Any]) -> list[str]:
    header = [
        *("model", "image", "case", "images/s (median)", "runs (images/s)", "ms/step"),
        "vs reused batch",
    ]
    rows = []
    for c in combos:
        if c["status"] != "measured":
            rows.append(not_measured(c, len(header)))
            continue
        upper = median(c["seconds"]["reused"])
        for name, seconds in c["seconds"].items():
            runs = ", ".join(fmt_rate(s["steps"] * s["batch_size"] / t) for t in seconds)
            rate, step = fmt_rate(images_per_s(seconds, s)), f"{ms_per_step(seconds, s):.2f}"
            label, ratio = case_label(name, s["device"]), f"{upper / median(seconds):.2f}"
            rows.append([*combo_cells(c), label, rate, runs, step, ratio])
    return table(header, "lrlrlrr", rows)


def sync_cell(syncs: dict[str, Any]) -> str:
    """The syncs per step of the reused and unchecked cases, or why they were not counted."""
    if syncs.get("status") == "measured":
        return f"{syncs['reused']}, {syncs['unchecked']}"
    return f"{syncs.get('status', 'n/a')}: {syncs.get('reason', 'no CUDA device')}"


def busy_table(combos: list[dict[str, Any]]) -> list[str]:
    header = [
        *("model", "image", "GPU busy ms/step", "wall ms/step", "busy share", "kernels/step"),
        "syncs/step: reused, unchecked",
    ]
    rows = []
    for c in measured(combos):
        b, sync = c["busy"] or {}, sync_cell(c["syncs"] or {})
        if b.get("status") == "measured":
            busy = [f"{b['busy_ms_per_step']:.2f}", f"{b['wall_ms_per_step']:.2f}"]
            busy += [f"{b['share']:.0%}", f"{b['kernels_per_step']:,.0f}"]
            rows.append([*combo_cells(c), *busy, sync])
        else:
            ops = b.get("cpu_ops_per_step")
            seen = f" (profiler ran: {ops:,.0f} CPU ops/step)" if ops else ""
            reason = f"{b.get('status', 'n/a')}: {b.get('reason', '')}{seen}"
            rows.append([*combo_cells(c), reason, "", "", "", sync])
    return table(header, "lrrrrrl", rows)


def busy_line(combos: list[dict[str, Any]]) -> str:
    """The lowest busy share, and the wall time per launched kernel: a few microseconds per
    kernel means the host's launches, not the GPU, set the pace of the step."""
    shares = [
        (c["busy"]["share"], f"{c['model']} {c['size']} px", c["busy"])
        for c in measured(combos)
        if (c["busy"] or {}).get("status") == "measured"
    ]
    if not shares:
        return "**Busy verdict:** none: no busy share was measured."
    share, label, b = min(shares, key=lambda item: item[0])
    per_kernel = b["wall_ms_per_step"] * 1e3 / max(b["kernels_per_step"], 1)
    bound = "host-bound (the GPU waits for kernel launches)" if share < 0.5 else "GPU-bound"
    return (
        f"**Busy verdict:** lowest busy share {share:.0%} ({label}): {bound}; "
        f"{b['kernels_per_step']:,.0f} kernels per step, {per_kernel:.1f} us of wall per kernel."
    )


def data_table(combos: list[dict[str, Any]], s: dict[str, Any]) -> list[str]:
    header = [
        *("model", "image", "GPU data / reused", "pinned / reused", "batch alone, GPU data"),
        *("batch alone, pinned", "step (reused batch)"),
    ]
    rows = []
    for c in measured(combos):
        ratios = data_ratios(c)
        alone = {k: ms_per_step(v, s) for k, v in c["batch_alone_seconds"].items()}
        step = ms_per_step(c["seconds"]["reused"], s)
        cells = [f"{alone[k]:.3f} ms ({alone[k] / step:.1%})" for k in DATA_CASES]
        rows.append(
            [*combo_cells(c), *(f"{ratios[k]:.2f}" for k in DATA_CASES), *cells, f"{step:.2f} ms"]
        )
    return table(header, "lrrrrrr", rows)


def verdict_line(combos: list[dict[str, Any]], device: str) -> str:
    worst = [
        (ratio, case_label(name, device), f"{c['model']} {c['size']} px")
        for c in measured(combos)
        for name, ratio in data_ratios(c).items()
    ]
    if not worst:
        return "**Data path verdict:** none: no combo was measured."
    starved = [w for w in worst if w[0] < STARVE_RATIO]
    if not starved:
        low = min(worst)
        return (
            f"**Data path verdict:** does not starve the GPU: every data case runs at "
            f"{STARVE_RATIO:.0%} or more of the reused-batch upper bound (lowest "
            f"{low[0]:.2f}, {low[1]}, {low[2]})."
        )
    cases = "; ".join(f"{label}, {name}: {ratio:.2f}" for ratio, name, label in starved)
    return (
        f"**Data path verdict:** starves the GPU in {len(starved)} of {len(worst)} cases "
        f"(below {STARVE_RATIO:.0%} of the reused-batch upper bound): {cases}."
    )


def compile_table(combos: list[dict[str, Any]], s: dict[str, Any]) -> list[str]:
    if not s["compile"]:
        return ["Not run (`--no-compile`, or `--smoke` without `--compile`)."]
    header = [
        *("model", "image", "eager images/s", "compiled images/s", "speedup", "compile s"),
        *("break-even steps", "verdict"),
    ]
    rows = []
    for c in measured(combos):
        info = c["compile"] or {"status": "skipped", "reason": "not reached"}
        if info["status"] != "measured":
            rows.append(not_measured({**c, **info}, len(header)))
            continue
        b, even = s["batch_size"], info["break_even_steps"]
        rates = [fmt_rate(b / info[f"{k}_ms_per_step"] * 1e3) for k in ("eager", "compiled")]
        speedup, compile_s = f"{info['speedup']:.2f}x", f"{info['compile_s']:.1f}"
        even_text = "never" if even is None else f"{even:,.0f}"
        verdict = "helps" if info["helps"] else "does not help"
        rows.append([*combo_cells(c), *rates, speedup, compile_s, even_text, verdict])
    return table(header, "lrrrrrrl", rows)


def setup_lines(s: dict[str, Any]) -> list[str]:
    label = {case: f"`{case_label(case, s['device'])}`" for case in (*DATA_CASES, "reused")}
    mib = s["windows"] * 3 * s["window"] * 4 / 2**20
    return [
        f"- Network: `StockClassifierNet` from params.yaml's model section (encodings, mtf "
        f"bins, drop path, aux head), backbone and image size per row, random init; "
        f"{s['precision']}, channels_last.",
        "- Step: `benchmarks/steps.py` over the project's `StockClassifier`: its losses (main "
        "+ aux head), the metric update, backward, its AGC, AdamW, the schedule, and "
        "training_step's `isfinite(loss)` check. Lightning's hooks and logging are left out. "
        f"`{case_label('unchecked', s['device'])}` drops the check and torchmetrics' argument "
        "validation (`validate_args=False`); what syncs remain is counted below.",
        f"- Data: {s['windows']:,} random float32 windows x 3 channels x {s['window']} "
        f"({mib:.0f} MiB), 3 classes; batch {s['batch_size']}. {label['resident']}: "
        f"place_split put them on the device; {label['pinned']}: place_split with budget 0 "
        f"(pinned host memory on CUDA), each batch copied with `non_blocking=True`; "
        f"{label['reused']}: one batch already on the device, every step.",
        f"- Timing: {s['warmup']} warm-up steps, then {s['repeats']} interleaved repeats of "
        f"{s['steps']} steps per case between `torch.cuda.synchronize()` calls; images/s = "
        "steps x batch / seconds, median of the repeats.",
        f"- GPU busy share: torch.profiler (CPU and CUDA activity) over {s['profile_steps']} "
        f"steps of {label['resident']}: the union of kernel, memcpy and memset intervals per "
        "step over the unprofiled median wall time per step. A trace without GPU kernels is "
        "reported as failed, not as 0 %. Syncs/step: warnings of CUDA's sync debug mode in "
        "one step.",
        f"- Data path: a data case below {STARVE_RATIO:.0%} of the reused-batch upper bound "
        "starves the GPU. 'Batch alone' is the time to produce one batch on the device with "
        "no model (share of a step in brackets).",
    ]


def header(results: dict[str, Any]) -> list[str]:
    s = results["settings"]
    lines = [
        "# GPU throughput of the training step",
        "",
        f"Command: `{results['command']}` (from the repository root), started "
        f"{results['date']}; total {results['total_s']:.0f} s of a `--budget-s` of "
        f"{s['budget_s']:.0f} s.",
    ]
    if not results["finished"]:
        lines += ["", f"**Partial: written at {results['total_s']:.0f} s, before the run ended.**"]
    if s["smoke"]:
        lines += [
            "",
            "**Smoke run: tiny sizes, one repeat. It checks the code; it measures nothing.**",
        ]
    failed = [c for c in results["combos"] if c["status"] != "measured"]
    if failed:
        names = "; ".join(f"{c['model']} {c['size']} px: {c['status']}" for c in failed)
        lines += ["", f"**Not measured: {names} (reasons in the tables).**"]
    return lines


def render(results: dict[str, Any]) -> str:
    s, combos = results["settings"], results["combos"]
    lines = [
        *header(results),
        "",
        *machine_section(results["machine"]),
        "",
        "## Setup",
        "",
        *setup_lines(s),
        "",
        "## Images per second",
        "",
        *throughput_table(combos, s),
        "",
        "## GPU busy share",
        "",
        *busy_table(combos),
        "",
        busy_line(combos),
        "",
        "## Data path",
        "",
        *data_table(combos, s),
        "",
        verdict_line(combos, s["device"]),
        "",
        "## torch.compile",
        "",
        f"`torch.compile(module.net, mode={s['compile_mode']!r})` (optimiser and clipping stay "
        "eager), against eager on the reused batch, interleaved, most GPU-bound combo first, "
        "each with Dynamo reset and empty Inductor/Triton caches; compile s = the first two "
        "compiled steps minus two eager steps; break-even = compile s / seconds saved per step.",
        "",
        *compile_table(combos, s),
        "",
    ]
    return "\n".join(lines)
