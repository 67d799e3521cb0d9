"""Confidence intervals that respect how the evaluation data were drawn.

Windows of one episode are correlated (same physical state drifting, same visual
context), so treating every window as independent understates the uncertainty. The
intervals here are **paired, episode-clustered bootstrap** intervals:

- *clustered*: each bootstrap replicate resamples whole episodes with replacement and
  keeps all of an episode's windows together;
- *paired*: a difference between two methods (model vs repeat-last, true vs shuffled
  actions, K = 4 vs K = k_max) is computed per window first, so both arms see the same
  resample;
- the statistic of a replicate is the mean over all windows it holds (episodes weigh by
  their window count, as in the point estimate).

The resampling is ``scipy.stats.bootstrap`` over per-episode ``(sum, count)`` pairs
(``paired=True``), with the bias-corrected and accelerated (BCa) interval by default.
"""

from __future__ import annotations

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 2000


def cluster_sums(values: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums and counts of ``values (N,)`` grouped by ``clusters (N,)``."""
    _, inverse = np.unique(clusters, return_inverse=True)
    sums = np.bincount(inverse, weights=values.astype(np.float64))
    counts = np.bincount(inverse).astype(np.float64)
    return sums, counts


def clustered_ci(
    values: np.ndarray,
    clusters: np.ndarray,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    method: str = "BCa",
) -> tuple[float, float]:
    """Bootstrap CI of the mean of ``values (N,)`` resampling whole ``clusters (N,)``.

    For a paired difference pass the per-window differences (``a - b``). Returns
    ``(nan, nan)`` with fewer than two clusters, and ``(v, v)`` when every value is the
    same (no spread to resample).
    """
    from scipy.stats import bootstrap

    values = np.asarray(values, np.float64).ravel()
    sums, counts = cluster_sums(values, np.asarray(clusters).ravel())
    if len(sums) < 2:
        return float("nan"), float("nan")
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0])

    def ratio(s: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
        return s.sum(axis=axis) / c.sum(axis=axis)

    res = bootstrap(
        (sums, counts),
        ratio,
        paired=True,
        vectorized=True,
        confidence_level=confidence,
        n_resamples=resamples,
        method=method,
        rng=np.random.default_rng(seed),
    )
    lo, hi = res.confidence_interval
    return float(lo), float(hi)


def clustered_ci_per_column(
    values: np.ndarray, clusters: np.ndarray, seed: int = 0, **kw
) -> list[tuple[float, float]]:
    """:func:`clustered_ci` of each column of ``values (N, H)`` (e.g. per horizon step)."""
    return [clustered_ci(values[:, j], clusters, seed, **kw) for j in range(values.shape[1])]
