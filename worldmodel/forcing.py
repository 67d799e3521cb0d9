"""The training objective of the dynamics: flow matching, diffusion forcing and shortcut
forcing, apart from the network (the sampler that generates with it: ``sampler.py``).

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
is causal, so at inference past frames can be corrupted to ``tau_ctx`` (default 0.9, i.e.
10% noise) and labelled with it, as training showed the model (``sampler.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

# f(z_tau (B, T, S, C), tau (B, T), d (B, T), actions (B, T, A)) -> z1_hat (B, T, S, C)
Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def ramp_weight(tau: torch.Tensor) -> torch.Tensor:
    """``w(tau) = 0.9 * tau + 0.1``: signal level 1 (clean) weighs 1.0, pure noise 0.1."""
    return 0.9 * tau + 0.1


def uniform_weight(tau: torch.Tensor) -> torch.Tensor:
    """``w(tau) = 1``: every signal level weighs alike (``dynamics.loss_weight: uniform``)."""
    return torch.ones_like(tau)


LOSS_WEIGHTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "ramp": ramp_weight,
    "uniform": uniform_weight,
}


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
    weight: Callable[[torch.Tensor], torch.Tensor] = ramp_weight,
) -> ShortcutTerms:
    """Flow loss on ``d == d_min`` frames and bootstrap loss on the others (docs/forcing.md).

    Shapes: ``z1, z0 (B, T, S, C)``; ``tau, d (B, T)``; ``actions (B, T, A)``. Teacher
    passes (two half steps of the same network, no gradient) run only on samples that
    contain a bootstrap frame. ``isolated (B,)``, when given, is passed on to ``f`` as
    ``f(..., isolated=...)`` (single-frame samples, see ``Dynamics.forward``). ``weight``:
    each frame's loss weight by its signal level (``LOSS_WEIGHTS``; the ramp by default).
    """
    d_min = 1.0 / k_max

    def call(z: torch.Tensor, t: torch.Tensor, dd: torch.Tensor, a: torch.Tensor, sel=None):
        if isolated is None:
            return f(z, t, dd, a)
        return f(z, t, dd, a, isolated=isolated if sel is None else isolated[sel])  # type: ignore[call-arg]

    z_tau = interpolate(z0, z1, tau)
    z1_hat = call(z_tau, tau, d, actions)
    w = weight(tau)  # (B, T)
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
        boot_loss = weight(tb) * (1 - tb) ** 2 * err  # (Bb, T)
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
