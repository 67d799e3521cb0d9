"""Evaluation of a tokenizer + dynamics pair on held-out episodes.

- :mod:`worldmodel.evaluation.rollouts`: the :class:`Evaluator` (rollouts and baselines,
  scored per window and horizon step);
- :mod:`worldmodel.evaluation.summary`: headline numbers and per-horizon rows;
- :func:`evaluate_store` (here): every task of an episode store, pooled and per task,
  plus the sampler sweep, as the `evaluate` stage writes it.
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
from worldmodel.evaluation.summary import (
    Scores,
    extended_summary,
    result_line,
    rollout_rows,
    sampler_headline,
    summarize,
)
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
        media: per task, its extended windows and the decoded pixels of each method (GIFs).
        sweep_frames: the sweep's last frame of a few windows, per row label ("truth",
            "tokenizer ceiling", "K = 1", ...), ``(n, S, S, 3)`` in [0, 1].
    """

    summary: dict[str, Any]
    rows: list[dict[str, float]]
    sweep: list[dict[str, Any]]
    media: list[tuple[str, PixelWindows, dict[str, Any]]]
    sweep_frames: dict[str, Any]


def evaluate_store(
    ev: Evaluator,
    store: EpisodeStore,
    e: EvaluateParams,
    k_max: int,
    *,
    split: str = "test",
    log: Callable[[str], None] = lambda _: None,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> EvaluationReport:
    """Score every task's held-out windows, pool them, and sweep the sampler's K.

    Per task: ``e.windows`` windows of ``C + H`` frames for the headline numbers, and
    ``e.extended_windows`` longer ones (``C + extended_horizon``) that check rollouts
    past the longest training window.

    Args:
        ev: the evaluator (models, context level, sampler).
        store: the episode store; windows come from its ``split`` episodes (``test``
            for the headline numbers; ``val`` for tuning).
        e: the `evaluate` params.
        k_max: the dynamics model's finest step count (the sweep goes 1, 2, 4, ..., k_max).
        log: receives one line per task.
        on_progress: ``(done, total)`` after each batch of rollouts, in windows x sampler
            steps (the cost of a rollout).
    """
    if e.extended_horizon < 2 * ev.window:
        log(f"note: extended_horizon {e.extended_horizon} < 2 x training window {ev.window}")
    t0 = time.perf_counter()
    ks = [int(round(1 / d)) for d in step_sizes(k_max)]  # 1, 2, 4, ..., k_max
    # per task: many windows of C + H frames for the headline numbers (several per
    # episode: a tight interval), and fewer, longer ones past the longest training window
    windows = {
        task: (
            heldout_windows(store, task, e.context + e.horizon, e.windows, split=split),
            heldout_windows(
                store, task, e.context + e.extended_horizon, e.extended_windows, split=split
            ),
        )
        for task in store.tasks
    }
    w0 = heldout_windows(
        store, store.tasks[0], e.context + e.sweep_horizon, e.sweep_windows, split=split
    )
    # work to do, in windows x sampler steps (what a rollout costs): model, teacher-forced
    # and shuffled actions per window at K = e.steps; per K of the sweep, all its windows
    # and one more at batch size 1
    total = sum(3 * e.steps * (len(w.frames) + len(wx.frames)) for w, wx in windows.values())
    total += sum(ks) * (len(w0.frames) + 1)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        on_progress(done, total)

    ev.on_rollout = advance
    per_task: dict[str, Any] = {}
    pooled: dict[str, list[Scores]] = {"headline": [], "extended": []}
    clusters: dict[str, list[np.ndarray]] = {"headline": [], "extended": []}
    media = []
    moving: dict[str, np.ndarray] = {}  # per task: fraction of pixels that move (N, H)
    for task, (w, wx) in windows.items():
        n_eps = len(np.unique(w.episodes))
        log(
            f"{task}: {len(w.frames)} {split} windows of {n_eps} episodes x {e.context} + {e.horizon} frames, K={e.steps}"
        )
        scores = ev.run(w, e.horizon, e.steps)
        moving[task] = ev.last_moving_fraction
        log(f"{task}: {len(wx.frames)} {split} windows x {e.context} + {e.extended_horizon} frames")
        extended = ev.run(wx, e.extended_horizon, e.steps)
        media.append((task, wx, ev.last_pixels))
        per_task[task] = summarize(
            scores, horizon=e.horizon, at=e.sweep_at, clusters=w.episodes, seed=ev.seed
        )
        per_task[task]["moving_pixel_fraction"] = round(float(moving[task].mean()), 4)
        per_task[task].update(extended_summary(extended, wx.episodes, ev.seed))
        for part, sc, eps in (
            ("headline", scores, w.episodes),
            ("extended", extended, wx.episodes),
        ):
            pooled[part].append(sc)
            clusters[part].append(eps)  # episode indices are unique across tasks

    def pool(part: str) -> tuple[Scores, np.ndarray]:
        runs = pooled[part]
        merged = {
            m: {k: np.concatenate([r[m][k] for r in runs]) for k in runs[0][m]} for m in runs[0]
        }
        return merged, np.concatenate(clusters[part])

    scores, episodes = pool("headline")
    overall = summarize(scores, horizon=e.horizon, at=e.sweep_at, clusters=episodes, seed=ev.seed)
    overall["moving_pixel_fraction"] = round(float(np.concatenate(list(moving.values())).mean()), 4)
    overall.update(extended_summary(*pool("extended"), ev.seed))

    log(f"sampler sweep: K in {ks} on {len(w0.frames)} {store.tasks[0]} windows")
    sweep, sweep_psnr = ev.sweep(w0, e.sweep_horizon, ks, e.sweep_at)
    for row in sweep:  # the K the headline rollouts use, marked in the sweep's charts
        row["default_k"] = int(row["k"] == e.steps)
    overall.update(
        sampler_headline(
            sweep,
            per_window_psnr=sweep_psnr,
            sweep_horizon=e.sweep_horizon,
            at=e.sweep_at,
            clusters=w0.episodes,
            seed=ev.seed,
        )
    )
    overall.update(
        {
            "split": split,
            "device": ev.device.type,
            "lpips_available": ev.lpips is not None,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )
    ev.on_rollout = None
    summary = {"overall": overall, "tasks": per_task, "sampler_sweep": sweep}
    rows = rollout_rows(scores, episodes, ev.seed)
    return EvaluationReport(
        summary, rows=rows, sweep=sweep, media=media, sweep_frames=ev.last_sweep_frames
    )
