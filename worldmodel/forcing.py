"""Flow matching, diffusion forcing and shortcut forcing, apart from the network.

SIGNAL-LEVEL CONVENTION (fixed, DreamerV4 paper; see docs/forcing.md):
``tau`` is the *signal level*: ``tau = 1`` is clean data, ``tau = 0`` pure noise, and
``z_tau = (1 - tau) * z0 + tau * z1`` with ``z0 ~ N(0, I)`` and ``z1`` clean. The network
predicts the clean latent (x-prediction): ``z1_hat = f(z_tau, tau, d, actions)``. The
velocity towards clean data is ``b = (z1_hat - z_tau) / (1 - tau)``, and a step of size
``d`` goes ``z <- z + b * d``, ``tau <- tau + d``. The ramp weight ``w(tau) = 0.9 tau + 0.1``
gives cleaner inputs more weight.

Shortcut forcing (``K_max`` a power of two, ``d_min = 1 / K_max``): per frame, ``d = 1/n``
with ``n`` uniform over ``{1, 2, 4, ..., K_max}``, then ``tau`` uniform over the grid
``{0, d, ..., 1 - d}``. Frames with ``d == d_min`` get the flow loss
``w(tau) ||z1_hat - z1||^2``; frames with ``d > d_min`` get the bootstrap loss
``w(tau) (1 - tau)^2 ||(z1_hat - z_tau)/(1 - tau) - sg(b1 + b2)/2||^2`` where ``b1, b2``
are two half steps of size ``d/2`` of the same network.

Diffusion forcing: every frame of a window has its own ``(tau, d)``; attention over time
is causal. At inference past frames are corrupted to ``tau_ctx`` (default 0.9, i.e. 10%
noise) and labelled with it, as training showed the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# f(z_tau (B, T, S, C), tau (B, T), d (B, T), actions (B, T, A)) -> z1_hat (B, T, S, C)
Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def ramp_weight(tau: torch.Tensor) -> torch.Tensor:
    """``w(tau) = 0.9 * tau + 0.1``: signal level 1 (clean) weighs 1.0, pure noise 0.1."""
    return 0.9 * tau + 0.1


def interpolate(z0: torch.Tensor, z1: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """``z_tau = (1 - tau) z0 + tau z1`` with ``tau`` broadcast over trailing latent dims."""
    t = tau.reshape(*tau.shape, *([1] * (z1.dim() - tau.dim())))
    return (1 - t) * z0 + t * z1


def step_sizes(k_max: int) -> list[float]:
    """``[1, 1/2, 1/4, ..., 1/k_max]``."""
    if k_max < 1 or k_max & (k_max - 1):
        raise ValueError(f"k_max must be a power of two, got {k_max}")
    return [1.0 / 2**i for i in range(int(math.log2(k_max)) + 1)]


def sample_tau_d(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    k_max: int,
    bootstrap: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame ``(tau, d)`` on the shortcut grid.

    Args:
        shape: e.g. ``(B, T)``.
        bootstrap: boolean ``(B,)``; samples where it is False get ``d = d_min`` only (the
            flow loss), the others draw ``d = 1/n``, ``n`` uniform over ``{1, 2, ..., k_max}``.

    Returns:
        ``tau`` uniform over ``{0, d, ..., 1 - d}`` and ``d``, float32 arrays of ``shape``.
    """
    n_choices = int(math.log2(k_max)) + 1
    n = 2 ** rng.integers(0, n_choices, shape)  # 1, 2, 4, ..., k_max
    if bootstrap is not None:
        n = np.where(bootstrap.reshape(-1, *([1] * (len(shape) - 1))), n, k_max)
    d = 1.0 / n
    tau = rng.integers(0, n) * d  # grid index in [0, n - 1]
    return tau.astype(np.float32), d.astype(np.float32)


@dataclass
class ShortcutTerms:
    """Loss of one shortcut-forcing batch and its parts.

    ``total`` is the mean over *all* frames of each frame's own loss (flow or bootstrap):
    the one term that is optimised (and RMS-normalised by the trainer). ``flow`` and
    ``bootstrap`` are the means over their own frames, for curves. Normalising the two
    separately would amplify the small bootstrap term until the cheapest way to satisfy
    it, ignoring the context, wins (measured: the model stopped using its past frames).
    """

    total: torch.Tensor
    flow: torch.Tensor | None
    bootstrap: torch.Tensor | None
    per_sample: torch.Tensor
    prediction: torch.Tensor  # (B, T, S, C) z1_hat of the student pass, detached


def shortcut_loss(
    f: Denoiser,
    z1: torch.Tensor,
    z0: torch.Tensor,
    tau: torch.Tensor,
    d: torch.Tensor,
    actions: torch.Tensor,
    k_max: int,
    isolated: torch.Tensor | None = None,
) -> ShortcutTerms:
    """Flow loss on ``d == d_min`` frames and bootstrap loss on the others (docs/forcing.md).

    Shapes: ``z1, z0 (B, T, S, C)``; ``tau, d (B, T)``; ``actions (B, T, A)``. Teacher
    passes (two half steps of the same network, no gradient) run only on samples that
    contain a bootstrap frame. ``isolated (B,)``, when given, is passed on to ``f`` as
    ``f(..., isolated=...)`` (single-frame samples, see ``Dynamics.forward``).
    """
    d_min = 1.0 / k_max

    def call(z: torch.Tensor, t: torch.Tensor, dd: torch.Tensor, a: torch.Tensor, sel=None):
        if isolated is None:
            return f(z, t, dd, a)
        return f(z, t, dd, a, isolated=isolated if sel is None else isolated[sel])  # type: ignore[call-arg]

    z_tau = interpolate(z0, z1, tau)
    z1_hat = call(z_tau, tau, d, actions)
    w = ramp_weight(tau)  # (B, T)
    sq = (z1_hat - z1).pow(2).flatten(2).mean(-1)  # (B, T)
    is_flow = d <= d_min + 1e-9
    frame_loss = torch.where(is_flow, w * sq, torch.zeros_like(sq))  # (B, T)
    flow = (w * sq)[is_flow].mean() if is_flow.any() else None
    per_sample = sq.detach().mean(1)

    boot = None
    rows = (~is_flow).any(1)
    if rows.any():
        zb, tb, db, ab = z_tau[rows], tau[rows], d[rows], actions[rows]
        half = db / 2
        with torch.no_grad():
            one = lambda x: x.reshape(*x.shape, 1, 1)  # noqa: E731  (B, T) -> (B, T, 1, 1)
            b1 = (call(zb, tb, half, ab, rows) - zb) / one(1 - tb)
            z_mid = zb + b1 * one(half)
            t_mid = tb + half
            b2 = (call(z_mid, t_mid, half, ab, rows) - z_mid) / one(1 - t_mid)
            target = (b1 + b2) / 2
        v_hat = (z1_hat[rows] - zb) / one(1 - tb)
        err = (v_hat - target).pow(2).flatten(2).mean(-1)  # (Bb, T)
        boot_frames = ~is_flow[rows]
        boot_loss = ramp_weight(tb) * (1 - tb) ** 2 * err  # (Bb, T)
        boot = boot_loss[boot_frames].mean()
        frame_loss = frame_loss.clone()
        frame_loss[rows] = torch.where(boot_frames, boot_loss, frame_loss[rows])
    return ShortcutTerms(
        total=frame_loss.mean(),
        flow=flow,
        bootstrap=boot,
        per_sample=per_sample,
        prediction=z1_hat.detach(),
    )


def corrupt(z1: torch.Tensor, tau: float, noise: torch.Tensor) -> torch.Tensor:
    """Context corruption: ``z1`` brought down to signal level ``tau`` (1 = clean) with ``noise``."""
    return (1 - tau) * noise + tau * z1


@torch.no_grad()
def sample_frame(
    f: Denoiser,
    context: torch.Tensor,
    context_tau: float,
    actions: torch.Tensor,
    steps: int,
    noise: torch.Tensor,
    context_d: float | None = None,
) -> torch.Tensor:
    """Generate the next frame's clean latent with ``steps`` shortcut steps (``d = 1/steps``).

    Args:
        context: ``(B, t, S, C)`` past latents, already corrupted to ``context_tau``.
        actions: ``(B, t + 1, A)``; the last one leads into the new frame.
        noise: ``(B, S, C)`` the starting ``z ~ N(0, I)`` at ``tau = 0``.
        context_d: the step size context frames are labelled with; pass ``1 / k_max``:
            training shows off-grid signal levels such as 0.9 only with the finest ``d``.

    Each step recomputes the velocity from the *current* ``z``:
    ``b = (z1_hat - z) / (1 - tau)``, ``z <- z + b d``, ``tau <- tau + d``.
    """
    b, t = context.shape[:2]
    d = 1.0 / steps
    taus = torch.full((b, t + 1), context_tau, device=context.device)
    ds = torch.full((b, t + 1), d if context_d is None else context_d, device=context.device)
    ds[:, -1] = d

    def predict(z: torch.Tensor, tau: float) -> torch.Tensor:
        taus[:, -1] = tau
        return f(torch.cat([context, z[:, None]], dim=1), taus, ds, actions)[:, -1]

    return shortcut_steps(predict, noise, steps)


def shortcut_steps(
    predict: Callable[[torch.Tensor, float], torch.Tensor], noise: torch.Tensor, steps: int
) -> torch.Tensor:
    """The K-step sampler from ``noise`` at ``tau = 0`` to clean (``tau = 1``), ``d = 1/K``.

    ``predict(z, tau) -> z1_hat``. Each step recomputes the velocity from the *current*
    ``z``: ``b = (z1_hat - z) / (1 - tau)``, ``z <- z + b d``, ``tau <- tau + d``.
    """
    d = 1.0 / steps
    z, tau = noise, 0.0
    for _ in range(steps):
        z = z + (predict(z, tau) - z) / (1 - tau) * d
        tau += d
    return z


@torch.no_grad()
def rollout(
    f: Denoiser,
    context: torch.Tensor,
    actions: torch.Tensor,
    horizon: int,
    steps: int,
    tau_ctx: float = 0.9,
    window: int = 16,
    generator: torch.Generator | None = None,
    context_d: float | None = None,
    kv_cache: bool = True,
    truth: torch.Tensor | None = None,
) -> torch.Tensor:
    """Autoregressive rollout from clean context latents with given actions.

    Args:
        context: ``(B, C, S, Ch)`` clean latents of the context frames.
        actions: ``(B, C + horizon, A)``; ``actions[:, t]`` leads into frame ``t``.
        steps: sampler steps per frame (``K``; ``d = 1/K``).
        tau_ctx: signal level past frames are corrupted to (1 = clean, 0.9 = 10% noise).
        window: frames the model sees at once (the new one included); older frames drop
            out, so each generated frame costs the same however long the rollout.
        generator: CPU generator for the context and sampling noise (reproducible).
        context_d: step-size label of context frames (see :func:`sample_frame`).
        kv_cache: when ``f`` can stream (``start_stream``/``stream_step``, as
            :class:`~worldmodel.models.dynamics.Dynamics`), cache the past frames' keys and
            values so each sampler step runs only the new frame. Otherwise every step
            reruns the window. Both give the same frames while ``C + horizon <= window``;
            past it, a cached frame keeps the state it was committed with, where the
            recomputing path re-encodes it from the frames still in the window.
        truth: ``(B, horizon, S, Ch)`` clean latents of the frames to predict, for teacher
            forcing: each frame is still predicted from the past, but the past then gets
            the true frame (corrupted to ``tau_ctx``) instead of the prediction, so every
            output is a one-step prediction from the true past. The gap between this and
            the free rollout is exposure bias.

    Returns:
        ``(B, horizon, S, Ch)`` generated clean latents.
    """
    b, c = context.shape[:2]

    def noise_like(x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=generator).to(x)

    past = [corrupt(context[:, i], tau_ctx, noise_like(context[:, i])) for i in range(c)]
    if kv_cache and hasattr(f, "stream_step"):
        return _rollout_streaming(
            f, past, actions, horizon, steps, tau_ctx, window, noise_like, context_d, truth
        )
    out = []
    for h in range(horizon):
        t = c + h
        ctx = torch.stack(past[-(window - 1) :], dim=1) if window > 1 else context[:, :0]
        acts = actions[:, t - ctx.shape[1] : t + 1]
        z = sample_frame(f, ctx, tau_ctx, acts, steps, noise_like(context[:, 0]), context_d)
        out.append(z)
        seen = z if truth is None else truth[:, h]
        past.append(corrupt(seen, tau_ctx, noise_like(seen)))
    return torch.stack(out, dim=1)


def _rollout_streaming(
    f: Any,
    past: list[torch.Tensor],
    actions: torch.Tensor,
    horizon: int,
    steps: int,
    tau_ctx: float,
    window: int,
    noise_like: Callable[[torch.Tensor], torch.Tensor],
    context_d: float | None,
    truth: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`rollout` with a KV cache: the same sampler, one frame's tokens per step."""
    c = len(past)
    b = past[0].shape[0]
    d = 1.0 / steps
    label_d = d if context_d is None else context_d

    def full(x: float) -> torch.Tensor:
        return torch.full((b,), x, device=past[0].device)

    stream = f.start_stream(window)
    for i in range(max(0, c - (window - 1)), c):  # the context frames the window holds
        f.stream_step(stream, past[i], full(tau_ctx), full(label_d), actions[:, i], commit=True)
    out = []
    for h in range(horizon):
        t = c + h

        def predict(z: torch.Tensor, tau: float, t: int = t) -> torch.Tensor:
            return f.stream_step(stream, z, full(tau), full(d), actions[:, t], commit=False)

        z = shortcut_steps(predict, noise_like(past[0]), steps)
        out.append(z)
        seen = z if truth is None else truth[:, h]
        zc = corrupt(seen, tau_ctx, noise_like(seen))
        f.stream_step(stream, zc, full(tau_ctx), full(label_d), actions[:, t], commit=True)
    return torch.stack(out, dim=1)
