"""Behaviour policies for data collection.

Uniformly random actions mostly make a system jitter in place; a world model learns
dynamics better from data where actions persist. ``ou`` (Ornstein-Uhlenbeck) and
``held`` policies give temporally correlated actions.
"""

from __future__ import annotations

import numpy as np

from worldmodel.config import PolicyParams
from worldmodel.envs import ActionSpec


class Policy:
    """Chooses actions within ``spec`` from its own seeded generator."""

    def __init__(self, params: PolicyParams, spec: ActionSpec, seed: int) -> None:
        self.params = params
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        self._mid = (spec.high + spec.low) / 2
        self._half = (spec.high - spec.low) / 2
        self._x = np.zeros(spec.dim)  # OU state, in units of half the range
        self._held: np.ndarray | None = None
        self._hold_left = 0

    def act(self) -> np.ndarray:
        p, dim = self.params, self.spec.dim
        if p.kind == "random":
            unit = self.rng.uniform(-1, 1, dim)
        elif p.kind == "ou":
            self._x = self._x - p.ou_theta * self._x + p.ou_sigma * self.rng.standard_normal(dim)
            unit = np.clip(self._x, -1, 1)
        else:  # held
            if self._hold_left == 0:
                self._held = self.rng.uniform(-1, 1, dim)
                self._hold_left = int(self.rng.integers(p.hold_min, p.hold_max + 1))
            self._hold_left -= 1
            unit = self._held
        return (self._mid + self._half * unit).astype(np.float32)
