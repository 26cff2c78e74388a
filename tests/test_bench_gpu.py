"""benchmarks/gpu.py: the command that benchmarks/README.md documents for the GPU machine runs
here in ``--smoke`` mode and leaves its report, JSON and log in ``$OUT``; one failing combo
is a row naming its error while the others are measured; the compile path, the busy share
and the sync count behave; and a full run without CUDA exits with 2.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from benchmarks import gpu, gpu_compile, gpu_measure, gpu_report, gpu_timing

REPO = Path(__file__).resolve().parents[1]
MODELS = ("efficientnet_b0", "dm_nfnet_f0")
MARKER = "<!-- gpu-command:"
ENTRY = "python3 -m benchmarks.gpu "


def documented_command() -> str:
    """The bash block under the marker in benchmarks/README.md: what the GPU machine runs."""
    text = (REPO / "benchmarks" / "README.md").read_text(encoding="utf-8")
    assert text.count(MARKER) == 1, "one marked command block in benchmarks/README.md"
    after = text.split(MARKER, 1)[1].split("\n", 1)[1]
    match = re.match(r"```bash\n(.*?)\n```", after, re.DOTALL)
    assert match, "the marker is followed by a ```bash block"
    return match.group(1)


def run_bash(
    script: str, tmp_path: Path, cwd: Path = REPO, **env: str
) -> subprocess.CompletedProcess[str]:
    """``script`` run by bash from the repository root, ``python3`` being this interpreter
    (the one with the project's dependencies), TMPDIR inside ``tmp_path``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").symlink_to(sys.executable)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in ("OUT", "PYTHONPATH")}
    full_env = {**base, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    full_env.update(TMPDIR=str(tmp_path / "tmp"), **env)
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=full_env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def section(text: str, title: str) -> str:
    """The lines under ``## title`` up to the next ``## ``."""
    assert f"## {title}\n" in text, f"no section {title!r}"
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def model_rows(text: str, title: str, model: str) -> list[str]:
    return [line for line in section(text, title).splitlines() if line.startswith(f"| {model} |")]


def test_the_documented_command_rehearsed_on_cpu_leaves_everything_in_out(tmp_path: Path) -> None:
    command = documented_command()
    assert command.count(ENTRY) == 1
    out = tmp_path / "out"
    out.mkdir()
    done = run_bash(command.replace(ENTRY, ENTRY + "--smoke "), tmp_path, OUT=str(out))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "RESULTS-gpu.json",
        "RESULTS-gpu.md",
        "gpu.log",
    ]
    log = (out / "gpu.log").read_text(encoding="utf-8")
    assert "wrote" in log and "RESULTS-gpu.json" in log  # the tee kept the progress lines
    text = (out / "RESULTS-gpu.md").read_text(encoding="utf-8")
    results = json.loads((out / "RESULTS-gpu.json").read_text(encoding="utf-8"))
    assert gpu_report.render(results) == text  # the markdown is the JSON's rendering alone

    command_line = text.split("\n")[2]
    assert "`python3 -m benchmarks.gpu --smoke --out $OUT/RESULTS-gpu.md`" in command_line
    assert str(tmp_path) not in text and str(REPO) not in text
    assert re.search(r"started \d{4}-\d\d-\d\d \d\d:\d\d UTC", command_line)
    machine = section(text, "Machine")
    assert f"| torch | {torch.__version__} |" in machine
    assert "| timm, lightning, torchmetrics |" in machine

    for model in MODELS:
        rows = model_rows(text, "Images per second", model)
        assert len(rows) == 4, rows  # resident, host, reused, reused unchecked
        assert all(float(row.split("|")[4].replace(",", "")) > 0 for row in rows), rows
        (busy,) = model_rows(text, "GPU busy share", model)
        assert "n/a: no CUDA device (profiler ran:" in busy  # the profiler's path ran
        assert len(model_rows(text, "Data path", model)) == 1
    assert "**Busy verdict:** none: no busy share was measured." in text
    verdicts = [line for line in text.splitlines() if line.startswith("**Data path verdict:**")]
    assert len(verdicts) == 1
    assert re.search(r"(does not starve the GPU|starves the GPU in \d+ of 4 cases)", verdicts[0])

    assert results["settings"]["smoke"] is True and results["finished"] is True
    assert [c["model"] for c in results["combos"]] == list(MODELS)
    for combo in results["combos"]:
        assert combo["status"] == "measured"
        assert set(combo["images_per_s"]) == {"resident", "pinned", "reused", "unchecked"}
        assert combo["busy"]["cpu_ops_per_step"] > 0


def test_one_failing_combo_is_a_row_naming_its_error(tmp_path: Path) -> None:
    out = tmp_path / "x.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--smoke", "--models", "no_such_net",
         "efficientnet_b0", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == gpu.EXIT_FAILED, done.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    (failed,) = model_rows(text, "Images per second", "no_such_net")
    assert "failed: RuntimeError: Unknown model (no_such_net)" in failed
    assert "**Not measured: no_such_net 16 px: failed" in text
    assert len(model_rows(text, "Images per second", "efficientnet_b0")) == 4
    combos = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["combos"]
    assert [c["status"] for c in combos] == ["failed", "measured"]


def smoke_settings(tmp_path: Path, *extra: str) -> gpu_measure.Settings:
    return gpu.parse_args(
        ["--smoke", "--models", "efficientnet_b0", "--out", str(tmp_path / "x.md"), *extra]
    )


def smoke_data(s: gpu_measure.Settings) -> gpu_measure.Data:
    x, y = torch.randn(s.windows, 3, s.window), torch.randint(0, 3, (s.windows,))
    return gpu_measure.Data((x, y), (x, y), (x, y))


def test_a_step_that_fails_mid_measurement_is_recorded(tmp_path: Path, monkeypatch) -> None:
    s = smoke_settings(tmp_path)

    def diverge(self, x, y):
        raise FloatingPointError("training loss is nan")

    monkeypatch.setattr(gpu_measure.TrainStep, "__call__", diverge)
    combo = gpu_measure.Combo("efficientnet_b0", s.sizes[0])
    gpu_measure.measure_combo(combo, s, smoke_data(s))
    assert combo.status == "failed"
    assert combo.reason == "FloatingPointError: training loss is nan"
    assert combo.step is None and combo.sources == {}  # released for the next combo


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_the_compile_path_with_a_stand_in_compiler(tmp_path: Path, monkeypatch, one_thread) -> None:
    """Compiling for real takes minutes on a CPU: an identity compiler runs every other part
    of the compile cases (cold caches per case, timing, budget, report)."""
    dirs: list[str] = []

    def identity(module, **kwargs):
        dirs.append(os.environ["TORCHINDUCTOR_CACHE_DIR"])
        assert os.environ["TRITON_CACHE_DIR"].startswith(dirs[-1])
        return module

    monkeypatch.setattr(torch, "compile", identity)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    out = tmp_path / "x.md"
    args = [
        "--smoke",
        "--compile",
        "--models",
        "efficientnet_b0",
        "efficientnet_b0",
        "--out",
        str(out),
        # the budget is wall time: on a loaded machine the default would skip compile cases
        "--budget-s",
        "100000",
    ]
    assert gpu.main(args) == 0
    assert len(set(dirs)) == 2  # a fresh cache directory per case
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ  # restored
    rows = model_rows(out.read_text(encoding="utf-8"), "torch.compile", "efficientnet_b0")
    assert len(rows) == 2 and all(row.endswith(("| helps |", "| does not help |")) for row in rows)


def test_compile_order_puts_the_most_gpu_bound_combo_first() -> None:
    def combo(name: str, share: float | None, step_s: float, status: str = "measured"):
        busy = {"status": "measured", "share": share} if share is not None else None
        return gpu_measure.Combo(name, 64, status=status, busy=busy, seconds={"reused": [step_s]})

    combos = [combo("a", 0.3, 1.0), combo("b", 0.9, 0.5), combo("c", None, 2.0),
              combo("d", 0.99, 9.0, status="failed")]  # fmt: skip
    assert [c.model for c in gpu_compile.compile_order(combos)] == ["b", "a", "c"]
    assert [c.model for c in gpu_compile.compile_order(combos[2:3] + combos[:1])] == ["a", "c"]


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
    assert gpu_timing.trace_summary(trace) == {
        "busy_s": pytest.approx(25e-6),
        "kernels": 2,
        "cpu_ops": 1,
    }
    assert gpu_timing.merge_intervals([]) == 0.0


def test_a_cuda_trace_without_kernels_is_an_error_not_zero() -> None:
    empty = {"busy_s": 0.0, "kernels": 0, "cpu_ops": 3000, "wall_s": 0.3}
    result = gpu_timing.busy_share(empty, 3, 0.1, cuda=True)
    assert result["status"] == "failed" and "pytorch/kineto#859" in result["reason"]
    assert "share" not in result
    full = {"busy_s": 0.15, "kernels": 6000, "cpu_ops": 3000, "wall_s": 0.3}
    result = gpu_timing.busy_share(full, 3, 0.1, cuda=True)
    assert result["share"] == pytest.approx(0.5) and result["kernels_per_step"] == 2000


def test_sync_count_counts_the_sync_debug_warnings(monkeypatch) -> None:
    modes: list[str] = []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)

    def step(x, y):
        warnings.warn("called a synchronizing CUDA operation", UserWarning, stacklevel=1)
        warnings.warn("called a synchronizing CUDA operation", UserWarning, stacklevel=1)
        warnings.warn("something else", UserWarning, stacklevel=1)

    batches = iter([(torch.zeros(2), torch.zeros(2))])
    assert gpu_timing.count_syncs(step, batches, torch.device("cpu")) == 2
    assert modes == ["warn", "default"]


def test_the_unchecked_case_skips_torchmetrics_validation(tmp_path: Path) -> None:
    s = smoke_settings(tmp_path)
    combo = gpu_measure.Combo("efficientnet_b0", s.sizes[0])
    gpu_measure.build(combo, s, smoke_data(s))
    assert all(m.validate_args for m in combo.step.metrics.values())
    assert not any(m.validate_args for m in combo.step_unchecked.metrics.values())
    assert not combo.step_unchecked.check_finite


def test_the_command_line_in_the_report_names_no_machine_paths(monkeypatch) -> None:
    monkeypatch.setenv("OUT", "/somewhere/out")
    assert (
        gpu.shown_command(["--out", "/somewhere/out/R.md"])
        == "python3 -m benchmarks.gpu --out $OUT/R.md"
    )
    assert gpu.shown_command([f"--out={REPO}/benchmarks/R.md"]).endswith("--out=benchmarks/R.md")
    assert gpu.shown_command(["--out", "/home/me/R.md", "--smoke"]).endswith(
        "--out .../R.md --smoke"
    )
    assert gpu.default_out() == Path("/somewhere/out/RESULTS-gpu.md")


def test_the_report_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "r.md"
    gpu.write_atomic(path, "one")
    gpu.write_atomic(path, "two")
    assert path.read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["r.md"]


def test_the_verdict_flags_a_data_case_below_95_percent() -> None:
    def combo(model: str, resident: float, pinned: float) -> dict:
        seconds = {"resident": [resident], "pinned": [pinned], "reused": [1.0]}
        return {"model": model, "size": 64, "status": "measured", "seconds": seconds}

    fine = gpu_report.verdict_line([combo("a", 1.02, 1.04)], "cuda")
    assert "does not starve the GPU" in fine and "lowest 0.96" in fine
    starved = gpu_report.verdict_line([combo("a", 1.02, 1.25), combo("b", 1.0, 1.0)], "cuda")
    assert "starves the GPU in 1 of 4 cases" in starved
    assert "a 64 px, pinned host -> GPU (TensorBatches): 0.80" in starved


def test_without_pydantic_or_wheels_the_command_stops_with_3(tmp_path: Path) -> None:
    """The GPU machine's case when `.whl/` was not carried: a clear stop, nothing half-run."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "pydantic.py").write_text("raise ImportError('pydantic is not installed here')\n")
    bare = tmp_path / "checkout"  # the repository as it travels without .whl/
    bare.mkdir()
    for name in ("benchmarks", "src", "configs", "params.yaml"):
        (bare / name).symlink_to(REPO / name)
    out = tmp_path / "out"
    out.mkdir()
    script = f"export PYTHONPATH={shadow}\n{documented_command()}"
    done = run_bash(script, tmp_path, cwd=bare, OUT=str(out))
    assert done.returncode == 3, done.stderr[-2000:]
    assert "no pydantic, and .whl/ did not install it" in done.stderr
    assert list(out.iterdir()) == []


WHEELS = sorted((REPO / ".whl").glob("*.whl"))


@pytest.mark.skipif(not WHEELS, reason="no .whl/ here: nothing is carried to the GPU machine")
def test_the_carried_wheels_install_pydantic_on_the_gpu_machines_python(tmp_path: Path) -> None:
    names = [w.name.split("-")[0].lower().replace("_", "-") for w in WHEELS]
    assert len(names) == len(set(names)), f"two versions of one package in .whl/: {names}"
    target = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:"]
    target += [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 28)]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--find-links",
         str(REPO / ".whl"), "--target", str(tmp_path / "site"), *target, "pydantic"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Would install" in done.stdout and "pydantic-" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device would run the full benchmark")
def test_full_run_without_cuda_exits_2(tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.md"
    with pytest.raises(SystemExit) as stop:
        gpu.main(["--out", str(out)])
    assert stop.value.code == gpu.EXIT_USAGE == 2
    assert "no CUDA device; use --smoke" in capsys.readouterr().err
    assert not out.exists()


#: One measured combo of a GPU run, as its JSON holds it.
GPU_COMBO = {
    "status": "measured",
    "reason": "",
    "seconds": {"resident": [0.30], "pinned": [0.33], "reused": [0.30], "unchecked": [0.27]},
    "batch_alone_seconds": {"resident": [0.003], "pinned": [0.03]},
    "busy": {
        "status": "measured",
        "steps": 3,
        "kernels_per_step": 9000.0,
        "cpu_ops_per_step": 20000.0,
        "profiled_wall_ms_per_step": 14.0,
        "busy_ms_per_step": 4.0,
        "wall_ms_per_step": 10.0,
        "share": 0.4,
    },
    "syncs": {"status": "measured", "reused": 4, "unchecked": 2},
    "compile": {
        "status": "measured",
        "mode": "default",
        "figures": {},
        "eager_ms_per_step": 10.0,
        "compiled_ms_per_step": 8.0,
        "speedup": 1.25,
        "compile_s": 80.0,
        "break_even_steps": 40000.0,
        "helps": True,
    },
    "eager_s": 20.0,
}
GPU_SETTINGS = {
    "smoke": False,
    "models": ["efficientnet_b0", "dm_nfnet_f0"],
    "sizes": [64, 128],
    "window": 128,
    "windows": 32768,
    "batch_size": 256,
    "steps": 30,
    "warmup": 5,
    "repeats": 3,
    "profile_steps": 3,
    "compile": True,
    "compile_mode": "default",
    "budget_s": 300.0,
    "device": "cuda",
    "precision": "bf16 autocast",
}


def cuda_results() -> dict:
    """Results as a GPU run would write them: every measured, failed and skipped form."""

    def combo(model: str, size: int, **changes) -> dict:
        return {"model": model, "size": size, **GPU_COMBO, **changes}

    return {
        "command": "python3 -m benchmarks.gpu --out $OUT/RESULTS-gpu.md",
        "date": "2026-12-01 12:00 UTC",
        "total_s": 290.0,
        "finished": True,
        "settings": GPU_SETTINGS,
        "machine": {"GPU": "NVIDIA H200, 132 SMs, 139.8 GiB", "driver": "580.159.04"},
        "combos": [
            combo("efficientnet_b0", 64, compile={"status": "skipped", "reason": "budget"}),
            combo(
                "dm_nfnet_f0",
                64,
                busy={"status": "failed", "reason": "no kernels", "cpu_ops_per_step": 20000.0},
                syncs={"status": "failed", "reason": "no sync seen"},
                compile={"status": "failed", "reason": "InductorError: boom"},
            ),
            combo("efficientnet_b0", 128, status="failed", reason="OutOfMemoryError: CUDA"),
            combo("dm_nfnet_f0", 128),
        ],
    }


def test_a_gpu_runs_results_render(tmp_path: Path) -> None:
    text = gpu_report.render(cuda_results())
    assert "| driver | 580.159.04 |" in text
    assert "**Not measured: efficientnet_b0 128 px: failed (reasons in the tables).**" in text
    assert "| efficientnet_b0 | 128 | failed: OutOfMemoryError: CUDA |" in text
    busy = section(text, "GPU busy share")
    assert "| dm_nfnet_f0 | 128 | 4.00 | 10.00 | 40% | 9,000 | 4, 2 |" in busy
    assert "| dm_nfnet_f0 | 64 | failed: no kernels (profiler ran: 20,000 CPU ops/step) |" in busy
    assert "lowest busy share 40% (efficientnet_b0 64 px): host-bound" in busy
    assert "9,000 kernels per step, 1.1 us of wall per kernel." in busy
    compiled = section(text, "torch.compile")
    assert "| efficientnet_b0 | 64 | skipped: budget |" in compiled
    assert "| dm_nfnet_f0 | 64 | failed: InductorError: boom |" in compiled
    assert "| 1.25x | 80.0 | 40,000 | helps |" in compiled
    assert "starves the GPU in 3 of 6 cases" in section(text, "Data path")
    columns = {
        line.count("|") for line in section(text, "Images per second").splitlines()[1:] if line
    }
    assert columns == {8}, "every row, a failed one too, has the table's columns"


def test_a_sync_count_of_zero_where_the_check_syncs_is_a_failure(monkeypatch) -> None:
    monkeypatch.setattr(gpu_measure, "count_syncs", lambda step, batches, device: 0)
    combo = gpu_measure.Combo("m", 64, sources={"reused": iter(())})
    result = gpu_measure.measure_syncs(combo, SimpleNamespace(device=torch.device("cpu")))
    assert result["status"] == "failed"
