"""Headline numbers and per-horizon rows from the evaluator's scores, with their CIs.

``scores`` is ``{method: {metric: (N, H) array}}`` as :meth:`Evaluator.run` returns it (one
value per window and horizon step); ``clusters`` ``(N,)`` names each window's episode.
Everything ``metrics/evaluate.json``, ``metrics/rollout.tsv`` and
``scripts/bench_dynamics.py`` report is derived here, so the stage and the benchmark
cannot drift apart. Every headline difference comes with a paired, episode-clustered
bootstrap 95% interval (:mod:`worldmodel.evaluation.stats`) as ``<name>_ci95: [low, high]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worldmodel.evaluation.rollouts import METHODS
from worldmodel.evaluation.stats import clustered_ci

Scores = dict[str, dict[str, np.ndarray]]


def curve(scores: Scores, method: str, metric: str, horizon: int) -> np.ndarray:
    """Mean over windows of ``method``'s ``metric`` at horizon steps ``1..horizon``: ``(horizon,)``."""
    return scores[method][metric][:, :horizon].mean(0)


def per_window(scores: Scores, horizon: int) -> dict[str, np.ndarray]:
    """The per-window quantities ``(N,)`` whose means are the headline numbers (dB).

    - ``gain_over_repeat_last_db``: model minus repeat-last PSNR, mean over h = 1..horizon;
    - ``action_sensitivity_db``: model minus shuffled-actions PSNR at h = horizon (the
      shuffled-actions cost; about 0 for a model that ignores its actions);
    - ``action_sensitivity_mean_db``: the same, mean over h = 1..horizon;
    - ``moving_gain_over_repeat_last_db``, ``moving_action_sensitivity_db``: the first two
      on the pixels that move (PSNR on the pixels where the true frame differs from the
      last context frame): whether the model moves the right things where the moving
      parts are a few percent of the frame;
    - ``exposure_bias_db``: teacher-forced minus rollout PSNR, mean over h (when scored);
    - ``tokenizer_ceiling_psnr``: decode(encode(truth)) PSNR, mean over h (when scored).

    Each is computed per window first, so a difference is paired: both arms are the
    same windows with the same sampling noise.
    """

    def psnr(method: str) -> np.ndarray:
        return scores[method]["psnr"][:, :horizon].astype(np.float64)

    model = psnr("model")
    shuffled = model - psnr("shuffled_actions")
    out = {
        "gain_over_repeat_last_db": (model - psnr("repeat_last")).mean(1),
        "action_sensitivity_db": shuffled[:, horizon - 1],
        "action_sensitivity_mean_db": shuffled.mean(1),
    }
    if "psnr_moving" in scores["model"]:  # the same on the pixels that move
        moving = scores["model"]["psnr_moving"][:, :horizon].astype(np.float64)
        rep = scores["repeat_last"]["psnr_moving"][:, :horizon]
        shuf = scores["shuffled_actions"]["psnr_moving"][:, :horizon]
        out["moving_gain_over_repeat_last_db"] = (moving - rep).mean(1)
        out["moving_action_sensitivity_db"] = (moving - shuf)[:, horizon - 1]
    if "teacher_forced" in scores:
        out["exposure_bias_db"] = (psnr("teacher_forced") - model).mean(1)
    if "tokenizer_ceiling" in scores:
        out["tokenizer_ceiling_psnr"] = psnr("tokenizer_ceiling").mean(1)
    return out


def with_ci(
    values: dict[str, np.ndarray], clusters: np.ndarray | None, seed: int, digits: int = 3
) -> dict[str, Any]:
    """``{name: mean}`` plus ``{name_ci95: [low, high]}`` when ``clusters`` are given."""
    out: dict[str, Any] = {}
    for name, v in values.items():
        out[name] = round(float(v.mean()), digits)
        if clusters is not None:
            lo, hi = clustered_ci(v, clusters, seed)
            out[f"{name}_ci95"] = [round(lo, digits), round(hi, digits)]
    return out


def action_and_gain(
    scores: Scores, horizon: int, clusters: np.ndarray | None = None, seed: int = 0
) -> dict[str, Any]:
    """Whether the model beats repeat-last and uses its actions (needs ``model``,
    ``repeat_last`` and ``shuffled_actions`` PSNR); with ``clusters``, each with its CI.

    Returns the first three quantities of :func:`per_window` and
    ``min_gain_h4_plus_db``, the smallest per-horizon mean gain at h >= 4.
    """
    wanted = (
        "gain_over_repeat_last_db",
        "action_sensitivity_db",
        "action_sensitivity_mean_db",
        "moving_gain_over_repeat_last_db",
        "moving_action_sensitivity_db",
    )
    values = {k: v for k, v in per_window(scores, horizon).items() if k in wanted}
    out = with_ci(values, clusters, seed)
    out["min_gain_h4_plus_db"] = min_gain_h4_plus(scores, horizon)
    return out


def min_gain_h4_plus(scores: Scores, horizon: int) -> float | None:
    """The smallest per-horizon mean gain over repeat-last at h >= 4 (dB; None if H < 4)."""
    if horizon < 4:
        return None
    gain = curve(scores, "model", "psnr", horizon) - curve(scores, "repeat_last", "psnr", horizon)
    return round(float(gain[3:].min()), 3)


def summarize(
    scores: Scores, horizon: int, at: list[int], clusters: np.ndarray, seed: int = 0
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
    out.update(with_ci(per_window(scores, horizon), clusters, seed))
    out["min_gain_h4_plus_db"] = min_gain_h4_plus(scores, horizon)
    out["teacher_forced_psnr"] = round(
        float(curve(scores, "teacher_forced", "psnr", horizon).mean()), 3
    )
    out["model_psnr_mean"] = round(float(model.mean()), 3)
    out["windows"] = int(len(clusters))
    out["episodes"] = int(len(np.unique(clusters)))
    return out


def extended_summary(scores: Scores, clusters: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Numbers of the long rollouts (every scored step, past the training window): mean
    PSNR of the model and of repeat-last, and the gain with its CI."""
    model = scores["model"]["psnr"].astype(np.float64)
    rep = scores["repeat_last"]["psnr"]
    out = {
        "extended_model_psnr_mean": round(float(model.mean()), 3),
        "extended_repeat_last_psnr_mean": round(float(rep.mean()), 3),
    }
    out.update(
        with_ci({"extended_gain_over_repeat_last_db": (model - rep).mean(1)}, clusters, seed)
    )
    out["extended_windows"] = int(len(clusters))
    return out


def rollout_rows(scores: Scores, clusters: np.ndarray, seed: int = 0) -> list[dict[str, float]]:
    """One row per horizon step (``metrics/rollout.tsv``).

    Columns: ``horizon``; ``<metric>/<method>`` window means; ``psnr_ci95_low/<method>``
    and ``psnr_ci95_high/<method>``; and the paired differences in dB with their
    intervals: ``gain_over_repeat_last_db`` (model - repeat-last), ``action_sensitivity_db``
    (model - shuffled actions), ``exposure_bias_db`` (teacher-forced - model), each with
    ``_ci95_low`` / ``_ci95_high``.
    """
    steps = scores["model"]["psnr"].shape[1]
    model = scores["model"]["psnr"]
    diffs = {
        "gain_over_repeat_last_db": model - scores["repeat_last"]["psnr"],
        "action_sensitivity_db": model - scores["shuffled_actions"]["psnr"],
        "exposure_bias_db": scores["teacher_forced"]["psnr"] - model,
    }
    rows = []
    for h in range(steps):
        row: dict[str, float] = {"horizon": h + 1}
        for m in METHODS:
            for k, v in scores[m].items():
                row[f"{k}/{m}"] = float(v[:, h].mean())
                if k == "psnr":
                    lo, hi = clustered_ci(v[:, h], clusters, seed)
                    row[f"psnr_ci95_low/{m}"], row[f"psnr_ci95_high/{m}"] = lo, hi
        for name, d in diffs.items():
            row[name] = float(d[:, h].mean())
            row[f"{name}_ci95_low"], row[f"{name}_ci95_high"] = clustered_ci(
                d[:, h], clusters, seed
            )
        rows.append(row)
    return rows


def sampler_headline(
    sweep: list[dict[str, Any]],
    per_window_psnr: dict[int, np.ndarray],
    sweep_horizon: int,
    at: list[int],
    clusters: np.ndarray,
    seed: int = 0,
) -> dict[str, Any]:
    """K = 4 against K = k_max from the sampler sweep: the paired PSNR difference at each
    swept horizon with its CI, sharpness, and speed."""
    by_k = {r["k"]: r for r in sweep}
    k4, kmax = by_k.get(4, sweep[0]), sweep[-1]
    diff = per_window_psnr[k4["k"]].astype(np.float64) - per_window_psnr[kmax["k"]]
    values = {
        f"sampler_k4_minus_kmax_psnr_db_h{h}": diff[:, h - 1] for h in at if h <= sweep_horizon
    }
    out = with_ci(values, clusters, seed)
    out.update(
        {
            "sampler_k4_sharpness": k4[f"sharpness_h{sweep_horizon}"],
            "sampler_kmax_sharpness": kmax[f"sharpness_h{sweep_horizon}"],
            "sampler_k4_sharpness_vs_ceiling": k4[f"sharpness_vs_ceiling_h{sweep_horizon}"],
            "sampler_kmax_sharpness_vs_ceiling": kmax[f"sharpness_vs_ceiling_h{sweep_horizon}"],
            "fps_k4_batched": k4["fps_batched"],
            "fps_kmax_batched": kmax["fps_batched"],
            "fps_k4_batch1": k4["fps_batch1"],
            "fps_kmax_batch1": kmax["fps_batch1"],
            "fps_speedup_k4_over_kmax": round(k4["fps_batched"] / kmax["fps_batched"], 2),
        }
    )
    return out


def result_line(o: dict[str, Any]) -> str:
    """One console line of the overall headline numbers."""
    h_last = max(
        int(k.rsplit("_h", 1)[1])
        for k in o
        if k.startswith("sampler_k4_minus_kmax_psnr_db_h") and not k.endswith("_ci95")
    )
    ci = o.get("gain_over_repeat_last_db_ci95", [None, None])
    return (
        f"PSNR h1/h4/h16 {o.get('psnr_h1')}/{o.get('psnr_h4')}/{o.get('psnr_h16')} dB; gain over "
        f"repeat-last {o['gain_over_repeat_last_db']} dB (95% CI {ci[0]}..{ci[1]}); "
        f"shuffled-actions cost {o['action_sensitivity_db']} dB; exposure bias "
        f"{o['exposure_bias_db']} dB; K=4 vs K=max {o[f'sampler_k4_minus_kmax_psnr_db_h{h_last}']} dB "
        f"at h{h_last}, {o['fps_speedup_k4_over_kmax']}x fps"
    )
