"""The markdown of ``ACCURACY.md``, from the saved runs of ``python -m benchmarks.accuracy``.

The row functions return numbers only; :func:`render` is the one place that formats them,
so a report re-rendered from ``accuracy.json`` is the report the run wrote.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from benchmarks.accuracy_data import (
    DATASETS,
    INCEPTION_SOURCE,
    MINIROCKET_SOURCE,
    PUBLISHED,
    VAL_SHARE,
)
from benchmarks.report import machine_section

Stat = tuple[float, float, float]  # mean, min, max


def stat(values: list[float]) -> Stat | None:
    return (statistics.fmean(values), min(values), max(values)) if values else None


def mean_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def set_row(runs: list[dict[str, Any]], dataset: str) -> dict[str, Any]:
    """The numbers of one set over its seeds (one variant's runs)."""
    mine = [r for r in runs if r["dataset"] == dataset]
    ok = [r for r in mine if r["ok"]]
    both = [r for r in ok if r["minirocket"] is not None]
    published = PUBLISHED.get(dataset)
    return {
        "dataset": dataset,
        "n_ok": len(ok),
        "n_runs": len(mine),
        "model": stat([r["model"] for r in ok]),
        "minirocket": stat([r["minirocket"] for r in both]),
        "logreg": stat([r["logreg"] for r in ok]),
        "gap": mean_or_none([r["model"] - r["minirocket"] for r in both]),
        "published_minirocket": published.minirocket if published else None,
        "published_inception": published.inception_time if published else None,
        "best_val": mean_or_none([r["best_val"] for r in ok]),
        "cpu_s": sum(r["cpu_s"] for r in mine),
        "wall_s": sum(r["wall_s"] for r in mine),
        "sizes": ok[0]["sizes"] if ok else (mine[0]["sizes"] if mine else {}),
    }


def mean_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over sets of the per-set means (time: mean per set); published figures are
    averaged over the sets that have one, and ``*_n`` says how many those are."""

    def means(key: str) -> float | None:
        return mean_or_none([r[key][0] if r[key] else None for r in rows])

    out: dict[str, Any] = {
        "model": means("model"),
        "minirocket": means("minirocket"),
        "logreg": means("logreg"),
        "n_sets": len(rows),
    }
    for key in ("gap", "best_val", "cpu_s", "wall_s"):
        out[key] = mean_or_none([r[key] for r in rows])
    for key in ("published_minirocket", "published_inception"):
        out[key] = mean_or_none([r[key] for r in rows])
        out[f"{key}_n"] = sum(r[key] is not None for r in rows)
    return out


def variant_row(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """One line of the comparison: mean validation score and mean test accuracy per set."""
    runs = [r for r in doc["runs"] if r["variant"] == name]
    rows = [set_row(runs, s) for s in doc["sets"]]
    return {
        "name": name,
        "best_val": mean_or_none([r["best_val"] for r in runs if r["ok"]]),
        "per_set": {r["dataset"]: r["model"][0] if r["model"] else None for r in rows},
        "mean": mean_row(rows)["model"],
        "minirocket": {r["dataset"]: r["minirocket"][0] if r["minirocket"] else None for r in rows},
        "seeds": sorted({r["seed"] for r in runs if r["ok"]}),
        "n_failed": sum(not r["ok"] for r in runs),
        "cpu_s": sum(r["cpu_s"] for r in runs),
    }


def acc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def spread(value: Stat | None) -> str:
    return "n/a" if value is None else f"{value[0]:.3f} [{value[1]:.3f}, {value[2]:.3f}]"


def signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def published(value: float | None, n: int | None = None, total: int | None = None) -> str:
    text = acc(value)
    return text if n is None or n == total or value is None else f"{text} ({n} of {total} sets)"


def budget_line(variant: dict[str, Any]) -> str:
    b = variant["budget"]
    tuned = variant.get("tuned", True)
    overrides = json.dumps(variant["overrides"]) if variant["overrides"] else "none"
    tune = (
        f"tune {b['n_trials']} trials x at most {b['tuning_max_epochs']} epochs (pruner "
        f"{b['pruner']}, metric {b['metric']})"
        if tuned
        else "no tuning (train_best on these params as they are)"
    )
    keep_by = b.get("keep_epoch_by", "metric")
    stopping = (
        "no early stopping"
        if keep_by == "last"
        else f"early stopping patience {b['early_stopping_patience']}"
    )
    kept = "kept the last epoch" if keep_by == "last" else f"kept epoch by {keep_by}"
    return (
        f"- `{variant['name']}` (overrides of params.yaml: `{overrides}`): {tune}, train_best "
        f"at most {b['max_epochs']} epochs ({stopping}); every run at least "
        f"{b.get('min_steps', 0)} steps, {kept}; {b['backbone']} on "
        f"{b['image_size']}x{b['image_size']} images of {'+'.join(b['encodings'])}, batch "
        f"{b['batch_size']}, max_train_batches {b['max_train_batches']}, accelerator "
        f"{b['accelerator']}"
    )


HEADER = (
    "| set | seeds ok | model test acc, mean [min, max] | MiniRocket | logreg | "
    "model - MiniRocket | published MiniRocket | published InceptionTime | "
    "model best val ({metric}) | CPU s | wall s |"
)


def headline(doc: dict[str, Any]) -> dict[str, Any]:
    """The variant of the Results table: ``--headline``'s, or the first run's."""
    name = doc.get("headline", doc["variants"][0]["name"])
    return next(v for v in doc["variants"] if v["name"] == name)


def main_table(doc: dict[str, Any]) -> list[str]:
    variant = headline(doc)
    runs = [r for r in doc["runs"] if r["variant"] == variant["name"]]
    rows = [set_row(runs, s) for s in doc["sets"]]
    m = mean_row(rows)
    lines = [
        HEADER.format(metric=variant["budget"]["metric"]),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['n_ok']}/{r['n_runs']} | {spread(r['model'])} | "
            f"{spread(r['minirocket'])} | {spread(r['logreg'])} | {signed(r['gap'])} | "
            f"{acc(r['published_minirocket'])} | {acc(r['published_inception'])} | "
            f"{acc(r['best_val'])} | {r['cpu_s']:.0f} | {r['wall_s']:.0f} |"
        )
    n = m["n_sets"]
    lines.append(
        f"| **mean over sets** | | {acc(m['model'])} | {acc(m['minirocket'])} | "
        f"{acc(m['logreg'])} | {signed(m['gap'])} | "
        f"{published(m['published_minirocket'], m['published_minirocket_n'], n)} | "
        f"{published(m['published_inception'], m['published_inception_n'], n)} | "
        f"{acc(m['best_val'])} | {m['cpu_s'] or 0:.0f} | {m['wall_s'] or 0:.0f} |"
    )
    return lines


def comparison_table(doc: dict[str, Any]) -> list[str]:
    sets = doc["sets"]
    rows = [variant_row(doc, v["name"]) for v in doc["variants"]]
    lines = [
        "| variant | seeds | mean best val | "
        + " | ".join(sets)
        + " | mean over sets | failed | CPU s |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in sets) + " | ---: | ---: | ---: |",
    ]
    for r in rows:
        cells = " | ".join(acc(r["per_set"][s]) for s in sets)
        lines.append(
            f"| {r['name']} | {', '.join(map(str, r['seeds']))} | {acc(r['best_val'])} | "
            f"{cells} | {acc(r['mean'])} | "
            f"{r['n_failed']} | {r['cpu_s']:.0f} |"
        )
    ref = rows[0]["minirocket"]
    cells = " | ".join(acc(ref[s]) for s in sets)
    lines.append(
        f"| MiniRocket (same splits, the first variant's seeds) | | | {cells} | "
        f"{acc(mean_or_none(list(ref.values())))} | | |"
    )
    return lines


def data_table(doc: dict[str, Any]) -> list[str]:
    runs = [r for r in doc["runs"] if r["variant"] == doc["variants"][0]["name"]]
    lines = ["| set | what | train / val / test rows |", "| --- | --- | --- |"]
    for s in doc["sets"]:
        z = set_row(runs, s)["sizes"]
        rows = f"{z['n_train']} / {z['n_val']} / {z['n_test']}" if z else "n/a"
        lines.append(f"| {s} | {DATASETS.get(s, 'shipped with aeon')} | {rows} |")
    return lines


def failures(doc: dict[str, Any]) -> list[str]:
    failed = [r for r in doc["runs"] if not r["ok"]]
    if not failed:
        return []
    lines = ["## Failed runs", ""]
    for r in failed:
        lines += [f"- `{r['variant']}` {r['dataset']} seed {r['seed']}:", "", "```"]
        lines += [r["error"], "```", ""]
    return lines


def render(doc: dict[str, Any]) -> str:
    """The whole report, from the JSON document the benchmark writes."""
    n_runs = len(doc["variants"]) * len(doc["sets"]) * len(doc["seeds"])
    mode = "SMOKE MODE: tiny budgets, the figures mean nothing. " if doc["smoke"] else ""
    lines = [
        "# Accuracy on UCR/UEA data sets, MiniRocket side by side",
        "",
        f"{mode}Written by `{doc['command']}` on {doc['date']}; {len(doc['runs'])} of "
        f"{n_runs} runs done in {doc['wall_s'] / 60:.1f} min. Seeds: "
        f"{', '.join(map(str, doc['seeds']))}.",
        *[
            f"Joined with the runs of `{j['command']}` on {j['date']}."
            for j in doc.get("joined", [])
        ],
        "",
        *machine_section(doc["machine"]),
        "",
        "## Budget (read from the params each run used)",
        "",
        *[budget_line(v) for v in doc["variants"]],
        "",
        "## Method",
        "",
        "Each (set, seed) runs the project's pipeline in-process: `prepare` on an `.npz` of "
        "the archive's split, the tune stage's `run_tune`, then `run_train_best` with the "
        "best params. The archive's test split is untouched and scored once per set and "
        f"seed. Validation ({VAL_SHARE:.0%} of the archive's train split, stratified, seeded, "
        "at least one row per class) drives early stopping and tuning, so the model and "
        "MiniRocket (fitted inside `run_train_best` on the same remaining train rows) learn "
        "from fewer rows than the published figures, which use the whole train split. "
        "Accuracies are on the test split; `best val` is the model's best validation score "
        "in train_best. Time is per set over all its seeds, for the whole pipeline "
        "(MiniRocket and logreg included; numba is compiled before the first run).",
        "",
        *data_table(doc),
        "",
        f"## Results (`{headline(doc)['name']}`)",
        "",
        *main_table(doc),
        "",
    ]
    if len(doc["variants"]) > 1:
        lines += [
            "## Variants (mean test accuracy per set)",
            "",
            "A cell is the mean over the seeds that variant ran (its `seeds` column); compare "
            "a variant with one run on the same seeds.",
            "",
            *comparison_table(doc),
            "",
        ]
    lines += failures(doc)
    lines += [
        "## Published figures",
        "",
        f"- MiniRocket: {MINIROCKET_SOURCE}.",
        f"- InceptionTime: {INCEPTION_SOURCE}.",
        "- n/a: no published figure found; none is estimated.",
    ]
    return "\n".join(lines).rstrip() + "\n"
