"""Planner study: goal success of planner settings (arms) on the models of several runs.

    python scripts/bench_plan.py --run data --arm base= --arm mean=plan.cost=mean
    python scripts/bench_plan.py --run data --run /tmp/s1/data --run /tmp/s2/data \\
        --arm base= --arm mean=plan.cost=mean --arm mppi=plan.solver=mppi --out plan.tsv

Each ``--run`` is a folder laid out as the DAG's ``data/`` (``episodes.h5``,
``latents.h5``, ``tokenizer/model.pt``, ``dynamics/model.pt``): the workspace's, or an experiment's
outputs checked out elsewhere. Each arm (``NAME=KEY=VALUE[;KEY=VALUE...]``; ``NAME=`` is
params.yaml as is) runs the `plan` stage's own code on every run, with ``base.seed`` set
to the seed the run's dynamics model was trained with, so its goal pairs are the ones
that run's stage drew: the arms meet the same goals, and are paired goal by goal.
``--goal-seed-offset N`` adds N to that seed: other goals from the same test episodes,
to confirm a setting on goals it was not chosen on.

An arm may also swap the run's dynamics model: the item ``model=TEMPLATE`` (``{seed}``
in it is the run's seed) plans with that model instead, on the run's goals, so that
models trained differently (e.g. by ``scripts/study.py --save-models DIR``) are compared
on the same goals, paired goal by goal:

    python scripts/bench_plan.py --run R0 --run R1 --run R2 --arm base= \
        --arm new="model=DIR/new_s{seed}.pt"

where each ``Rk`` holds the episodes and tokenizer the models were trained on and, as
``dynamics/model.pt``, the first arm's seed-k model.

Prints per arm: each run's success rate of the world model, the pooled rate over all
goals with its Wilson 95% interval, the pooled oracle and random rates, seconds; then
each arm's difference from the first arm, paired by goal, with a bootstrap 95% interval
over runs and goals (whole runs resampled, each run's goals kept together: the arms
share a run's model). Nothing under ``data/`` is written; MLflow is not used.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import params_with_overrides  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--run", type=Path, action="append", required=True, help="a data/ folder")
    ap.add_argument("--arm", action="append", required=True, metavar="NAME=KEY=VALUE;...")
    ap.add_argument("--out", type=Path, default=None, help="TSV: one row per arm and run")
    ap.add_argument(
        "--goal-seed-offset",
        type=int,
        default=0,
        help="draw goals (and planner noise) with base.seed = the run's seed + this: fresh "
        "goals from the same test episodes, to confirm on goals a choice was not made on",
    )
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from stages import plan
    from worldmodel.checkpoints import load_model
    from worldmodel.evaluation.stats import clustered_ci
    from worldmodel.goal_reaching import success_interval
    from worldmodel.models.dynamics import Dynamics

    arms = []
    for spec in args.arm:
        name, _, rest = spec.partition("=")
        items = [s for s in rest.split(";") if s]
        models = [s.partition("=")[2] for s in items if s.startswith("model=")]
        if len(models) > 1:
            ap.error(f"arm {name!r}: one model=TEMPLATE at most")
        sets = [s for s in items if not s.startswith("model=")]
        arms.append((name, sets, models[0] if models else None))
    seeds = {}
    for run in args.run:
        _, meta = load_model(run / "dynamics" / "model.pt", Dynamics)
        seeds[run] = meta.params.base.seed
    swapped = {}  # (arm, run) -> the arm's model for that run; checked before any work
    for name, _, model_template in arms:
        for run in args.run if model_template is not None else ():
            path = Path(model_template.format(seed=seeds[run]))
            if load_model(path, Dynamics)[1].params.base.seed != seeds[run]:
                sys.exit(f"{path} was not trained with base.seed={seeds[run]}, as {run}'s was")
            swapped[name, run] = path
    rows, outcomes = [], {}  # outcomes[arm] = (success (N,), run index (N,))
    for name, sets, _ in arms:
        hits, runs_of = [], []
        for ri, run in enumerate(args.run):
            dynamics = swapped.get((name, run), run / "dynamics" / "model.pt")
            params = params_with_overrides(
                args.params, [*sets, f"base.seed={seeds[run] + args.goal_seed_offset}"]
            )
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                summary = plan.run(
                    params,
                    episodes=run / "episodes.h5",
                    latents=run / "latents.h5",
                    tokenizer=run / "tokenizer" / "model.pt",
                    dynamics=dynamics,
                    out_dir=Path(tmp) / "plan",
                    metrics=Path(tmp) / "plan.json",
                    track=False,
                )
            o = summary["overall"]
            model = [s for by_agent in summary["outcomes"].values() for s in by_agent["model"]]
            hits += model
            runs_of += [ri] * len(model)
            rows.append(
                {
                    "arm": name,
                    "run": str(run),
                    "dynamics": str(dynamics),
                    "seed": seeds[run],
                    "model_success": o["model_success"],
                    "oracle_success": o.get("oracle_success", float("nan")),
                    "random_success": o["random_success"],
                    "seconds": round(time.perf_counter() - t0, 1),
                }
            )
            print("\t".join(str(v) for v in rows[-1].values()), flush=True)
        outcomes[name] = (np.asarray(hits, np.float64), np.asarray(runs_of))

    print("\narm\tmodel success per run\tpooled [95% Wilson]\toracle\trandom\tseconds")
    for name, *_ in arms:
        mine = [r for r in rows if r["arm"] == name]
        hits, _ = outcomes[name]
        lo, hi = success_interval(hits)
        per_run = " / ".join(f"{r['model_success']:.0%}" for r in mine)
        print(
            f"{name}\t{per_run}\t"
            f"{hits.mean():.0%} [{lo:.0%}, {hi:.0%}] of {len(hits)}\t"
            f"{np.mean([r['oracle_success'] for r in mine]):.0%}\t"
            f"{np.mean([r['random_success'] for r in mine]):.0%}\t"
            f"{sum(r['seconds'] for r in mine):.0f}"
        )
    first, (base, runs_of) = arms[0][0], outcomes[arms[0][0]]
    for name, *_ in arms[1:]:
        diff = outcomes[name][0] - base
        # goals nested in runs: resample runs (clusters) when there are several
        lo, hi = clustered_ci(diff, runs_of if len(args.run) > 1 else np.arange(len(diff)))
        print(f"{name} - {first}: {diff.mean():+.0%} [{lo:+.0%}, {hi:+.0%}] (paired by goal)")
    if args.out:
        from worldmodel.utils import write_tsv

        write_tsv(args.out, rows, list(rows[0]))


if __name__ == "__main__":
    main()
