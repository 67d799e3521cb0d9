"""What caps the oracle: the tokenizer, or scoring a frame against a goal image at all?

    python scripts/bench_oracle_cost.py --run data
    python scripts/bench_oracle_cost.py --run R0 --run R1 --run R2 \\
        --arm state --arm latent --arm temporal --arm pixels:0 --arm pixels:4

The `plan` stage's oracle plans with the real simulator as its model; by default its cost
is the world model's own (each candidate's planned frame rendered, encoded by the
tokenizer, its latents' squared distance to the goal frame's). This script runs that
oracle, on each run's goal pairs (its tokenizer's ``base.seed``, as the stage draws them),
with other costs in its place. Arms:

- ``state``: the positions' distance to the goal's in tolerances (the stage's
  ``plan.oracle_cost: state``; sees the simulator's state, not images);
- ``latent``: the run's tokenizer's latents, their mean squared distance
  (``plan.distance: latent``);
- ``temporal``: the same latents, the learned temporal distance (``plan.distance:
  temporal``, fitted on the run's ``latents.h5`` as the stage fits it);
- ``pixels:S``: the rendered frames themselves against the goal frame, mean squared
  distance after a Gaussian blur of S pixels (0: sharp) - an image cost that loses
  nothing to a tokenizer.

``pixels`` near ``latent`` says the tokenizer loses little of what an image cost can
use; both far below ``state`` says the image distance itself (what it weighs) caps the
oracle, and ``temporal`` says how much of that a learned distance wins back. Prints each
arm's success per run, pooled over goals with its Wilson 95% interval, and its
difference from the first arm paired by goal (bootstrap over runs).
Planner settings are ``--params``' (params.yaml); nothing is written, MLflow is not used.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch


class BlurredPixels:
    """A stand-in tokenizer for the oracle's cost: a frame's "latents" are its own pixels
    blurred by a Gaussian of ``sigma`` pixels (one token per pixel, 3 channels), so the
    latent distance is the blurred pixel distance."""

    def __init__(self, size: int, sigma: float) -> None:
        self.sigma = sigma
        self.cfg = type("cfg", (), {"latent_tokens": size * size, "latent_dim": 3})

    def eval(self) -> None:
        pass

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, H, W, 3)`` in [0, 1] to ``(B, T, H * W, 3)``."""
        b, t, h, w, c = x.shape
        y = x.reshape(b * t, h, w, c).permute(0, 3, 1, 2)
        if self.sigma > 0:
            r = int(np.ceil(3 * self.sigma))
            k = torch.exp(-0.5 * (torch.arange(-r, r + 1.0) / self.sigma) ** 2)
            k = (k / k.sum()).to(y)
            y = torch.nn.functional.pad(y, (r, r, r, r), mode="replicate")
            y = torch.nn.functional.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
            y = torch.nn.functional.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
        return y.permute(0, 2, 3, 1).reshape(b, t, h * w, c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--run", type=Path, action="append", required=True, help="a data/ folder")
    ap.add_argument(
        "--arm", action="append", default=None, help="state, latent, temporal or pixels:S"
    )
    args = ap.parse_args()
    arms = args.arm or ["state", "latent", "temporal", "pixels:4"]
    for arm in arms:
        kind, _, sigma = arm.partition(":")
        if kind not in ("state", "latent", "temporal", "pixels") or (kind == "pixels") != bool(
            sigma
        ):
            ap.error(f"arm {arm!r}: state, latent, temporal or pixels:SIGMA")

    from worldmodel.checkpoints import load_model
    from worldmodel.config import load_params
    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.data.latents import LatentStore
    from worldmodel.evaluation.stats import clustered_ci
    from worldmodel.goal_distance import LatentDistance, fit_for_plan
    from worldmodel.goal_reaching import (
        LatentCost,
        SimulatorAgent,
        goal_pairs,
        recorded_env,
        run_goal,
        success_interval,
    )
    from worldmodel.models.tokenizer import Tokenizer
    from worldmodel.planner import PlannerConfig
    from worldmodel.tasks import success_spec
    from worldmodel.utils import derive_seed

    p = load_params(args.params).plan
    cfg = PlannerConfig.from_plan(p)
    cpu = torch.device("cpu")
    hits: dict[str, list[bool]] = {a: [] for a in arms}
    runs_of: dict[str, list[int]] = {a: [] for a in arms}
    per_run: dict[str, list[str]] = {a: [] for a in arms}
    seconds = dict.fromkeys(arms, 0.0)
    for ri, run in enumerate(args.run):
        tok, meta = load_model(run / "tokenizer" / "model.pt", Tokenizer, cpu)
        if meta.params.tokenizer.clip_frames != 1:
            raise SystemExit(f"{run}: the tokenizer encodes clips of several frames")
        temporal = None
        if "temporal" in arms:
            temporal, fit = fit_for_plan(p, LatentStore(run / "latents.h5"), meta.params.base.seed)
            print(f"{run}\ttemporal distance fitted: {fit.as_dict()}", flush=True)
        with EpisodeStore(run / "episodes.h5") as store:
            for task in store.tasks:
                spec = success_spec(task)
                env = recorded_env(store, task)
                seed = derive_seed(meta.params.base.seed, "plan", task)
                pairs = goal_pairs(
                    store, task, n=p.goals, offset=p.goal_offset, context=p.context, seed=seed
                )
                for arm in arms:
                    kind, _, sigma = arm.partition(":")
                    codec = (
                        BlurredPixels(store.image_size, float(sigma)) if kind == "pixels" else tok
                    )
                    dist = temporal if kind == "temporal" else LatentDistance()
                    cost = (
                        None
                        if kind == "state"
                        else LatentCost(codec, kind=p.cost, device=cpu, distance=dist)
                    )
                    agent = SimulatorAgent(env, cfg=cfg, spec=spec, seed=seed, latent=cost)
                    t0 = time.perf_counter()
                    got = [
                        run_goal(
                            env,
                            store,
                            pair,
                            agent,
                            spec,
                            context=p.context,
                            budget=p.budget,
                            replan_every=p.replan_every,
                        ).success
                        for pair in pairs
                    ]
                    seconds[arm] += time.perf_counter() - t0
                    hits[arm] += got
                    runs_of[arm] += [ri] * len(got)
                    per_run[arm].append(f"{np.mean(got):.0%}")
                    print(f"{run}\t{task}\t{arm}\t{np.mean(got):.0%}", flush=True)

    print("\narm\toracle success per run\tpooled [95% Wilson]\tseconds")
    for arm in arms:
        h = np.asarray(hits[arm], np.float64)
        lo, hi = success_interval(h)
        print(
            f"{arm}\t{' / '.join(per_run[arm])}\t{h.mean():.0%} [{lo:.0%}, {hi:.0%}] of "
            f"{len(h)}\t{seconds[arm]:.0f}"
        )
    first = np.asarray(hits[arms[0]], np.float64)
    clusters = np.asarray(runs_of[arms[0]]) if len(args.run) > 1 else np.arange(len(first))
    for arm in arms[1:]:
        diff = np.asarray(hits[arm], np.float64) - first
        lo, hi = clustered_ci(diff, clusters)
        print(f"{arm} - {arms[0]}: {diff.mean():+.0%} [{lo:+.0%}, {hi:+.0%}] (paired by goal)")


if __name__ == "__main__":
    main()
