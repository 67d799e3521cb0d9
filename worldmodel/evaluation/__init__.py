"""Evaluation of a tokenizer + dynamics pair on held-out episodes.

- :mod:`worldmodel.evaluation.rollouts`: the :class:`Evaluator` (rollouts and baselines,
  scored per window and horizon step);
- :mod:`worldmodel.evaluation.summary`: headline numbers and per-horizon rows;
- :func:`evaluate_store` (here): every task of an episode store, pooled and per task,
  plus the sampler sweep, as the `evaluate` stage writes it.

SIGNAL-LEVEL CONVENTION: ``tau = 1`` clean, ``tau = 0`` pure noise (worldmodel/forcing.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from worldmodel.config import EvaluateParams
from worldmodel.data.episodes import EpisodeStore
from worldmodel.data.windows import PixelWindows, heldout_windows
from worldmodel.evaluation.rollouts import METHODS, Evaluator
from worldmodel.evaluation.summary import result_line, rollout_rows, sampler_headline, summarize
from worldmodel.forcing import step_sizes

__all__ = ["METHODS", "EvaluationReport", "Evaluator", "evaluate_store", "result_line"]


@dataclass
class EvaluationReport:
    """What one evaluation produced.

    Attributes:
        summary: ``{"overall": ..., "tasks": {task: ...}, "sampler_sweep": [...]}``, the
            content of ``metrics/evaluate.json``.
        rows: per-horizon rows of the pooled scores (``metrics/rollout.tsv``).
        sweep: one row per sampler step count K (``metrics/sampler_sweep.tsv``).
        media: per task, its windows and the decoded pixels of each method (for GIFs).
    """

    summary: dict[str, Any]
    rows: list[dict[str, float]]
    sweep: list[dict[str, Any]]
    media: list[tuple[str, PixelWindows, dict[str, Any]]]


def evaluate_store(
    ev: Evaluator,
    store: EpisodeStore,
    e: EvaluateParams,
    k_max: int,
    log: Callable[[str], None] = lambda _: None,
) -> EvaluationReport:
    """Score every task's held-out windows, pool them, and sweep the sampler's K.

    Args:
        ev: the evaluator (models, context level, sampler).
        store: the episode store; windows come from its validation episodes.
        e: the `evaluate` params.
        k_max: the dynamics model's finest step count (the sweep goes 1, 2, 4, ..., k_max).
        log: receives one line per task.
    """
    if e.extended_horizon < 2 * ev.window:
        log(f"note: extended_horizon {e.extended_horizon} < 2 x training window {ev.window}")
    length = e.context + e.extended_horizon
    t0 = time.perf_counter()
    per_task: dict[str, Any] = {}
    pooled: dict[str, dict[str, list]] = {m: {} for m in METHODS}
    media = []
    for task in store.tasks:
        w = heldout_windows(store, task, length, e.windows)
        log(f"{task}: {len(w.frames)} held-out windows x {length} frames, K={e.steps}")
        scores = ev.run(w, e.extended_horizon, e.steps)
        per_task[task] = {**summarize(scores, e.horizon, e.sweep_at), "windows": len(w.frames)}
        for m in METHODS:
            for k, v in scores[m].items():
                pooled[m].setdefault(k, []).append(v)
        media.append((task, w, ev.last_pixels))
    scores = {m: {k: np.concatenate(v) for k, v in d.items()} for m, d in pooled.items()}
    overall = summarize(scores, e.horizon, e.sweep_at)

    ks = [int(round(1 / d)) for d in step_sizes(k_max)]  # 1, 2, 4, ..., k_max
    w0 = heldout_windows(store, store.tasks[0], e.context + e.sweep_horizon, e.sweep_windows)
    sweep = ev.sweep(w0, e.sweep_horizon, ks, e.sweep_at)
    overall.update(sampler_headline(sweep, e.sweep_horizon, e.sweep_at))
    overall.update(
        {
            "device": ev.device.type,
            "lpips_available": ev.lpips is not None,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )
    summary = {"overall": overall, "tasks": per_task, "sampler_sweep": sweep}
    return EvaluationReport(summary, rollout_rows(scores), sweep, media)
