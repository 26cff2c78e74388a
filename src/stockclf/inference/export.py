"""``stockclf export``: the trained model as one ONNX file that runs without stockclf or torch.

The file holds the whole model, the image encoder included: windows ``B x C x L`` (float32)
in, class probabilities ``B x K`` out, softmax inside the graph, so a consumer needs
onnxruntime and nothing else. What the model was trained on (class names, features, window,
horizon, encodings) is in the file's metadata_props, as JSON strings.

The exporter is torch's default one (``torch.onnx.export(..., dynamo=True)``, which traces
with ``torch.export`` and translates with onnxscript), at opset 18. Every operation of the
encoder has an ONNX translation there except ``torch.searchsorted`` (the Markov transition
field's quantile bins), which no ONNX opset has. :func:`searchsorted_as_count` supplies one:
the bin of ``x`` is the number of edges strictly less than ``x``, a comparison and a sum,
exactly what ``searchsorted(..., right=False)`` returns on sorted edges. The legacy
TorchScript exporter (``dynamo=False``) cannot take this model: it has no searchsorted
either, and with a dynamic batch it refuses ``adaptive_avg_pool1d`` ("input size not
accessible").

Before the file is put in place, onnxruntime runs it on check windows and its probabilities
must equal the torch model's to :data:`TOLERANCE`; otherwise nothing is written.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from stockclf import __version__
from stockclf.errors import StockclfError
from stockclf.files import atomic_file
from stockclf.inference.checkpoint import Classifier, load_classifier

#: The formats ``stockclf export --format`` writes.
FORMATS = ("onnx",)
#: onnxscript's torch library is written for opset 18 (torch's default); onnxruntime has run
#: it since 1.14, so every current runtime takes the file.
OPSET = 18
INPUT_NAME = "windows"
OUTPUT_NAME = "probabilities"
#: Largest absolute difference of a probability, onnxruntime vs torch, that export accepts.
TOLERANCE = 1e-4
#: Synthetic windows of the check: enough for several of each class, quick to run.
CHECK_WINDOWS = 64


class ExportError(StockclfError, RuntimeError):
    """The model cannot be exported as asked; the message says why and what to do."""


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_model` wrote and how closely the file agrees with torch."""

    path: Path
    size_bytes: int
    input_shape: tuple[str | int, ...]
    classes: list[str]
    max_abs_diff: float
    n_checked: int

    def summary(self) -> str:
        channels, length = self.input_shape[1:]
        return (
            f"{self.path} ({self.size_bytes / 1e6:.1f} MB): {INPUT_NAME} float32 "
            f"[batch, {channels}, {length}] -> {OUTPUT_NAME} [batch, {len(self.classes)}] "
            f"({', '.join(self.classes)}); onnxruntime agrees with torch to "
            f"{self.max_abs_diff:.1e} on {self.n_checked} check windows"
        )


class Probabilities(nn.Module):
    """The classifier's main head as probabilities: the graph a consumer runs. The
    auxiliary head only helps training, so it is left out."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, windows: Tensor) -> Tensor:
        return torch.softmax(self.net(windows)[0], dim=-1)


def searchsorted_as_count(
    sorted_sequence: Any,
    self: Any,
    out_int32: bool = False,
    right: bool = False,
    side: str | None = None,
    sorter: Any = None,
) -> Any:
    """ONNX translation of ``aten.searchsorted.Tensor`` (``N x E`` edges, ``N x L`` values):
    the index of each value is the count of its row's edges strictly less than it (``<=``
    for ``right=True``), the definition of searchsorted on sorted rows.

    It builds an ``N x L x E`` comparison, small for the few MTF bins; the parameter names
    are aten's, since the exporter passes them by name.
    """
    import onnx
    from onnxscript import opset18 as op

    if sorter is not None:
        raise ExportError("searchsorted with a sorter has no ONNX translation here")
    upper = right or side == "right"
    edges = op.Unsqueeze(sorted_sequence, [-2])  # N x 1 x E
    values = op.Unsqueeze(self, [-1])  # N x L x 1
    below = op.LessOrEqual(edges, values) if upper else op.Less(edges, values)
    dtype = onnx.TensorProto.INT32 if out_int32 else onnx.TensorProto.INT64
    return op.ReduceSum(op.Cast(below, to=dtype), [-1], keepdims=0)


def check_windows(clf: Classifier, n: int = CHECK_WINDOWS, seed: int = 0) -> np.ndarray:
    """Deterministic windows (``n x C x L`` float32) to compare onnxruntime with torch on.

    They are drawn around the training windows' per-channel mean and spread (the network's
    normalisation buffers), so the backbone sees inputs of its usual scale. Window 0 is
    constant (the encoder's 0/0 guard) and window 1 takes few distinct values (ties at the
    MTF bin edges), the two cases where an export of the encoder could go wrong.
    """
    mean = clf.net.window_mean.double().numpy()[None, :, None]
    std = clf.net.window_std.double().numpy()[None, :, None]
    z = np.random.default_rng(seed).standard_normal((max(n, 2), clf.n_channels, clf.window))
    z[0] = 0.0
    z[1] = np.round(z[1])
    return (mean + std * z).astype(np.float32)


def metadata(clf: Classifier) -> dict[str, str]:
    """What the file says about itself: every value a JSON string, so a consumer parses
    them all alike (``json.loads``)."""
    record = {
        "classes": clf.classes,
        "features": clf.features,
        "window": clf.window,
        "horizon": clf.horizon,
        "encodings": list(clf.model.encodings),
        "image_size": clf.model.image_size,
        "mtf_bins": clf.model.mtf_bins,
        "backbone": clf.model.backbone,
        "input": f"{INPUT_NAME}: float32 [batch, {clf.n_channels}, {clf.window}]",
        "output": f"{OUTPUT_NAME}: float32 [batch, {len(clf.classes)}], softmax over classes",
        "checkpoint_sha256": hashlib.sha256(clf.path.read_bytes()).hexdigest(),
        "stockclf_version": __version__,
    }
    return {key: json.dumps(value) for key, value in record.items()}


def _export_modules() -> tuple[Any, Any]:
    """onnx and onnxruntime, which only export needs (the ``export`` extra); onnxscript is
    imported by torch's exporter itself."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ExportError(
            f"--format onnx needs onnx, onnxscript and onnxruntime ({err}); "
            "install them with pip install 'stockclf[export]'"
        ) from None
    return onnx, onnxruntime


def onnx_model(clf: Classifier, example: np.ndarray) -> Any:
    """The classifier as an ``onnx.ModelProto`` with a dynamic batch dimension."""
    program = torch.onnx.export(
        Probabilities(clf.net).eval(),
        (torch.from_numpy(np.ascontiguousarray(example)),),
        dynamo=True,
        opset_version=OPSET,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes={"windows": {0: torch.export.Dim("batch")}},
        custom_translation_table={torch.ops.aten.searchsorted.Tensor: searchsorted_as_count},
        verbose=False,
    )
    return program.model_proto


def max_abs_diff(model_bytes: bytes, clf: Classifier, windows: np.ndarray) -> float:
    """Largest difference between onnxruntime's probabilities (CPU provider) and
    :meth:`Classifier.predict_proba` on ``windows``."""
    _, onnxruntime = _export_modules()
    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: windows})
    return float(np.abs(got.astype(np.float64) - clf.predict_proba(windows)).max())


def export_onnx(clf: Classifier, out: Path) -> ExportReport:
    """Write ``clf`` to ``out`` as ONNX, after onnxruntime has matched torch on the check
    windows; on any failure ``out`` is left as it was."""
    onnx, _ = _export_modules()
    windows = check_windows(clf)
    with torch.no_grad():
        proto = onnx_model(clf, windows[:4])
    onnx.checker.check_model(proto)
    for key, value in metadata(clf).items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = (
        f"stockclf classifier: {INPUT_NAME} (float32, batch x {clf.n_channels} x {clf.window}) "
        f"-> {OUTPUT_NAME} over {clf.classes}"
    )
    buffer = io.BytesIO()
    onnx.save_model(proto, buffer)  # one file: the weights are inside, not external data
    model_bytes = buffer.getvalue()
    diff = max_abs_diff(model_bytes, clf, windows)
    if not diff <= TOLERANCE:  # also refuses NaN
        raise ExportError(
            f"{clf.path}: the ONNX model's probabilities differ from torch's by {diff:.3g} "
            f"(more than {TOLERANCE:g}) on the check windows; nothing written to {out}"
        )
    with atomic_file(out) as tmp:
        tmp.write_bytes(model_bytes)
    return ExportReport(
        path=out,
        size_bytes=len(model_bytes),
        input_shape=("batch", clf.n_channels, clf.window),
        classes=list(clf.classes),
        max_abs_diff=diff,
        n_checked=len(windows),
    )


def export_model(model: str | Path, out: str | Path, fmt: str = "onnx") -> ExportReport:
    """Export the checkpoint ``model`` (``models/best.ckpt``) to ``out`` in format ``fmt``."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"--out {out} is a directory; name the file, e.g. {out / 'model.onnx'}")
    if out.exists() and out.resolve() == Path(model).resolve():
        raise ExportError(f"--out {out} is the checkpoint itself; choose another file")
    clf = load_classifier(model)
    return export_onnx(clf, out)
