"""Benchmark rows 4 (pruning) and 5 (per-trial overhead) run in smoke mode and report
figures: real studies, so the test checks the studies' records, not only the text."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
from tune_fakes import COMPLETE

from benchmarks.common import Context
from benchmarks.report import describe
from benchmarks.trial_rows import TRIAL_PARTS, trial_overhead
from benchmarks.tuning_rows import EPOCH_SHARE_TARGET, VALUE_TOLERANCE, pruning_savings

PERCENT = re.compile(r"-?\d+\.\d%")


def smoke(tmp_path: Path) -> Context:
    return Context(smoke=True, repeats=1, workdir=tmp_path, command="test")


def test_pruning_row_counts_epochs_of_real_studies(tmp_path: Path) -> None:
    row = describe(pruning_savings(smoke(tmp_path)))
    assert row.number == 4
    assert isinstance(row.met, bool)
    assert PERCENT.search(row.result), row.result
    assert "median pruner" in row.result
    # one table line per (seed, case): | seed | case | epochs | ...
    lines = [line for line in row.details if re.match(r"\| \d+ \| \w+ \|", line)]
    cases = [line.split("|")[2].strip() for line in lines]
    assert cases == ["none", "median", "none_folds3", "wilcoxon_folds3"]
    epochs = [int(line.split("|")[3]) for line in lines]
    assert all(e > 0 for e in epochs)
    # the unpruned study trained every epoch of every trial (3 trials x 2 in smoke mode)
    none_db = tmp_path / "row4" / "seed42-none" / "study.db"
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{none_db}")
    assert epochs[0] == sum(len(t.intermediate_values) for t in study.get_trials()) == 6
    assert epochs[1] <= epochs[0]
    # with folds a trial's epochs are those of every fold it ran: 3 x 3 folds x 2 unpruned
    folds_db = tmp_path / "row4" / "seed42-none_folds3" / "study.db"
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{folds_db}")
    assert all(len(t.user_attrs["fold_epochs"]) == 3 for t in study.get_trials())
    assert epochs[2] == sum(sum(t.user_attrs["fold_epochs"]) for t in study.get_trials())
    # the unpruned folds study is a reference itself, not a case measured against one split
    assert [c.strip() for c in lines[2].split("|")[4:7:2]] == ["100.0%", "+0.0000"]
    wilcoxon_db = tmp_path / "row4" / "seed42-wilcoxon_folds3" / "study.db"
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{wilcoxon_db}")
    ran = [len(t.user_attrs["fold_epochs"]) for t in study.get_trials()]
    assert ran[0] == 3 and all(n in (2, 3) for n in ran)  # a prune comes after two folds
    assert epochs[3] == sum(sum(t.user_attrs["fold_epochs"]) for t in study.get_trials())
    assert "wilcoxon_folds3 (vs none_folds3)" in "\n".join(row.details)
    # the verdict follows the figures in its own table: epoch share and best-value gap
    gap = float(lines[1].split("|")[6])
    expected = epochs[1] / epochs[0] <= EPOCH_SHARE_TARGET and gap >= -VALUE_TOLERANCE
    assert row.met is expected
    assert "seed" in row.details[0] and row.method and "n_startup_trials" in row.method
    if not row.met:
        assert PERCENT.search(row.explanation), row.explanation


def test_trial_overhead_row_splits_a_real_trial(tmp_path: Path) -> None:
    row = describe(trial_overhead(smoke(tmp_path)))
    assert row.number == 5
    assert isinstance(row.met, bool)
    overhead = float(re.search(r"overhead (-?\d+\.\d)%", row.result).group(1))
    assert overhead > 0  # a trial does more than its batches
    assert row.met == (overhead <= 5.0)
    table = {line.split("|")[1].strip(): line for line in row.details if line.startswith("| ")}
    for name, _, _ in TRIAL_PARTS:
        assert name in table, name
    assert "100.0%" in table[TRIAL_PARTS[4][0]]  # the compute is the reference
    # two trials ran through the real tune stage: warm-up + one measured
    db = tmp_path / "row5" / "study.db"
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{db}")
    assert len(study.trials) == 2
    assert all(t.state == COMPLETE for t in study.trials)
    assert (tmp_path / "row5" / "out" / "trials.csv").exists()
