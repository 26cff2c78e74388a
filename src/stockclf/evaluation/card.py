"""``models/card.md``: what the model was trained on, with which params, how it scored on
the test split beside every baseline, and how to use it; written by train_best next to the
checkpoint so that the two travel together (``dvc push``, ``dvc artifacts get``)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from stockclf.config import Params
from stockclf.data.store import SPLITS, SplitData
from stockclf.files import atomic_file
from stockclf.reporting.markdown import table


def git_revision(cwd: Path = Path(".")) -> str:
    """``HEAD``'s commit, marked when the work tree differs from it (an experiment run by
    ``dvc exp run`` changes params.yaml), or ``unknown`` outside a git repository."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not run in a git repository)"
    return f"{rev} (with uncommitted changes)" if dirty else rev


def _split_lines(splits: Mapping[str, SplitData]) -> list[str]:
    rows = []
    for name in SPLITS:
        data = splits[name]
        dates = np.asarray(data.dates, dtype="datetime64[D]")
        first, last = (str(dates.min()), str(dates.max())) if len(dates) else ("-", "-")
        rows.append([name, str(len(data)), first, last])
    return table(["split", "samples", "first decision date", "last decision date"], "llll", rows)


def _score_lines(
    results: Mapping[str, Any], intervals: Mapping[str, Mapping[str, float]]
) -> list[str]:
    rows = []
    for name, ci in intervals.items():
        gain = ci.get("model_gain")
        gain_text = "" if gain is None else f"{gain:+.4f}"
        gain_ci = (
            ""
            if gain is None
            else f"[{ci['model_gain_ci_low']:+.4f}, {ci['model_gain_ci_high']:+.4f}]"
        )
        f1_ci = f"[{ci['f1_macro_ci_low']:.4f}, {ci['f1_macro_ci_high']:.4f}]"
        accuracy = f"{results[name]['accuracy']:.4f}"
        rows.append([name, f"{ci['f1_macro']:.4f}", f1_ci, gain_text, gain_ci, accuracy])
    header = ["predictor", "test macro F1", "interval", "model gain", "gain interval", "accuracy"]
    return table(header, "llllll", rows)


def _tuned_lines(tuned: Mapping[str, Any]) -> list[str]:
    if not tuned:
        return ["Nothing was tuned (`tuning/best_params.yaml` is empty): params.yaml's values.", ""]
    return [
        "Tuned by the study (`tuning/best_params.yaml`), overriding params.yaml:",
        "",
        "```yaml",
        yaml.safe_dump(dict(tuned), sort_keys=True).strip(),
        "```",
        "",
    ]


def _use_lines(meta: Mapping[str, Any]) -> list[str]:
    return [
        "## Use",
        "",
        "```",
        "stockclf predict --data DIR_OR_CSV --date latest --model models/best.ckpt",
        "```",
        "",
        "```python",
        "from stockclf import load_classifier",
        'clf = load_classifier("models/best.ckpt")',
        "probabilities = clf.predict_proba(windows)  # N x "
        f"{len(meta['features'])} x {meta['window']} float32 -> N x {len(meta['classes'])}",
        "```",
        "",
    ]


def render_card(
    params: Params,
    tuned: Mapping[str, Any],
    meta: Mapping[str, Any],
    splits: Mapping[str, SplitData],
    fingerprint: str,
    results: Mapping[str, Any],
    intervals: Mapping[str, Mapping[str, float]],
    revision: str,
) -> str:
    """The card's markdown (no I/O, so a test can read it without training)."""
    confidence = f"{params.evaluate.confidence:.0%}"
    horizon = meta.get("horizon")
    lines = [
        "# Model card: `models/best.ckpt`",
        "",
        f"Backbone `{params.model.backbone}`: a classifier of {len(meta['classes'])} classes "
        f"({', '.join(meta['classes'])}) on windows of {meta['window']} days of "
        f"{', '.join(meta['features'])}"
        + (f", labelled by the return over the next {horizon} trading days." if horizon else "."),
        "",
        "## Trained on",
        "",
        f"- data source: `{params.data.source}` ({len(meta['symbols'])} symbol(s))",
        f"- data fingerprint (sha256 of the prepared data): `{fingerprint}`",
        f"- git revision: `{revision}`",
        "",
        *_split_lines(splits),
        "",
        "## Params",
        "",
        *_tuned_lines(tuned),
        "As trained (params.yaml with the tuned values):",
        "",
        "```yaml",
        yaml.safe_dump(
            {
                "seed": params.seed,
                **params.model_dump(mode="json", include={"data", "model", "train"}),
            },
            sort_keys=False,
        ).strip(),
        "```",
        "",
        "## Test split, scored once",
        "",
        f"Macro F1 with its {confidence} block-bootstrap interval "
        f"({params.evaluate.bootstrap_samples} resamples of blocks of "
        f"{params.evaluate.bootstrap_block_days} test dates), and the model's gain over each "
        "baseline on the same resamples. An interval of the gain that contains 0 means the "
        "test split cannot tell the two apart.",
        "",
        *_score_lines(results, intervals),
        "",
        *_use_lines(meta),
    ]
    return "\n".join(lines)


def write_card(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
