"""Goal distances: how far a frame is from the goal, as the planner's cost sees it.

The planner scores each candidate by the distance of its planned frames' latents to the
goal frame's (``plan.distance``). Two kinds:

- ``latent`` (:class:`LatentDistance`): the mean squared distance between the latents.
  Every latent element weighs the same, so what covers most of the frame (cartpole's cart)
  outweighs a thin part that matters as much (its pole), and two poses that do not overlap
  are equally far whatever the angle between them.
- ``temporal`` (:class:`TemporalDistance`): a learned estimate of how many decisions apart
  two frames are. It is fitted on pairs of frames from the same *train* episode, the gap
  between them as its target (time is the only supervision: no simulator state, no
  reward), so it weighs a part by how much it tells about where an episode is, and keeps
  growing with the pose difference where the squared distance saturates.

Both map latents ``(..., L, C)`` and a goal's ``(L, C)`` to ``(...)`` distances. A
temporal distance is symmetric (the mean over both orders of its pair) and reads a
frame's latents as the ``tokenize`` stage stores them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

DISTANCES = ("latent", "temporal")
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (..., L, C), (L, C) -> (...)


class LatentDistance:
    """The mean squared distance between latents ``(..., L, C)`` and a goal's ``(L, C)``."""

    name = "latent"

    def __call__(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        return (z - goal.to(z)).pow(2).flatten(-2).mean(-1)


class TemporalDistance(nn.Module):
    """How many decisions apart two frames are, estimated from their latents, in units of
    ``span`` decisions (0: the same frame; about 1 for frames ``span`` apart).

    A two-layer MLP on both frames' standardised latents, averaged over both orders so
    that the distance is symmetric.
    """

    name = "temporal"

    def __init__(self, latent_shape: tuple[int, int], span: int, width: int = 256) -> None:
        super().__init__()
        dim = int(np.prod(latent_shape))
        self.latent_shape, self.span = tuple(latent_shape), span
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.net = nn.Sequential(
            nn.Linear(2 * dim, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, 1),
        )  # fmt: skip

    def standardise(self, z: torch.Tensor) -> torch.Tensor:
        return (z.flatten(-2).to(self.mean) - self.mean) / self.scale

    def pair(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances ``(...)`` between standardised flat latents ``a, b (..., D)``."""
        return 0.5 * (self.net(torch.cat([a, b], -1)) + self.net(torch.cat([b, a], -1))).squeeze(-1)

    @torch.no_grad()
    def forward(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Distances ``(...)`` of latents ``(..., L, C)`` to a goal's ``(L, C)`` (inference:
        no gradient; training goes through :meth:`pair`)."""
        a = self.standardise(z)
        return self.pair(a, self.standardise(goal).expand_as(a)).to(z.device)

    __call__ = nn.Module.__call__


@dataclass(frozen=True)
class DistanceFit:
    """How a temporal distance was fitted and how well it ranks *test* pairs: the
    correlation of its estimates with the true gaps, and their mean absolute error in
    decisions (pairs up to ``span`` apart, drawn as in training)."""

    steps: int
    seconds: float
    train_loss: float
    test_correlation: float
    test_mae_decisions: float

    def as_dict(self) -> dict[str, float]:
        return {
            "steps": self.steps,
            "seconds": round(self.seconds, 2),
            "train_loss": round(self.train_loss, 5),
            "test_correlation": round(self.test_correlation, 4),
            "test_mae_decisions": round(self.test_mae_decisions, 2),
        }


def _pairs(
    starts: np.ndarray, lengths: np.ndarray, n: int, span: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` pairs of rows ``(a, b)`` of the same episode, ``b - a = gap``, the gap uniform
    in 0..span (shorter in an episode shorter than that), the episode uniform."""
    e = rng.integers(len(starts), size=n)
    gap = np.minimum(rng.integers(0, span + 1, size=n), lengths[e] - 1)
    first = starts[e] + (rng.random(n) * (lengths[e] - gap)).astype(np.int64)
    return first, first + gap, gap


def fit_temporal_distance(
    latents: Any,
    *,
    span: int,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    progress: Any = None,
) -> tuple[TemporalDistance, DistanceFit]:
    """Fit a :class:`TemporalDistance` on the *train* episodes of a latent store
    (:class:`~worldmodel.data.latents.LatentStore`) and score it on its *test* episodes.

    Each step draws ``batch_size`` pairs of frames of one train episode, at most ``span``
    decisions apart, and regresses the gap (in units of ``span``) by mean squared error
    (AdamW, cosine-decayed learning rate). ``progress(step, loss)``, if given, is called
    every 100 steps.
    """
    if span < 1:
        raise ValueError(f"span must be at least 1, got {span}")

    def episodes(split: str) -> tuple[np.ndarray, np.ndarray]:
        ids = latents.episode_ids(split)
        if not len(ids):
            raise ValueError(f"{latents.path} has no {split} episodes to fit a distance on")
        return latents.starts[ids].astype(np.int64), latents.lengths[ids].astype(np.int64)

    train, test = episodes("train"), episodes("test")
    z = torch.from_numpy(np.asarray(latents.latents, np.float32))
    train_rows = np.concatenate([np.arange(s, s + n) for s, n in zip(*train, strict=True)])
    model = TemporalDistance(tuple(z.shape[1:]), span)
    flat = z.flatten(1)
    model.mean.copy_(flat[train_rows].mean(0))
    model.scale.copy_(flat[train_rows].std(0) + 1e-6)
    x = model.standardise(z)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0, loss = time.perf_counter(), torch.zeros(())
    for step in range(steps):
        a, b, gap = _pairs(*train, batch_size, span, rng)
        loss = (model.pair(x[a], x[b]) - torch.from_numpy(gap / span).float()).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None and (step + 1) % 100 == 0:
            progress(step + 1, loss.item())
    model.eval()
    a, b, gap = _pairs(*test, 4000, span, np.random.default_rng(seed + 1))
    with torch.no_grad():
        est = model.pair(x[a], x[b]).numpy() * span
    corr = float(np.corrcoef(est, gap)[0, 1]) if np.std(est) > 0 else 0.0
    fit = DistanceFit(
        steps=steps,
        seconds=time.perf_counter() - t0,
        train_loss=loss.item(),
        test_correlation=corr,
        test_mae_decisions=float(np.abs(est - gap).mean()),
    )
    return model, fit


def fit_for_plan(
    plan: Any, latents: Any, base_seed: int, progress: Any = None
) -> tuple[TemporalDistance, DistanceFit]:
    """The `plan` stage's temporal distance: :func:`fit_temporal_distance` with the `plan`
    params' ``distance_span`` and ``distance_steps``, seeded from ``base.seed``."""
    from worldmodel.utils import derive_seed

    return fit_temporal_distance(
        latents,
        span=plan.distance_span,
        steps=plan.distance_steps,
        seed=derive_seed(base_seed, "plan", "distance"),
        progress=progress,
    )
