"""Image quality metrics: PSNR, SSIM, LPIPS through the real ``lpips`` package, sharpness,
collapse.

All take float images ``(..., 3, H, W)`` or ``(..., H, W, 3)`` (``channels_last=True``) in
``[0, 1]`` and return one value per image.

LPIPS needs torchvision's ImageNet backbone weights (``alexnet-owt-7be5be79.pth`` for the
default ``alex`` net) in the torch hub cache. :func:`load_lpips` uses them when present
(or downloadable); otherwise it logs one loud warning naming the file and the directory it
was expected in and returns None, and callers record LPIPS as unavailable (null). A
randomly initialised backbone is never used and reported as LPIPS.
"""

from __future__ import annotations

import logging
import math
import os
from functools import cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

BACKBONE_FILES = {
    "alex": (
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    ),
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
}


def _to_nchw(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    x = x.movedim(-1, -3) if channels_last else x
    return x.reshape(-1, *x.shape[-3:]).float()


def psnr(pred: torch.Tensor, target: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (peak 1.0); images in [0, 1]."""
    p, t = _to_nchw(pred, channels_last), _to_nchw(target, channels_last)
    mse = (p.clamp(0, 1) - t).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


MOTION_THRESHOLD = 0.1  # a pixel "moves" when a channel changes by more than this (of 1.0)


def moving_pixels(target: torch.Tensor, last_context: torch.Tensor) -> torch.Tensor:
    """Pixels that move: where a true frame differs from the last context frame.

    ``target`` ``(..., H, W, 3)`` and ``last_context`` broadcastable to it, in [0, 1].
    Returns a bool ``(..., H, W)``: some channel differs by more than ``MOTION_THRESHOLD``.
    """
    return (target - last_context).abs().amax(-1) > MOTION_THRESHOLD


def region_psnr(pred: torch.Tensor, target: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image on the selected ``pixels`` only (peak 1.0); images
    ``(B, H, W, 3)`` in [0, 1], ``pixels`` a bool ``(B, H, W)``. An image with no pixel
    selected (nothing moved) gets its whole-frame PSNR."""
    se = (pred.clamp(0, 1) - target).pow(2).mean(-1)  # (B, H, W)
    count = pixels.flatten(1).sum(1)
    region = (se * pixels).flatten(1).sum(1) / count.clamp_min(1)
    mse = torch.where(count > 0, region, se.flatten(1).mean(1))
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The 1-D Gaussian whose outer product with itself is SSIM's 2-D window."""
    g = torch.exp(-((torch.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    return g / g.sum()


SSIM_CHUNK = 128  # images per pass of ssim()


def ssim(pred: torch.Tensor, target: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004: 11x11 Gaussian, sigma 1.5).

    The Gaussian is separable, so the five local moments are filtered in one grouped
    convolution along the rows and one along the columns (22 taps a pixel, not 121):
    the same numbers as the 2-D window to 1e-7; on a CPU about 40% less time, the rest
    being the element-wise products and ratios. Images go through in chunks of
    ``SSIM_CHUNK``: the same numbers, and on a CPU about ten times faster for thousands
    of frames than one pass, whose intermediates (five moments of every frame) outgrow
    the caches.
    """
    # images (N, C, H, W) first, so that chunks count images whatever the leading dims
    p, t = _to_nchw(pred, channels_last).clamp(0, 1), _to_nchw(target, channels_last)
    if len(p) > SSIM_CHUNK:
        return torch.cat(
            [
                _ssim_nchw(p[i : i + SSIM_CHUNK], t[i : i + SSIM_CHUNK])
                for i in range(0, len(p), SSIM_CHUNK)
            ]
        )
    return _ssim_nchw(p, t)


def _ssim_nchw(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """SSIM per image of ``(N, C, H, W)`` images, ``p`` already clamped to [0, 1]."""
    c = p.shape[1]
    size = min(11, p.shape[-1], p.shape[-2])
    g = _gaussian_window(size).to(p)
    x = torch.cat([p, t, p * p, t * t, p * t], 1)  # (B, 5c, H, W)
    n = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, size, 1).expand(n, 1, size, 1), groups=n)
    x = F.conv2d(x, g.view(1, 1, 1, size).expand(n, 1, 1, size), groups=n)
    mu_p, mu_t, e_pp, e_tt, e_pt = x.split(c, 1)
    s_pp, s_tt, s_pt = e_pp - mu_p**2, e_tt - mu_t**2, e_pt - mu_p * mu_t
    c1, c2 = 0.01**2, 0.03**2
    num = (2 * mu_p * mu_t + c1) * (2 * s_pt + c2)
    den = (mu_p**2 + mu_t**2 + c1) * (s_pp + s_tt + c2)
    return (num / den).flatten(1).mean(1)


def high_frequency_energy(x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (both axes) per image.

    A sharpness measure that needs no reference: blurring lowers it. Beside PSNR, which
    rewards predicting the blurry conditional mean, the ratio of a prediction's energy to
    the ground truth's (1 = as sharp) tells a sharp-but-misplaced sample from a blurry
    average.
    """
    v = _to_nchw(x, channels_last)
    dy = (v[..., 1:, :] - v[..., :-1, :]).pow(2).flatten(1).mean(1)
    dx = (v[..., :, 1:] - v[..., :, :-1]).pow(2).flatten(1).mean(1)
    return dy + dx


def sharpness_ratio(pred: torch.Tensor, target: torch.Tensor, channels_last: bool = True) -> float:
    """High-frequency energy of the predictions over the targets' (1 = as sharp), pooled."""
    num = high_frequency_energy(pred, channels_last).sum()
    return float(num / high_frequency_energy(target, channels_last).sum().clamp_min(1e-12))


def collapse_score(recon: Any, target: Any) -> float:
    """Spread of reconstructions across samples over the spread of the inputs (1 = faithful).

    Per pixel standard deviation over the batch, averaged; a tokenizer that outputs the
    mean image for every input scores 0.
    """
    return float(recon.std(axis=0).mean() / max(target.std(axis=0).mean(), 1e-8))


def backbone_path(net: str) -> Path:
    """Where torch hub keeps the backbone weights LPIPS(``net``) needs."""
    return Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILES[net][0]


@cache
def lpips_available(net: str = "alex") -> bool:
    """True when the backbone weights are cached or can be downloaded now (once per process)."""
    path = backbone_path(net)
    if path.is_file():
        return True
    if os.environ.get("WM_LPIPS_NO_DOWNLOAD"):
        ok = False
    else:
        try:
            torch.hub.load_state_dict_from_url(BACKBONE_FILES[net][1], progress=False)
            ok = path.is_file()
        except Exception:  # no network, proxy, disk: all mean "not available"
            ok = False
    if not ok:
        log.warning(
            "\n%s\nLPIPS UNAVAILABLE: the %s backbone weights %s are not in %s and could not be "
            "downloaded. The LPIPS loss term is dropped and LPIPS metrics are left out of the "
            "metrics files (lpips_available: false; MLflow tag lpips=unavailable). To enable it, copy %s into that directory.\n%s",
            "=" * 78,
            net,
            path.name,
            path.parent,
            BACKBONE_FILES[net][1],
            "=" * 78,
        )
    return ok


class LPIPS(torch.nn.Module):
    """The ``lpips`` package's metric on images in [0, 1]; frozen, one value per image."""

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        import lpips

        self.net = lpips.LPIPS(net=net, pretrained=True, pnet_rand=False, verbose=False)
        self.net.eval().requires_grad_(False)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, channels_last: bool = True
    ) -> torch.Tensor:
        p, t = _to_nchw(pred, channels_last), _to_nchw(target, channels_last)
        return self.net(p.clamp(0, 1) * 2 - 1, t * 2 - 1).flatten()


def load_lpips(net: str = "alex") -> LPIPS | None:
    """An :class:`LPIPS` with real pretrained weights, or None (warned) when unavailable."""
    return LPIPS(net) if lpips_available(net) else None


def latent_gain_db(model_mse: float, repeat_last_mse: float) -> float:
    """``10 log10(repeat_last_mse / model_mse)``: above 0 when the model beats repeat-last."""
    return round(10 * math.log10(max(repeat_last_mse, 1e-12) / max(model_mse, 1e-12)), 3)
