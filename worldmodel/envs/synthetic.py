"""``synthetic-shapes``: a simulator-free world of moving shapes driven by actions.

A square (the agent) accelerates with a 2-D action and bounces off the walls; two
discs drift at constant velocity and bounce too. The reward is the agent's closeness to
the first disc. It writes the same episode schema as dm_control tasks, so every later
stage can be tested in seconds without MuJoCo, and the agent's motion makes action
conditioning measurable.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from worldmodel.envs import ActionSpec

_DT = 0.05  # simulated seconds per control step


class ShapesEnv:
    """Moving shapes on a gradient background; positions live in the unit square."""

    max_frames = 100_000

    def __init__(self, image_size: int, action_repeat: int = 1) -> None:
        self.size = image_size
        self.repeat = action_repeat
        self.action_spec = ActionSpec(low=-np.ones(2, np.float32), high=np.ones(2, np.float32))
        self.control_timestep = _DT * action_repeat
        grid = (np.arange(image_size) + 0.5) / image_size
        self._yy, self._xx = np.meshgrid(grid, grid, indexing="ij")
        self._background = np.stack(
            [0.15 + 0.25 * self._yy, 0.2 + 0.1 * self._xx, 0.35 + 0.2 * (1 - self._yy)], -1
        )

    def reset(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        self.agent_pos = rng.uniform(0.2, 0.8, 2)
        self.agent_vel = np.zeros(2)
        self.disc_pos = rng.uniform(0.15, 0.85, (2, 2))
        self.disc_vel = rng.uniform(-0.3, 0.3, (2, 2))
        self.colors = rng.uniform(0.5, 1.0, (3, 3))
        return self.render()

    @staticmethod
    def _bounce(pos: np.ndarray, vel: np.ndarray, margin: float) -> None:
        for lo_hi in ((pos < margin), (pos > 1 - margin)):
            vel[lo_hi] = -vel[lo_hi]
        np.clip(pos, margin, 1 - margin, out=pos)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, float]:
        self._advance(action)
        dist = float(np.linalg.norm(self.agent_pos - self.disc_pos[0]))
        return self.render(), float(np.exp(-4 * dist)), 1.0

    def _advance(self, action: np.ndarray) -> None:
        action = np.clip(np.asarray(action, np.float64), -1, 1)
        for _ in range(self.repeat):
            self.agent_vel = 0.85 * self.agent_vel + 0.6 * _DT * action * 4
            self.agent_pos = self.agent_pos + self.agent_vel * _DT * 4
            self._bounce(self.agent_pos, self.agent_vel, 0.1)
            self.disc_pos = self.disc_pos + self.disc_vel * _DT * 4
            for i in range(2):
                self._bounce(self.disc_pos[i], self.disc_vel[i], 0.08)

    def get_state(self) -> np.ndarray:
        """Positions, velocities and colours, flat (float64)."""
        parts = (self.agent_pos, self.agent_vel, self.disc_pos, self.disc_vel, self.colors)
        return np.concatenate([np.ravel(p) for p in parts]).astype(np.float64)

    def set_state(self, state: np.ndarray) -> np.ndarray:
        s = np.asarray(state, np.float64)
        self.agent_pos, self.agent_vel = s[0:2].copy(), s[2:4].copy()
        self.disc_pos, self.disc_vel = s[4:8].reshape(2, 2).copy(), s[8:12].reshape(2, 2).copy()
        self.colors = s[12:21].reshape(3, 3).copy()
        return self.render()

    def positions(self) -> np.ndarray:
        """The pushed square's position ``(y, x)``."""
        return self.agent_pos.copy()

    def _stepped(self, state: np.ndarray, actions: np.ndarray) -> Iterator[tuple[int, int]]:
        """Carry out each sequence of ``actions (N, H, A)`` from ``state``, yielding
        ``(i, h)`` after each action; the environment is left where it was."""
        saved = self.get_state()
        try:
            for i, seq in enumerate(actions):
                self.set_state(state)
                for h, a in enumerate(seq):
                    self._advance(a)
                    yield i, h
        finally:
            self.set_state(saved)

    def simulate(self, state: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Positions ``(N, H, 2)`` after each action of each sequence, no rendering."""
        out = np.empty((*actions.shape[:2], 2))
        for i, h in self._stepped(state, actions):
            out[i, h] = self.agent_pos
        return out

    def simulate_frames(
        self, state: np.ndarray, actions: np.ndarray, every: bool = False
    ) -> np.ndarray:
        """Frames ``(N, S, S, 3)`` after the last action of each sequence (``every``: after
        each action, ``(N, H, S, S, 3)``)."""
        last = actions.shape[1] - 1
        frames = [self.render() for _, h in self._stepped(state, actions) if every or h == last]
        out = np.stack(frames)
        return out.reshape(len(actions), -1, *out.shape[1:]) if every else out

    def render(self) -> np.ndarray:
        img = self._background.copy()
        px = 1.0 / self.size
        for (y, x), color in zip(self.disc_pos, self.colors[1:], strict=True):
            d = np.sqrt((self._yy - y) ** 2 + (self._xx - x) ** 2)
            cover = np.clip((0.08 - d) / px + 0.5, 0, 1)[..., None]
            img = img * (1 - cover) + color * cover
        y, x = self.agent_pos
        cy = np.clip((0.1 - np.abs(self._yy - y)) / px + 0.5, 0, 1)
        cx = np.clip((0.1 - np.abs(self._xx - x)) / px + 0.5, 0, 1)
        cover = (cy * cx)[..., None]
        img = img * (1 - cover) + self.colors[0] * cover
        return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
