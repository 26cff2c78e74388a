"""A trained model rebuilt from its checkpoint alone, to be asked about new windows.

The checkpoint train_best writes (``models/best.ckpt``) holds the network's weights, the
model params it was built with (Lightning's ``hyper_parameters``), and stockclf's own
record (:data:`~stockclf.training.record.CHECKPOINT_KEY`): the features, window, horizon
and class names of the data it was trained on, and the data params. The normalisation
statistics are buffers of the network, so they come with the weights. Everything is in
plain types, so the file is read with ``torch.load(weights_only=True)``: loading a model
never runs code from the file.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stockclf.config import ModelParams
from stockclf.errors import StockclfError
from stockclf.training.ensemble import EnsembleNet, build_net
from stockclf.training.network import StockClassifierNet
from stockclf.training.record import CHECKPOINT_FORMAT, CHECKPOINT_KEY

#: Windows per forward pass when predicting: bounds memory on large inputs, and matches
#: train_best's own test batches for the default batch size.
PREDICT_BATCH = 128


class CheckpointError(StockclfError, ValueError):
    """A checkpoint that is missing, unreadable, of another format, or does not fit the
    input; the message names the file and the problem."""


@dataclass
class Classifier:
    """The trained network with what it needs to know about its inputs."""

    net: StockClassifierNet | EnsembleNet
    model: ModelParams
    features: list[str]
    window: int
    horizon: int | None
    classes: list[str]
    data_params: dict[str, Any]
    path: Path

    @property
    def n_channels(self) -> int:
        return len(self.features)

    def check_windows(self, x: np.ndarray, source: str) -> None:
        """Refuse windows whose shape is not the one the model was trained on."""
        if x.ndim != 3 or x.shape[1:] != (self.n_channels, self.window):
            got = tuple(x.shape[1:]) if x.ndim == 3 else tuple(x.shape)
            raise CheckpointError(
                f"{source}: windows of shape {got} (channels, length), but {self.path} was "
                f"trained on {self.n_channels} channels x {self.window} days "
                f"(features {self.features})"
            )

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Class probabilities of windows ``x`` (N x C x L), N x K float64, on the CPU."""
        self.check_windows(x, "input")
        out = []
        for start in range(0, len(x), batch_size):
            chunk = torch.from_numpy(np.array(x[start : start + batch_size], dtype=np.float32))
            logits = self.net(chunk)[0]
            out.append(torch.softmax(logits.double(), dim=-1).numpy())
        if not out:
            return np.empty((0, len(self.classes)))
        return np.concatenate(out)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no such checkpoint; train one (`dvc repro train_best`) or fetch it "
            "(`dvc pull train_best`, or `dvc artifacts get`)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint, or one holding objects that a weights-only "
            "load refuses"
        ) from None
    except (
        RuntimeError,
        EOFError,
        OSError,
        zipfile.BadZipFile,
        ValueError,
    ) as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(err).__name__}: {first})"
        ) from None


def _record(path: Path, checkpoint: dict[str, Any]) -> dict[str, Any]:
    record = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(record, dict):
        raise CheckpointError(
            f"{path}: not a stockclf model checkpoint (it has no '{CHECKPOINT_KEY}' record; "
            "checkpoints of tuning trials and of versions before format 1 have none)"
        )
    if record.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {record.get('format')!r}, but this stockclf reads "
            f"format {CHECKPOINT_FORMAT}; retrain it (`dvc repro -f train_best`) or use the "
            "stockclf version that wrote it"
        )
    return record["data"]


def load_classifier(path: str | Path) -> Classifier:
    """Rebuild the trained model of ``path`` (``models/best.ckpt``) on the CPU, in eval mode."""
    path = Path(path)
    checkpoint = _read(path)
    data = _record(path, checkpoint)
    hp = checkpoint.get("hyper_parameters", {})
    # the weights come from the checkpoint: never fetch or read pretrained ones again
    model = ModelParams(**{**hp["model_params"], "pretrained": False, "pretrained_path": None})
    members = int(hp.get("train_params", {}).get("ensemble", 1))
    net = build_net(model, int(hp["in_channels"]), int(hp["num_classes"]), members)
    state = {
        k.removeprefix("net."): v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("net.")
    }
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the recorded model: {err}") from None
    net.eval()
    return Classifier(
        net=net,
        model=model,
        features=list(data["features"]),
        window=int(data["window"]),
        horizon=data["horizon"],
        classes=list(data["classes"]),
        data_params=dict(data["params"]),
        path=path,
    )
