"""``python -m benchmarks.folds --smoke``: two real studies (one split, three folds) on the
bundled sample, each trial's checkpoint scored on test, and train_best after each; the test
checks the report's figures against the trials they came from."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy.stats import spearmanr

from benchmarks import folds as bench


def test_smoke_compares_one_split_with_three_folds(tmp_path: Path, one_torch_thread) -> None:
    out, figures = tmp_path / "folds.md", tmp_path / "folds.json"
    assert bench.main(["--smoke", "--out", str(out), "--json", str(figures)]) == 0
    studies = json.loads(figures.read_text())
    assert [s["folds"] for s in studies] == [1, 3]
    for s in studies:
        trials = s["trials"]
        assert len(trials) == 3  # the smoke budget, no pruning: every trial completes
        best = max(trials, key=lambda t: t["val"])
        assert (s["best_trial"], s["best_val"]) == (best["number"], pytest.approx(best["val"]))
        assert 0 <= s["test_f1"] <= 1 and all(0 <= t["test"] <= 1 for t in trials)
        assert s["gap"] == pytest.approx(s["best_val"] - s["test_f1"])
        vals, tests = [t["val"] for t in trials], [t["test"] for t in trials]
        rho = spearmanr(vals, tests).statistic
        if s["spearman"] is None:  # constant scores: no rank correlation
            assert len(set(vals)) < 2 or len(set(tests)) < 2 or math.isnan(rho)
        else:
            assert s["spearman"] == pytest.approx(rho)
        folds = [len(t["fold_values"]) for t in trials]
        assert folds == ([0] * 3 if s["folds"] == 1 else [3] * 3)
        if s["folds"] == 3:  # a trial is worth its folds' mean
            for t in trials:
                assert t["val"] == pytest.approx(sum(t["fold_values"]) / 3)
    text = out.read_text()
    assert "| tune.folds | complete trials |" in text
    for s in studies:
        assert f"| {s['folds']} | 3 | {s['best_trial']} | {s['best_val']:.4f} |" in text
