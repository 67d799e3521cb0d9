"""Episode-clustered bootstrap intervals: coverage of a known effect, clustering widens."""

from __future__ import annotations

import numpy as np

from worldmodel.evaluation.stats import clustered_ci


def _draw(rng: np.random.Generator, episodes: int, per: int, effect: float, rho: float):
    """Paired per-window differences with a true mean ``effect``: each episode shares a
    random offset (within-episode correlation ``rho``), plus window noise."""
    shared = np.repeat(rng.normal(0, np.sqrt(rho), episodes), per)
    noise = rng.normal(0, np.sqrt(1 - rho), episodes * per)
    return effect + shared + noise, np.repeat(np.arange(episodes), per)


def test_interval_covers_a_known_effect_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    hits = 0
    for i in range(200):
        values, clusters = _draw(rng, episodes=30, per=3, effect=1.5, rho=0.6)
        lo, hi = clustered_ci(values, clusters, seed=i, resamples=1000)
        hits += lo <= 1.5 <= hi
    assert 0.89 <= hits / 200 <= 0.99, hits  # binomial(200, 0.95): 0.92..0.98 at 2 sigma


def test_clustering_widens_the_interval_when_windows_of_an_episode_correlate() -> None:
    rng = np.random.default_rng(1)
    widths_clustered, widths_naive = [], []
    for i in range(40):
        values, clusters = _draw(rng, episodes=20, per=5, effect=0.0, rho=0.8)
        lo, hi = clustered_ci(values, clusters, seed=i, resamples=1000)
        widths_clustered.append(hi - lo)
        lo, hi = clustered_ci(values, np.arange(len(values)), seed=i, resamples=1000)
        widths_naive.append(hi - lo)
    # with rho = 0.8 and 5 windows per episode the effective sample is ~2.4x smaller
    assert np.mean(widths_clustered) > 1.3 * np.mean(widths_naive)


def test_degenerate_inputs() -> None:
    assert np.isnan(clustered_ci(np.array([1.0, 2.0]), np.array([0, 0]))).all()  # one episode
    assert clustered_ci(np.full(6, 0.5), np.arange(6)) == (0.5, 0.5)  # no spread
