"""Benchmark row 5 (per-trial overhead) in smoke mode reports figures: a real study, so the
test checks the study's records, not only the text. (Row 4's studies are checked on the
suite's own smoke run, in tests/test_benchmarks.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import optuna
from tune_fakes import COMPLETE

from benchmarks.common import Context
from benchmarks.report import describe
from benchmarks.trial_rows import TRIAL_PARTS, trial_overhead


def smoke(tmp_path: Path) -> Context:
    return Context(smoke=True, repeats=1, workdir=tmp_path, command="test")


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
