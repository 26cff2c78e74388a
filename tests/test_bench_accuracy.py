"""benchmarks/accuracy.py: the validation split it carves, the .npz it writes, a run that
fails, the variants' comparison, and its smoke mode end to end through the command line.

The smoke mode measures nothing (tiny budgets); its test checks that the real pipeline ran
and that every figure the report promises is there and is an accuracy.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import REPO

from benchmarks import accuracy, accuracy_runs
from benchmarks.accuracy_data import (
    PUBLISHED,
    VAL_SHARE,
    carve_validation,
    class_names,
    load_archive,
    write_npz,
)
from stockclf.data.npz import load_npz


@pytest.mark.parametrize("name", ["ArrowHead", "BasicMotions", "OSULeaf"])
def test_validation_is_stratified_seeded_and_has_every_class(name: str) -> None:
    y = load_archive(name).y_train
    classes, counts = np.unique(y, return_counts=True)
    mask = carve_validation(y, seed=0)
    assert mask.dtype == bool and mask.shape == y.shape
    assert mask.sum() == max(round(VAL_SHARE * len(y)), len(classes))
    for cls, count in zip(classes, counts, strict=True):
        in_val = int((mask & (y == cls)).sum())
        assert in_val >= 1 and (~mask & (y == cls)).sum() >= 1, cls
        assert abs(in_val - count * mask.sum() / len(y)) <= 1, (cls, in_val)  # stratified
    assert np.array_equal(mask, carve_validation(y, seed=0))  # seeded
    assert not np.array_equal(mask, carve_validation(y, seed=1))


def test_a_rare_class_still_gets_a_validation_row() -> None:
    y = np.array(["a"] * 30 + ["b"] * 2 + ["c"] * 2)
    for seed in range(5):
        mask = carve_validation(y, seed)
        assert set(y[mask]) == {"a", "b", "c"} and set(y[~mask]) == {"a", "b", "c"}


def test_npz_keeps_the_archive_test_split_and_names_the_classes(tmp_path: Path) -> None:
    data = load_archive("BasicMotions")
    sizes = write_npz(data, seed=2, path=tmp_path / "bm.npz")
    source = load_npz(tmp_path / "bm.npz")  # the project's own reader validates it
    assert source.classes == ["badminton", "running", "standing", "walking"]
    assert source.X.shape == (80, 6, 100) and source.X.dtype == np.float32
    test = source.split == 2
    assert sizes == {"n_train": 32, "n_val": 8, "n_test": 40} and test.sum() == 40
    assert np.array_equal(source.X[test], data.X_test.astype(np.float32))  # same rows, order
    names = np.array(source.classes)
    assert np.array_equal(names[source.y[test]], data.y_test)
    assert np.array_equal(names[source.y[~test]], data.y_train)
    val = source.split[~test] == 1
    assert np.array_equal(val, carve_validation(data.y_train, seed=2))  # disjoint, seeded


def test_class_names_sort_numbers_as_numbers() -> None:
    assert class_names(np.array(["10", "2"]), np.array(["1"])) == ["1", "2", "10"]
    assert class_names(np.array(["walk", "run"])) == ["run", "walk"]


def fake_pipeline(
    params: Any, workdir: Path, tune: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stands in for prepare -> tune -> train_best: accuracy from the image size."""
    if "GunPoint" in params.data.source and params.seed == 1:
        raise RuntimeError("seed one broke")
    score = params.model.image_size / 100
    results = {
        "model": {"accuracy": score, "f1_macro": score},
        "logreg": {"accuracy": 0.5},
        "minirocket": {"accuracy": 0.9},
        "best_val": score + 0.01,
        "epochs_trained": 1,
        "best_params": {"lr_head": 0.001},
    }
    return {"best_value": score}, results


def test_failed_runs_are_reported_and_variants_compared(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(accuracy_runs, "pipeline", fake_pipeline)
    monkeypatch.setattr(accuracy, "warm_up_minirocket", lambda: None)
    out = tmp_path / "acc.md"
    code = accuracy.main(
        ["--sets", "GunPoint,ItalyPowerDemand", "--seeds", "0,1", "--out", str(out),
         "--variant", "small={\"model\": {\"image_size\": 32}}",
         "--variant", "big={\"model\": {\"image_size\": 64}}"]
    )  # fmt: skip
    assert code == 1  # a run failed
    doc = json.loads(out.with_suffix(".json").read_text())
    assert len(doc["runs"]) == 8 and sum(not r["ok"] for r in doc["runs"]) == 2
    text = out.read_text()
    assert "| GunPoint | 1/2 | 0.320 [0.320, 0.320] | 0.900 [0.900, 0.900] |" in text
    assert "seed one broke" in text and "## Failed runs" in text
    # GunPoint seed 1 fails in every variant, so the seeds run are 0 and 1 (ItalyPowerDemand)
    assert "| small | 0, 1 | 0.330 | 0.320 | 0.320 | 0.320 | 1 |" in text
    assert "| big | 0, 1 | 0.650 | 0.640 | 0.640 | 0.640 | 1 |" in text
    assert (
        "| MiniRocket (same splits, the first variant's seeds) | | | 0.900 | 0.900 | 0.900 |"
        in text
    )
    again = tmp_path / "again.md"
    assert accuracy.main(["--from-json", str(out.with_suffix(".json")), "--out", str(again)]) == 0
    assert again.read_text() == text  # one renderer: the JSON is the whole report


def test_no_tune_runs_train_best_on_the_params_as_given(monkeypatch, tmp_path: Path) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(
        accuracy_runs, "pipeline", lambda p, w, tune=True: calls.append(tune) or fake_pipeline(p, w)
    )
    monkeypatch.setattr(accuracy, "warm_up_minirocket", lambda: None)
    out = tmp_path / "acc.md"
    args = ["--sets", "ItalyPowerDemand", "--seeds", "0", "--out", str(out), "--no-tune"]
    assert accuracy.main(args) == 0
    assert calls == [False]
    assert json.loads(out.with_suffix(".json").read_text())["tuned"] is False
    assert "no tuning (train_best on these params as they are)" in out.read_text()


def test_a_bad_variant_is_refused_before_any_run(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        accuracy.main(["--variant", 'x={"model": {"image_sise": 64}}', "--out", "unused.md"])
    assert exit_info.value.code == 2
    assert "image_sise" in capsys.readouterr().err


ROW = re.compile(r"^\| ItalyPowerDemand \| 1/1 \| (.+?) \|$", re.M)


@pytest.mark.slow
def test_smoke_runs_the_real_pipeline_and_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "ACCURACY.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.accuracy", "--smoke", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "[1/1] default ItalyPowerDemand seed 0: model " in done.stdout
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Accuracy on UCR/UEA data sets") and "SMOKE MODE" in text
    assert "| torch |" in text and "| cores |" in text and "tune 2 trials" in text
    cells = ROW.search(text).group(1).split(" | ")
    model, minirocket, logreg, gap, pub_mr, pub_it, best_val = cells[:7]
    for cell in (model, minirocket, logreg):
        mean, low, high = map(float, re.findall(r"\d\.\d{3}", cell))
        assert 0 <= low <= mean <= high <= 1, cell
    assert float(pub_mr) == pytest.approx(PUBLISHED["ItalyPowerDemand"].minirocket, abs=5e-4)
    assert float(pub_it) == pytest.approx(PUBLISHED["ItalyPowerDemand"].inception_time, abs=5e-4)
    assert 0 <= float(best_val) <= 1 and -1 <= float(gap) <= 1
    (run,) = json.loads(out.with_suffix(".json").read_text())["runs"]
    assert run["ok"] and run["dataset"] == "ItalyPowerDemand" and run["seed"] == 0
    for key in ("model", "minirocket", "logreg", "best_val"):
        assert 0 <= run[key] <= 1, key
    assert float(gap) == pytest.approx(run["model"] - run["minirocket"], abs=5e-4)
    assert run["sizes"] == {"n_train": 54, "n_val": 13, "n_test": 1029}
    assert run["cpu_s"] > 0 and run["wall_s"] > 0


def test_from_json_completes_a_stopped_run_and_refuses_other_params(
    monkeypatch, tmp_path: Path
) -> None:
    """A second run of only the missing (set, seed) of a variant joins the first; the same
    variant name with other overrides is refused, since the two would not be one figure."""
    monkeypatch.setattr(accuracy_runs, "pipeline", fake_pipeline)
    monkeypatch.setattr(accuracy, "warm_up_minirocket", lambda: None)
    first, second, other = (tmp_path / f"{n}.md" for n in ("first", "second", "other"))
    small = ["--variant", 'v={"model": {"image_size": 32}}']
    assert (
        accuracy.main(["--sets", "ItalyPowerDemand", "--seeds", "0", "--out", str(first), *small])
        == 0
    )
    assert (
        accuracy.main(["--sets", "ArrowHead", "--seeds", "0,2", "--out", str(second), *small]) == 0
    )
    joined = tmp_path / "joined.md"
    jsons = [str(first.with_suffix(".json")), str(second.with_suffix(".json"))]
    assert accuracy.main(["--from-json", *jsons, "--out", str(joined)]) == 0
    doc = json.loads(joined.with_suffix(".json").read_text())
    assert sorted((r["dataset"], r["seed"]) for r in doc["runs"]) == [
        ("ArrowHead", 0), ("ArrowHead", 2), ("ItalyPowerDemand", 0)
    ]  # fmt: skip
    assert doc["sets"] == ["ItalyPowerDemand", "ArrowHead"] and doc["seeds"] == [0, 2]
    text = joined.read_text()
    assert "| ArrowHead | 2/2 | 0.320 [0.320, 0.320] |" in text
    assert "Joined with the runs of `python -m benchmarks.accuracy --sets ArrowHead" in text
    big = ["--variant", 'v={"model": {"image_size": 64}}']
    assert accuracy.main(["--sets", "ArrowHead", "--seeds", "1", "--out", str(other), *big]) == 0
    code = accuracy.main(
        ["--from-json", jsons[0], str(other.with_suffix(".json")), "--out", str(joined)]
    )
    assert code == 2


def test_headline_picks_the_results_variant_and_a_file_joined_twice_is_listed_once(
    monkeypatch, tmp_path: Path, capsys
) -> None:
    monkeypatch.setattr(accuracy_runs, "pipeline", fake_pipeline)
    monkeypatch.setattr(accuracy, "warm_up_minirocket", lambda: None)
    first, second = tmp_path / "first.md", tmp_path / "second.md"
    for out, size in ((first, 32), (second, 64)):
        variant = f'v{size}={{"model": {{"image_size": {size}}}}}'
        code = accuracy.main(
            ["--sets", "ArrowHead", "--seeds", "0", "--out", str(out), "--variant", variant]
        )
        assert code == 0
    jsons = [str(first.with_suffix(".json")), str(second.with_suffix(".json"))]
    joined = tmp_path / "joined.md"
    args = ["--from-json", *jsons, jsons[1], "--out", str(joined), "--headline", "v64"]
    assert accuracy.main(args) == 0
    text = joined.read_text()
    assert "## Results (`v64`)" in text
    assert "| ArrowHead | 1/1 | 0.640 [0.640, 0.640] |" in text  # v64's runs, not v32's
    assert text.count("Joined with the runs of") == 1
    # kept in the JSON: a later render without --headline keeps it
    again = tmp_path / "again.md"
    assert (
        accuracy.main(["--from-json", str(joined.with_suffix(".json")), "--out", str(again)]) == 0
    )
    assert "## Results (`v64`)" in again.read_text()
    code = accuracy.main(["--from-json", jsons[0], "--out", str(again), "--headline", "nope"])
    assert code == 2 and "no variant 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        accuracy.main(["--headline", "v64", "--sets", "ArrowHead"])
