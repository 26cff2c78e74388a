"""``stockclf export --format onnx``: one file, encoder included, that onnxruntime runs
without stockclf or torch, whose probabilities are the torch model's on the test split.

One model is trained (tiny config, bundled data) and exported once by the command itself, as
a user runs it; the tests read that file.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import yaml
from helpers import REPO, child_env, run_cli, tiny_config

from stockclf import cli, load_classifier
from stockclf.config import merge_params, validate_params
from stockclf.data.prepare import prepare
from stockclf.data.store import load_split
from stockclf.encode import quantile_edges
from stockclf.inference import export
from stockclf.pipeline.train_best import TrainBestPaths, run_train_best


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, prepared data) of one tiny train_best run on the bundled data."""
    tmp = tmp_path_factory.mktemp("export")
    defaults = yaml.safe_load((REPO / "params.yaml").read_text())
    raw = merge_params(defaults, tiny_config())
    raw["data"]["source"] = str(REPO / "data/sample")
    # what a user exports is an ensemble (tiny trains one network); two members take the
    # same code path as params.yaml's three, in two thirds of the time
    raw["train"]["ensemble"] = 2
    params = validate_params(raw, "tiny")
    prepare(params.data, tmp / "prepared", REPO / "data/sample")
    (tmp / "best.yaml").write_text("{}\n")
    paths = TrainBestPaths.under(tmp / "out", tmp / "prepared", tmp / "best.yaml")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_train_best(params, paths, progress_bar=False)
    finally:
        torch.set_num_threads(threads)
    checkpoint = tmp / "out/model/best.ckpt"
    assert len(getattr(load_classifier(checkpoint).net, "members", [None])) == params.train.ensemble
    return checkpoint, tmp / "prepared"


@pytest.fixture(scope="module")
def exported(trained: tuple[Path, Path]) -> tuple[Path, str]:
    """(the ONNX file, the command's stdout) of `stockclf export` on the trained model."""
    checkpoint, _ = trained
    out = checkpoint.parent.parent / "exports/model.onnx"
    done = run_cli(
        "export",
        "--format",
        "onnx",
        "--model",
        str(checkpoint),
        "--out",
        str(out),
        cwd=checkpoint.parent,
    )
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def test_probabilities_equal_torch_on_the_test_split(
    trained: tuple[Path, Path], exported: tuple[Path, str]
) -> None:
    checkpoint, prepared = trained
    path, stdout = exported
    windows = np.asarray(load_split(prepared, "test").X, dtype=np.float32)
    expected = load_classifier(checkpoint).predict_proba(windows)
    run = session(path)
    (got,) = run.run(["probabilities"], {"windows": windows})
    assert len(windows) > 100 and got.shape == expected.shape == (len(windows), 3)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    # the batch is dynamic: one window and an odd count give the same rows
    for n in (1, 7):
        (part,) = run.run(["probabilities"], {"windows": windows[:n]})
        np.testing.assert_allclose(part, got[:n], rtol=0, atol=1e-6)
    checked = float(re.search(r"agrees with torch to (\S+) on 64 check windows", stdout)[1])
    assert 0 <= checked <= 1e-4, stdout


RUN_WITHOUT_TORCH = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "stockclf"):
                raise ImportError(f"{name} imported while running the ONNX model")

    sys.meta_path.insert(0, Refuse())
    import numpy as np
    import onnxruntime

    model, windows, out = sys.argv[1:]
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"windows": np.load(windows)})
    np.save(out, probabilities)
    meta = session.get_modelmeta().custom_metadata_map
    assert "torch" not in sys.modules and "stockclf" not in sys.modules
    print(json.dumps({"classes": json.loads(meta["classes"]), "loaded": sorted(sys.modules)}))
    """
)


def test_the_file_runs_without_stockclf_or_torch(
    trained: tuple[Path, Path], exported: tuple[Path, str], tmp_path: Path
) -> None:
    checkpoint, prepared = trained
    path, _ = exported
    windows = np.asarray(load_split(prepared, "test").X[:50], dtype=np.float32)
    np.save(tmp_path / "windows.npy", windows)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN_WITHOUT_TORCH,
            str(path),
            str(tmp_path / "windows.npy"),
            str(tmp_path / "probabilities.npy"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["classes"] == ["down", "flat", "up"]
    assert not [m for m in report["loaded"] if m.split(".")[0] in ("torch", "stockclf")]
    expected = load_classifier(checkpoint).predict_proba(windows)
    got = np.load(tmp_path / "probabilities.npy")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_the_file_says_what_it_is(trained: tuple[Path, Path], exported: tuple[Path, str]) -> None:
    checkpoint, _ = trained
    path, _ = exported
    clf = load_classifier(checkpoint)
    model = onnx.load(str(path))
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert meta["classes"] == clf.classes == ["down", "flat", "up"]
    assert meta["features"] == clf.features == ["log_return", "hl_range", "volume_change"]
    assert meta["window"] == clf.window == 16 and meta["horizon"] == clf.horizon == 5
    assert meta["encodings"] == ["gasf", "gadf", "mtf"] and meta["image_size"] == 16
    assert meta["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("windows", "probabilities")
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == [3, 16]  # a named, dynamic batch
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.opset_import[0].version == export.OPSET
    # the encoder is in the graph: its sort (TopK) and the bin count replacing searchsorted
    ops = {node.op_type for node in model.graph.node}
    assert {"TopK", "Less", "ReduceSum", "Softmax"} <= ops, sorted(ops)
    assert not list(path.parent.glob("*.data")), "the weights are inside the one file"


@pytest.mark.parametrize("right", [False, True])
def test_the_searchsorted_translation_is_exact(right: bool) -> None:
    """The count of edges below each value gives exactly torch.searchsorted's bins on MTF
    edges, ties and values equal to an edge included."""

    class Bins(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            edges = quantile_edges(x, 5).contiguous()
            return torch.searchsorted(edges, x.contiguous(), right=right)

    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 23)).astype(np.float32)
    x[:10] = np.round(x[:10])  # ties: values equal to edges
    x[10] = 0.5  # a constant row: every edge equal to every value
    program = torch.onnx.export(
        Bins().eval(),
        (torch.from_numpy(x[:4]),),
        dynamo=True,
        opset_version=export.OPSET,
        dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
        verbose=False,
        custom_translation_table={torch.ops.aten.searchsorted.Tensor: export.searchsorted_as_count},
    )
    run = onnxruntime.InferenceSession(
        program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (got,) = run.run(None, {run.get_inputs()[0].name: x})
    expected = Bins()(torch.from_numpy(x)).numpy()
    assert got.dtype == expected.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    assert len(np.unique(expected)) == 5  # every bin used: the comparison was exercised


def _cli_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as stop:
        cli.main(["export", *args])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_bad_input_is_one_line_exit_2_and_no_file(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, _ = trained
    out = tmp_path / "out/model.onnx"
    err = _cli_error(capsys, "--format", "tflite", "--model", str(checkpoint), "--out", str(out))
    assert "unknown export format 'tflite'; choose from onnx" in err
    err = _cli_error(capsys, "--model", str(tmp_path / "nope.ckpt"), "--out", str(out))
    assert "nope.ckpt: no such checkpoint" in err
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    err = _cli_error(capsys, "--model", str(tmp_path / "garbage.ckpt"), "--out", str(out))
    assert "garbage.ckpt: not a PyTorch checkpoint" in err
    err = _cli_error(capsys, "--model", str(checkpoint), "--out", str(tmp_path))
    assert "is a directory" in err
    assert not out.exists() and not list(tmp_path.rglob("*.onnx*"))


@pytest.mark.parametrize("diff", [0.5, float("nan")])
def test_a_model_that_disagrees_with_torch_is_not_written(
    trained: tuple[Path, Path],
    exported: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    diff: float,
) -> None:
    checkpoint, _ = trained
    path, _ = exported

    def previous_graph(clf: object, example: object) -> onnx.ModelProto:
        """The exported graph stands in for a fresh export: the refusal is what is tested."""
        model = onnx.load(str(path))
        del model.metadata_props[:]
        return model

    monkeypatch.setattr(export, "onnx_model", previous_graph)
    monkeypatch.setattr(export, "max_abs_diff", lambda *args: diff)
    out = tmp_path / "model.onnx"
    out.write_bytes(b"the previous export")
    with pytest.raises(export.ExportError, match=r"differ from torch's by .* nothing written"):
        export.export_model(checkpoint, out)
    assert out.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
