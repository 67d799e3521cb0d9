"""Benchmark collection speed on this machine.

    python scripts/bench_collect.py [--task cartpole-swingup] [--size 64] [--frames 400]
                                    [--action-repeat N] [--episodes 20] [--length N]

Prints frames/s of (1) dm_control's default ``physics.render`` (a new camera per call,
shadows and reflections on), (2) this project's reused camera with those flags off, and
(3) the whole collector with 1 and 2 worker processes, at the default params'
``action_repeat`` and ``frames_per_episode`` unless given.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from worldmodel.config import CollectParams, parse_params
from worldmodel.envs.dmc import configure_headless
from worldmodel.recording import collect


def render_fps(task: str, size: int, frames: int) -> tuple[float, float]:
    configure_headless()
    from worldmodel.envs import make_env
    from worldmodel.tasks import default_camera

    env = make_env(task, size)
    cam = default_camera(task)
    env.reset(0)
    physics = env._env.physics
    physics.render(size, size, camera_id=cam)  # warm-up
    t0 = time.perf_counter()
    for _ in range(frames):
        physics.render(size, size, camera_id=cam)
    default = frames / (time.perf_counter() - t0)
    env.render()
    t0 = time.perf_counter()
    for _ in range(frames):
        env.render()
    fast = frames / (time.perf_counter() - t0)
    return default, fast


def collect_fps(
    task: str, size: int, workers: int, episodes: int, length: int, action_repeat: int
) -> float:
    params = parse_params(
        {
            "collect": {
                "tasks": [task],
                "episodes_per_task": episodes,
                "frames_per_episode": length,
                "action_repeat": action_repeat,
                "image_size": size,
                "workers": workers,
                # speed only: one episode per split is the smallest valid collection
                "val_fraction": 1 / 3,
                "test_fraction": 1 / 3,
            }
        }
    )
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        collect(params, Path(d) / "e.h5")
        return episodes * length / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--task", default="cartpole-swingup")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=400)
    defaults = CollectParams()
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--length", type=int, default=defaults.frames_per_episode)
    ap.add_argument(
        "--action-repeat", type=int, default=None, help="default: the task's convention"
    )
    args = ap.parse_args()
    if args.action_repeat is None:
        args.action_repeat = defaults.settings(args.task).action_repeat
    default, fast = render_fps(args.task, args.size, args.frames)
    print(f"render only, {args.task} {args.size}x{args.size}, {args.frames} frames:")
    print(f"  dm_control physics.render (default flags): {default:8.1f} frames/s")
    print(
        f"  reused Camera, shadows+reflections off:     {fast:8.1f} frames/s  ({fast / default:.1f}x)"
    )
    print(
        f"collector (physics + render + policy + HDF5 write), {args.episodes}x{args.length} "
        f"frames, action_repeat {args.action_repeat}:"
    )
    for w in (1, 2):
        fps = collect_fps(
            args.task,
            size=args.size,
            workers=w,
            episodes=args.episodes,
            length=args.length,
            action_repeat=args.action_repeat,
        )
        print(f"  {w} worker(s): {fps:8.1f} frames/s")
    print(f"(CPU cores available: {len(os.sched_getaffinity(0))})")


if __name__ == "__main__":
    main()
