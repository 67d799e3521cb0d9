"""Names of the tasks `collect` can record, known without importing a simulator.

A task is named ``"<domain>-<task>"`` (``"cartpole-swingup"``, ``"ball_in_cup-catch"``).
``DMC_TASKS`` mirrors ``dm_control.suite.ALL_TASKS`` of dm_control 1.0.50 so that
params validation stays instant and simulator-free; ``tests/test_envs.py`` checks the
copy against the installed suite. ``SYNTHETIC_TASKS`` are simulator-free moving-shape
worlds (see ``worldmodel.envs.synthetic``) that write the same HDF5 schema.
"""

from __future__ import annotations

import numpy as np

DMC_TASKS: tuple[tuple[str, str], ...] = (
    ("acrobot", "swingup"),
    ("acrobot", "swingup_sparse"),
    ("ball_in_cup", "catch"),
    ("cartpole", "balance"),
    ("cartpole", "balance_sparse"),
    ("cartpole", "swingup"),
    ("cartpole", "swingup_sparse"),
    ("cartpole", "three_poles"),
    ("cartpole", "two_poles"),
    ("cheetah", "run"),
    ("dog", "fetch"),
    ("dog", "run"),
    ("dog", "stand"),
    ("dog", "trot"),
    ("dog", "walk"),
    ("finger", "spin"),
    ("finger", "turn_easy"),
    ("finger", "turn_hard"),
    ("fish", "swim"),
    ("fish", "upright"),
    ("hopper", "hop"),
    ("hopper", "stand"),
    ("humanoid", "run"),
    ("humanoid", "run_pure_state"),
    ("humanoid", "stand"),
    ("humanoid", "walk"),
    ("humanoid_CMU", "run"),
    ("humanoid_CMU", "stand"),
    ("humanoid_CMU", "walk"),
    ("lqr", "lqr_2_1"),
    ("lqr", "lqr_6_2"),
    ("manipulator", "bring_ball"),
    ("manipulator", "bring_peg"),
    ("manipulator", "insert_ball"),
    ("manipulator", "insert_peg"),
    ("pendulum", "swingup"),
    ("point_mass", "easy"),
    ("point_mass", "hard"),
    ("quadruped", "escape"),
    ("quadruped", "fetch"),
    ("quadruped", "run"),
    ("quadruped", "walk"),
    ("reacher", "easy"),
    ("reacher", "hard"),
    ("stacker", "stack_2"),
    ("stacker", "stack_4"),
    ("swimmer", "swimmer15"),
    ("swimmer", "swimmer6"),
    ("walker", "run"),
    ("walker", "stand"),
    ("walker", "walk"),
)

SYNTHETIC_TASKS: tuple[str, ...] = ("synthetic-shapes",)

ALL_TASK_NAMES: tuple[str, ...] = tuple(f"{d}-{t}" for d, t in DMC_TASKS) + SYNTHETIC_TASKS

# Camera used when `collect.camera` is null: DreamerV3's DMC choices, except cartpole,
# whose fixed camera 0 loses the cart off-screen under correlated actions; camera 1
# follows the cart (its motion shows in the floor), keeping cart and pole in view.
DEFAULT_CAMERA: dict[str, int] = {"quadruped": 2, "cartpole": 1}

# Simulator steps per recorded frame when `collect.action_repeat` is null: the control
# rates of the usual DMC protocol (PlaNet, Dreamer): 8 for cartpole, 4 for reacher,
# cheetah and ball_in_cup, 2 for finger, walker and every other domain.
ACTION_REPEAT: dict[str, int] = {"cartpole": 8, "reacher": 4, "cheetah": 4, "ball_in_cup": 4}
OTHER_ACTION_REPEAT = 2


# Control steps per episode of dm_control's suite (its time limit over its control
# timestep): 1000 for every task but the LQR ones, which never end. Checked against the
# installed suite by tests/test_envs.py.
EPISODE_CONTROL_STEPS = 1000
ENDLESS_DOMAINS = frozenset({"lqr"})


def max_frames(name: str, action_repeat: int) -> int | None:
    """Frames one episode of ``name`` holds at ``action_repeat``, the reset frame included
    (None: no limit)."""
    if is_synthetic(name) or split_task(name)[0] in ENDLESS_DOMAINS:
        return None
    return EPISODE_CONTROL_STEPS // action_repeat + 1


def split_task(name: str) -> tuple[str, str]:
    """Split ``"domain-task"`` into ``(domain, task)`` at the first dash."""
    domain, _, task = name.partition("-")
    return domain, task


def is_synthetic(name: str) -> bool:
    """True for the simulator-free tasks of ``SYNTHETIC_TASKS``."""
    return name in SYNTHETIC_TASKS


def default_camera(name: str) -> int:
    """The camera id used when ``collect.camera`` is null."""
    return DEFAULT_CAMERA.get(split_task(name)[0], 0)


def default_action_repeat(name: str) -> int:
    """The task's control rate (simulator steps per frame) when ``collect.action_repeat``
    is null; 1 for the synthetic world."""
    if is_synthetic(name):
        return 1
    return ACTION_REPEAT.get(split_task(name)[0], OTHER_ACTION_REPEAT)


def conventions_markdown() -> str:
    """The table of the per-domain conventions (what null picks), as docs/pipeline.md has it."""
    domains = sorted({d for d, _ in DMC_TASKS})
    rows = ["| domain | action_repeat | camera |", "|---|---|---|"]
    for d in domains:
        rows.append(
            f"| {d} | {ACTION_REPEAT.get(d, OTHER_ACTION_REPEAT)} | {DEFAULT_CAMERA.get(d, 0)} |"
        )
    rows.append("| synthetic-shapes | 1 | - |")
    return "\n".join(rows) + "\n"


# What goal-reaching (the `plan` stage) judges success on, per domain: named positions
# (`joint` of dm_control's model, read from qpos; angles compared modulo 2 pi) and the
# tolerance of each, in the joint's units (metres or radians). A goal is reached when
# every position is within its tolerance of the goal frame's. The tolerances are set so
# that uniform random actions reach fewer than one goal in five (docs/planning.md); the
# same ones serve every planner.
POSITIONS: dict[str, tuple[tuple[str, str, bool, float], ...]] = {
    # domain: ((name, joint, is_angle, tolerance), ...)
    "cartpole": (("cart", "slider", False, 0.1), ("pole", "hinge_1", True, 0.15)),
    "reacher": (("shoulder", "shoulder", True, 0.25), ("wrist", "wrist", True, 0.25)),
    "cheetah": (
        ("torso_height", "rootz", False, 0.05),
        ("torso_pitch", "rooty", True, 0.15),
        *((j, j, True, 0.2) for j in ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")),
    ),
    "finger": (
        ("proximal", "proximal", True, 0.09),
        ("distal", "distal", True, 0.09),
        ("spinner", "hinge", True, 0.14),
    ),
    "point_mass": (("x", "root_x", False, 0.03), ("y", "root_y", False, 0.03)),
}
# The synthetic world: the pushed square's position in the unit square.
SYNTHETIC_POSITIONS = (("agent_y", "", False, 0.05), ("agent_x", "", False, 0.05))


class SuccessSpec:
    """A task's success test: named positions, which are angles, and their tolerances."""

    def __init__(self, positions: tuple[tuple[str, str, bool, float], ...]) -> None:
        self.names = [p[0] for p in positions]
        self.joints = [p[1] for p in positions]
        self.is_angle = [p[2] for p in positions]
        self.tolerance = [p[3] for p in positions]

    def _delta(self, pos: np.ndarray, goal: np.ndarray) -> np.ndarray:
        d = np.asarray(pos, np.float64) - np.asarray(goal, np.float64)
        angle = np.asarray(self.is_angle)
        d = np.where(angle, (d + np.pi) % (2 * np.pi) - np.pi, d)
        return np.abs(d) / np.asarray(self.tolerance)  # (..., P): 1 = at the tolerance

    def reached(self, pos: np.ndarray, goal: np.ndarray) -> bool:
        """Every position within its tolerance of the goal's."""
        return bool((self._delta(pos, goal) <= 1).all())

    def scaled_distances(self, pos: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Root mean square over positions of the distance in tolerances, per row ``(...)``."""
        return np.sqrt((self._delta(pos, goal) ** 2).mean(-1))

    def scaled_distance(self, pos: np.ndarray, goal: np.ndarray) -> float:
        return float(self.scaled_distances(pos, goal))

    def describe(self) -> str:
        return ", ".join(
            f"{n} ±{t:g}{' rad' if a else ''}"
            for n, t, a in zip(self.names, self.tolerance, self.is_angle, strict=True)
        )


def success_spec(name: str) -> SuccessSpec:
    """The success test of task ``name``; a clear error for a domain without one."""
    if is_synthetic(name):
        return SuccessSpec(SYNTHETIC_POSITIONS)
    domain = split_task(name)[0]
    if domain not in POSITIONS:
        raise ValueError(
            f"goal-reaching has no success positions for {domain} (known: "
            f"{', '.join(sorted(POSITIONS))}, synthetic-shapes); add them to "
            "POSITIONS in worldmodel/tasks.py"
        )
    return SuccessSpec(POSITIONS[domain])
