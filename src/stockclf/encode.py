"""Turn time-series windows into image channels, on the device, as the first layer of the model.

The prepared data stores each sample as a ``C x L`` window, so the stored data grows with the
window length ``L``.  Storing the images instead would grow with ``L**2`` per encoding; making
them here, inside the model, keeps the data small and runs the encoding on the training device
(GPU) batch by batch.  :class:`ImageEncoder` has no learnable parameters.

Three encodings are available (:data:`stockclf.registry.ENCODINGS`), following the
conventions of ``pyts`` (``pyts.image.GramianAngularField`` and
``pyts.image.MarkovTransitionField``), after Z. Wang and T. Oates, "Encoding Time Series
as Images for Visual Inspection and Classification Using Tiled Convolutional Neural
Networks", AAAI Workshop 2015:

``gasf``
    Gramian angular summation field, ``cos(phi_i + phi_j)``.
``gadf``
    Gramian angular difference field, ``sin(phi_i - phi_j)`` (pyts' sign convention).
``mtf``
    Markov transition field with per-window quantile bins.

Every encoding is computed independently per window and per input channel.  All the arithmetic
runs in float32 with autocast disabled, so the output (float32) does not depend on the mixed
precision setting of the surrounding training loop.  Nothing uses a matrix multiplication whose
result depends on reduced-precision settings (TF32): the only ``bmm`` multiplies 0/1 one-hot
matrices, whose integer counts are exact in any of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stockclf.registry import ENCODINGS


def paa(x: Tensor, size: int) -> Tensor:
    """Piecewise aggregate approximation of ``x`` (``... x L``) to ``size`` points.

    This is ``F.adaptive_avg_pool1d``: output point ``k`` is the mean of the input over the
    segment ``floor(k * L / size) <= t < ceil((k + 1) * L / size)``.  When ``size`` divides
    ``L`` the segments are the usual non-overlapping PAA frames; otherwise neighbouring segments
    share one boundary point (pyts builds its uneven segments differently, so the two can differ
    slightly in that case).  With ``L == size`` it is the identity.
    """
    shape = x.shape
    return F.adaptive_avg_pool1d(x.reshape(-1, 1, shape[-1]), size).reshape(*shape[:-1], size)


def resample(x: Tensor, size: int) -> Tensor:
    """``x`` (``... x L``) at ``size`` points: :func:`paa` when shrinking (or equal), linear
    interpolation through the ``L`` points when ``size > L``.

    Upsampling lets ``image_size`` exceed the window, so that a short series (24 points)
    still gives a backbone with a total stride of 32 an image large enough to keep a
    spatial feature map; interpolation adds no information, only resolution.
    """
    length = x.shape[-1]
    if size <= length:
        return paa(x, size)
    shape = x.shape
    flat = x.reshape(-1, 1, length)
    return F.interpolate(flat, size=size, mode="linear", align_corners=True).reshape(
        *shape[:-1], size
    )


def polar_angles(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(cos phi, sin phi)`` of the polar encoding of each series in ``x`` (``... x S``).

    Each series is min-max rescaled to ``[-1, 1]`` (``c = (2x - max - min) / (max - min)``,
    pyts' ``MinMaxScaler(sample_range=(-1, 1))``), clamped to ``[-1, 1]``, and
    ``phi = arccos(c)`` in ``[0, pi]``, so ``cos phi = c`` and ``sin phi = sqrt(1 - c**2) >= 0``.
    The arccos is never taken: ``sin phi`` is computed as
    ``2 * sqrt((max - x) * (x - min)) / (max - min)``, which equals ``sqrt((1 - c) * (1 + c))``
    but stays accurate near ``c = +-1`` where ``1 - c**2`` would lose digits.

    A constant series (``max == min``) gets ``c = 0`` (``phi = pi / 2``) everywhere instead of
    the 0/0 NaN.
    """
    high = x.amax(dim=-1, keepdim=True)
    low = x.amin(dim=-1, keepdim=True)
    span = high - low
    constant = span <= 0
    safe_span = torch.where(constant, torch.ones_like(span), span)
    above = x - low  # >= 0
    below = high - x  # >= 0
    cos = ((above - below) / safe_span).clamp(-1.0, 1.0)
    sin = (2.0 * torch.sqrt((above * below).clamp(min=0.0)) / safe_span).clamp(0.0, 1.0)
    cos = torch.where(constant, torch.zeros_like(cos), cos)
    sin = torch.where(constant, torch.ones_like(sin), sin)
    return cos, sin


def gasf(cos: Tensor, sin: Tensor) -> Tensor:
    """Gramian angular summation field: ``G[i, j] = cos(phi_i + phi_j) = c_i c_j - s_i s_j``."""
    return cos.unsqueeze(-1) * cos.unsqueeze(-2) - sin.unsqueeze(-1) * sin.unsqueeze(-2)


def gadf(cos: Tensor, sin: Tensor) -> Tensor:
    """Gramian angular difference field: ``G[i, j] = sin(phi_i - phi_j) = s_i c_j - c_i s_j``.

    This is pyts' ``np.outer(sin, cos) - np.outer(cos, sin)``; the matrix is antisymmetric
    with a zero diagonal.
    """
    return sin.unsqueeze(-1) * cos.unsqueeze(-2) - cos.unsqueeze(-1) * sin.unsqueeze(-2)


def quantile_edges(x: Tensor, n_bins: int) -> Tensor:
    """Inner quantile bin edges of each row of ``x`` (``N x L``), shape ``N x (n_bins - 1)``.

    Edge ``k`` (``k = 1 .. n_bins - 1``) is the quantile at level ``k / n_bins`` with linear
    interpolation between order statistics (numpy's default ``method="linear"``, which pyts'
    ``KBinsDiscretizer(strategy="quantile")`` uses via ``np.percentile``): position
    ``p = k (L - 1) / n_bins`` in the sorted row, ``lerp(sorted[floor p], sorted[floor p + 1],
    frac p)``.  The position is computed in exact integer arithmetic, so an integer position
    gives exactly that order statistic (numpy computes it in floating point and can land
    ~1e-15 off an integer position when ``n_bins`` is not a power of two; a data value equal to
    such an edge may then fall in the neighbouring bin there).
    """
    length = x.shape[-1]
    ordered = x.sort(dim=-1).values
    k = torch.arange(1, n_bins, device=x.device)
    numerator = k * (length - 1)
    low = torch.div(numerator, n_bins, rounding_mode="floor")
    high = (low + 1).clamp(max=length - 1)
    frac = (numerator - low * n_bins).to(x.dtype) / n_bins
    return torch.lerp(ordered[:, low], ordered[:, high], frac)


def quantile_bins(x: Tensor, n_bins: int) -> Tensor:
    """Bin index in ``[0, n_bins)`` of each value of ``x`` (``N x L``) by its row's quantiles.

    The index of ``x_t`` is the number of edges strictly less than ``x_t``
    (``torch.searchsorted(edges, x, right=False)``, i.e. ``np.searchsorted(edges, x,
    side="left")`` as in pyts, or ``np.digitize(x, edges, right=True)``): a value equal to an
    edge goes to the lower bin.  When ties make several edges equal, pyts drops the repeated
    edges and so numbers the bins differently, but the partition of the values into bins is the
    same, and the Markov transition field does not depend on the bin labels.
    """
    edges = quantile_edges(x, n_bins).contiguous()
    return torch.searchsorted(edges, x.contiguous(), right=False)


def mtf(x: Tensor, n_bins: int, size: int) -> Tensor:
    """Markov transition field of each row of ``x`` (``N x L``), averaged to ``N x size x size``.

    1. Bin each value by its row's quantiles (:func:`quantile_bins`).
    2. ``W[q, r]`` = number of steps ``t -> t + 1`` (``t = 0 .. L - 2``) from bin ``q`` to bin
       ``r``, each row divided by its sum (rows without transitions stay 0), as pyts does.
    3. ``M[i, j] = W[bin(x_i), bin(x_j)]``, an ``L x L`` field.
    4. The image is ``F.adaptive_avg_pool2d(M, size)``: the mean of ``M`` over blocks
       ``I_k x I_l`` with the segments ``I_k`` of :func:`paa`.

    Steps 3 and 4 are fused without building the ``L x L`` field: with ``A[k, q]`` the
    fraction of the points of segment ``I_k`` that fall in bin ``q`` (the adaptive average pool
    of the one-hot bins), the block mean is ``sum_{q, r} A[k, q] W[q, r] A[l, r]``.  The sums
    run elementwise in float32 (no TF32 matmul) over the few bins.
    """
    bins = quantile_bins(x, n_bins)
    onehot = F.one_hot(bins, n_bins).to(x.dtype)  # N x L x Q
    counts = torch.bmm(onehot[:, :-1].transpose(1, 2), onehot[:, 1:])  # N x Q x Q, exact
    transition = counts / counts.sum(dim=-1, keepdim=True).clamp(min=1.0)
    share = F.adaptive_avg_pool1d(onehot.transpose(1, 2), size)  # N x Q x S
    weighted = torch.zeros(
        x.shape[0], size, n_bins, dtype=x.dtype, device=x.device
    )  # N x S x Q: sum_q A[k, q] W[q, r]
    for q in range(n_bins):
        weighted += share[:, q, :, None] * transition[:, q, None, :]
    image = torch.zeros(x.shape[0], size, size, dtype=x.dtype, device=x.device)
    for r in range(n_bins):
        image += weighted[:, :, r, None] * share[:, r, None, :]
    return image


def _gaf_angles(series: Tensor, size: int, shared: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """``cos`` and ``sin`` of the polar angles of ``series`` resampled to ``size`` points,
    computed once per batch and shared by GASF and GADF."""
    if "cos" not in shared:
        # GAF is shift-invariant; starting from the minimum makes the PAA average small
        # numbers (exact differences for prices), which keeps float32 rounding far below
        # the range of the window.
        shifted = series - series.amin(dim=-1, keepdim=True)
        shared["cos"], shared["sin"] = polar_angles(resample(shifted, size))
    return shared["cos"], shared["sin"]


# The image makers of the encodings (registered in stockclf.registry.ENCODINGS):
# (series N x L, size, mtf_bins, shared) -> N x S x S. ``shared`` holds what several
# encodings of one batch compute alike (the GAF angles).


def gasf_image(series: Tensor, size: int, bins: int, shared: dict[str, Tensor]) -> Tensor:
    return gasf(*_gaf_angles(series, size, shared))


def gadf_image(series: Tensor, size: int, bins: int, shared: dict[str, Tensor]) -> Tensor:
    return gadf(*_gaf_angles(series, size, shared))


def mtf_image(series: Tensor, size: int, bins: int, shared: dict[str, Tensor]) -> Tensor:
    return mtf(series, bins, size)


class ImageEncoder(nn.Module):
    """Encode ``B x C x L`` windows as ``B x (C * len(encodings)) x S x S`` images.

    The channels are grouped by encoding, in the order given: for encodings ``("mtf", "gasf")``
    channels ``0 .. C - 1`` are the MTF of input channels ``0 .. C - 1`` and channels
    ``C .. 2C - 1`` their GASF.  The Gramian angular fields are computed on each series
    resampled to ``S`` points (:func:`resample`: PAA down, linear interpolation up); the
    Markov transition field on the full series, averaged to ``S x S`` (:func:`mtf`; above
    ``L`` each image cell takes the one or two points its segment covers).

    The module has no parameters and works on whatever device its input is on.  The input is
    cast to float32 and the encodings are computed with autocast disabled, so the output is
    float32 even inside a mixed-precision training step.

    Args:
        encodings: names from :data:`stockclf.registry.ENCODINGS`, each at most once.
        image_size: side ``S`` of the output images, at least 2; larger than the window
            length ``L``, the series is upsampled (:func:`resample`).
        mtf_bins: number of quantile bins of the Markov transition field, at least 2.
    """

    def __init__(self, encodings: Sequence[str], image_size: int, mtf_bins: int = 8) -> None:
        super().__init__()
        if isinstance(encodings, str):
            raise TypeError(
                f"encodings must be a sequence of names, not the string {encodings!r}; "
                f"use [{encodings!r}]"
            )
        names = tuple(encodings)
        if not names:
            raise ValueError(f"encodings is empty; choose from {list(ENCODINGS)}")
        ENCODINGS.check(names)
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 2:
            raise ValueError(f"image_size must be an integer >= 2, got {image_size!r}")
        if isinstance(mtf_bins, bool) or not isinstance(mtf_bins, int) or mtf_bins < 2:
            raise ValueError(f"mtf_bins must be an integer >= 2, got {mtf_bins!r}")
        self.encodings: tuple[str, ...] = names
        self._makers = [ENCODINGS.get(name) for name in names]
        self.image_size = image_size
        self.mtf_bins = mtf_bins

    @property
    def out_channels_per_input(self) -> int:
        """Image channels made from each input channel (one per encoding)."""
        return len(self.encodings)

    def out_channels(self, in_channels: int) -> int:
        """Image channels made from ``in_channels`` input channels."""
        return in_channels * len(self.encodings)

    def extra_repr(self) -> str:
        return (
            f"encodings={list(self.encodings)}, image_size={self.image_size}, "
            f"mtf_bins={self.mtf_bins}"
        )

    def forward(self, x: Tensor) -> Tensor:
        """Encode ``x`` (``B x C x L``) as float32 images ``B x (C * len(encodings)) x S x S``."""
        if x.dim() != 3:
            raise ValueError(f"expected input of shape (B, C, L), got {tuple(x.shape)}")
        batch, channels, length = x.shape
        size = self.image_size
        with torch.autocast(device_type=x.device.type, enabled=False):
            series = x.float().reshape(batch * channels, length)
            shared: dict[str, Tensor] = {}
            images = [
                make(series, size, self.mtf_bins, shared).reshape(batch, channels, size, size)
                for make in self._makers
            ]
            return torch.cat(images, dim=1)
