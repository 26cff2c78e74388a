"""Results travel: push to a DVC remote, clone, pull, and nothing is left to run; studies
resume after a pull; queued experiments run and are listed side by side."""

import json
import shutil
import time
from pathlib import Path

import optuna
import pytest
import yaml
from helpers import set_args, sh

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def origin_and_clone(pipeline_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """The pipeline's results committed and pushed to a local-directory remote, then a
    fresh ``git clone`` of them with ``dvc pull`` done."""
    base = tmp_path_factory.mktemp("share")
    origin = base / "origin"
    shutil.copytree(pipeline_repo, origin, symlinks=True)
    sh("dvc", "remote", "add", "-d", "storage", str(base / "remote"), cwd=origin)
    sh("git", "add", "-A", cwd=origin)
    sh("git", "commit", "-qm", "results and remote", cwd=origin)
    sh("dvc", "push", cwd=origin)
    clone = base / "clone"
    sh("git", "clone", "-q", str(origin), str(clone), cwd=base)
    sh("dvc", "pull", cwd=clone)
    return origin, clone


def metrics(repo: Path) -> dict:
    return json.loads(sh("dvc", "metrics", "show", "--json", cwd=repo).stdout)


def study_trials(repo: Path) -> list[optuna.trial.FrozenTrial]:
    info = json.loads((repo / "tuning" / "study.json").read_text())
    storage = f"sqlite:///{repo / 'tuning' / 'study.db'}"
    return optuna.load_study(study_name=info["study_name"], storage=storage).trials


def test_pulled_clone_is_up_to_date_with_the_same_metrics(origin_and_clone) -> None:
    origin, clone = origin_and_clone
    for path in ("tuning/study.db", "models/best.ckpt", "data/prepared/train/X.npy"):
        assert (clone / path).read_bytes() == (origin / path).read_bytes(), path
    assert "Data and pipelines are up to date" in sh("dvc", "status", cwd=clone).stdout
    again = sh("dvc", "repro", cwd=clone).stdout
    assert "Running stage" not in again and "up to date" in again
    assert metrics(clone) == metrics(origin) != {}
    shown = sh("dvc", "exp", "show", "--json", cwd=clone).stdout
    best = json.loads((origin / "tuning/metrics.json").read_text())["best_value"]
    assert repr(best)[:8] in shown


def test_study_resumes_after_pull(origin_and_clone) -> None:
    _, clone = origin_and_clone
    pulled = [t.params for t in study_trials(clone)]
    assert len(pulled) == 2
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["tune"]["n_trials"] = 3
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = sh("dvc", "repro", cwd=clone)
    assert "Running stage 'tune'" in done.stdout
    # the stage's own report goes to stderr, which DVC passes through from the command
    assert "2 finished, running 1 more" in done.stderr, done.stderr[-3000:]
    trials = study_trials(clone)
    assert len(trials) == 3  # resumed: the two pulled trials plus one new one
    assert [t.params for t in trials[:2]] == pulled
    summary = json.loads((clone / "tuning/metrics.json").read_text())
    assert summary["n_complete"] + summary["n_pruned"] == 3


def test_queued_experiments_run_and_are_listed(origin_and_clone) -> None:
    origin, _ = origin_and_clone
    # a param only the visualize stage reads: each experiment reruns that stage alone
    for dpi in (60, 80):
        sh("dvc", "exp", "run", "--queue", *set_args([f"visualize.dpi={dpi}"]), cwd=origin)
    sh("dvc", "queue", "start", "-j", "1", cwd=origin)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = sh("dvc", "queue", "status", cwd=origin).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    assert status.count("Success") == 2, status
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=origin).stdout)
    dpi_seen = set()
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data", {})
                dpi_seen.add(data["params"]["params.yaml"]["data"]["visualize"]["dpi"])
                headline = data["metrics"]["reports/metrics.json"]["data"]
                assert 0.0 <= headline["test_f1"]["model"] <= 1.0
    assert {60, 80} <= dpi_seen


def test_the_model_artifact_is_fetched_by_name_and_predicts(
    origin_and_clone, tmp_path: Path
) -> None:
    """The model registry path: `dvc artifacts get` of a pushed repository, into an empty
    folder with neither git nor DVC, gives a model that `stockclf predict` uses."""
    origin, _ = origin_and_clone
    empty = tmp_path / "user"
    empty.mkdir()
    # nothing is registered yet: DVC finds versions of an artifact by their git tags
    unregistered = sh(
        "dvc", "artifacts", "get", str(origin), "stock-classifier", cwd=empty, check=False
    )
    assert unregistered.returncode != 0 and "Unable to find artifact" in unregistered.stderr
    # a registered version is an annotated tag NAME@vX.Y.Z (what `gto register` writes)
    sh("git", "tag", "-a", "stock-classifier@v1.0.0", "-m", "register v1.0.0", cwd=origin)
    sh("dvc", "artifacts", "get", str(origin), "stock-classifier", cwd=empty)
    assert sorted(p.name for p in (empty / "models").iterdir()) == ["best.ckpt", "card.md"]
    assert (empty / "models/best.ckpt").read_bytes() == (origin / "models/best.ckpt").read_bytes()
    done = sh("stockclf", "predict", "--data", str(origin / "data/sample"), "--json", cwd=empty)
    out = json.loads(done.stdout)
    assert [p["symbol"] for p in out["predictions"]] == ["NASDAQ", "SP500"]
    assert {p["predicted"] for p in out["predictions"]} <= {"down", "flat", "up"}
