"""The words of row 6 (a no-op ``dvc repro`` against ``dvc status``), from what
:mod:`benchmarks.dvc_rows` measured."""

from __future__ import annotations

from typing import Any

from benchmarks.dvc_rows import LIMIT, NoopRepro
from benchmarks.report import Renderer, Words, figures_line, fmt_seconds


def dotted(data: dict[str, Any]) -> str:
    """``data.window=16, model.image_size=16, ...`` for the method text."""
    flat: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}{key}.", sub)
        else:
            flat.append(f"{prefix[:-1]}={value}")

    walk("", data)
    return ", ".join(flat)


def profile_line(m: NoopRepro) -> str:
    r, s = m.profile["repro"], m.profile["status"]
    return (
        "- one cProfile run each (`--cprofile-dump`), profiled seconds:"
        f" total repro {r['total']:.2f} s vs status {s['total']:.2f} s;"
        f" importing networkx (repro builds the stage graph, status does not):"
        f" {r['networkx import']:.2f} s vs {s['networkx import']:.2f} s;"
        f" `collect_stages` (repro loads dvc.yaml and dvc.lock once more for its targets):"
        f" {r['collect_stages']:.2f} s;"
        f" parsing dvc.yaml/dvc.lock: {int(r['dvc.yaml/dvc.lock loads'])} loads,"
        f" {r['yaml']:.2f} s vs {int(s['dvc.yaml/dvc.lock loads'])} loads, {s['yaml']:.2f} s"
    )


def explanation(m: NoopRepro) -> str:
    """Where repro's extra time goes, when the target is missed; and a setup finding."""
    text = ""
    if not m.met:
        r, s = m.profile["repro"], m.profile["status"]
        explained = r["networkx import"] - s["networkx import"] + r["collect_stages"]
        extra = fmt_seconds(m.median("dvc repro") - m.median("dvc status"))
        text = (
            f"`dvc repro` costs {extra} more than `dvc status` on the same"
            " up-to-date pipeline. Both check the same deps and outs against the same state"
            " database; what repro adds is DVC's own work, per the profile above: it imports"
            " networkx to build the stage graph (status never does) and, for its default"
            " target, loads dvc.yaml and dvc.lock a second time (`collect_stages`) although"
            " the graph already holds every stage. Those two alone take"
            f" {explained:.2f} s under the profiler, against a profiled difference of"
            f" {r['total'] - s['total']:.2f} s between the two commands."
            " Neither depends on dvc.yaml or .dvc/config beyond the size of the two YAML files"
            " (ruamel.yaml parses them at the same cost per load in both commands), so no"
            f" project setting removes them; they are fixed costs of DVC {m.dvc_version}."
        )
    if m.setup_notes:
        text += (" " if text else "") + (
            "Setup finding: a freshly run pipeline was not up to date (see the setup line)."
        )
    return text


def noop_repro_vs_status(m: NoopRepro) -> Words:
    repro, status, start = (m.median(c) for c in ("dvc repro", "dvc status", "dvc --version"))
    details = [figures_line(name, values) for name, values in m.runs.items()]
    details += [
        f"- ratio {m.ratio:.2f}x; net of the `dvc --version` start-up ({fmt_seconds(start)}):"
        f" {m.net:.2f}x; repro costs {fmt_seconds(repro - status)} more than status",
        profile_line(m),
        *[f"- setup: {note}" for note in m.setup_notes],
    ]
    method = (
        "A throwaway git + DVC copy of this repository ran the real pipeline"
        f" ({', '.join(m.stages)}) once with shrunk params ({dotted(m.shrunk)}) and was"
        " committed. Then `dvc repro`, `dvc status` and `dvc --version` (the start-up both"
        " include) ran as fresh processes (`python -m dvc`), interleaved,"
        f" {m.repeats} times each; wall time. Every repro was checked to do nothing: its"
        " output says the pipeline is up to date, no stage ran, dvc.lock is byte-identical"
        " and no file in the repo changed (mtime, size, `git status`); every status was"
        " checked to report up to date."
    )
    return Words(
        result=f"{m.ratio:.2f}x ({fmt_seconds(repro)} vs {fmt_seconds(status)})",
        method=method,
        details=details,
        explanation=explanation(m),
    )


ROWS: dict[type, Renderer] = {
    NoopRepro: Renderer(
        6,
        "`dvc repro` with nothing to do vs plain `dvc status`",
        f"at most {LIMIT}x",
        noop_repro_vs_status,
    ),
}
