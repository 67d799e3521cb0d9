"""The position probe: it finds what latents hold, and only on held-out data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from worldmodel.probe import MLPProbe, Probe
from worldmodel.tasks import success_spec


def test_the_probe_recovers_linearly_held_positions_and_not_noise() -> None:
    spec = success_spec("cartpole-swingup")  # cart (metres), pole (an angle)
    rng = np.random.default_rng(0)
    pos = np.stack([rng.uniform(-1, 1, 600), rng.uniform(-np.pi, np.pi, 600)], 1)
    code = np.stack([pos[:, 0], np.sin(pos[:, 1]), np.cos(pos[:, 1])], 1)
    mix = rng.standard_normal((3, 32))
    held = code @ mix + 0.01 * rng.standard_normal((600, 32))  # (N, 32): positions, mixed
    probe = Probe.fit(held[:400].reshape(400, 4, 8), pos[:400], spec)
    r2 = probe.r2(held[400:].reshape(200, 4, 8), pos[400:])
    assert r2["cart"] > 0.99 and r2["pole"] > 0.99, r2
    noise = rng.standard_normal((600, 32))
    r2 = Probe.fit(noise[:400], pos[:400], spec).r2(noise[400:], pos[400:])
    assert max(r2.values()) < 0.1, r2


def test_the_mlp_probe_reads_an_angle_between_two_links_where_the_ridge_cannot() -> None:
    """Reacher's case: the latents hold where the two links are, the wrist position is the
    angle between them. A ridge cannot recover it from the links' positions; the MLP does,
    on held-out rows, and neither finds anything in noise."""
    spec = success_spec("reacher-easy")  # shoulder, wrist: angles
    rng = np.random.default_rng(0)
    n = 3000
    pos = rng.uniform(-np.pi, np.pi, (n, 2))
    elbow = np.stack([np.cos(pos[:, 0]), np.sin(pos[:, 0])], 1)
    tip = elbow + np.stack([np.cos(pos.sum(1)), np.sin(pos.sum(1))], 1)
    held = np.concatenate([elbow, tip], 1) @ rng.standard_normal((4, 16))  # (N, 16)
    fit, test = slice(0, 2400), slice(2400, n)
    ridge = Probe.fit(held[fit], pos[fit], spec).r2(held[test], pos[test])
    mlp = MLPProbe.fit(held[fit], pos[fit], spec).r2(held[test], pos[test])
    assert ridge["shoulder"] > 0.95 and ridge["wrist"] < 0.3, ridge
    assert mlp["shoulder"] > 0.95 and mlp["wrist"] > 0.8, mlp
    noise = rng.standard_normal((n, 16))
    chance = MLPProbe.fit(noise[fit], pos[fit], spec).r2(noise[test], pos[test])
    assert max(chance.values()) < 0.1, chance
    again = MLPProbe.fit(held[fit], pos[fit], spec).r2(held[test], pos[test])
    assert again == mlp  # a fixed seed gives the same probe


def test_the_square_is_found_in_synthetic_frames(tmp_path: Path) -> None:
    """On synthetic-shapes, where the square's position is known: a probe on pooled
    pixels of train episodes finds it on held-out episodes; shuffled targets do not."""
    from tests.conftest import tiny_params
    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.recording import collect

    path = tmp_path / "e.h5"
    collect(tiny_params(episodes_per_task=24, frames_per_episode=30, test_fraction=0.25), path)
    with EpisodeStore(path) as store:
        spec = success_spec("synthetic-shapes")
        frames = store.f["frames"][:].astype(np.float32) / 255  # (N, 32, 32, 3)
        pos = store.f["positions"][:, :2]
        pooled = frames.reshape(len(frames), 8, 4, 8, 4, 3).mean((2, 4))  # (N, 8, 8, 3)
        test = np.isin(
            np.repeat(np.arange(store.num_episodes), store.lengths), store.episode_ids("test")
        )
        found = Probe.fit(pooled[~test], pos[~test], spec, ridge=100.0).r2(pooled[test], pos[test])
        shuffled = np.random.default_rng(0).permutation(pos[~test])
        chance = Probe.fit(pooled[~test], shuffled, spec, ridge=100.0).r2(pooled[test], pos[test])
        # pixels hold the square's position only non-linearly: a linear probe finds part
        # of it on held-out episodes, and nothing when trained on shuffled targets
        assert found["agent_x"] > 0.5 and max(chance.values()) < 0.05, (found, chance)
        assert np.mean(list(found.values())) > np.mean(list(chance.values())) + 0.3


def test_latents_of_other_episodes_are_refused() -> None:
    from types import SimpleNamespace

    from worldmodel.probe import probe_positions

    store = SimpleNamespace(
        starts=np.array([0, 10]),
        lengths=np.array([10, 10]),
        num_frames=20,
        path="e.h5",
        tasks=["synthetic-shapes"],
    )
    latents = SimpleNamespace(latents=np.zeros((15, 4, 2), np.float32), path="l.h5")
    with pytest.raises(ValueError, match="l.h5 holds 15 frames, e.h5 20: the latents are not"):
        probe_positions(store, latents, "synthetic-shapes", None, tau_ctx=0.9, window=4)
