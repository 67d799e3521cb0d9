"""Goal-reaching without a world model: how often each simulator-side agent reaches test
goals, at the task's tolerances scaled by each ``--scales`` factor (the calibration of
``worldmodel/tasks.py`` POSITIONS: random actions should reach fewer than one in five).

    python scripts/bench_goals.py --task cartpole-swingup --goals 60 --scales 1.5,1.25,1
    python scripts/bench_goals.py --episodes E.h5 --task reacher-easy --agents random,oracle

Reads the episode store's test episodes (``data/episodes.h5`` by default); prints one
line per scale and agent: success rate, mean relative final distance, seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", default="data/episodes.h5")
    ap.add_argument("--task", default="cartpole-swingup")
    ap.add_argument("--goals", type=int, default=40)
    ap.add_argument("--offset", type=int, default=25)
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--scales", default="1")
    ap.add_argument("--agents", default="random,replay")
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--iterations", type=int, default=3)
    args = ap.parse_args()

    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.goal_reaching import (
        RandomAgent,
        ReplayAgent,
        SimulatorAgent,
        goal_pairs,
        recorded_env,
        run_goal,
    )
    from worldmodel.planner import PlannerConfig
    from worldmodel.tasks import SuccessSpec, success_spec

    store = EpisodeStore(args.episodes)
    env = recorded_env(store, args.task)
    base = success_spec(args.task)
    pairs = goal_pairs(store, args.task, n=args.goals, offset=args.offset, context=4, seed=0)
    low, high = env.action_spec.low, env.action_spec.high
    cfg = PlannerConfig(samples=args.samples, iterations=args.iterations, elites=6)
    for scale in (float(s) for s in args.scales.split(",")):
        spec = SuccessSpec(
            tuple(
                (n, j, a, t * scale)
                for n, j, a, t in zip(
                    base.names, base.joints, base.is_angle, base.tolerance, strict=True
                )
            )
        )
        agents = {
            "random": lambda: RandomAgent(low, high, seed=0, chunk=5),
            "replay": lambda: ReplayAgent(store, dim=len(low), chunk=5),
            "oracle": lambda spec=spec: SimulatorAgent(env, cfg=cfg, spec=spec, seed=0),
        }
        for name in args.agents.split(","):
            agent, t0 = agents[name](), time.perf_counter()
            rs = [
                run_goal(env, store, p, agent, spec, context=4, budget=args.budget, replan_every=5)
                for p in pairs
            ]
            ok = np.mean([r.success for r in rs])
            rel = np.mean([r.final_distance / max(r.start_distance, 1e-9) for r in rs])
            print(
                f"{args.task}\t{spec.describe()}\t{name}\tsuccess {ok:.2f}\t"
                f"relative distance {rel:.2f}\t{time.perf_counter() - t0:.1f} s"
            )


if __name__ == "__main__":
    main()
