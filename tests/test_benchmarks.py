"""The benchmark suite's machinery, and its smoke mode end to end (so that it keeps working).

The smoke mode measures nothing (tiny sizes, one repeat); these tests check that every row
runs and lands in the results file with figures, not what the figures are.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from helpers import REPO, child_env

from benchmarks import suite
from benchmarks.common import Context, Row, interleaved
from benchmarks.tuning_rows import EPOCH_SHARE_TARGET, VALUE_TOLERANCE

PERCENT = re.compile(r"-?\d+\.\d%")
ROW = re.compile(r"^\| (\d) \| (.+?) \| (.+?) \| (.+?) \| (yes|\*\*no\*\*|n/a) \|$", re.M)


def test_interleaved_rotates_the_order_of_cases() -> None:
    calls: list[str] = []

    def case(name: str, figure: float):
        return lambda: calls.append(name) or figure

    figures = interleaved({"a": case("a", 1.0), "b": case("b", 2.0), "c": case("c", 3.0)}, 3)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert figures == {"a": [1.0] * 3, "b": [2.0] * 3, "c": [3.0] * 3}


def test_fewer_than_three_repeats_is_refused_outside_smoke(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        suite.main(["--repeats", "2", "--out", "unused.md"])
    assert exit_info.value.code == 2
    assert "at least 3" in capsys.readouterr().err


def test_a_failing_row_is_reported_and_the_others_kept(monkeypatch, tmp_path: Path) -> None:
    def fake_row(number: int, ctx: Context) -> Row:
        if number == 2:
            raise RuntimeError("row two broke")
        return Row(number, f"measure {number}", "t", f"figure {number}", True, "m", ["- d"])

    monkeypatch.setattr(suite, "run_row", fake_row)
    out = tmp_path / "RESULTS.md"
    assert suite.main(["--smoke", "--only", "1", "2", "3", "--out", str(out)]) == 1
    text = out.read_text()
    assert "| 1 | measure 1 | figure 1 | t | yes |" in text
    assert "| 3 | measure 3 | figure 3 | t | yes |" in text
    assert "error: RuntimeError" in text and "row two broke" in text


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[str, dict[int, dict], Path]:
    """One smoke run of the whole suite through its command line: the markdown, the rows as
    JSON by number, and its scratch folder (the studies the rows ran). Every row test below
    reads this one run."""
    tmp = tmp_path_factory.mktemp("bench")
    out, rows, work = tmp / "RESULTS.md", tmp / "rows.json", tmp / "work"
    command = ["-m", "benchmarks", "--smoke", "--out", str(out), "--json", str(rows)]
    done = subprocess.run(
        [sys.executable, *command, "--workdir", str(work)],
        cwd=REPO,
        env=child_env(),  # one thread: the smoke sizes measure nothing
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out.read_text(), {r["number"]: r for r in json.loads(rows.read_text())}, work


def figure(text: str) -> float:
    """The first number in ``text`` (``"overhead +1.2%"`` -> 1.2)."""
    match = re.search(r"[-+]?\d[\d,]*\.?\d*", text)
    assert match, text
    return float(match.group().replace(",", ""))


@pytest.mark.slow
def test_smoke_suite_writes_every_row(smoke) -> None:
    text, rows, _ = smoke
    assert text.startswith("# Benchmark results\n\nSMOKE MODE")
    assert "| torch |" in text and "| cores |" in text
    summary = ROW.findall(text)
    assert [int(r[0]) for r in summary] == [1, 2, 3, 4, 5, 6, 7]
    for number, _measure, result, _target, _met in summary:
        assert re.search(r"\d", result), f"row {number} has no figure: {result}"
        assert not result.startswith("error"), result
        assert f"Command: `python -m benchmarks --only {number} --smoke`" in text
    assert sorted(rows) == [1, 2, 3, 4, 5, 6, 7]
    for row in rows.values():
        assert row["method"] and row["details"], row["number"]
        assert row["met"] in (True, False, None)
        assert row["met"] is not False or row["explanation"], f"row {row['number']} unexplained"


@pytest.mark.slow
def test_smoke_training_rows_carry_their_figures(smoke) -> None:
    _, rows, _ = smoke
    assert rows[1]["met"] == (figure(rows[1]["result"]) <= 3.0)
    assert 0 < figure(rows[2]["result"]) < 100 and rows[2]["result"].endswith("of a step")
    assert rows[3]["met"] == (figure(rows[3]["result"]) >= 10)
    assert "DataLoader(TensorDataset)" in "\n".join(rows[3]["details"])
    speedups = dict(re.findall(r"(channels_last|bf16 autocast) ([\d.]+)x", rows[7]["result"]))
    assert set(speedups) == {"channels_last", "bf16 autocast"} and rows[7]["met"] is None
    assert "- torch.compile: not run in smoke mode" in rows[7]["details"]


@pytest.mark.slow
def test_smoke_dvc_row_times_both_commands_on_the_real_pipeline(smoke) -> None:
    _, rows, _ = smoke
    row = rows[6]
    assert row["target"] == "at most 1.3x"
    ratio = figure(row["result"])
    assert ratio > 0 and row["met"] == (ratio <= 1.3)
    details = "\n".join(row["details"])
    for name in ("dvc repro", "dvc status", "dvc --version"):
        assert f"- {name}: median " in details, name
    assert "cProfile" in details
    for stage in ("prepare", "tune", "train_best", "visualize"):  # the real pipeline ran
        assert stage in row["method"]


@pytest.mark.slow
def test_smoke_pruning_row_counts_epochs_of_real_studies(smoke) -> None:
    _, rows, work = smoke
    row = rows[4]
    assert isinstance(row["met"], bool)
    assert PERCENT.search(row["result"]), row["result"]
    assert "median pruner" in row["result"]
    # one table line per (seed, case): | seed | case | epochs | ...
    lines = [line for line in row["details"] if re.match(r"\| \d+ \| \w+ \|", line)]
    cases = [line.split("|")[2].strip() for line in lines]
    assert cases == ["none", "median", "none_folds3", "wilcoxon_folds3"]
    epochs = [int(line.split("|")[3]) for line in lines]
    assert all(e > 0 for e in epochs)
    # the unpruned study trained every epoch of every trial (3 trials x 2 in smoke mode)
    trials = study_trials(work / "row4" / "seed42-none" / "study.db")
    assert epochs[0] == sum(len(t.intermediate_values) for t in trials) == 6
    assert epochs[1] <= epochs[0]
    # with folds a trial's epochs are those of every fold it ran: 3 x 3 folds x 2 unpruned
    trials = study_trials(work / "row4" / "seed42-none_folds3" / "study.db")
    assert all(len(t.user_attrs["fold_epochs"]) == 3 for t in trials)
    assert epochs[2] == sum(sum(t.user_attrs["fold_epochs"]) for t in trials)
    # the unpruned folds study is a reference itself, not a case measured against one split
    assert [c.strip() for c in lines[2].split("|")[4:7:2]] == ["100.0%", "+0.0000"]
    trials = study_trials(work / "row4" / "seed42-wilcoxon_folds3" / "study.db")
    ran = [len(t.user_attrs["fold_epochs"]) for t in trials]
    assert ran[0] == 3 and all(n in (2, 3) for n in ran)  # a prune comes after two folds
    assert epochs[3] == sum(sum(t.user_attrs["fold_epochs"]) for t in trials)
    assert "wilcoxon_folds3 (vs none_folds3)" in "\n".join(row["details"])
    # the verdict follows the figures in its own table: epoch share and best-value gap
    gap = float(lines[1].split("|")[6])
    expected = epochs[1] / epochs[0] <= EPOCH_SHARE_TARGET and gap >= -VALUE_TOLERANCE
    assert row["met"] is expected
    assert "seed" in row["details"][0] and row["method"] and "n_startup_trials" in row["method"]
    if not row["met"]:
        assert PERCENT.search(row["explanation"]), row["explanation"]


def study_trials(db: Path) -> list[optuna.trial.FrozenTrial]:
    """The trials of the one study in the SQLite file ``db``."""
    return optuna.load_study(study_name=None, storage=f"sqlite:///{db}").get_trials()
