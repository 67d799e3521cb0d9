"""Environments that produce pixel episodes: dm_control tasks and synthetic worlds.

Every environment follows :class:`Env`: ``reset(seed) -> frame`` and
``step(action) -> (frame, reward, discount)``, frames as ``uint8 (H, W, 3)``. Its full
state can be read and restored (``get_state``, ``set_state``: resetting to a recorded
frame renders that frame), it reports the positions goal-reaching judges success on
(``positions``, named by :func:`worldmodel.tasks.success_spec`), and ``simulate`` steps
a batch of action sequences from a state without rendering (the oracle planner).
:func:`make_env` builds one by task name; simulator imports happen only there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from worldmodel.tasks import default_camera, is_synthetic, split_task


@dataclass(frozen=True)
class ActionSpec:
    """Bounds of a continuous action vector."""

    low: np.ndarray
    high: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.low.shape[0])


class Env(Protocol):
    """What the collector needs from an environment."""

    action_spec: ActionSpec
    control_timestep: float  # seconds of simulated time per recorded frame
    max_frames: int  # frames one episode can hold, the reset frame included

    def reset(self, seed: int) -> np.ndarray: ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, float]: ...

    def get_state(self) -> np.ndarray: ...  # float64 (D,): everything a reset needs

    def set_state(self, state: np.ndarray) -> np.ndarray: ...  # -> the frame of that state

    def positions(self) -> np.ndarray: ...  # float64 (P,), see worldmodel.tasks.success_spec

    def simulate(self, state: np.ndarray, actions: np.ndarray) -> np.ndarray: ...

    # (N, H, A) action sequences from ``state`` -> (N, H, P) positions after each action

    def simulate_frames(
        self, state: np.ndarray, actions: np.ndarray, every: bool = False
    ) -> np.ndarray: ...

    # (N, H, A) action sequences from ``state`` -> (N, S, S, 3) uint8 frame after the last
    # action (``every``: (N, H, S, S, 3), after each)


def make_env(
    task: str,
    image_size: int,
    camera: int | None = None,
    action_repeat: int = 1,
    shadows: bool = False,
    reflections: bool = False,
) -> Env:
    """Build the environment for ``task`` (``"domain-task"`` or a synthetic task)."""
    if is_synthetic(task):
        from worldmodel.envs.synthetic import ShapesEnv

        return ShapesEnv(image_size=image_size, action_repeat=action_repeat)
    from worldmodel.envs.dmc import DMCEnv

    domain, name = split_task(task)
    return DMCEnv(
        domain,
        name,
        image_size=image_size,
        camera=default_camera(task) if camera is None else camera,
        action_repeat=action_repeat,
        shadows=shadows,
        reflections=reflections,
    )
