"""Everything the tokenizer's training needs beside the model: batches, objective, checks.

Used by ``stages/train_tokenizer.py`` and ``scripts/bench_tokenizer.py``. Every batch is a
pure function of ``(base.seed, step)``: clips, MAE mask ratios and masks are drawn here,
not inside the model, which makes resume and multi-process runs exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from worldmodel.config import Params, TokenizerParams
from worldmodel.data.windows import FrameClips
from worldmodel.metrics import LPIPS, collapse_score, moving_pixels, psnr, region_psnr, ssim
from worldmodel.models.tokenizer import PRESETS, Tokenizer, TokenizerConfig
from worldmodel.utils import derive_seed


def tokenizer_config(p: TokenizerParams, image_size: int) -> TokenizerConfig:
    """Architecture from params (size preset + token layout) and the data's frame size."""
    if image_size % p.patch_size:
        raise ValueError(
            f"tokenizer.patch_size = {p.patch_size} does not divide the frame size {image_size}"
        )
    return TokenizerConfig(
        image_size=image_size,
        patch_size=p.patch_size,
        latent_tokens=p.latent_tokens,
        latent_dim=p.latent_dim,
        latent_norm=p.latent_norm,
        **PRESETS[p.size],
    )


def mask_max_at(step: int, p: TokenizerParams) -> float:
    """MAE mask ceiling at ``step`` (linear warm-up when ``mask_warmup_steps`` > 0)."""
    if p.mask_warmup_steps <= 0:
        return p.mask_max
    return p.mask_max * min(1.0, step / p.mask_warmup_steps)


def random_keep(
    rng: np.random.Generator, b: int, t: int, n_patches: int, mask_max: float
) -> np.ndarray:
    """Keep-masks ``(b, t, P)``: each frame drops ``floor(p * P)`` patches, ``p ~ U(0, mask_max)``."""
    dropped = np.floor(rng.uniform(0, mask_max, (b, t, 1)) * n_patches)
    rank = rng.random((b, t, n_patches)).argsort(-1).argsort(-1)  # a random permutation
    return rank >= dropped  # exactly floor(p * P) patches dropped per frame


@dataclass
class TokenizerBatch:
    """A training batch: clips and which patches the encoder may see."""

    frames: torch.Tensor  # (B, T, H, W, 3) uint8
    keep: torch.Tensor  # (B, T, P) bool; False = replaced by the mask token

    def to(self, device: torch.device | str) -> TokenizerBatch:
        return TokenizerBatch(self.frames.to(device), self.keep.to(device))

    def preview(self) -> torch.Tensor:
        """One uint8 image per sample (its last frame), for hard-example logging."""
        return self.frames[:, -1]


class TokenizerBatches:
    """``(step, rank, world) -> TokenizerBatch``: rank's slice of the step's global batch."""

    def __init__(self, clips: FrameClips, params: Params, n_patches: int) -> None:
        self.clips, self.params, self.n_patches = clips, params, n_patches

    def __call__(self, step: int, rank: int = 0, world: int = 1) -> TokenizerBatch:
        p = self.params.tokenizer
        n = p.train.batch_size
        if n % world:
            raise ValueError(
                f"tokenizer.train.batch_size = {n} is not divisible by {world} processes"
            )
        rng = np.random.default_rng(derive_seed(self.params.base.seed, "tokenizer-batch", step))
        frames = self.clips.sample(rng, n)
        keep = random_keep(
            rng, b=n, t=p.clip_frames, n_patches=self.n_patches, mask_max=mask_max_at(step, p)
        )
        sl = slice(rank * n // world, (rank + 1) * n // world)
        return TokenizerBatch(torch.from_numpy(frames[sl]), torch.from_numpy(keep[sl]))


def hard_pixel_error(err: torch.Tensor, fraction: float) -> torch.Tensor:
    """Mean over frames of the mean of each frame's ``fraction`` largest per-pixel squared
    errors (summed over colour); ``err`` is ``(..., H, W, 3)``."""
    per_pixel = err.sum(-1).flatten(-2).flatten(0, -2)  # (frames, H * W)
    k = max(1, math.ceil(fraction * per_pixel.shape[-1]))
    return per_pixel.topk(k, dim=-1).values.mean()


class TokenizerObjective(nn.Module):
    """Wraps a :class:`Tokenizer` with its training loss: MSE, LPIPS (when available) and
    the hard-pixel term (when ``hard_pixel_fraction`` is given).

    ``forward(batch) -> (terms, logs)``: raw, un-normalised scalar terms for the
    trainer, and logs including ``per_sample`` losses for hard-example tracking.
    """

    def __init__(
        self,
        model: Tokenizer,
        lpips: nn.Module | None = None,
        hard_pixel_fraction: float | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.lpips = lpips
        self.hard_pixel_fraction = hard_pixel_fraction
        if lpips is not None:
            lpips.requires_grad_(False)

    def forward(
        self, batch: TokenizerBatch
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        target = batch.frames.float() / 255.0
        recon = self.model(target, batch.keep)
        err = (recon - target).pow(2)  # (B, T, H, W, 3)
        terms = {"mse": err.mean()}
        per_sample = err.flatten(1).mean(1).detach()
        if self.lpips is not None:
            terms["lpips"] = self.lpips(recon, target).mean()
        if self.hard_pixel_fraction is not None:
            terms["hard_pixels"] = hard_pixel_error(err, self.hard_pixel_fraction)
        masked_frac = 1 - batch.keep.float().mean()
        return terms, {"per_sample": per_sample, "masked_fraction": masked_frac.detach()}


def objective(model: Tokenizer, p: TokenizerParams, lpips: nn.Module | None) -> TokenizerObjective:
    """The tokenizer's training objective from params: LPIPS only with a weight and its
    weights at hand, the hard-pixel term only with a weight."""
    return TokenizerObjective(
        model,
        lpips if p.lpips_weight > 0 else None,
        p.hard_pixel_fraction if p.hard_pixel_weight > 0 else None,
    )


def loss_weights(p: TokenizerParams) -> dict[str, float]:
    """Multipliers of the RMS-normalised terms (MSE has 1)."""
    return {"lpips": p.lpips_weight, "hard_pixels": p.hard_pixel_weight}


@torch.no_grad()
def reconstruct(
    model: Tokenizer, frames: np.ndarray, device: torch.device, batch: int = 32
) -> np.ndarray:
    """Mask-free reconstructions of uint8 clips ``(N, T, H, W, 3)``, as float in [0, 1]."""
    model.eval()
    out = []
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(frames[i : i + batch]).to(device).float() / 255
        out.append(model(x).clamp(0, 1).cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def evaluate_reconstruction(
    model: Tokenizer, clips: FrameClips, n: int, device: torch.device, lpips: LPIPS | None
) -> dict[str, Any]:
    """Held-out reconstruction metrics at mask 0 on ``n`` evenly spaced clips of ``clips``."""
    frames = clips.evenly_spaced(n)  # (N, T, H, W, 3)
    recon = torch.from_numpy(reconstruct(model, frames, device))
    target = torch.from_numpy(frames).float() / 255
    # foreground: pixels unlike the per-pixel median of these frames (under a fixed camera,
    # whatever is not static background: the parts that move, however small)
    flat_t, flat_r = target.flatten(0, 1), recon.flatten(0, 1)
    foreground = moving_pixels(flat_t, flat_t.median(0).values)
    out: dict[str, Any] = {
        "psnr": float(psnr(recon, target).mean()),
        "psnr_foreground": float(region_psnr(flat_r, flat_t, foreground).mean()),
        "ssim": float(ssim(recon, target).mean()),
        "lpips": None,
        "collapse_score": collapse_score(recon[:, -1].numpy(), target[:, -1].numpy()),
        "clips": int(len(frames)),
    }
    if lpips is not None:
        lp = lpips.to(device)
        vals = [
            lp(recon[i : i + 64].to(device), target[i : i + 64].to(device)).mean().item()
            for i in range(0, len(recon), 64)
        ]
        out["lpips"] = float(np.mean(vals))
    return out


def sample_grid(
    model: Tokenizer, clips: FrameClips, device: torch.device, n: int = 8
) -> np.ndarray:
    """uint8 picture, one labelled row each: input | input with 50% of patches masked |
    reconstruction from the masked input | reconstruction of the whole input."""
    from worldmodel.viz import labelled_grid

    frames = clips.evenly_spaced(n)
    t = frames.shape[1]
    keep = np.random.default_rng(0).random((len(frames), t, model.cfg.num_patches)) >= 0.5
    x = torch.from_numpy(frames).float().to(device) / 255
    k = torch.from_numpy(keep).to(device)
    with torch.no_grad():
        model.eval()
        masked_recon = model(x, k).clamp(0, 1)
        recon = model(x).clamp(0, 1)
    shown = model.patchify(x.clone())
    shown[~k] = 0.5
    shown = model.unpatchify(shown)
    rows = [x, shown, masked_recon, recon]
    return labelled_grid(
        [(r[:, -1].cpu().numpy() * 255 + 0.5).astype(np.uint8) for r in rows],
        ["input (val)", "50% masked", "recon of masked", "recon of input"],
        title=f"Tokenizer samples: {n} val clips, last frame of each",
    )


@torch.no_grad()
def calibrate_latent_norm(
    model: Tokenizer, clips: FrameClips, device: torch.device, max_episodes: int = 16
) -> dict[str, list[float]]:
    """Fit ``model``'s per-channel latent map (``cfg.latent_norm``) on train episodes.

    Encodes up to ``max_episodes`` whole episodes of ``clips`` (evenly spaced over the
    split, each frame with its causal context, as ``tokenize`` will) with the map reset to
    the identity, then sets ``latent_shift`` to each channel's mean and ``latent_scale`` to
    its standard deviation (``channel``) or to that of its change between consecutive
    frames of an episode (``motion``). A no-op for ``none``. Returns the fitted values.
    """
    from worldmodel.codec import encode_episode

    kind = model.cfg.latent_norm
    if kind == "none":
        return {}
    model.latent_shift.zero_()
    model.latent_scale.fill_(1.0)
    eps = clips.episodes[np.linspace(0, len(clips.episodes) - 1, max_episodes).round().astype(int)]
    zs = [
        torch.from_numpy(encode_episode(model, clips.store.read(int(e)).frames, clips.clip, device))
        for e in np.unique(eps)
    ]
    flat = torch.cat([z.reshape(-1, z.shape[-1]) for z in zs]).double()
    shift = flat.mean(0)
    if kind == "channel":
        scale = flat.std(0)
    else:
        steps = torch.cat([(z[1:] - z[:-1]).reshape(-1, z.shape[-1]) for z in zs]).double()
        scale = steps.std(0)
    scale = scale.clamp_min(1e-3)
    model.latent_shift.copy_(shift.float())
    model.latent_scale.copy_(scale.float())
    return {"latent_shift": shift.float().tolist(), "latent_scale": scale.float().tolist()}


def final_check(
    model: Tokenizer,
    val_clips: FrameClips,
    p: TokenizerParams,
    device: torch.device,
    lpips: LPIPS | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The trained tokenizer's held-out metrics and its sample grid, as the stage records them.

    Returns ``(metrics, {"samples.png": write(path)})`` for
    :func:`worldmodel.training.stage.fit_and_save`.
    """
    import time

    import imageio.v3 as iio

    t0 = time.perf_counter()
    val = evaluate_reconstruction(
        model, clips=val_clips, n=p.eval_clips, device=device, lpips=lpips
    )
    n = val.pop("clips")
    fps = n * p.clip_frames / (time.perf_counter() - t0)
    grid = sample_grid(model, val_clips, device)
    metrics = {
        "val": val,
        "val_clips": n,
        "lpips_available": lpips is not None,
        "recon_frames_per_s": round(fps, 1),
    }
    return metrics, {"samples.png": lambda path: iio.imwrite(path, grid)}


def result_line(result: dict[str, Any]) -> str:
    """One line of the stage's result for the console."""
    v = result["val"]
    lp = "n/a" if v["lpips"] is None else format(v["lpips"], ".3f")
    return (
        f"val PSNR {v['psnr']:.2f} dB, SSIM {v['ssim']:.3f}, LPIPS {lp}, collapse score "
        f"{v['collapse_score']:.3f}; {result['train_seconds']:.0f} s"
    )
