import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from stockclf.data.store import SplitData
from stockclf.evaluation.scoring import baseline_predictions, classification_metrics
from stockclf.reporting.plots import save_plots
from stockclf.reporting.study_report import format_summary, study_summary

PLOTS = ["optimization_history", "param_importances", "parallel_coordinate", "slice", "contour"]


def assert_real_png(path: Path, size: tuple[int, int]) -> None:
    image = imread(path)
    assert image.shape[:2] == size
    assert image[..., :3].std() > 0.02, f"{path.name} looks blank"


@pytest.mark.parametrize(("n", "pruned"), [(6, 0), (1, 0), (1, 4)])
def test_every_optuna_plot_is_written_and_not_blank(synthetic_study, tmp_path, n, pruned) -> None:
    _, study = synthetic_study(n, pruned)
    out = tmp_path / "figs"
    out.mkdir()
    written = save_plots(study, PLOTS, out, dpi=50)
    assert [p.name for p in written] == [f"{p}.png" for p in PLOTS]
    for path in written:
        assert_real_png(path, (300, 500))  # 10 x 6 inches at 50 dpi


def test_study_summary_values(synthetic_study) -> None:
    _, study = synthetic_study(6, pruned=2)
    s = study_summary(study, top=3)
    assert (s["n_complete"], s["n_pruned"], s["n_fail"]) == (6, 2, 0)
    values = sorted((t.value for t in study.trials if t.value is not None), reverse=True)
    assert s["best_value"] == pytest.approx(values[0])
    assert [t["value"] for t in s["top_trials"]] == pytest.approx(values[:3])
    assert set(s["importances"]) == {"lr_head", "weight_decay"}
    assert sum(s["importances"].values()) == pytest.approx(1.0)
    text = format_summary(s)
    assert f"best trial #{s['best_trial']}" in text and "fANOVA" in text
    assert "6 complete, 2 pruned, 0 failed" in text


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stockclf.cli", *args], cwd=cwd, capture_output=True, text=True
    )


def test_cli_study_show_json_and_errors(synthetic_study, tmp_path) -> None:
    storage, study = synthetic_study(3)
    done = run_cli("study", "show", "--storage", storage, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["best_value"] == pytest.approx(study.best_value)
    assert data["best_params"] == study.best_params
    assert (data["n_complete"], data["n_pruned"], data["n_fail"]) == (3, 0, 0)

    missing = run_cli("study", "show", "--storage", storage, "--study", "nope", cwd=tmp_path)
    assert missing.returncode == 2
    assert "no study named 'nope'" in missing.stderr and "['demo']" in missing.stderr

    gone = f"sqlite:///{tmp_path / 'absent.db'}"
    absent = run_cli("study", "show", "--storage", gone, cwd=tmp_path)
    assert absent.returncode == 2 and "study storage not found" in absent.stderr
    assert not (tmp_path / "absent.db").exists()


def test_metrics_and_baselines_on_known_data() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    m = classification_metrics(y, np.array([0, 0, 1, 1, 2, 0]), ["down", "flat", "up"])
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["f1_up"] == pytest.approx(2 / 3)  # precision 1, recall 1/2
    assert m["f1_down"] == pytest.approx(0.8)  # precision 2/3, recall 1
    assert m["f1_macro"] == pytest.approx((0.8 + 1 + 2 / 3) / 3)
    assert m["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)

    rng = np.random.default_rng(0)
    n = 300
    y_train = np.array([1] * 200 + [0] * 50 + [2] * 50)
    X = rng.normal(size=(n, 1, 4)).astype(np.float32)
    X[:, 0, 0] += (y_train - 1) * 3  # separable on one feature
    dates = np.zeros(n, dtype="datetime64[D]")
    data = SplitData(X, y_train, dates, np.zeros(n, dtype=np.int32), np.zeros(n))
    preds = baseline_predictions(data, data, seed=0)
    assert np.all(preds["majority"] == 1)
    assert (preds["logreg"] == y_train).mean() > 0.9
    assert set(np.unique(preds["stratified"])) == {0, 1, 2}
