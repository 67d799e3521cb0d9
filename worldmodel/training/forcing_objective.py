"""Everything the dynamics model's training needs beside the model: batches, objective, checks.

Used by ``stages/train_dynamics.py`` and ``scripts/bench_dynamics.py``.

SIGNAL-LEVEL CONVENTION (docs/forcing.md): ``tau = 1`` clean, ``tau = 0`` pure noise.

Every batch is a pure function of ``(base.seed, step)``: the windows, the per-frame
``(tau, d)``, the noise ``z0`` and which samples get bootstrap targets are drawn here, so
resumed and multi-process runs are exact (see worldmodel/training/trainer.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from worldmodel.config import DynamicsParams, Params
from worldmodel.data.latents import LatentStore
from worldmodel.data.windows import LatentWindows
from worldmodel.forcing import LOSS_WEIGHTS, sample_tau_d, shortcut_loss
from worldmodel.metrics import latent_gain_db
from worldmodel.models.dynamics import PRESETS, Dynamics, DynamicsConfig
from worldmodel.sampler import rollout
from worldmodel.utils import derive_seed

# Frames the periodic rollout check predicts after its `dynamics.eval_context` true ones:
# half the default training window, enough to see drift, cheap enough to run every
# `dynamics.eval_every` steps.
ROLLOUT_CHECK_HORIZON = 8


def dynamics_config(
    p: DynamicsParams, latent_shape: tuple[int, int], action_dim: int
) -> DynamicsConfig:
    """Architecture from params (size preset, width/depth overrides, token layout) and the
    latent store's shapes."""
    if latent_shape[0] % p.pack:
        raise ValueError(
            f"dynamics.pack = {p.pack} does not divide the {latent_shape[0]} latent tokens"
        )
    shape = dict(PRESETS[p.size])
    shape["dim"] = p.width or shape["dim"]
    shape["depth"] = p.depth or shape["depth"]
    return DynamicsConfig(
        latent_tokens=latent_shape[0],
        latent_dim=latent_shape[1],
        action_dim=action_dim,
        pack=p.pack,
        registers=p.registers,
        k_max=p.k_max,
        time_every=p.time_every,
        softcap=p.softcap,
        predict=p.predict,
        **shape,
    )


@dataclass
class DynamicsBatch:
    """Windows of clean latents with everything random about the step already drawn."""

    z1: torch.Tensor  # (B, T, L, C) clean latents
    z0: torch.Tensor  # (B, T, L, C) noise
    tau: torch.Tensor  # (B, T) signal level, 1 = clean
    d: torch.Tensor  # (B, T) step size
    actions: torch.Tensor  # (B, T, A); actions[:, t] leads into frame t
    isolated: torch.Tensor  # (B,) bool; True = single-frame samples (no frame sees another)

    def to(self, device: torch.device | str) -> DynamicsBatch:
        return DynamicsBatch(
            *(
                x.to(device)
                for x in (self.z1, self.z0, self.tau, self.d, self.actions, self.isolated)
            )
        )


class DynamicsBatches:
    """``(step, rank, world) -> DynamicsBatch``: many short windows, every ``long_every``-th long."""

    def __init__(self, store: LatentStore, params: Params) -> None:
        p = params.dynamics
        self.params = params
        self.short = LatentWindows(store, "train", p.seq_len, p.stride)
        self.long = (
            LatentWindows(store, "train", p.long_seq_len, p.stride) if p.long_every else None
        )

    def __call__(self, step: int, rank: int = 0, world: int = 1) -> DynamicsBatch:
        p = self.params.dynamics
        is_long = self.long is not None and (step + 1) % p.long_every == 0
        windows = self.long if is_long else self.short
        n = p.long_batch_size if is_long else p.train.batch_size
        if n % world:
            raise ValueError(f"dynamics batch size {n} is not divisible by {world} processes")
        rng = np.random.default_rng(derive_seed(self.params.base.seed, "dynamics-batch", step))
        z1, actions = windows.get(rng.integers(0, len(windows.starts), n))
        boot = rng.random(n) < p.bootstrap_fraction
        tau, d = sample_tau_d(rng, (n, windows.length), p.k_max, boot)
        z0 = rng.standard_normal(z1.shape).astype(np.float32)
        isolated = np.zeros(n, bool)
        if p.single_frame_fraction > 0:  # drawn last: the other draws do not depend on it
            isolated = rng.random(n) < p.single_frame_fraction
        sl = slice(rank * n // world, (rank + 1) * n // world)
        return DynamicsBatch(
            *(
                torch.from_numpy(np.ascontiguousarray(x[sl]))
                for x in (z1, z0, tau, d, actions, isolated)
            )
        )


class DynamicsObjective(nn.Module):
    """Shortcut-forcing loss of a :class:`Dynamics` model (one term; flow/bootstrap parts logged)."""

    def __init__(self, model: Dynamics, loss_weight: str = "ramp") -> None:
        super().__init__()
        self.model = model
        self.weight = LOSS_WEIGHTS[loss_weight]

    def forward(self, b: DynamicsBatch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        res = shortcut_loss(
            self.model,
            z1=b.z1,
            z0=b.z0,
            tau=b.tau,
            d=b.d,
            actions=b.actions,
            k_max=self.model.cfg.k_max,
            isolated=b.isolated,
            weight=self.weight,
        )
        terms = {"shortcut": res.total}
        logs = {"per_sample": res.per_sample, "window_frames": torch.tensor(float(b.z1.shape[1]))}
        # hard-example previews, as latents: the frame before the last (context), the last
        # frame (truth) and the model's prediction of it from its noisy input
        logs["preview"] = torch.stack(
            [b.z1[:, max(0, b.z1.shape[1] - 2)], b.z1[:, -1], res.prediction[:, -1]], 1
        )
        for name, part in (("flow", res.flow), ("bootstrap", res.bootstrap)):
            if part is not None:
                logs[f"part/{name}"] = part.detach()
        return terms, logs


def rollout_check_windows(store: LatentStore, p: DynamicsParams) -> LatentWindows:
    """The val windows of the periodic rollout check: context plus the check's horizon."""
    return LatentWindows(store, "val", p.eval_context + ROLLOUT_CHECK_HORIZON, p.seq_len)


@torch.no_grad()
def rollout_check(
    model: Dynamics, windows: LatentWindows, p: DynamicsParams, device: torch.device, seed: int
) -> dict[str, float]:
    """Latent MSE of a short rollout on val windows, beside repeating the last context latent."""
    model.eval()
    z, a = windows.evenly_spaced(p.eval_windows)
    z, a = torch.from_numpy(z).to(device), torch.from_numpy(a).to(device)
    c = p.eval_context
    g = torch.Generator().manual_seed(seed)
    pred = rollout(
        model,
        context=z[:, :c],
        actions=a,
        horizon=z.shape[1] - c,
        steps=p.eval_steps,
        tau_ctx=p.tau_ctx,
        window=p.long_seq_len,
        generator=g,
        context_d=1 / p.k_max,
    )
    truth = z[:, c:]
    repeat = z[:, c - 1 : c].expand_as(truth)
    return {
        "val/rollout_latent_mse": float((pred - truth).pow(2).mean()),
        "val/repeat_last_latent_mse": float((repeat - truth).pow(2).mean()),
    }


def final_check(
    model: Dynamics, windows: LatentWindows, p: DynamicsParams, device: torch.device, seed: int
) -> tuple[dict[str, float], dict]:
    """The trained model's rollout check on val windows, as the stage records it.

    Returns ``(metrics, {})`` (no files beside the weights) for
    :func:`worldmodel.training.stage.fit_and_save`.
    """
    check = rollout_check(model, windows=windows, p=p, device=device, seed=seed)
    model_mse, repeat_mse = check["val/rollout_latent_mse"], check["val/repeat_last_latent_mse"]
    return {
        "val_latent_gain_db": latent_gain_db(model_mse, repeat_mse),
        "val_rollout_latent_mse": model_mse,
        "val_repeat_last_latent_mse": repeat_mse,
    }, {}


def result_line(result: dict[str, float]) -> str:
    """One line of the stage's result for the console."""
    return (
        f"val rollout latent MSE {result['val_rollout_latent_mse']:.4f} vs repeat-last "
        f"{result['val_repeat_last_latent_mse']:.4f}; {result['train_seconds']:.0f} s"
    )


def hard_example_grid(previews: np.ndarray, tokenizer: torch.nn.Module | None) -> np.ndarray:
    """uint8 picture of hard examples ``(K, 3, L, C)`` (context, truth, prediction latents):
    three rows (context | truth | prediction), one column per example, decoded to pixels
    with the tokenizer (grey latent maps when there is none)."""
    from worldmodel.viz import frame_grid

    z = torch.from_numpy(np.ascontiguousarray(previews)).float()
    if tokenizer is None:
        img = ((z + 1) * 127.5).clamp(0, 255).to(torch.uint8)[..., None].expand(*z.shape, 3)
        frames = img.numpy()
    else:
        from worldmodel.codec import decode_latents

        device = next(tokenizer.parameters()).device
        with torch.no_grad():
            pix = decode_latents(tokenizer, z.to(device), clip_frames=1).cpu()
        frames = (pix.numpy() * 255 + 0.5).astype(np.uint8)
    return frame_grid([frames[:, i] for i in range(frames.shape[1])])


def hard_example_renderer(
    tokenizer_file: Path, device: torch.device
) -> Callable[[np.ndarray], np.ndarray]:
    """``previews -> image`` for :func:`worldmodel.training.stage.fit` that decodes hard
    examples with the trained tokenizer in ``tokenizer_file``. Loading it leaves the
    global torch RNG as it was, so training is the same with or without it."""
    from worldmodel.checkpoints import load_model
    from worldmodel.models.tokenizer import Tokenizer

    with torch.random.fork_rng(devices=[]):
        tokenizer = load_model(tokenizer_file, Tokenizer, device)[0]
    return lambda previews: hard_example_grid(previews, tokenizer)
