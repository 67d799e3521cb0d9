"""Image metrics against known values."""

from __future__ import annotations

import math

import torch

from worldmodel.metrics import psnr, ssim


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
