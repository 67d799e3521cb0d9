"""Image metrics against known values."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from worldmodel import metrics
from worldmodel.metrics import high_frequency_energy, psnr, ssim


def test_psnr_of_known_error() -> None:
    x = torch.full((2, 8, 8, 3), 0.5)
    y = x + 0.1  # MSE 0.01 -> 20 dB
    assert torch.allclose(psnr(y, x), torch.tensor([20.0, 20.0]), atol=1e-4)


def test_psnr_of_gaussian_noise() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.full((1, 64, 64, 3), 0.5)
    noisy = x + 0.05 * torch.randn(x.shape, generator=g)
    expected = 10 * math.log10(1 / 0.05**2)  # ~26.02 dB
    assert abs(psnr(noisy, x).item() - expected) < 0.1


def test_ssim_identical_is_one_and_noise_lowers_it() -> None:
    x = torch.rand(3, 32, 32, 3)
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-5)
    assert (ssim(torch.rand_like(x), x) < 0.2).all()
    assert ssim(x.movedim(-1, 1), x.movedim(-1, 1), channels_last=False).min() > 0.9999


def test_ssim_matches_the_two_dimensional_gaussian_window() -> None:
    """The separable filtering gives the textbook SSIM: local moments under the 11x11
    Gaussian (sigma 1.5), computed here directly from every 11x11 patch in float64."""
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 20, 24, generator=gen, dtype=torch.float64)
    pred = (target + 0.1 * torch.randn(target.shape, generator=gen, dtype=torch.float64)).clamp(
        0, 1
    )
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5**2))
    w = (g[:, None] * g[None, :]).flatten() / g.sum() ** 2  # (121,)

    def moment(x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H-10, W-10)
        patches = x.unfold(2, 11, 1).unfold(3, 11, 1).flatten(-2)
        return (patches * w).sum(-1)

    mu_p, mu_t = moment(pred), moment(target)
    s_pp = moment(pred * pred) - mu_p**2
    s_tt = moment(target * target) - mu_t**2
    s_pt = moment(pred * target) - mu_p * mu_t
    c1, c2 = 0.01**2, 0.03**2
    ref = ((2 * mu_p * mu_t + c1) * (2 * s_pt + c2)) / (
        (mu_p**2 + mu_t**2 + c1) * (s_pp + s_tt + c2)
    )
    got = ssim(pred.float(), target.float(), channels_last=False)
    assert torch.allclose(got.double(), ref.flatten(1).mean(1), atol=1e-5)


def test_ssim_in_chunks_gives_each_image_its_own_score() -> None:
    """Past SSIM_CHUNK images, ssim() works in chunks; each image's score is the one it
    gets alone, in order."""
    gen = torch.Generator().manual_seed(1)
    n = metrics.SSIM_CHUNK * 2 + 5
    target = torch.rand(n, 16, 16, 3, generator=gen)
    pred = (target + 0.2 * torch.rand(n, 16, 16, 3, generator=gen)).clamp(0, 1)
    got = ssim(pred, target)
    assert got.shape == (n,)
    for i in (0, metrics.SSIM_CHUNK - 1, metrics.SSIM_CHUNK, n - 1):
        assert torch.allclose(got[i], ssim(pred[i : i + 1], target[i : i + 1])[0], atol=1e-6)


def test_ssim_chunks_count_images_whatever_the_leading_dims(monkeypatch) -> None:
    """Windows of frames (N, T, H, W, 3) are chunked by image, not by window: no pass
    holds more than SSIM_CHUNK images, and the scores are those of the flat batch."""
    gen = torch.Generator().manual_seed(2)
    target = torch.rand(20, 16, 16, 16, 3, generator=gen)
    pred = (target + 0.2 * torch.rand(target.shape, generator=gen)).clamp(0, 1)
    flat = ssim(pred.flatten(0, 1), target.flatten(0, 1))
    sizes = []
    inner = metrics._ssim_nchw
    monkeypatch.setattr(metrics, "_ssim_nchw", lambda p, t: sizes.append(len(p)) or inner(p, t))
    got = ssim(pred, target)
    assert max(sizes) <= metrics.SSIM_CHUNK and sum(sizes) == 20 * 16
    assert torch.equal(got, flat)


def test_high_frequency_energy_known_values_and_blur() -> None:
    flat = torch.full((1, 8, 8, 3), 0.3)
    assert high_frequency_energy(flat).item() == 0.0
    stripes = torch.zeros(1, 8, 8, 3)
    stripes[:, :, ::2] = 1.0  # every horizontal neighbour differs by 1, vertical by 0
    assert abs(high_frequency_energy(stripes).item() - 1.0) < 1e-6
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1)
    e = high_frequency_energy(x, channels_last=False)
    assert (high_frequency_energy(blurred, channels_last=False) < 0.5 * e).all()
