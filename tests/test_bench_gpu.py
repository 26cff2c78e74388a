"""benchmarks/gpu.py: its smoke mode runs on a CPU and writes the full report's structure, it
refuses a full run without CUDA, and its busy-share and verdict arithmetic are right.

The script is run as it is run on a GPU machine: ``python -m benchmarks.gpu`` from the
repository root, in a child process.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import gpu as gpu_bench

REPO = Path(__file__).resolve().parents[1]
MODELS = ("efficientnet_b0", "dm_nfnet_f0")


def run_script(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def section(text: str, title: str) -> str:
    """The lines under ``## title`` up to the next ``## ``."""
    assert f"## {title}\n" in text, f"no section {title!r}"
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_smoke_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "x.md"
    done = run_script("--smoke", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text(encoding="utf-8")

    machine = section(text, "Machine")
    assert f"- torch {torch.__version__}" in machine
    assert "- GPU: " in machine

    table = section(text, "Images per second")
    for model in MODELS:
        rows = [line for line in table.splitlines() if line.startswith(f"| {model} |")]
        assert len(rows) == 4, rows  # resident, host, reused, reused without sync
        for row in rows:
            images_per_s = float(row.split("|")[5].strip().replace(",", ""))
            assert images_per_s > 0, row
    assert "one batch reused (upper bound)" in table

    data = section(text, "Data path")
    verdict = [line for line in data.splitlines() if line.startswith("**Data path verdict:**")]
    assert len(verdict) == 1
    assert re.search(r"(does not starve the GPU|starves the GPU in \d+ of 4 cases)", verdict[0])
    assert all(f"| {model} | 16 |" in data for model in MODELS)

    results = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert results["smoke"] is True
    assert results["finished"] is True
    assert [c["model"] for c in results["combos"]] == list(MODELS)
    for combo in results["combos"]:
        assert set(combo["images_per_s"]) == {"resident", "pinned", "reused", "nosync"}
        assert all(rate > 0 for rate in combo["images_per_s"].values())


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device would run the full benchmark")
def test_full_run_without_cuda_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "x.md"
    done = run_script("--out", str(out), timeout=120)
    assert done.returncode == 2
    assert "no CUDA device; use --smoke" in done.stderr
    assert not out.exists()


def test_busy_time_merges_overlapping_gpu_intervals() -> None:
    trace = {
        "traceEvents": [
            {"ph": "X", "cat": "kernel", "ts": 100.0, "dur": 10.0},
            {"ph": "X", "cat": "kernel", "ts": 105.0, "dur": 10.0},  # overlaps: 100..115
            {"ph": "X", "cat": "gpu_memcpy", "ts": 120.0, "dur": 10.0},
            {"ph": "X", "cat": "gpu_memset", "ts": 125.0, "dur": 2.0},  # inside the copy
            {"ph": "X", "cat": "cpu_op", "ts": 0.0, "dur": 1000.0},  # host work: not GPU time
            {"ph": "i", "cat": "kernel", "ts": 200.0},  # an instant, no duration
        ]
    }
    assert gpu_bench.gpu_busy_seconds(trace) == pytest.approx(25e-6)
    assert gpu_bench.merge_intervals([]) == 0.0


def test_verdict_flags_a_data_case_below_95_percent() -> None:
    def combo(model: str, resident: float, pinned: float):
        return gpu_bench.Combo(
            model=model,
            size=64,
            step=None,
            step_nosync=None,
            make_compiled_step=None,
            sources={},
            figures={"resident": [resident], "pinned": [pinned], "reused": [1.0]},
        )

    cuda = torch.device("cuda")
    fine = gpu_bench.verdict_line([combo("a", 1.02, 1.04)], cuda)
    assert "does not starve the GPU" in fine
    assert "lowest 0.96" in fine
    starved = gpu_bench.verdict_line([combo("a", 1.02, 1.25), combo("b", 1.0, 1.0)], cuda)
    assert "starves the GPU in 1 of 4 cases" in starved
    assert "a 64 px, pinned host -> GPU (TensorBatches): 0.80" in starved
