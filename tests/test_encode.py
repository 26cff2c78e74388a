"""ImageEncoder against a plain numpy reference (pyts' conventions, written out with loops)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stockclf.encode import ENCODINGS, ImageEncoder

SHAPES = [(4, 3, 64, 32), (2, 1, 30, 30), (3, 2, 50, 16)]  # (B, C, L, S)
TOL = 1e-5


# ----------------------------------------------------------------------------- numpy reference


def ref_segments(length: int, size: int) -> list[tuple[int, int]]:
    """Adaptive-pool segments: k covers floor(k L / S) <= t < ceil((k + 1) L / S)."""
    return [((k * length) // size, -((-(k + 1) * length) // size)) for k in range(size)]


def ref_paa(series: np.ndarray, size: int) -> np.ndarray:
    return np.array([series[a:b].mean() for a, b in ref_segments(len(series), size)])


def ref_phi(series: np.ndarray, size: int) -> np.ndarray:
    reduced = ref_paa(series, size)
    low, high = reduced.min(), reduced.max()
    if high == low:  # constant series: phi = pi / 2 everywhere
        return np.full_like(reduced, np.pi / 2)
    scaled = (2 * reduced - high - low) / (high - low)
    return np.arccos(np.clip(scaled, -1.0, 1.0))


def ref_gasf(series: np.ndarray, size: int) -> np.ndarray:
    phi = ref_phi(series, size)
    return np.cos(phi[:, None] + phi[None, :])


def ref_gadf(series: np.ndarray, size: int) -> np.ndarray:
    phi = ref_phi(series, size)
    return np.sin(phi[:, None] - phi[None, :])  # sin(phi_i - phi_j), pyts' convention


def ref_mtf(series: np.ndarray, size: int, n_bins: int) -> np.ndarray:
    length = len(series)
    edges = np.quantile(series, np.arange(1, n_bins) / n_bins)  # linear interpolation
    bins = np.searchsorted(edges, series, side="left")  # number of edges strictly below
    counts = np.zeros((n_bins, n_bins))
    for t in range(length - 1):
        counts[bins[t], bins[t + 1]] += 1
    transition = np.zeros((n_bins, n_bins))
    for q in range(n_bins):
        total = counts[q].sum()
        if total > 0:
            transition[q] = counts[q] / total
    field = np.empty((length, length))
    for i in range(length):
        for j in range(length):
            field[i, j] = transition[bins[i], bins[j]]
    segments = ref_segments(length, size)
    image = np.empty((size, size))
    for k, (a, b) in enumerate(segments):
        for m, (c, d) in enumerate(segments):
            image[k, m] = field[a:b, c:d].mean()
    return image


REFERENCES = {
    "gasf": lambda s, size, bins: ref_gasf(s, size),
    "gadf": lambda s, size, bins: ref_gadf(s, size),
    "mtf": ref_mtf,
}


def reference(x: np.ndarray, encoding: str, size: int, n_bins: int = 8) -> np.ndarray:
    """B x C x S x S images of one encoding, one window and channel at a time, in float64."""
    x = np.asarray(x, dtype=np.float64)
    batch, channels, _ = x.shape
    out = np.empty((batch, channels, size, size))
    for b in range(batch):
        for c in range(channels):
            out[b, c] = REFERENCES[encoding](x[b, c], size, n_bins)
    return out


def random_windows(seed: int, batch: int, channels: int, length: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    walk = rng.standard_normal((batch, channels, length)).cumsum(axis=-1) + 50.0
    return torch.from_numpy(walk).float()  # float64 data cast to float32


def max_diff(a: torch.Tensor, b: np.ndarray) -> float:
    return float(np.abs(a.double().numpy() - b).max())


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}C{}L{}S{}".format(*s))
@pytest.mark.parametrize("encoding", ["gasf", "gadf"])
def test_gaf_matches_reference(shape: tuple[int, int, int, int], encoding: str) -> None:
    batch, channels, length, size = shape
    x = random_windows(1, batch, channels, length)
    out = ImageEncoder([encoding], size)(x)
    assert out.shape == (batch, channels, size, size)
    assert out.dtype == torch.float32
    assert max_diff(out, reference(x.numpy(), encoding, size)) < TOL


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}C{}L{}S{}".format(*s))
# 8 bins: exact quantile positions in numpy too; 5 bins: k (L - 1) / 5 is never an integer here.
@pytest.mark.parametrize("n_bins", [8, 5])
def test_mtf_matches_reference(shape: tuple[int, int, int, int], n_bins: int) -> None:
    batch, channels, length, size = shape
    x = random_windows(2, batch, channels, length)
    out = ImageEncoder(["mtf"], size, mtf_bins=n_bins)(x)
    assert out.shape == (batch, channels, size, size)
    assert out.dtype == torch.float32
    assert max_diff(out, reference(x.numpy(), "mtf", size, n_bins)) < TOL


def test_mtf_with_ties_matches_reference() -> None:
    # Few distinct values: many quantile edges coincide and fall on data values.
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.integers(0, 4, size=(3, 2, 40)).astype(np.float32))
    x[0, 0, :30] = 1.0
    out = ImageEncoder(["mtf"], 20, mtf_bins=8)(x)
    assert max_diff(out, reference(x.numpy(), "mtf", 20, 8)) < TOL


def test_channel_order_and_out_channels() -> None:
    batch, channels, length, size = 2, 3, 40, 20
    x = random_windows(4, batch, channels, length)
    encoder = ImageEncoder(["mtf", "gasf"], size)
    assert encoder.out_channels_per_input == 2
    assert encoder.out_channels(channels) == 6
    out = encoder(x)
    assert out.shape == (batch, 6, size, size)
    assert max_diff(out[:, :channels], reference(x.numpy(), "mtf", size)) < TOL
    assert max_diff(out[:, channels:], reference(x.numpy(), "gasf", size)) < TOL
    expected = torch.cat([ImageEncoder(["mtf"], size)(x), ImageEncoder(["gasf"], size)(x)], dim=1)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_constant_window_is_finite() -> None:
    x = random_windows(5, 2, 2, 32)
    x[0, 1] = 7.5  # one constant channel among ordinary ones
    x[1] = 0.0
    out = ImageEncoder(list(ENCODINGS), 16)(x)
    assert torch.isfinite(out).all()
    gasf, gadf, mtf = out[:, :2], out[:, 2:4], out[:, 4:]
    # phi = pi / 2 everywhere: cos(pi) = -1, sin(0) = 0; a single bin: W = [[1]].
    for b, c in [(0, 1), (1, 0), (1, 1)]:
        assert torch.equal(gasf[b, c], torch.full((16, 16), -1.0))
        assert torch.equal(gadf[b, c], torch.zeros(16, 16))
        assert torch.equal(mtf[b, c], torch.ones(16, 16))
    for encoding, images in zip(ENCODINGS, (gasf, gadf, mtf), strict=True):
        assert max_diff(images, reference(x.numpy(), encoding, 16)) < TOL


def test_gaf_and_mtf_properties() -> None:
    x = random_windows(6, 3, 2, 48)
    size = 24
    out = ImageEncoder(list(ENCODINGS), size)(x)
    gasf, gadf, mtf = out[:, :2], out[:, 2:4], out[:, 4:]
    # GASF diagonal: cos(2 phi) = 2 c^2 - 1 with c the rescaled PAA series.
    reduced = torch.nn.functional.adaptive_avg_pool1d(x, size)
    low = reduced.amin(-1, keepdim=True)
    high = reduced.amax(-1, keepdim=True)
    c = (2 * reduced - high - low) / (high - low)
    torch.testing.assert_close(gasf.diagonal(dim1=-2, dim2=-1), 2 * c**2 - 1, rtol=0, atol=TOL)
    # GADF: antisymmetric, zero diagonal.
    torch.testing.assert_close(gadf, -gadf.transpose(-1, -2), rtol=0, atol=0)
    assert torch.equal(gadf.diagonal(dim1=-2, dim2=-1), torch.zeros(3, 2, size))
    # Both GAFs in [-1, 1]; MTF values are averaged probabilities, in [0, 1].
    assert gasf.abs().max() <= 1 + 1e-6 and gadf.abs().max() <= 1 + 1e-6
    assert mtf.min() >= 0 and mtf.max() <= 1 + 1e-6


def test_gadf_sign_convention() -> None:
    # Increasing series 0, 0.5, 1: c = -1, 0, 1, phi = pi, pi/2, 0; GADF[i, j] = sin(phi_i - phi_j).
    x = torch.tensor([[[0.0, 0.5, 1.0]]])
    gadf = ImageEncoder(["gadf"], 3)(x)[0, 0]
    expected = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    torch.testing.assert_close(gadf, expected, rtol=0, atol=1e-6)


def test_gaf_is_invariant_to_positive_affine_maps() -> None:
    x = random_windows(7, 4, 3, 64)
    encoder = ImageEncoder(["gasf", "gadf"], 32)
    torch.testing.assert_close(encoder(2.5 * x - 30.0), encoder(x), rtol=0, atol=TOL)
    torch.testing.assert_close(encoder(0.5 * x + 2.0), encoder(x), rtol=0, atol=TOL)


def test_mtf_depends_only_on_ranks() -> None:
    x = random_windows(8, 2, 2, 50)
    encoder = ImageEncoder(["mtf"], 16)
    torch.testing.assert_close(encoder(torch.exp(x / 20)), encoder(x), rtol=0, atol=TOL)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="'gasff'") as info:
        ImageEncoder(["gasf", "gasff"], 16)
    assert all(name in str(info.value) for name in ENCODINGS)
    with pytest.raises(ValueError, match="image_size"):
        ImageEncoder(["gasf"], 1)
    with pytest.raises(ValueError, match="mtf_bins"):
        ImageEncoder(["mtf"], 16, mtf_bins=1)
    with pytest.raises(ValueError, match="empty"):
        ImageEncoder([], 16)
    with pytest.raises(TypeError):
        ImageEncoder("gasf", 16)
    encoder = ImageEncoder(["gasf"], 16)
    with pytest.raises(ValueError, match=r"\(B, C, L\)"):
        encoder(torch.zeros(2, 32))


def test_image_larger_than_the_window_interpolates_the_series() -> None:
    """A 10-point window makes a 16 x 16 GASF: the series is linearly interpolated to 16
    points (numpy's ``interp`` on an even grid), then encoded as usual."""
    x = random_windows(11, 3, 2, 10)
    out = ImageEncoder(["gasf", "gadf", "mtf"], 16)(x)
    assert out.shape == (3, 6, 16, 16)
    assert torch.isfinite(out).all()
    series = x.numpy().reshape(-1, 10).astype(np.float64)
    grid = np.linspace(0, 9, 16)
    upsampled = np.stack([np.interp(grid, np.arange(10), s) for s in series])
    # ref_gasf with size == length is the plain GASF of the upsampled series
    expected = np.stack([ref_gasf(s, 16) for s in upsampled]).reshape(3, 2, 16, 16)
    assert max_diff(out[:, :2], expected) < TOL
    mtf = out[:, 4:]
    assert float(mtf.min()) >= 0.0 and float(mtf.max()) <= 1.0


def test_autocast_returns_float32_result() -> None:
    x = random_windows(9, 3, 2, 64)
    encoder = ImageEncoder(list(ENCODINGS), 32)
    expected = encoder(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = encoder(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=TOL)


def test_batch_of_one_keeps_device_and_casts_input() -> None:
    x = random_windows(10, 1, 2, 40)
    encoder = ImageEncoder(list(ENCODINGS), 20)
    out = encoder(x)
    assert out.shape == (1, 6, 20, 20)
    assert out.device == x.device
    assert out.dtype == torch.float32
    torch.testing.assert_close(encoder(x.double()), out, rtol=0, atol=0)
    for k, encoding in enumerate(ENCODINGS):
        assert max_diff(out[:, 2 * k : 2 * k + 2], reference(x.numpy(), encoding, 20)) < TOL
