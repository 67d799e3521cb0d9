"""The sampler: generating frames with a trained dynamics model, and rollouts.

SIGNAL-LEVEL CONVENTION (fixed, DreamerV4 paper; docs/forcing.md): ``tau = 1`` is clean
data, ``tau = 0`` pure noise, ``z_tau = (1 - tau) * z0 + tau * z1``. The network predicts
the clean latent ``z1_hat = f(z_tau, tau, d, actions)``.

Sampling a frame with ``K`` steps (``d = 1/K``): start from ``z ~ N(0, I)`` at ``tau = 0``;
each step ``b = (z1_hat - z) / (1 - tau)``, ``z <- z + b d``, ``tau <- tau + d``, the
velocity recomputed from the *current* ``z`` every step. Past frames are corrupted to
``tau_ctx`` (default 0.9: 10% noise) and labelled with it, as diffusion forcing showed the
model in training (``forcing.py``). A rollout generates frame after frame from context
frames and given actions; with the model's KV cache each sampler step runs only the new
frame's tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from worldmodel.forcing import Denoiser


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
        kv_cache: when ``f`` keeps a KV cache (``new_kv_cache``/``kv_cached_step``, as
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
    if kv_cache and hasattr(f, "kv_cached_step"):
        return _rollout_kv_cached(
            f,
            past=past,
            actions=actions,
            horizon=horizon,
            steps=steps,
            tau_ctx=tau_ctx,
            window=window,
            noise_like=noise_like,
            context_d=context_d,
            truth=truth,
        )
    out = []
    for h in range(horizon):
        t = c + h
        ctx = torch.stack(past[-(window - 1) :], dim=1) if window > 1 else context[:, :0]
        acts = actions[:, t - ctx.shape[1] : t + 1]
        z = sample_frame(
            f,
            context=ctx,
            context_tau=tau_ctx,
            actions=acts,
            steps=steps,
            noise=noise_like(context[:, 0]),
            context_d=context_d,
        )
        out.append(z)
        seen = z if truth is None else truth[:, h]
        past.append(corrupt(seen, tau_ctx, noise_like(seen)))
    return torch.stack(out, dim=1)


def _rollout_kv_cached(
    f: Any,
    *,
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
    """:func:`rollout` with the model's KV cache: the same sampler, one frame's tokens per step."""
    c = len(past)
    label_d = 1.0 / steps if context_d is None else context_d
    cache = context_kv_cache(
        f, past, actions[:, :c], tau_ctx=tau_ctx, label_d=label_d, window=window
    )
    return rollout_cached(
        f,
        cache,
        actions=actions[:, c : c + horizon],
        steps=steps,
        tau_ctx=tau_ctx,
        context_d=context_d,
        noise_like=noise_like,
        like=past[0],
        truth=truth,
    )


@torch.no_grad()
def context_kv_cache(
    f: Any,
    past: list[torch.Tensor],
    actions: torch.Tensor,
    *,
    tau_ctx: float,
    label_d: float,
    window: int,
) -> Any:
    """A new KV cache holding the context frames, as a rollout starts from them.

    Args:
        past: ``C`` latents ``(B, L, Ch)`` already corrupted to ``tau_ctx``.
        actions: ``(B, C, A)``; ``actions[:, i]`` led into ``past[i]``.
        label_d: the step size the context frames are labelled with.
        window: frames the model sees at once; only the last ``window - 1`` are kept.
    """
    c = len(past)
    cache = f.new_kv_cache(window)
    for i in range(max(0, c - (window - 1)), c):  # the context frames the window holds
        f.kv_cached_step(
            cache,
            z=past[i],
            tau=_full(past[i], tau_ctx),
            d=_full(past[i], label_d),
            action=actions[:, i],
            commit=True,
        )
    return cache


def _full(like: torch.Tensor, x: float) -> torch.Tensor:
    return torch.full((like.shape[0],), x, device=like.device)


@torch.no_grad()
def rollout_cached(
    f: Any,
    cache: Any,
    *,
    actions: torch.Tensor,
    steps: int,
    tau_ctx: float,
    context_d: float | None,
    noise_like: Callable[[torch.Tensor], torch.Tensor],
    like: torch.Tensor,
    truth: torch.Tensor | None = None,
    commit_last: bool = True,
) -> torch.Tensor:
    """Continue a rollout whose past frames are already in the model's KV ``cache``.

    Args:
        actions: ``(B, H, A)``; ``actions[:, h]`` leads into the ``h``-th new frame.
        noise_like: draws the starting noise of a frame shaped like its argument.
        like: ``(B, L, C)``, the shape (and device) of one frame's latents.
        commit_last: also commit the last generated frame (False saves a pass when the
            cache is thrown away afterwards, as a planner scoring candidates does).

    Returns:
        ``(B, H, L, C)`` generated clean latents.
    """
    d = 1.0 / steps
    label_d = d if context_d is None else context_d
    horizon = actions.shape[1]
    out = []
    for h in range(horizon):

        def predict(z: torch.Tensor, tau: float, h: int = h) -> torch.Tensor:
            return f.kv_cached_step(
                cache,
                z=z,
                tau=_full(like, tau),
                d=_full(like, d),
                action=actions[:, h],
                commit=False,
            )

        z = shortcut_steps(predict, noise_like(like), steps)
        out.append(z)
        if h < horizon - 1 or commit_last:
            seen = z if truth is None else truth[:, h]
            zc = corrupt(seen, tau_ctx, noise_like(seen))
            f.kv_cached_step(
                cache,
                z=zc,
                tau=_full(like, tau_ctx),
                d=_full(like, label_d),
                action=actions[:, h],
                commit=True,
            )
    return torch.stack(out, dim=1)
