"""The Colab notebook runs headless (nbclient, CPU) on tiny settings and leaves the outputs."""

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from helpers import OVERRIDES, REPO, sh
from nbclient import NotebookClient

NOTEBOOK = REPO / "notebooks" / "colab.ipynb"


def gpu_set_in_notebook() -> set[str]:
    source = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells)
    block = re.search(r"GPU_SET = \[(.*?)\]\n", source, re.S).group(1)
    return set(re.findall(r'"([^"]+)"', block))


def test_notebook_and_readme_share_one_gpu_parameter_set() -> None:
    readme = (REPO / "README.md").read_text()
    command = re.search(r"```bash\ndvc exp run (-S .*?)```", readme, re.S).group(1)
    in_readme = {m.strip("'") for m in re.findall(r"-S ('[^']+'|\S+)", command)}
    assert gpu_set_in_notebook() == in_readme


def test_notebook_has_no_absolute_paths() -> None:
    for cell in nbformat.read(NOTEBOOK, as_version=4).cells:
        if cell.cell_type == "code":
            assert not re.search(r"[\"']/(content|home|root|Users)/", cell.source), cell.source


@pytest.mark.slow
def test_notebook_runs_the_pipeline_headless(
    pipeline_repo: Path, tmp_path: Path, monkeypatch
) -> None:
    """The notebook's cells, on a copy of ``pipeline_repo`` (which ran the same shrunk
    ``dvc exp run``, so the four stages themselves are tested there): its ``dvc exp run``
    with the same overrides finds every stage up to date, and the cells after it show the
    experiment, the study and the figures of that run."""
    repo = tmp_path / "repo"
    shutil.copytree(pipeline_repo, repo, symlinks=True)
    monkeypatch.setenv("STOCKCLF_OVERRIDES", " ".join(OVERRIDES))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(repo)}}
    ).execute()
    # the notebook's overrides are the run's: nothing was left to reproduce (sh fails the
    # test on a non-zero exit, which `dvc status --quiet` gives when something changed)
    sh("dvc", "status", "--quiet", cwd=repo)
    metrics = json.loads((repo / "reports" / "test_metrics.json").read_text())
    assert 0.0 <= metrics["model"]["f1_macro"] <= 1.0
    assert len(list((repo / "reports" / "figures").glob("*.png"))) >= 7
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    assert "already in the repo" in text and "no DVC remote configured" in text
    for stage in ("prepare", "tune", "train_best", "visualize"):
        assert f"Stage '{stage}' didn't change, skipping" in text
    assert "best trial #" in text  # stockclf study show ran
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 7  # figures displayed
