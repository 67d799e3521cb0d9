"""A trained tokenizer as a codec: frames to latents and back, as every consumer uses it.

The tokenizer is causal in time and was trained on clips of ``tokenizer.clip_frames``
frames, so a frame is encoded (and a latent decoded) together with the ``clip_frames - 1``
frames before it, exactly as training showed it. The ``tokenize`` stage, evaluation and
the benchmark scripts all go through these functions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodel.data.episodes import EpisodeStore
from worldmodel.data.latents import LatentWriter
from worldmodel.models.tokenizer import Tokenizer
from worldmodel.utils import atomic_path


@torch.no_grad()
def encode_episode(
    model: Tokenizer, frames: np.ndarray, clip_frames: int, device: torch.device, batch: int = 64
) -> np.ndarray:
    """Latents ``(T, L, C)`` of one episode's uint8 frames ``(T, H, W, 3)``.

    Frame ``t`` is encoded with its ``clip_frames - 1`` predecessors as causal context, exactly
    as training clips of ``clip_frames`` frames showed it. The first ``clip_frames - 1`` frames
    form one shorter clip (causality makes each of them see only its own past).
    """
    model.eval()
    t_total = len(frames)
    x = torch.from_numpy(frames)
    out = torch.empty(t_total, model.cfg.latent_tokens, model.cfg.latent_dim)
    head = min(clip_frames - 1, t_total)
    if head > 0:
        out[:head] = model.encode(x[None, :head].to(device).float() / 255)[0].cpu()
    starts = np.arange(head, t_total) - (clip_frames - 1)
    for i in range(0, len(starts), batch):
        idx = torch.as_tensor(starts[i : i + batch])[:, None] + torch.arange(
            clip_frames
        )  # (b, clip_frames)
        clips = x[idx].to(device).float() / 255  # (b, clip_frames, H, W, 3)
        out[head + i : head + i + len(idx)] = model.encode(clips)[:, -1].cpu()
    return out.numpy()


@torch.no_grad()
def decode_latents(
    model: Tokenizer, z: torch.Tensor, clip_frames: int, start: int = 0
) -> torch.Tensor:
    """Frames ``(B, T - start, H, W, 3)`` in [0, 1] from latents ``(B, T, L, C)``: frames
    ``start`` onwards (the earlier latents still serve as their decoding context).

    The decoder is causal over latents; frame ``t`` is decoded with the ``clip_frames - 1``
    latents before it, as in training clips.
    """
    model.eval()
    out = []
    for i in range(start, z.shape[1]):
        lo = max(0, i - clip_frames + 1)
        out.append(model.decode(z[:, lo : i + 1])[:, -1].clamp(0, 1))
    return torch.stack(out, dim=1)


def encode_store(
    model: Tokenizer,
    store: EpisodeStore,
    out: Path,
    clip_frames: int,
    attrs: dict[str, Any],
    device: torch.device,
    batch: int = 64,
    on_episode: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Encode every episode of ``store`` (no masking) into the latent store ``out``.

    ``out`` is written under a temporary name and renamed when complete; ``attrs`` are
    recorded in it (see worldmodel/data/latents.py). ``on_episode(episodes_done,
    frames_done)`` is called after each episode. Returns counts and the mean and standard
    deviation of all latent values.
    """
    shape = (model.cfg.latent_tokens, model.cfg.latent_dim)
    total, sq, count, done = 0.0, 0.0, 0, 0
    with atomic_path(out) as tmp:
        writer = LatentWriter(
            tmp, source=store.f, starts=store.starts, latent_shape=shape, attrs=attrs
        )
        try:
            for e in range(store.num_episodes):
                z = encode_episode(
                    model,
                    frames=store.read(e).frames,
                    clip_frames=clip_frames,
                    device=device,
                    batch=batch,
                )
                writer.write(e, z)
                total += float(z.sum())
                sq += float((z.astype(np.float64) ** 2).sum())
                count += z.size
                done += len(z)
                if on_episode is not None:
                    on_episode(e + 1, done)
            writer.finish()
        finally:
            writer.close()
    mean = total / count
    return {
        "episodes": store.num_episodes,
        "frames": store.num_frames,
        "latent_shape": list(shape),
        "latent_mean": round(mean, 5),
        "latent_std": round(float(np.sqrt(max(sq / count - mean**2, 0.0))), 5),
    }
