"""dm_control tasks rendered fast and headless.

Rendering dominates collection cost. dm_control's ``physics.render`` builds a new
camera every call and draws shadows and reflections; at 64x64 on a CPU (Mesa
llvmpipe) that is ~25 ms/frame. :class:`DMCEnv` keeps one
``dm_control.mujoco.engine.Camera`` for its lifetime and turns those two render flags
off unless asked, ~3.5-5 ms/frame (``scripts/bench_collect.py`` measures both).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from worldmodel.envs import ActionSpec

# Model values a task draws at reset that are not in the physics state, per domain:
# (model field, element, columns). Reacher places its target by moving a geom.
EPISODE_CONSTANTS: dict[str, tuple[tuple[str, str, tuple[int, ...]], ...]] = {
    "reacher": (("geom_pos", "target", (0, 1)),),
}


def configure_headless() -> None:
    """Pick a headless GL backend before MuJoCo is imported (``MUJOCO_GL`` wins if set).

    ``LP_NUM_THREADS=0`` keeps Mesa's llvmpipe single-threaded: at these frame sizes its
    threads cost more than they give, and collection parallelises over processes.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    if os.environ["MUJOCO_GL"] == "egl":
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ.setdefault("LP_NUM_THREADS", "0")
    _preload_triton()


def _preload_triton() -> None:
    """Load triton's LLVM before Mesa's.

    Mesa's llvmpipe (EGL/OSMesa) and triton (imported by torch's optimisers) each bring
    their own LLVM; a process that loads Mesa first and triton second segfaults. Loading
    triton first, when installed, makes it safe to collect and train in one process.
    """
    try:
        import triton  # noqa: F401
    except ImportError:
        pass


class DMCEnv:
    """One dm_control suite task with a reused, flag-controlled camera."""

    def __init__(
        self,
        domain: str,
        task: str,
        image_size: int,
        camera: int = 0,
        action_repeat: int = 1,
        shadows: bool = False,
        reflections: bool = False,
    ) -> None:
        configure_headless()
        from dm_control import suite

        from worldmodel.tasks import POSITIONS

        self._env = suite.load(domain, task, task_kwargs={"random": 0})
        self._repeat = action_repeat
        self._constants = EPISODE_CONSTANTS.get(domain, ())
        self._joints = [joint for _, joint, _, _ in POSITIONS.get(domain, ())]
        physics = self._env.physics
        if camera >= physics.model.ncam:
            raise ValueError(
                f"{domain}-{task} has {physics.model.ncam} cameras; camera={camera} is invalid"
            )
        self._camera_args = (image_size, camera, shadows, reflections)
        self._camera = None  # built on first render: describing a task needs no GL
        spec = self._env.action_spec()
        self.action_spec = ActionSpec(
            low=np.asarray(spec.minimum, np.float32), high=np.asarray(spec.maximum, np.float32)
        )
        self.control_timestep = float(self._env.control_timestep()) * action_repeat
        steps = self._env._step_limit  # control steps per episode (may be inf)
        self.max_frames = int(steps) // action_repeat + 1 if np.isfinite(steps) else 10**9

    def render(self) -> np.ndarray:
        if self._camera is None:
            import mujoco
            from dm_control.mujoco.engine import Camera

            size, camera, shadows, reflections = self._camera_args
            self._camera = Camera(self._env.physics, size, size, camera)
            self._camera.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = int(shadows)
            self._camera.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = int(reflections)
        return self._camera.render().copy()

    def reset(self, seed: int) -> np.ndarray:
        # The task draws its initial state from task.random; reseeding it makes each
        # episode depend only on its own seed, not on episodes recorded before it.
        self._env.task.random.seed(seed % 2**32)
        self._env.reset()
        return self.render()

    def get_state(self) -> np.ndarray:
        """MuJoCo's full physics state, then the episode's constants (e.g. reacher's target)."""
        physics = self._env.physics
        model = physics.named.model
        extra = [getattr(model, f)[name][list(cols)] for f, name, cols in self._constants]
        return np.concatenate([physics.get_state(), *extra]).astype(np.float64)

    def set_state(self, state: np.ndarray) -> np.ndarray:
        """Restore a :meth:`get_state` and render it. The episode's step count restarts, so a
        whole budget of steps follows."""
        self._env.reset()  # a fresh episode: time limit and termination cleared
        self._restore(state)
        return self.render()

    def positions(self) -> np.ndarray:
        """The task's success positions (``worldmodel.tasks.POSITIONS``), in their order."""
        qpos = self._env.physics.named.data.qpos
        return np.array([float(np.ravel(qpos[j])[0]) for j in self._joints])

    def _stepped(self, state: np.ndarray, actions: np.ndarray) -> Iterator[tuple[int, int]]:
        """Carry out each sequence of ``actions (N, H, A)`` from ``state``, physics only,
        yielding ``(i, h)`` after each action; the simulator is left where it was."""
        physics = self._env.physics
        task = self._env.task
        substeps = self._env._n_sub_steps * self._repeat
        saved = self.get_state()
        try:
            for i, seq in enumerate(actions):
                self._restore(state)
                for h, a in enumerate(seq):
                    task.before_step(a, physics)
                    physics.step(substeps)
                    yield i, h
        finally:
            self._restore(saved)

    def simulate(self, state: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Positions ``(N, H, P)`` after each action of each sequence ``(N, H, A)`` from
        ``state``, physics only (no rendering); the simulator is left at ``state``."""
        out = np.empty((*actions.shape[:2], len(self._joints)))
        for i, h in self._stepped(state, actions):
            out[i, h] = self.positions()
        return out

    def simulate_frames(
        self, state: np.ndarray, actions: np.ndarray, every: bool = False
    ) -> np.ndarray:
        """Frames ``(N, S, S, 3)`` rendered after the last action of each sequence
        ``(N, H, A)`` from ``state`` with the task's camera and size (``every``: after each
        action, ``(N, H, S, S, 3)``); the simulator is left at ``state``."""
        last = actions.shape[1] - 1
        frames = [self.render() for _, h in self._stepped(state, actions) if every or h == last]
        out = np.stack(frames)
        return out.reshape(len(actions), -1, *out.shape[1:]) if every else out

    def _restore(self, state: np.ndarray) -> None:
        physics = self._env.physics
        n = physics.get_state().size
        with physics.reset_context():
            physics.set_state(np.asarray(state[:n], np.float64))
            at = n
            for f, name, cols in self._constants:
                getattr(physics.named.model, f)[name, list(cols)] = state[at : at + len(cols)]
                at += len(cols)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, float]:
        reward = 0.0
        discount = 1.0
        for _ in range(self._repeat):
            ts = self._env.step(action)
            reward += float(ts.reward or 0.0)
            discount *= float(ts.discount if ts.discount is not None else 1.0)
            if ts.last():
                break
        return self.render(), reward, discount
