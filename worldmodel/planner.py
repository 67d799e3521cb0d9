"""The planner: choose an action sequence that minimises a cost, by sampling (CEM, MPPI).

A planner knows nothing about what it plans in. It is handed ``cost(actions) -> costs``
that scores a whole batch of candidate sequences ``(N, H, A)`` in one call (a world
model rolls them out together, a simulator steps each) and returns ``(N,)``. Both solvers
keep a Gaussian over sequences, clipped to the action bounds, and refit it each
iteration:

- **CEM** (cross-entropy method): sample ``samples`` sequences, keep the ``elites``
  cheapest, refit mean and standard deviation to them;
- **MPPI** (model-predictive path integral): weight *every* sample by
  ``exp(-(cost - min) / temperature)`` and refit to the weighted samples.

Receding horizon: after acting the first actions of a plan, the next call is warm-started
from the rest of it (:meth:`Planner.shift`). A fixed generator seed gives the same plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

Cost = Callable[[torch.Tensor], torch.Tensor]  # (N, H, A) actions -> (N,) costs

SOLVERS = ("cem", "mppi")


@dataclass(frozen=True)
class PlannerConfig:
    """How a planner samples.

    Attributes:
        solver: ``cem`` or ``mppi``.
        horizon: decisions per planned sequence (``H``).
        samples: candidate sequences per iteration (``N``).
        iterations: refits per plan.
        elites: the cheapest candidates CEM refits to.
        temperature: MPPI's cost temperature, in units of the cost's spread in the batch.
        init_std: the first iteration's standard deviation, in half action ranges.
        min_std: the floor of the standard deviation, in half action ranges.
    """

    solver: str = "cem"
    horizon: int = 5
    samples: int = 300
    iterations: int = 30
    elites: int = 30
    temperature: float = 0.5
    init_std: float = 1.0
    min_std: float = 0.05

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; expected one of {SOLVERS}")
        if not 0 < self.elites <= self.samples:
            raise ValueError(f"elites ({self.elites}) must be in 1..samples ({self.samples})")

    @classmethod
    def from_plan(cls, plan: Any) -> PlannerConfig:
        """The planner settings of a validated ``plan`` params section."""
        return cls(
            solver=plan.solver,
            horizon=plan.horizon,
            samples=plan.samples,
            iterations=plan.iterations,
            elites=plan.elites,
            temperature=plan.temperature,
        )


@dataclass
class Plan:
    """A planner's answer: the chosen sequence ``(H, A)`` and its cost."""

    actions: torch.Tensor
    cost: float


class Planner:
    """CEM or MPPI over action sequences within ``[low, high]``.

    Args:
        cfg: sampling settings.
        low, high: ``(A,)`` action bounds.
        seed: seeds the sampling generator; the same seed and costs give the same plan.
    """

    def __init__(self, cfg: PlannerConfig, low: torch.Tensor, high: torch.Tensor, seed: int = 0):
        self.cfg = cfg
        self.low, self.high = low.float(), high.float()
        self.center, self.half = (self.high + self.low) / 2, (self.high - self.low) / 2
        self.generator = torch.Generator().manual_seed(seed)
        self.mean: torch.Tensor | None = None  # (H, A), warm start of the next plan

    def reset(self) -> None:
        """Forget the warm start (a new goal)."""
        self.mean = None

    def shift(self, acted: int) -> None:
        """Warm-start the next plan from this one after acting its first ``acted`` actions:
        the rest moves to the front, the freed tail repeats the last action."""
        if self.mean is not None:
            rest = self.mean[acted:]
            tail = self.mean[-1:].expand(self.cfg.horizon - rest.shape[0], -1)
            self.mean = torch.cat([rest, tail])

    def plan(self, cost: Cost) -> Plan:
        """The best sequence found for ``cost``; every iteration scores one batch."""
        cfg = self.cfg
        a = self.low.shape[0]
        mean = self.center.expand(cfg.horizon, a).clone() if self.mean is None else self.mean
        std = (self.half * cfg.init_std).expand(cfg.horizon, a).clone()
        best, best_cost = mean.clone(), float("inf")
        for _ in range(cfg.iterations):
            noise = torch.randn((cfg.samples, cfg.horizon, a), generator=self.generator)
            cand = torch.maximum(torch.minimum(mean + std * noise, self.high), self.low)
            cand[0] = mean  # the current mean is always a candidate (monotone best)
            costs = cost(cand).float().cpu()  # (N,)
            i = int(costs.argmin())
            if float(costs[i]) < best_cost:
                best, best_cost = cand[i].clone(), float(costs[i])
            if cfg.solver == "cem":
                elite = cand[costs.topk(cfg.elites, largest=False).indices]  # (E, H, A)
                mean, std = elite.mean(0), elite.std(0, unbiased=False)
            else:
                spread = (costs.max() - costs.min()).clamp_min(1e-8)
                w = torch.softmax(-(costs - costs.min()) / (cfg.temperature * spread), 0)
                mean = (w[:, None, None] * cand).sum(0)
                std = (w[:, None, None] * (cand - mean).pow(2)).sum(0).sqrt()
            std = torch.maximum(std, self.half * cfg.min_std)
        self.mean = mean
        return Plan(actions=best, cost=best_cost)
