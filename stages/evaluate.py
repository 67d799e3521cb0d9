"""`evaluate` stage: autoregressive rollouts on held-out episodes against baselines.

    python -m stages.evaluate       # as dvc.yaml runs it
    wm evaluate

Writes ``metrics/evaluate.json`` (headline numbers for `dvc metrics diff`),
``metrics/rollout.tsv`` (per horizon step, one column per method and metric, for
`dvc plots`), ``metrics/sampler_sweep.tsv`` and, under ``data/eval/``, PNG plots, GIFs
and strips (context | truth | model | repeat-last). Signal level: tau = 1 is clean.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from stages.common import PARAMS_OPTION, err_console, stage_main, tracked_run
from worldmodel.config import Params

STAGE = "evaluate"
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _mean(x: Any) -> float:
    import numpy as np

    return float(np.mean(x))


def _summary(scores: dict[str, dict[str, Any]], horizon: int, at: list[int]) -> dict[str, Any]:
    """Headline numbers of one task (or all tasks pooled) over horizons ``1..horizon``."""
    import numpy as np

    def curve(method: str, metric: str) -> np.ndarray:
        return scores[method][metric][:, :horizon].mean(0)

    model, rep = curve("model", "psnr"), curve("repeat_last", "psnr")
    out: dict[str, Any] = {}
    for h in at:
        if h <= horizon:
            out[f"psnr_h{h}"] = round(float(model[h - 1]), 3)
            out[f"ssim_h{h}"] = round(float(curve("model", "ssim")[h - 1]), 4)
            out[f"lpips_h{h}"] = (
                round(float(curve("model", "lpips")[h - 1]), 4)
                if "lpips" in scores["model"]
                else None
            )
            out[f"repeat_last_psnr_h{h}"] = round(float(rep[h - 1]), 3)
    gain = model - rep
    out["gain_over_repeat_last_db"] = round(float(gain.mean()), 3)
    out["min_gain_h4_plus_db"] = round(float(gain[3:].min()), 3) if horizon >= 4 else None
    shuffled = curve("shuffled_actions", "psnr")
    out["action_sensitivity_db"] = round(float((model - shuffled)[horizon - 1]), 3)
    out["action_sensitivity_mean_db"] = round(float((model - shuffled).mean()), 3)
    out["exposure_bias_db"] = round(float((curve("teacher_forced", "psnr") - model).mean()), 3)
    out["tokenizer_ceiling_psnr"] = round(float(curve("tokenizer_ceiling", "psnr").mean()), 3)
    out["teacher_forced_psnr"] = round(float(curve("teacher_forced", "psnr").mean()), 3)
    out["model_psnr_mean"] = round(float(model.mean()), 3)
    return out


def run(
    params: Params,
    episodes: Path = Path("data/episodes.h5"),
    tokenizer: Path = Path("data/tokenizer/model.pt"),
    dynamics: Path = Path("data/dynamics/model.pt"),
    out_dir: Path = Path("data/eval"),
    metrics: Path = Path("metrics/evaluate.json"),
    rollout_tsv: Path = Path("metrics/rollout.tsv"),
    sweep_tsv: Path = Path("metrics/sampler_sweep.tsv"),
    track: bool = True,
) -> dict[str, Any]:
    """Score rollouts and baselines on validation windows of every task."""
    import numpy as np
    import torch

    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.dynamics_training import load_dynamics
    from worldmodel.evaluation import METHODS, Evaluator, ci95, val_windows
    from worldmodel.forcing import step_sizes
    from worldmodel.metrics import load_lpips
    from worldmodel.tokenizer_training import load_tokenizer
    from worldmodel.train import resolve_device
    from worldmodel.utils import atomic_path, write_json
    from worldmodel.viz import rollout_media

    e = params.evaluate
    device = resolve_device(params.base.device)
    if params.base.torch_threads:
        torch.set_num_threads(params.base.torch_threads)
    tok, tok_meta = load_tokenizer(tokenizer, device)
    dyn, dyn_meta = load_dynamics(dynamics, device)
    dp = dyn_meta["params"]["dynamics"]
    tau_ctx, window = float(dp["tau_ctx"]), int(dp["long_seq_len"])
    if e.extended_horizon < 2 * window:
        err_console.print(
            f"{STAGE}: note: extended_horizon {e.extended_horizon} < 2 x training window {window}"
        )
    lpips = load_lpips()
    ev = Evaluator(
        tok,
        dyn,
        e.context,
        tau_ctx,
        window,
        int(tok_meta["params"]["tokenizer"]["clip_frames"]),
        device,
        lpips,
        params.base.seed,
        e.batch_size,
    )
    store = EpisodeStore(episodes)
    length = e.context + e.extended_horizon
    t0 = time.perf_counter()
    per_task: dict[str, Any] = {}
    pooled: dict[str, dict[str, list]] = {m: {} for m in METHODS}
    media_windows = []
    for task in store.tasks:
        w = val_windows(store, task, length, e.windows)
        err_console.print(
            f"{STAGE}: {task}: {len(w.frames)} held-out windows x {length} frames, K={e.steps}"
        )
        scores = ev.run(w, e.extended_horizon, e.steps)
        summary = _summary(scores, e.horizon, e.sweep_at)
        summary["extended_model_psnr_mean"] = round(_mean(scores["model"]["psnr"]), 3)
        summary["extended_repeat_last_psnr_mean"] = round(_mean(scores["repeat_last"]["psnr"]), 3)
        summary["windows"] = len(w.frames)
        per_task[task] = summary
        for m in METHODS:
            for k, v in scores[m].items():
                pooled[m].setdefault(k, []).append(v)
        media_windows.append((task, w, ev.last_pixels))
    scores = {m: {k: np.concatenate(v) for k, v in d.items()} for m, d in pooled.items()}
    overall = _summary(scores, e.horizon, e.sweep_at)

    ks = [int(round(1 / d)) for d in step_sizes(int(dp["k_max"]))]  # 1, 2, 4, ..., k_max
    w0 = val_windows(store, store.tasks[0], e.context + e.sweep_horizon, e.sweep_windows)
    sweep = ev.sweep(w0, e.sweep_horizon, ks, e.sweep_at)
    by_k = {r["k"]: r for r in sweep}
    k4, kmax = by_k.get(4, sweep[0]), sweep[-1]
    h_last = max(h for h in e.sweep_at if h <= e.sweep_horizon)
    overall.update(
        {
            "sampler_k4_minus_kmax_psnr_db": round(
                k4[f"psnr_h{h_last}"] - kmax[f"psnr_h{h_last}"], 3
            ),
            "sampler_k4_sharpness": k4[f"sharpness_h{e.sweep_horizon}"],
            "sampler_kmax_sharpness": kmax[f"sharpness_h{e.sweep_horizon}"],
            "fps_k4_batched": k4["fps_batched"],
            "fps_kmax_batched": kmax["fps_batched"],
            "fps_k4_batch1": k4["fps_batch1"],
            "fps_kmax_batch1": kmax["fps_batch1"],
            "fps_speedup_k4_over_kmax": round(k4["fps_batched"] / kmax["fps_batched"], 2),
            "device": device.type,
            "lpips_available": lpips is not None,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )
    result = {"overall": overall, "tasks": per_task, "sampler_sweep": sweep}

    # rollout.tsv: one row per horizon step, one column per method x metric (+ CI).
    cols = ["horizon"]
    rows = []
    for h in range(e.extended_horizon):
        row = {"horizon": h + 1}
        for m in METHODS:
            for k, v in scores[m].items():
                row[f"{k}/{m}"] = float(v[:, h].mean())
                if k == "psnr":
                    row[f"psnr_ci95/{m}"] = ci95(v[:, h])
        rows.append(row)
    cols += [c for c in rows[0] if c != "horizon"]
    with atomic_path(rollout_tsv) as tmp:
        tmp.write_text(
            "\n".join(["\t".join(cols)] + ["\t".join(f"{r[c]:.5g}" for c in cols) for r in rows])
            + "\n"
        )
    sweep_cols = list(sweep[0])
    with atomic_path(sweep_tsv) as tmp:
        tmp.write_text(
            "\n".join(
                ["\t".join(sweep_cols)] + ["\t".join(str(r[c]) for c in sweep_cols) for r in sweep]
            )
            + "\n"
        )
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        rollout_media(tmp, rows, sweep, media_windows, e.context, e.gifs, METHODS)
    write_json(metrics, result)
    with tracked_run(track, STAGE, params, ("base", "evaluate")) as tracker:
        if tracker is not None:
            tracker.set_tag("lpips", "available" if lpips is not None else "unavailable")
            tracker.log_metrics(
                {"overall": {k: v for k, v in overall.items() if k != "device"}, "tasks": per_task}
            )
            tracker.log_artifact(out_dir, "eval")
    o = overall
    err_console.print(
        f"{STAGE}: PSNR h1/h4/h16 {o.get('psnr_h1')}/{o.get('psnr_h4')}/{o.get('psnr_h16')} dB; gain over "
        f"repeat-last {o['gain_over_repeat_last_db']} dB; action sensitivity {o['action_sensitivity_db']} dB; "
        f"exposure bias {o['exposure_bias_db']} dB; K=4 vs K=max {o['sampler_k4_minus_kmax_psnr_db']} dB at "
        f"{o['fps_speedup_k4_over_kmax']}x fps"
    )
    return result


@app.command()
def main(params_file: Path = PARAMS_OPTION) -> None:
    """Evaluate world-model rollouts on held-out episodes against baselines."""
    stage_main(run, params_file)


if __name__ == "__main__":
    app()
