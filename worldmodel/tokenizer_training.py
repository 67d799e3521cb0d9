"""Train and evaluate the video tokenizer; save and load it as a self-describing file.

Used by ``stages/train_tokenizer.py`` (and ``stages/tokenize.py`` for loading). Every
batch is a pure function of ``(base.seed, step)``: clips, MAE mask ratios and masks are
drawn here, not inside the model, which makes resume and multi-process runs exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodel.config import Params, TokenizerParams
from worldmodel.data.clips import FrameClips
from worldmodel.metrics import LPIPS, psnr, ssim
from worldmodel.models.tokenizer import PRESETS, Tokenizer, TokenizerBatch, TokenizerConfig
from worldmodel.train import TrainConfig, load_model_file, save_model_file
from worldmodel.utils import derive_seed

MODEL_FILE = "model.pt"


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
        **PRESETS[p.size],
    )


def train_config(p: TokenizerParams) -> TrainConfig:
    return TrainConfig(**p.train.model_dump())


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


class BatchMaker:
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
        keep = random_keep(rng, n, p.clip_frames, self.n_patches, mask_max_at(step, p))
        sl = slice(rank * n // world, (rank + 1) * n // world)
        return TokenizerBatch(torch.from_numpy(frames[sl]), torch.from_numpy(keep[sl]))


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


def collapse_score(recon: np.ndarray, target: np.ndarray) -> float:
    """Spread of reconstructions across samples over the spread of the inputs (1 = faithful).

    Per pixel standard deviation over the batch, averaged; a tokenizer that outputs the
    mean image for every input scores 0.
    """
    return float(recon.std(axis=0).mean() / max(target.std(axis=0).mean(), 1e-8))


@torch.no_grad()
def evaluate(
    model: Tokenizer, clips: FrameClips, n: int, device: torch.device, lpips: LPIPS | None
) -> dict[str, Any]:
    """Held-out reconstruction metrics at mask 0 on ``n`` evenly spaced clips of ``clips``."""
    frames = clips.evenly_spaced(n)  # (N, T, H, W, 3)
    recon = torch.from_numpy(reconstruct(model, frames, device))
    target = torch.from_numpy(frames).float() / 255
    out: dict[str, Any] = {
        "psnr": float(psnr(recon, target).mean()),
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
    """uint8 rows: input | input with 50% of patches masked | recon from masked | recon (mask 0)."""
    from worldmodel.viz import frame_grid

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
    return frame_grid([(r[:, -1].cpu().numpy() * 255 + 0.5).astype(np.uint8) for r in rows])


def save_tokenizer(path: Path, model: Tokenizer, meta: dict[str, Any]) -> None:
    """Write the tokenizer weights with everything needed to rebuild them."""
    save_model_file(path, "tokenizer", model, meta)


def load_tokenizer(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[Tokenizer, dict[str, Any]]:
    """Rebuild the tokenizer saved by :func:`save_tokenizer`; refuse clearly on a mismatch."""
    return load_model_file(path, "tokenizer", TokenizerConfig, Tokenizer, device)


@torch.no_grad()
def encode_episode(
    model: Tokenizer, frames: np.ndarray, context: int, device: torch.device, batch: int = 64
) -> np.ndarray:
    """Latents ``(T, L, C)`` of one episode's uint8 frames ``(T, H, W, 3)``.

    Frame ``t`` is encoded with its ``context - 1`` predecessors as causal context, exactly
    as training clips of ``context`` frames showed it. The first ``context - 1`` frames
    form one shorter clip (causality makes each of them see only its own past).
    """
    model.eval()
    t_total = len(frames)
    x = torch.from_numpy(frames)
    out = torch.empty(t_total, model.cfg.latent_tokens, model.cfg.latent_dim)
    head = min(context - 1, t_total)
    if head > 0:
        out[:head] = model.encode(x[None, :head].to(device).float() / 255)[0].cpu()
    starts = np.arange(head, t_total) - (context - 1)
    for i in range(0, len(starts), batch):
        idx = torch.as_tensor(starts[i : i + batch])[:, None] + torch.arange(context)  # (b, C)
        clips = x[idx].to(device).float() / 255  # (b, C, H, W, 3)
        out[head + i : head + i + len(idx)] = model.encode(clips)[:, -1].cpu()
    return out.numpy()


@torch.no_grad()
def decode_latents(
    model: Tokenizer, z: torch.Tensor, context: int, batch: int = 64
) -> torch.Tensor:
    """Frames ``(B, T, H, W, 3)`` in [0, 1] from latents ``(B, T, L, C)``.

    The decoder is causal over latents; frame ``t`` is decoded with the ``context - 1``
    latents before it, as in training clips.
    """
    model.eval()
    b, t = z.shape[:2]
    out = []
    for i in range(t):
        lo = max(0, i - context + 1)
        out.append(model.decode(z[:, lo : i + 1])[:, -1].clamp(0, 1))
    return torch.stack(out, dim=1)
