"""An ensemble of independently initialised networks, trained side by side as one module.

Deep ensembles (Lakshminarayanan et al. 2017) are the cheapest reliable gain on small
data sets: InceptionTime's published UCR accuracies are those of five networks averaged.
The members share nothing but their input and the normalisation statistics (which come
from the training split alone): each has its own backbone, heads and window branch, drawn
one after the other from the seeded RNG, so they differ by their initialisation and, under
mixup, by their mixed batches. ``forward`` returns the log of the members' mean
probabilities, so that softmax of it is that mean and everything that reads logits (the
loss, the metrics, ``predict_proba``, the ONNX export) works on an ensemble unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stockclf.config import ModelParams
from stockclf.training.network import StockClassifierNet, log_mean_probs


class EnsembleNet(nn.Module):
    """``members`` :class:`StockClassifierNet` s; windows (B x C x L) -> the log of their
    mean class probabilities, and the same of their auxiliary heads."""

    def __init__(
        self,
        params: ModelParams,
        in_channels: int,
        num_classes: int,
        members: int,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if members < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {members}")
        self.nets = nn.ModuleList(
            StockClassifierNet(params, in_channels, num_classes, channels_last)
            for _ in range(members)
        )

    @property
    def members(self) -> list[StockClassifierNet]:
        return list(self.nets)

    @property
    def backbone(self) -> nn.ModuleList:
        """Every member's backbone: what the backbone learning rate and AGC apply to."""
        return nn.ModuleList(net.backbone for net in self.nets)

    @property
    def encoder(self) -> nn.Module:
        return self.nets[0].encoder  # parameter-free, the same in every member

    @property
    def window_mean(self) -> Tensor:
        return self.nets[0].window_mean

    @property
    def window_std(self) -> Tensor:
        return self.nets[0].window_std

    @torch.no_grad()
    def fit_normalisation(self, windows: Tensor) -> None:
        """The statistics once, from the training windows, copied into every member."""
        first, *others = self.nets
        first.fit_normalisation(windows)
        for net in others:
            for name in ("image_mean", "image_std", "window_mean", "window_std"):
                getattr(net, name).copy_(getattr(first, name))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        outputs = [net(x) for net in self.nets]
        return log_mean_probs([o[0] for o in outputs]), log_mean_probs([o[1] for o in outputs])

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for net in self.nets for p in net.head_parameters()]


def build_net(
    params: ModelParams,
    in_channels: int,
    num_classes: int,
    members: int = 1,
    channels_last: bool = True,
) -> StockClassifierNet | EnsembleNet:
    """One network, or an ensemble of ``members`` (``train.ensemble``). One member is the
    plain network, so a default checkpoint keeps the plain network's layout."""
    if members == 1:
        return StockClassifierNet(params, in_channels, num_classes, channels_last)
    return EnsembleNet(params, in_channels, num_classes, members, channels_last)
