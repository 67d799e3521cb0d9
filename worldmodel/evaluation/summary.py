"""Headline numbers and per-horizon rows from the evaluator's scores.

``scores`` is ``{method: {metric: (N, H) array}}`` as :meth:`Evaluator.run` returns it (one
value per window and horizon step). Everything ``metrics/evaluate.json``,
``metrics/rollout.tsv`` and ``scripts/bench_dynamics.py`` report is derived here, so the
stage and the benchmark cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worldmodel.evaluation.rollouts import METHODS


def curve(scores: dict[str, dict[str, np.ndarray]], method: str, metric: str, horizon: int):
    """Mean over windows of ``method``'s ``metric`` at horizon steps ``1..horizon``: ``(horizon,)``."""
    return scores[method][metric][:, :horizon].mean(0)


def action_and_gain(scores: dict[str, dict[str, np.ndarray]], horizon: int) -> dict[str, Any]:
    """The numbers that say whether the model beats repeat-last and uses its actions.

    Needs ``model``, ``repeat_last`` and ``shuffled_actions`` PSNR. Returns (dB):
    ``gain_over_repeat_last_db`` (mean over h = 1..horizon of model minus repeat-last),
    ``min_gain_h4_plus_db`` (its smallest value at h >= 4), ``action_sensitivity_db``
    (model minus shuffled actions at h = horizon) and ``action_sensitivity_mean_db``.
    """
    model = curve(scores, "model", "psnr", horizon)
    gain = model - curve(scores, "repeat_last", "psnr", horizon)
    shuffled = model - curve(scores, "shuffled_actions", "psnr", horizon)
    return {
        "gain_over_repeat_last_db": round(float(gain.mean()), 3),
        "min_gain_h4_plus_db": round(float(gain[3:].min()), 3) if horizon >= 4 else None,
        "action_sensitivity_db": round(float(shuffled[horizon - 1]), 3),
        "action_sensitivity_mean_db": round(float(shuffled.mean()), 3),
    }


def summarize(
    scores: dict[str, dict[str, np.ndarray]], horizon: int, at: list[int]
) -> dict[str, Any]:
    """Headline numbers of one task (or all tasks pooled) over horizons ``1..horizon``."""
    model = curve(scores, "model", "psnr", horizon)
    ssim = curve(scores, "model", "ssim", horizon)
    rep = curve(scores, "repeat_last", "psnr", horizon)
    has_lpips = "lpips" in scores["model"]
    lpips = curve(scores, "model", "lpips", horizon) if has_lpips else None
    out: dict[str, Any] = {}
    for h in at:
        if h <= horizon:
            out[f"psnr_h{h}"] = round(float(model[h - 1]), 3)
            out[f"ssim_h{h}"] = round(float(ssim[h - 1]), 4)
            out[f"lpips_h{h}"] = round(float(lpips[h - 1]), 4) if lpips is not None else None
            out[f"repeat_last_psnr_h{h}"] = round(float(rep[h - 1]), 3)
    out.update(action_and_gain(scores, horizon))
    teacher = curve(scores, "teacher_forced", "psnr", horizon)
    out["exposure_bias_db"] = round(float((teacher - model).mean()), 3)
    out["tokenizer_ceiling_psnr"] = round(
        float(curve(scores, "tokenizer_ceiling", "psnr", horizon).mean()), 3
    )
    out["teacher_forced_psnr"] = round(float(teacher.mean()), 3)
    out["model_psnr_mean"] = round(float(model.mean()), 3)
    out["extended_model_psnr_mean"] = round(float(scores["model"]["psnr"].mean()), 3)
    out["extended_repeat_last_psnr_mean"] = round(float(scores["repeat_last"]["psnr"].mean()), 3)
    return out


def ci95(x: np.ndarray) -> float:
    """Half-width of a normal 95% confidence interval of the mean over axis 0."""
    return float(1.96 * x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def rollout_rows(scores: dict[str, dict[str, np.ndarray]]) -> list[dict[str, float]]:
    """One row per horizon step: ``horizon`` and ``<metric>/<method>`` means, with a
    ``psnr_ci95/<method>`` half-width beside each PSNR (``metrics/rollout.tsv``)."""
    steps = scores["model"]["psnr"].shape[1]
    rows = []
    for h in range(steps):
        row = {"horizon": h + 1}
        for m in METHODS:
            for k, v in scores[m].items():
                row[f"{k}/{m}"] = float(v[:, h].mean())
                if k == "psnr":
                    row[f"psnr_ci95/{m}"] = ci95(v[:, h])
        rows.append(row)
    return rows


def sampler_headline(
    sweep: list[dict[str, Any]], sweep_horizon: int, at: list[int]
) -> dict[str, Any]:
    """K = 4 against K = k_max from the sampler sweep's rows: quality, sharpness, speed."""
    by_k = {r["k"]: r for r in sweep}
    k4, kmax = by_k.get(4, sweep[0]), sweep[-1]
    h_last = max(h for h in at if h <= sweep_horizon)
    return {
        "sampler_k4_minus_kmax_psnr_db": round(k4[f"psnr_h{h_last}"] - kmax[f"psnr_h{h_last}"], 3),
        "sampler_k4_sharpness": k4[f"sharpness_h{sweep_horizon}"],
        "sampler_kmax_sharpness": kmax[f"sharpness_h{sweep_horizon}"],
        "fps_k4_batched": k4["fps_batched"],
        "fps_kmax_batched": kmax["fps_batched"],
        "fps_k4_batch1": k4["fps_batch1"],
        "fps_kmax_batch1": kmax["fps_batch1"],
        "fps_speedup_k4_over_kmax": round(k4["fps_batched"] / kmax["fps_batched"], 2),
    }


def result_line(o: dict[str, Any]) -> str:
    """One console line of the overall headline numbers."""
    return (
        f"PSNR h1/h4/h16 {o.get('psnr_h1')}/{o.get('psnr_h4')}/{o.get('psnr_h16')} dB; gain over "
        f"repeat-last {o['gain_over_repeat_last_db']} dB; action sensitivity "
        f"{o['action_sensitivity_db']} dB; exposure bias {o['exposure_bias_db']} dB; K=4 vs "
        f"K=max {o['sampler_k4_minus_kmax_psnr_db']} dB at {o['fps_speedup_k4_over_kmax']}x fps"
    )
