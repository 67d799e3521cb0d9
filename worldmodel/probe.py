"""A linear probe: how much of the simulator's positions a set of latents holds.

Fit a ridge regression from flattened latents to a task's success positions
(``worldmodel.tasks.POSITIONS``; an angle as its sine and cosine) on *train* episodes,
then report R² per position on *held-out* episodes. Applied to the tokenizer's latents it
says whether the tokenizer keeps a moving part (reacher's one-pixel arm); applied to the
dynamics' predicted latents at a horizon, whether the model still moves it there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldmodel.tasks import SuccessSpec


def position_features(positions: np.ndarray, spec: SuccessSpec) -> np.ndarray:
    """``(N, F)`` regression targets: each linear position as is, each angle as sin, cos."""
    cols = []
    for i, angle in enumerate(spec.is_angle):
        x = positions[:, i]
        cols += [np.sin(x), np.cos(x)] if angle else [x]
    return np.stack(cols, 1)


@dataclass
class Probe:
    """A fitted ridge map from flattened latents to position features."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # (D + 1, F)
    spec: SuccessSpec

    @classmethod
    def fit(
        cls, latents: np.ndarray, positions: np.ndarray, spec: SuccessSpec, ridge: float = 1.0
    ) -> Probe:
        """Fit on ``latents (N, ...)`` and their ``positions (N, P)``."""
        x = latents.reshape(len(latents), -1).astype(np.float64)
        mean, scale = x.mean(0), x.std(0) + 1e-6
        x = np.concatenate([(x - mean) / scale, np.ones((len(x), 1))], 1)
        y = position_features(positions, spec)
        reg = ridge * np.eye(x.shape[1])
        reg[-1, -1] = 0.0  # the intercept is not shrunk
        weights = np.linalg.solve(x.T @ x + reg, x.T @ y)
        return cls(mean, scale, weights, spec)

    def predict(self, latents: np.ndarray) -> np.ndarray:
        x = (latents.reshape(len(latents), -1) - self.mean) / self.scale
        return np.concatenate([x, np.ones((len(x), 1))], 1) @ self.weights

    def r2(self, latents: np.ndarray, positions: np.ndarray) -> dict[str, float]:
        """R² per position on held-out ``latents`` (an angle: over its sine and cosine)."""
        y = position_features(positions, self.spec)
        err = (y - self.predict(latents)) ** 2
        var = (y - y.mean(0)) ** 2
        out, col = {}, 0
        for name, angle in zip(self.spec.names, self.spec.is_angle, strict=True):
            k = 2 if angle else 1
            out[name] = float(
                1 - err[:, col : col + k].sum() / max(var[:, col : col + k].sum(), 1e-12)
            )
            col += k
        return out
