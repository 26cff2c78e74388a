import io
import json
import os
import re
from pathlib import Path

import numpy as np
import optuna
import pytest
from helpers import run_cli
from matplotlib.image import imread
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from tune_fakes import PRUNED

from stockclf import registry
from stockclf.cli import main as cli_main
from stockclf.data.store import SplitData
from stockclf.evaluation.predictions import PREDICTORS, write_predictions
from stockclf.evaluation.scoring import baseline_predictions, classification_metrics
from stockclf.progress import progress_enabled
from stockclf.reporting.plots import _plot, figure_size, save_plots, top_params
from stockclf.reporting.results import (
    compute_results,
    format_results,
    plot_equity,
    plot_f1_intervals,
    write_results,
)
from stockclf.reporting.study_report import format_summary, study_summary
from stockclf.storage_url import redact
from stockclf.tuning.runner import TrialProgress
from stockclf.tuning.storage import (
    StorageError,
    load_study_for_reading,
    open_reading_storage,
    open_tuning_storage,
)

CLASSES = ["down", "flat", "up"]

PLOTS = list(registry.PLOTS)  # every plot visualize.plots may name


def assert_real_png(path: Path, size: tuple[int, int]) -> None:
    image = imread(path)
    assert image.shape[:2] == size
    assert image[..., :3].std() > 0.02, f"{path.name} looks blank"


@pytest.mark.parametrize(("n", "pruned"), [(6, 0), (2, 0), (1, 0), (1, 4)])
def test_every_optuna_plot_is_written_and_not_blank(synthetic_study, tmp_path, n, pruned) -> None:
    _, study = synthetic_study(n, pruned)
    study.set_user_attr("metric", "val_f1")
    out = tmp_path / "figs"
    out.mkdir()
    written = save_plots(study, PLOTS, out, dpi=50)
    assert [p.name for p in written] == [f"{p}.png" for p in PLOTS]
    for path in written:
        # 10 x 6 inches at 50 dpi; the slice plot 3.2 inches per param + 1.5 (2 params)
        width = 500 if path.stem != "slice" else round(50 * max(10, 3.2 * 2 + 1.5))
        assert_real_png(path, (300, width))
    assert figure_size("slice", study) == (10.0, 6.0)


@pytest.mark.parametrize(
    ("n", "pruned"),
    [(6, 0), (2, 0), (1, 0), (1, 4)],
)
def test_contour_params_are_the_reported_importances(synthetic_study, n, pruned) -> None:
    """The contour plot draws the two params the study report ranks first, and none (a
    placeholder) while the report has no importances."""
    _, study = synthetic_study(n, pruned)
    expected = list(study_summary(study)["importances"])[:2] or None
    assert top_params(study) == expected


def test_plots_name_the_metric_and_counts(synthetic_study) -> None:
    _, study = synthetic_study(5, pruned=1)
    fig = _plot("contour", study)
    assert "5 complete, 1 pruned, 0 failed trials" in fig._suptitle.get_text()
    assert "val_f1 over the two most important parameters" in fig._suptitle.get_text()
    labels = {ax.get_xlabel() for ax in fig.axes} | {ax.get_ylabel() for ax in fig.axes}
    assert {"lr_head", "weight_decay"} <= labels  # the two params, on the axes
    history = _plot("optimization_history", study)
    assert history.axes[0].get_ylabel() == "val_f1" and history.axes[0].get_title() == ""
    few = _plot("param_importances", synthetic_study(1, pruned=3, name="young")[1])
    assert "Too little data" in few.axes[0].texts[0].get_text()


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
    # 4-step windows, padded to MiniRocket's 9: the signal in their first step is still found
    assert (preds["minirocket"] == y_train).mean() > 0.9
    assert set(np.unique(preds["stratified"])) == {0, 1, 2}


def journal_study(path: Path, name: str = "jdemo") -> optuna.Study:
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    for value in (0.2, 0.4):
        trial = study.ask({"lr_head": optuna.distributions.FloatDistribution(1e-4, 1e-1)})
        study.tell(trial, value)
    trial = study.ask({"lr_head": optuna.distributions.FloatDistribution(1e-4, 1e-1)})
    study.tell(trial, state=PRUNED)
    return study


def cli_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """``stockclf ...`` without starting an interpreter (the subprocess test covers that)."""
    try:
        cli_main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_study_show_reads_a_journal_file(tmp_path, monkeypatch, capsys) -> None:
    study = journal_study(tmp_path / "tuning" / "study.log")
    monkeypatch.chdir(tmp_path)
    url = f"journal:///{tmp_path / 'tuning' / 'study.log'}"
    code, out, err = cli_in_process(capsys, "study", "show", "--storage", url, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["n_complete"], data["n_pruned"], data["n_fail"]) == (2, 1, 0)
    assert data["best_value"] == pytest.approx(0.4) and data["best_params"] == study.best_params
    # relative journal:/// URLs resolve against the working directory, like sqlite:///
    code, out, _ = cli_in_process(
        capsys, "study", "show", "--storage", "journal:///tuning/study.log"
    )
    assert code == 0 and "best trial #1: value 0.4" in out and "2 complete, 1 pruned" in out

    code, _, err = cli_in_process(
        capsys, "study", "show", "--storage", "journal:///tuning/other.log"
    )
    assert code == 2
    assert "study storage not found" in err and "tuning/ holds ['study.log']" in err
    assert not (tmp_path / "tuning" / "other.log").exists()
    code, _, err = cli_in_process(capsys, "study", "show", "--storage", "sqlite:///nope/s.db")
    assert code == 2 and "directory nope/ does not exist" in err


def test_storage_urls_and_errors(tmp_path) -> None:
    with pytest.raises(StorageError, match=r"redis://\.\.\. is not a supported storage"):
        open_reading_storage("redis://localhost/0")
    # an unreachable server (or a missing driver) is a clear error without the password
    with pytest.raises(StorageError) as err:
        open_reading_storage("postgresql://user:s3cret@127.0.0.1:1/optuna")
    assert "cannot open the study storage" in str(err.value)
    assert "s3cret" not in str(err.value) and "***" in str(err.value)
    assert redact("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    created = open_tuning_storage(f"journal:///{tmp_path / 'new' / 'j.log'}")
    assert isinstance(created, JournalStorage) and (tmp_path / "new").is_dir()
    journal_study(tmp_path / "two.log", "a")
    journal_study(tmp_path / "two.log", "b")
    with pytest.raises(StorageError, match=re.escape("holds studies ['a', 'b']; choose one")):
        load_study_for_reading(f"journal:///{tmp_path / 'two.log'}", None)
    (tmp_path / "empty.log").touch()
    with pytest.raises(StorageError, match="holds no study yet"):
        load_study_for_reading(f"journal:///{tmp_path / 'empty.log'}", "x")


@pytest.mark.skipif(
    not os.environ.get("STOCKCLF_TEST_POSTGRES_URL"),
    reason="no PostgreSQL server: set STOCKCLF_TEST_POSTGRES_URL="
    "(e.g. postgresql://USER@127.0.0.1:5432/DB) to run this test",
)
def test_cli_study_show_reads_postgresql(tmp_path) -> None:
    url = os.environ["STOCKCLF_TEST_POSTGRES_URL"]
    name = f"report-{os.getpid()}-{tmp_path.name}"
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    try:
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        done = run_cli("study", "show", "--storage", url, "--study", name, "--json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert data["n_complete"] == 3 and data["best_value"] == pytest.approx(study.best_value)
        missing = run_cli("study", "show", "--storage", url, "--study", "nope", cwd=tmp_path)
        assert missing.returncode == 2 and name in missing.stderr
    finally:
        optuna.delete_study(study_name=name, storage=url)


def test_quiet_mode_turns_progress_bars_off(monkeypatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("STOCKCLF_QUIET", raising=False)
    assert progress_enabled(Tty()) and not progress_enabled(io.StringIO())
    for value, enabled in (("1", False), ("true", False), ("0", True), ("", True)):
        monkeypatch.setenv("STOCKCLF_QUIET", value)
        assert progress_enabled(Tty()) is enabled
    monkeypatch.setenv("STOCKCLF_QUIET", "1")
    assert TrialProgress(5, 0).bar.disable


def test_result_reports_and_figures(make_params, tmp_path, two_symbol_test_days) -> None:
    """Bootstrap and backtest from a predictions file, their files and their PNGs."""
    split, symbols, rng = two_symbol_test_days
    y, n_days = split.y, len(split.y) // 2
    preds = {"model": y, "majority": np.ones_like(y)}
    preds.update(stratified=rng.integers(0, 3, y.size), logreg=(y + 1) % 3, minirocket=y)
    write_predictions(tmp_path / "p.csv", split, symbols, CLASSES, preds)
    # stride 1: the test days are consecutive, so the backtest rebalances every 5th (horizon)
    updates = {"data": {"stride": 1}, "evaluate": {"cost_bps": 5, "bootstrap_samples": 200}}
    params = make_params(updates)
    meta = {"classes": CLASSES, "symbols": symbols, "horizon": 5}
    results = compute_results(tmp_path / "p.csv", meta, params)
    assert results.uncertainty["model"]["f1_macro_ci_low"] == 1.0  # a perfect model
    assert results.uncertainty["logreg"]["f1_macro_ci_high"] == 0.0
    assert results.uncertainty["majority"]["model_gain_ci_low"] > 0.5
    assert results.backtest["costs"] == "5 bps per unit of turnover"
    assert results.backtest["n_periods"] == n_days // 5
    # a perfect up/down call gains on every held position
    assert results.backtest["strategy"]["hit_rate"] == 1.0
    assert results.backtest["strategy"]["sharpe"] > results.backtest["buy_and_hold"]["sharpe"]

    files = [tmp_path / n for n in ("bootstrap.json", "backtest.json", "equity.tsv")]
    write_results(results, *files)
    assert json.loads(files[1].read_text())["strategy"] == results.backtest["strategy"]
    lines = files[2].read_text().splitlines()
    assert lines[0] == "date\tyear\tstrategy\tbuy_and_hold\tminirocket"
    assert len(lines) == n_days // 5 + 2
    assert lines[1] == "2016-01-04\t2016.0082\t1.0\t1.0\t1.0"  # 3 / 366 days into 2016
    plot_equity(results.backtest, results.equity, tmp_path / "equity.png", dpi=50)
    assert_real_png(tmp_path / "equity.png", (275, 500))
    plot_f1_intervals(results.uncertainty, list(PREDICTORS), tmp_path / "f1.png", dpi=50)
    assert imread(tmp_path / "f1.png")[..., :3].std() > 0.02
    skipped = {"costs": "no transaction costs", "skipped": "no known forward return"}
    plot_equity(skipped, [], tmp_path / "none.png", dpi=50)
    assert_real_png(tmp_path / "none.png", (275, 500))


def test_npz_input_has_intervals_and_a_backtest_that_says_it_does_not_apply(
    make_params, tmp_path
) -> None:
    """An .npz source: no horizon in meta.json, NaN forward returns, classes of its own."""
    rng = np.random.default_rng(0)
    n, classes = 90, ["a", "b"]
    dates = np.datetime64("1970-01-01") + np.arange(n)  # the prepare stage's row dates
    y = rng.integers(0, 2, n)
    no_return = np.full(n, np.nan)
    split = SplitData(np.zeros((n, 1, 4), np.float32), y, dates, np.zeros(n, int), no_return)
    preds = {name: np.zeros_like(y) for name in PREDICTORS}
    preds.update(model=y, minirocket=1 - y)
    write_predictions(tmp_path / "p.csv", split, ["waves"], classes, preds)
    params = make_params({"evaluate": {"bootstrap_samples": 200}})
    meta = {"classes": classes, "symbols": ["waves"], "horizon": None}
    results = compute_results(tmp_path / "p.csv", meta, params)
    assert results.uncertainty["model"]["f1_macro_ci_low"] == 1.0
    assert results.uncertainty["minirocket"]["f1_macro_ci_high"] == 0.0
    assert results.uncertainty["minirocket"]["model_gain"] == 1.0
    assert results.uncertainty["n_dates"] == n
    assert results.backtest["applicable"] is False and "no prices" in results.backtest["reason"]
    assert set(results.backtest) == {"applicable", "reason"} and results.equity == []

    files = [tmp_path / n for n in ("bootstrap.json", "backtest.json", "equity.tsv")]
    write_results(results, *files)
    assert json.loads(files[1].read_text()) == results.backtest
    assert files[2].read_text().splitlines() == ["date\tyear\tstrategy\tbuy_and_hold\tminirocket"]
    text = format_results(results, list(PREDICTORS))
    assert text.endswith(f"backtest:\n  not applicable: {results.backtest['reason']}")
    plot_equity(results.backtest, results.equity, tmp_path / "none.png", dpi=50)
    assert_real_png(tmp_path / "none.png", (275, 500))
