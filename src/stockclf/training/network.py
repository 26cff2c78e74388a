"""The classifier network: image encoder, timm backbone, main and auxiliary heads."""

from __future__ import annotations

import math
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.models import adapt_input_conv  # the public name; its module, _manipulate, is private
from torch import Tensor, nn

from stockclf.config import ModelParams, ParamsError
from stockclf.encode import ImageEncoder


def log_mean_probs(logits: list[Tensor]) -> Tensor:
    """log(mean_i softmax(logits_i)), B x K, computed in log space (no underflow)."""
    stacked = torch.stack([F.log_softmax(x.float(), dim=-1) for x in logits])  # M x B x K
    return torch.logsumexp(stacked, dim=0) - math.log(len(logits))


class WindowBranch(nn.Module):
    """A 1-D convolutional net on the standardised window itself (B x C x L -> B x width).

    The image encodings rescale every window to [-1, 1] (GAF) or to ranks (MTF), which
    throws away its level and volatility: exactly what a logistic regression on the raw
    window uses. This branch keeps them. Its shape is the fully convolutional network of
    Wang, Yan and Oates (2017), a strong UCR baseline, at a width that costs little next to
    the backbone: three conv-BN-ReLU blocks, then the mean over time.
    """

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for kernel, out in ((7, width), (5, 2 * width), (3, width)):
            layers += [
                nn.Conv1d(channels, out, kernel, padding=kernel // 2, bias=False),
                nn.BatchNorm1d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.body = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).mean(dim=-1)  # B x width


class StockClassifierNet(nn.Module):
    """Windows (B x C x L) -> class logits, plus auxiliary logits for deep supervision.

    The auxiliary head classifies from an intermediate feature map (the stage before
    last, e.g. ``blocks.4`` in EfficientNet-B0) so that the gradient reaches early
    layers directly; its loss is weighted by ``aux_loss_weight`` during training.

    The normalisation statistics are buffers, saved with the weights: ``fit_normalisation``
    sets them from training windows before training, and a loaded checkpoint brings them.
    """

    def __init__(
        self, params: ModelParams, in_channels: int, num_classes: int, channels_last: bool = True
    ) -> None:
        super().__init__()
        self.encoder = ImageEncoder(params.encodings, params.image_size, params.mtf_bins)
        image_channels = self.encoder.out_channels(in_channels)
        self.normalize = params.normalize
        self.register_buffer("image_mean", torch.zeros(image_channels))
        self.register_buffer("image_std", torch.ones(image_channels))
        self.register_buffer("window_mean", torch.zeros(in_channels))
        self.register_buffer("window_std", torch.ones(in_channels))
        self.backbone = timm.create_model(
            params.backbone,
            pretrained=params.pretrained,
            num_classes=0,  # heads live here so both share the pooled/intermediate features
            in_chans=image_channels,
            drop_path_rate=params.drop_path_rate,
        )
        if params.pretrained_path:
            load_backbone_weights(self.backbone, Path(params.pretrained_path))
        self.aux_index = len(self.backbone.feature_info) - 2
        pooled_features, aux_channels = self._probe_widths(image_channels, params.image_size)
        self.window_branch = (
            WindowBranch(in_channels, params.raw_branch) if params.raw_branch > 0 else None
        )
        raw_features = self.window_branch.out_features if self.window_branch else 0
        # "late": the images and the window each get their own head and their own loss, and
        # the prediction is their mean probability; "concat": one head on both features.
        self.late_fusion = params.fusion == "late" and self.window_branch is not None
        if self.late_fusion:
            self.head = nn.Linear(pooled_features, num_classes)
            self.window_head: nn.Linear | None = nn.Linear(raw_features, num_classes)
        else:
            self.head = nn.Linear(pooled_features + raw_features, num_classes)
            self.window_head = None
        self.aux_head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(aux_channels, num_classes)
        )
        # channels_last: EfficientNet-B0 trains 1.6x faster on a 2-core CPU (measured with
        # 2,048 64 x 64 images per epoch); benchmarks/speedup_rows.py re-measures it.
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def _probe_widths(self, image_channels: int, image_size: int) -> tuple[int, int]:
        """Widths of the pooled features and of the auxiliary head's feature map, found by
        one probe forward pass: timm's metadata differs per family (MobileNetV3 pools to
        ``head_hidden_size``, not ``num_features``, and its intermediate indices do not
        line up with ``feature_info``)."""
        was_training = self.backbone.training
        self.backbone.eval()  # no BatchNorm statistics from the all-zero probe
        probe = torch.zeros(1, image_channels, image_size, image_size)
        final, (intermediate,) = self.backbone.forward_intermediates(
            probe, indices=[self.aux_index]
        )
        pooled = self.backbone.forward_head(final)
        self.backbone.train(was_training)
        return pooled.shape[1], intermediate.shape[1]

    @torch.no_grad()
    def fit_normalisation(self, windows: Tensor) -> None:
        """Per-channel mean and standard deviation of the images and of the windows of
        ``windows`` (N x C x L, training samples only, so nothing leaks from val or test).

        GAF values lie in [-1, 1] while MTF values average ``1 / mtf_bins``; standardising
        each channel puts them on one scale for the backbone's first convolution.
        """
        if not self.normalize:
            return
        x = windows.float().to(self.image_mean.device)
        images = torch.cat([self.encoder(chunk) for chunk in x.split(1024)])  # N x CE x S x S
        self.image_mean.copy_(images.mean(dim=(0, 2, 3)))
        self.image_std.copy_(images.std(dim=(0, 2, 3)).clamp(min=1e-6))
        self.window_mean.copy_(x.mean(dim=(0, 2)))
        self.window_std.copy_(x.std(dim=(0, 2)).clamp(min=1e-6))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits (the log of the heads' mean probabilities under late fusion) and
        the auxiliary head's logits, both B x num_classes."""
        heads, aux = self.forward_heads(x)
        return (heads[0] if len(heads) == 1 else log_mean_probs(heads)), aux

    def forward_heads(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """The main heads' logits (one, or the images' and the window's under late fusion),
        and the auxiliary head's: what training puts a loss on."""
        images = self.encoder(x)  # B x C*E x S x S
        images = (images - self.image_mean[:, None, None]) / self.image_std[:, None, None]
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        final, (intermediate,) = self.backbone.forward_intermediates(
            images, indices=[self.aux_index]
        )
        pooled = self.backbone.forward_head(final)  # B x num_features
        aux = self.aux_head(intermediate)
        if self.window_branch is None:
            return [self.head(pooled)], aux
        window = (x.float() - self.window_mean[:, None]) / self.window_std[:, None]
        branch = self.window_branch(window)  # B x raw_branch
        if self.window_head is not None:
            return [self.head(pooled), self.window_head(branch)], aux
        return [self.head(torch.cat([pooled, branch], dim=1))], aux

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters trained from scratch at ``lr_head``: the heads and the window branch."""
        branch = list(self.window_branch.parameters()) if self.window_branch else []
        if self.window_head is not None:
            branch += list(self.window_head.parameters())
        return [*self.head.parameters(), *self.aux_head.parameters(), *branch]


def load_backbone_weights(backbone: nn.Module, path: Path) -> None:
    """Load a local weights file (safetensors, or a torch state dict read with
    ``weights_only=True``) into the backbone, e.g. timm's ImageNet weights saved once.

    The first convolution is adapted with timm's ``adapt_input_conv`` when the file was
    trained for another input channel count (3 for ImageNet). The classifier is skipped:
    the backbone here has none (``num_classes=0``) and our heads are trained from scratch.
    Any other tensor whose shape differs is an error, since the architecture does not match.
    """
    if not path.exists():
        raise FileNotFoundError(f"model.pretrained_path: {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    own = backbone.state_dict()
    first_conv = f"{backbone.pretrained_cfg.get('first_conv', '')}.weight"
    classifier = backbone.pretrained_cfg.get("classifier", "")
    usable: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if classifier and key.startswith(f"{classifier}."):
            continue
        if key not in own:
            continue
        if key == first_conv and value.shape[1] != own[key].shape[1]:
            value = adapt_input_conv(own[key].shape[1], value, base_chans=value.shape[1])
        if value.shape != own[key].shape:
            raise ParamsError(
                f"model.pretrained_path: {path}: {key} has shape {tuple(value.shape)}, the "
                f"backbone expects {tuple(own[key].shape)}; it was saved from another model"
            )
        usable[key] = value
    missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
    if not usable or len(missing) > len(own) // 2:
        raise ParamsError(
            f"model.pretrained_path: {path} matches {len(usable)} of {len(own)} backbone tensors; "
            "it was saved from another architecture"
        )
    backbone.load_state_dict(usable, strict=False)
