"""Environments and behaviour policies."""

from __future__ import annotations

import numpy as np
import pytest

from worldmodel.config import PolicyParams
from worldmodel.envs import ActionSpec, make_env
from worldmodel.envs.policies import Policy
from worldmodel.tasks import ALL_TASK_NAMES, DMC_TASKS


def test_task_list_matches_installed_suite() -> None:
    from dm_control import suite

    assert sorted(DMC_TASKS) == sorted(suite.ALL_TASKS)
    assert "cartpole-swingup" in ALL_TASK_NAMES


@pytest.mark.slow
def test_episode_lengths_match_the_installed_suite() -> None:
    """params validation knows each task's episode length without a simulator."""
    from dm_control import suite

    from worldmodel.tasks import max_frames

    for domain, task in suite.ALL_TASKS:
        steps = suite.load(domain, task)._step_limit
        expect = None if not np.isfinite(steps) else int(steps) // 8 + 1
        assert max_frames(f"{domain}-{task}", 8) == expect, (domain, task)


SPEC = ActionSpec(low=np.array([-1.0, 0.0], np.float32), high=np.array([1.0, 2.0], np.float32))


@pytest.mark.parametrize("kind", ["random", "ou", "held"])
def test_policies_stay_in_bounds_and_are_seeded(kind: str) -> None:
    p = PolicyParams(kind=kind)
    a = np.stack([Policy(p, SPEC, 7).act() for _ in range(1)])
    seq1 = np.stack([x for x in _run(p, 7)])
    seq2 = np.stack([x for x in _run(p, 7)])
    seq3 = np.stack([x for x in _run(p, 8)])
    assert a.dtype == np.float32
    assert np.array_equal(seq1, seq2) and not np.array_equal(seq1, seq3)
    assert (seq1 >= SPEC.low).all() and (seq1 <= SPEC.high).all()


def _run(p: PolicyParams, seed: int, n: int = 500):
    pol = Policy(p, SPEC, seed)
    return [pol.act() for _ in range(n)]


def _lag1_corr(x: np.ndarray) -> float:
    return float(np.corrcoef(x[:-1], x[1:])[0, 1])


def test_correlated_policies_are_correlated_and_random_is_not() -> None:
    rand = np.stack(_run(PolicyParams(kind="random"), 0))[:, 0]
    ou = np.stack(_run(PolicyParams(kind="ou"), 0))[:, 0]
    held = np.stack(_run(PolicyParams(kind="held", hold_min=5, hold_max=5), 0))[:, 0]
    assert abs(_lag1_corr(rand)) < 0.15
    assert _lag1_corr(ou) > 0.7
    assert _lag1_corr(held) > 0.7
    # held actions change exactly every 5 steps
    changes = np.flatnonzero(np.diff(held) != 0) + 1
    assert (changes % 5 == 0).all()


def test_synthetic_env_responds_to_actions() -> None:
    env = make_env("synthetic-shapes", 32)
    f0 = env.reset(3)
    right = [env.step(np.array([0.0, 1.0]))[0] for _ in range(5)][-1]
    env.reset(3)
    left = [env.step(np.array([0.0, -1.0]))[0] for _ in range(5)][-1]
    assert f0.shape == (32, 32, 3) and f0.dtype == np.uint8
    assert np.abs(right.astype(int) - left.astype(int)).mean() > 1.0


@pytest.mark.slow
def test_dmc_env_fast_render_and_reset_determinism() -> None:
    env = make_env("cartpole-swingup", 32, action_repeat=2)
    assert env.action_spec.dim == 1 and env.max_frames == 501
    a = [env.reset(5)] + [env.step(np.array([0.5]))[0] for _ in range(3)]
    env.step(np.array([-1.0]))  # disturb, then reset to the same seed
    b = [env.reset(5)] + [env.step(np.array([0.5]))[0] for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], a[3])
