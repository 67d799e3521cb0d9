"""`plan` stage: goal-reaching with the world model, scored on the real simulator.

    python -m stages.plan       # as dvc.yaml runs it
    wm plan

For each task, goal pairs from test episodes (``plan.goals``): the world model plans
(CEM or MPPI in latents), and beside it, on the same goals, the oracle (the same planner
with the real simulator as its model: by default the same latent cost on the frames the
simulator renders, ``plan.oracle_cost``), uniform random actions and the recorded actions
replayed (a check of the protocol). Writes ``metrics/plan.json``
(success rates), its details and timings, and labelled PNG strips under ``data/plan/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from stages.common import PARAMS_OPTION, stage_main, tracked_run
from worldmodel.config import Params

STAGE = "plan"
AGENTS = ("model", "oracle", "random", "replay")
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def run(
    params: Params,
    episodes: Path = Path("data/episodes.h5"),
    latents: Path = Path("data/latents.h5"),
    tokenizer: Path = Path("data/tokenizer/model.pt"),
    dynamics: Path = Path("data/dynamics/model.pt"),
    out_dir: Path = Path("data/plan"),
    metrics: Path = Path("metrics/plan.json"),
    track: bool = True,
) -> dict[str, Any]:
    """Reach goals from test episodes with each agent; summarise per task and overall."""
    from worldmodel.checkpoints import load_model
    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.errors import CheckpointMismatch
    from worldmodel.goal_reaching import (
        LatentCost,
        RandomAgent,
        ReplayAgent,
        SimulatorAgent,
        WorldModelAgent,
        goal_pairs,
        recorded_env,
        run_goal,
        summarize_agent,
    )
    from worldmodel.models.dynamics import Dynamics
    from worldmodel.models.tokenizer import Tokenizer
    from worldmodel.planner import PlannerConfig
    from worldmodel.progress import console, progress_bar
    from worldmodel.results import write_stage_metrics
    from worldmodel.runtime import setup_process
    from worldmodel.tasks import success_spec
    from worldmodel.utils import atomic_path, derive_seed

    p = params.plan
    with tracked_run(track, STAGE, params, ("base", "plan")) as tracker:
        device, _, _ = setup_process(
            params.base.device, params.base.torch_threads, params.base.seed
        )
        tok, tok_meta = load_model(tokenizer, Tokenizer, device)
        dyn, dyn_meta = load_model(dynamics, Dynamics, device)
        store = EpisodeStore(episodes)
        specs = {task: success_spec(task) for task in store.tasks}  # fails early, naming it
        cfg = PlannerConfig.from_plan(p)
        agents_run = [a for a in AGENTS if a != "oracle" or p.oracle]
        latent_oracle = p.oracle and p.oracle_cost == "latent"
        if latent_oracle:
            clip = tok_meta.params.tokenizer.clip_frames
            if clip != 1:
                raise CheckpointMismatch(
                    tokenizer,
                    f"plan.oracle_cost: latent needs a tokenizer with clip_frames 1 (this one "
                    f"has {clip}): each candidate's frame is encoded on its own",
                )
        distance, distance_fit = _goal_distance(p, latents, tokenizer, params.base.seed, device)
        latent = (
            LatentCost(tok, kind=p.cost, device=device, distance=distance)
            if latent_oracle
            else None
        )
        total = len(store.tasks) * p.goals * len(agents_run)
        console.print(
            f"{STAGE}: {p.goals} goals per task {p.goal_offset} decisions ahead, budget "
            f"{p.budget}; {p.solver} {p.samples} x {p.iterations}, horizon {p.horizon}, "
            f"re-plan every {p.replan_every}, K={p.steps}; agents {', '.join(agents_run)}"
        )
        results: dict[str, dict[str, list]] = {}
        pictures: list[tuple[str, Any, dict[str, Any]]] = []
        t0, done = time.perf_counter(), 0
        predict = {"seconds": 0.0, "frames": 0}
        with progress_bar(STAGE, total, "goals/s") as bar:
            for task in store.tasks:
                spec = specs[task]
                env = recorded_env(store, task)
                low, high = env.action_spec.low, env.action_spec.high
                seed = derive_seed(params.base.seed, "plan", task)
                pairs = goal_pairs(
                    store, task, n=p.goals, offset=p.goal_offset, context=p.context, seed=seed
                )
                agents: dict[str, Any] = {
                    "model": WorldModelAgent(
                        tok,
                        dyn,
                        clip_frames=tok_meta.params.tokenizer.clip_frames,
                        tau_ctx=dyn_meta.params.dynamics.tau_ctx,
                        window=dyn_meta.params.dynamics.long_seq_len,
                        cfg=cfg,
                        context=p.context,
                        steps=p.steps,
                        cost=p.cost,
                        distance=distance,
                        low=low,
                        high=high,
                        device=device,
                        seed=seed,
                    ),
                    "oracle": SimulatorAgent(env, cfg=cfg, spec=spec, seed=seed, latent=latent),
                    "random": RandomAgent(low, high, seed=seed, chunk=p.replan_every),
                    "replay": ReplayAgent(store, dim=env.action_spec.dim, chunk=p.replan_every),
                }
                results[task] = {name: [] for name in agents_run}
                for gi, pair in enumerate(pairs):
                    shown = gi < p.pictures
                    outcome = {}
                    for name in agents_run:
                        r = run_goal(
                            env,
                            store,
                            pair,
                            agents[name],
                            spec,
                            context=p.context,
                            budget=p.budget,
                            replan_every=p.replan_every,
                            keep_frames=shown,
                        )
                        results[task][name].append(r)
                        outcome[name] = r
                        done += 1
                        bar(done, done / (time.perf_counter() - t0))
                    if shown:
                        goal = store.read(pair.episode, pair.goal, pair.goal + 1).frames[0]
                        pictures.append((task, pair, {"goal": goal, **outcome}))
                model = agents["model"]
                predict["seconds"] += model.predict_seconds
                predict["frames"] += model.frames_predicted
        seconds = time.perf_counter() - t0
        summary = _summary(results, summarize_agent, specs, p)
        # each goal's outcome per task and agent, in goal order (for paired comparisons
        # such as scripts/bench_plan.py; not written to the metrics)
        summary["outcomes"] = {
            task: {name: [r.success for r in rs] for name, rs in by_agent.items()}
            for task, by_agent in results.items()
        }
        overall = summary["overall"]
        overall["seconds"] = round(seconds, 2)
        if distance_fit is not None:  # how well the learned distance ranks test pairs
            overall["distance_test_correlation"] = round(distance_fit.test_correlation, 4)
            overall["distance_test_mae_decisions"] = round(distance_fit.test_mae_decisions, 2)
            overall["distance_fit_seconds"] = round(distance_fit.seconds, 2)
        overall["model_frames_per_s"] = round(predict["frames"] / max(predict["seconds"], 1e-9), 1)
        with atomic_path(out_dir) as tmp:
            tmp.mkdir()
            for task, pair, outcome in pictures:
                _picture(
                    tmp / f"{task}_goal{pair.episode}_{pair.start}.png", task, pair, outcome, p
                )
        write_stage_metrics(metrics, STAGE, summary)
        if tracker is not None:
            from worldmodel.tracking import runs_of_models

            runs_of_models(tracker, {"tokenizer": tokenizer, "dynamics": dynamics})
            tracker.log_metrics({"overall": overall, "tasks": summary["tasks"]})
            tracker.log_artifact(out_dir, "plan")
    line = ", ".join(
        f"{a} {overall[f'{a}_success']:.0%}" for a in agents_run if f"{a}_success" in overall
    )
    console.print(f"{STAGE}: goal success {line} ({seconds:.0f} s)")
    return summary


def _goal_distance(
    p: Any, latents: Path, tokenizer: Path, seed: int, device: Any
) -> tuple[Any, Any]:
    """The planner's distance to the goal (``plan.distance``) and, for ``temporal``, how its
    fit went: fitted here on the train episodes of the tokenizer's latent store."""
    from worldmodel.data.latents import LatentStore
    from worldmodel.errors import CheckpointMismatch
    from worldmodel.goal_distance import LatentDistance, fit_for_plan
    from worldmodel.progress import console, progress_bar
    from worldmodel.utils import file_fingerprint

    if p.distance == "latent":
        return LatentDistance(), None
    store = LatentStore(latents)
    if store.tokenizer_file is not None and store.tokenizer_file != file_fingerprint(tokenizer):
        raise CheckpointMismatch(
            latents,
            f"was encoded by another tokenizer than {tokenizer}; plan.distance: temporal is "
            "fitted on the planning tokenizer's latents (run `dvc repro tokenize`)",
        )
    with progress_bar(
        f"{STAGE}: fitting the temporal distance", p.distance_steps, "steps/s"
    ) as bar:
        t0 = time.perf_counter()

        def shown(step: int, loss: float) -> None:
            bar(step, step / (time.perf_counter() - t0), f"loss {loss:.4f}")

        model, fit = fit_for_plan(p, store, seed, progress=shown)
    console.print(
        f"{STAGE}: temporal distance fitted on train episodes in {fit.seconds:.0f} s; on test "
        f"pairs its estimates correlate {fit.test_correlation:.2f} with the true gap (mean "
        f"error {fit.test_mae_decisions:.1f} decisions)"
    )
    return model.to(device), fit


def _summary(results: dict, summarize: Any, specs: dict, p: Any) -> dict[str, Any]:
    """Per task and pooled over tasks: each agent's success with its interval, relative
    final distance, decisions and seconds per plan, and each task's tolerances."""
    tasks: dict[str, dict[str, Any]] = {}
    pooled: dict[str, list] = {}
    for task, by_agent in results.items():
        row: dict[str, Any] = {
            "goals": len(next(iter(by_agent.values()))),
            "tolerance": specs[task].describe(),
        }
        for name, rs in by_agent.items():
            pooled.setdefault(name, []).extend(rs)
            for key, value in summarize(rs).items():
                if key != "goals":
                    row[f"{name}_{key}"] = value
        tasks[task] = row
    overall: dict[str, Any] = {"goals": sum(r["goals"] for r in tasks.values())}
    for name, rs in pooled.items():
        for key, value in summarize(rs).items():
            if key != "goals":
                overall[f"{name}_{key}"] = value
    oracle_cost = (
        "latent cost on rendered frames" if p.oracle_cost == "latent" else "state-space cost"
    )
    overall["protocol"] = (
        f"goal {p.goal_offset} ahead, budget {p.budget}, horizon {p.horizon}, re-plan every "
        f"{p.replan_every}, {p.solver} {p.samples}x{p.iterations}, K={p.steps}, cost {p.cost} "
        f"{p.distance} distance; "
        f"oracle: real simulator, {oracle_cost}"
    )
    return {"overall": overall, "tasks": tasks}


def _picture(path: Path, task: str, pair: Any, outcome: dict[str, Any], p: Any) -> None:
    """One labelled PNG per goal: each agent's real frames (start, the first plan's
    actions, the end) beside the goal, and what the model imagined for its first plan."""
    import imageio.v3 as iio
    import numpy as np

    from worldmodel.viz import labelled_grid

    goal = outcome["goal"]
    blank = np.full_like(goal, 255)
    n = p.horizon

    def row(frames: list[np.ndarray], end: np.ndarray | None) -> np.ndarray:
        body = list(frames[1 : n + 1]) + [blank] * (n - len(frames[1 : n + 1]))
        return np.stack([frames[0], *body, end if end is not None else blank, goal])

    rows, labels = [], []
    for name in AGENTS:
        r = outcome.get(name)
        if r is None or not r.frames:
            continue
        mark = "reached" if r.success else "missed"
        rows.append(row(r.frames, r.frames[-1]))
        labels.append(f"{name} ({mark}, {r.decisions})")
        if name == "model" and r.imagined is not None:
            rows.append(row([r.frames[0], *r.imagined], None))
            labels.append("model imagined")
    cols = ["start", *[str(i + 1) for i in range(n)], "end", "goal"]
    title = f"{task}: test episode {pair.episode}, frame {pair.start} -> {pair.goal}"
    iio.imwrite(path, labelled_grid(rows, labels, col_labels=cols, title=title))


@app.command()
def main(params_file: Path = PARAMS_OPTION) -> None:
    """Reach goals from test episodes with the world model, on the real simulator."""
    stage_main(run, params_file)


if __name__ == "__main__":
    app()
