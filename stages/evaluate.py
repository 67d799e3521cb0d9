"""`evaluate` stage: autoregressive rollouts on held-out episodes against baselines.

    python -m stages.evaluate       # as dvc.yaml runs it
    wm evaluate

Writes ``metrics/evaluate.json`` (headline numbers for `dvc metrics diff`),
``metrics/rollout.tsv`` (per horizon step, one column per method and metric, for
`dvc plots`), ``metrics/sampler_sweep.tsv`` and, under ``data/eval/``, PNG plots, GIFs
and strips (context | truth | model | repeat-last).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from stages.common import PARAMS_OPTION, stage_main, tracked_run
from worldmodel.config import Params

STAGE = "evaluate"
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def run(
    params: Params,
    episodes: Path = Path("data/episodes.h5"),
    latents: Path = Path("data/latents.h5"),
    tokenizer: Path = Path("data/tokenizer/model.pt"),
    dynamics: Path = Path("data/dynamics/model.pt"),
    out_dir: Path = Path("data/eval"),
    metrics: Path = Path("metrics/evaluate.json"),
    rollout_tsv: Path = Path("metrics/rollout.tsv"),
    sweep_tsv: Path = Path("metrics/sampler_sweep.tsv"),
    track: bool = True,
) -> dict[str, Any]:
    """Score rollouts and baselines on held-out windows of every task."""
    from worldmodel.checkpoints import load_model
    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.evaluation.evaluate_store import Evaluator, evaluate_store, result_line
    from worldmodel.metrics import load_lpips
    from worldmodel.models.dynamics import Dynamics
    from worldmodel.models.tokenizer import Tokenizer
    from worldmodel.progress import console, progress_bar
    from worldmodel.results import write_stage_metrics
    from worldmodel.runtime import setup_process
    from worldmodel.utils import atomic_path, write_tsv
    from worldmodel.viz import rollout_media, sweep_frames_figure

    e = params.evaluate
    with tracked_run(track, STAGE, params, ("base", "evaluate")) as tracker:
        device, _, _ = setup_process(
            params.base.device, params.base.torch_threads, params.base.seed
        )
        tok, tok_meta = load_model(tokenizer, Tokenizer, device)
        dyn, dyn_meta = load_model(dynamics, Dynamics, device)
        lpips = load_lpips()
        ev = Evaluator.from_models(
            tok,
            tok_meta=tok_meta,
            dynamics=dyn,
            dyn_meta=dyn_meta,
            e=e,
            device=device,
            lpips=lpips,
            seed=params.base.seed,
        )
        t0 = time.perf_counter()
        with progress_bar(STAGE, 1, "window-steps/s") as bar:
            store = EpisodeStore(episodes)
            report = evaluate_store(
                ev,
                store,
                e,
                dyn.cfg.k_max,
                log=lambda line: console.print(f"{STAGE}: {line}"),
                on_progress=lambda done, n: bar(done, done / (time.perf_counter() - t0), total=n),
            )
        if e.probe_windows:
            report.summary["overall"]["probe_r2"] = probe_tasks(
                store=store,
                latents=latents,
                dynamics=dyn,
                dyn_meta=dyn_meta,
                e=e,
                seed=params.base.seed,
            )
        write_tsv(rollout_tsv, report.rows, list(report.rows[0]), digits=5)
        write_tsv(sweep_tsv, report.sweep, list(report.sweep[0]))
        with atomic_path(out_dir) as tmp:
            tmp.mkdir()
            rollout_media(
                tmp,
                rows=report.rows,
                sweep=report.sweep,
                windows=report.media,
                context=e.context,
                horizon=e.horizon,
                n_media=e.gifs,
                steps=e.steps,
            )
            sweep_frames_figure(
                tmp / "sampler_sweep_frames.png",
                report.sweep_frames,
                e.sweep_horizon,
                report.media[0][0],
            )
        write_stage_metrics(metrics, STAGE, report.summary)
        if tracker is not None:
            from worldmodel.tracking import runs_of_models

            runs_of_models(tracker, {"tokenizer": tokenizer, "dynamics": dynamics})
            tracker.set_tag("lpips", "available" if lpips is not None else "unavailable")
            s = report.summary
            tracker.log_metrics({"overall": s["overall"], "tasks": s["tasks"]})
            tracker.log_artifact(out_dir, "eval")
    console.print(f"{STAGE}: {result_line(report.summary['overall'])}")
    return report.summary


def probe_tasks(
    *,
    store: Any,
    latents: Path,
    dynamics: Any,
    dyn_meta: Any,
    e: Any,
    seed: int,
) -> dict[str, Any]:
    """Each task's position probe (``worldmodel.probe.probe_positions``): ``{task: table}``."""
    from worldmodel.data.latents import LatentStore
    from worldmodel.probe import probe_positions
    from worldmodel.progress import console
    from worldmodel.tasks import success_spec

    lat, out = LatentStore(latents), {}
    for task in store.tasks:
        try:
            success_spec(task)
        except ValueError:
            console.print(f"{STAGE}: {task}: no success positions are defined; no probe")
            continue
        t0 = time.perf_counter()
        table = probe_positions(
            store,
            lat,
            task,
            dynamics,
            tau_ctx=dyn_meta.params.dynamics.tau_ctx,
            window=dyn_meta.params.dynamics.long_seq_len,
            windows=e.probe_windows,
            context=e.context,
            horizons=tuple(h for h in e.sweep_at if h <= e.horizon),
            steps=e.steps,
            seed=seed,
            kinds=("ridge", "mlp"),
        )
        out[task] = table
        h1 = next((k for k in table if k.startswith("model_h")), None)
        shown = ["tokenizer", "tokenizer_mlp"] + ([h1, f"{h1}_mlp"] if h1 else [])
        cells = "; ".join(
            src.replace("_", " ") + ": " + ", ".join(f"{n} {v:.2f}" for n, v in table[src].items())
            for src in shown
        )
        console.print(
            f"{STAGE}: {task}: probe R² of positions from latents, {cells} "
            f"({time.perf_counter() - t0:.0f} s)"
        )
    return out


@app.command()
def main(params_file: Path = PARAMS_OPTION) -> None:
    """Evaluate world-model rollouts on held-out episodes against baselines."""
    stage_main(run, params_file)


if __name__ == "__main__":
    app()
