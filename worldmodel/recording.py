"""Record pixel episodes from DMC (or synthetic) tasks into an episode store.

Determinism: episode ``i`` of task ``t`` is recorded with seed
``derive_seed(base.seed, t, i)`` for both the task's initial state and the behaviour
policy, in a freshly reseeded environment, and episodes are written in job order. The
file's arrays are therefore identical whatever the number of worker processes. Each
task's train/val/test split is drawn on its own
(:func:`~worldmodel.data.splits.assign_splits`), so a task's held-out episodes are the
same whether it is recorded alone or beside other tasks.
Workers are ``spawn``ed (GL contexts do not survive ``fork``) and each keeps one
environment, with one reused camera, per task.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.config import Params
from worldmodel.data.episodes import Episode, EpisodeWriter, TaskInfo
from worldmodel.data.splits import TEST, VAL, assign_splits
from worldmodel.envs import Env, make_env
from worldmodel.envs.policies import Policy
from worldmodel.tasks import is_synthetic, split_task
from worldmodel.utils import atomic_path, derive_seed, remove_stale_tmp


@dataclass(frozen=True)
class Job:
    """One episode to record."""

    index: int
    task: str
    seed: int


@dataclass
class CollectResult:
    """What a collection produced: the metrics written to ``metrics/collect.json`` and samples."""

    metrics: dict[str, Any]
    samples: dict[str, np.ndarray] = field(default_factory=dict)  # task -> (n, H, W, 3)


def record_episode(env: Env, params: Params, job: Job) -> Episode:
    """Reset ``env`` with the job's seed and run the behaviour policy for the episode."""
    c = params.collect
    policy = Policy(c.policy, env.action_spec, seed=job.seed)
    n, a = c.frames_per_episode, env.action_spec.dim
    frames = np.empty((n, c.image_size, c.image_size, 3), np.uint8)
    actions = np.zeros((n, a), np.float32)
    rewards = np.zeros(n, np.float32)
    discounts = np.ones(n, np.float32)
    frames[0] = env.reset(job.seed)
    states = np.empty((n, env.get_state().size), np.float64)
    positions = np.empty((n, env.positions().size), np.float64)
    states[0], positions[0] = env.get_state(), env.positions()
    for t in range(1, n):
        actions[t] = policy.act()
        frames[t], rewards[t], discounts[t] = env.step(actions[t])
        states[t], positions[t] = env.get_state(), env.positions()
    return Episode(
        job.task,
        seed=job.seed,
        frames=frames,
        actions=actions,
        rewards=rewards,
        discounts=discounts,
        states=states,
        positions=positions,
    )


def _env_for(params: Params, task: str) -> Env:
    c, s = params.collect, params.collect.settings(task)
    return make_env(
        task,
        image_size=c.image_size,
        camera=s.camera,
        action_repeat=s.action_repeat,
        shadows=c.shadows,
        reflections=c.reflections,
    )


# Per-process state of pool workers (spawned, so nothing leaks between runs).
_WORKER: dict[str, Any] = {}


def _init_worker(params: Params) -> None:
    _WORKER["params"] = params
    _WORKER["envs"] = {}


def _work(job: Job) -> Episode:
    params, envs = _WORKER["params"], _WORKER["envs"]
    if job.task not in envs:
        envs[job.task] = _env_for(params, job.task)
    return record_episode(envs[job.task], params, job)


def describe_tasks(params: Params) -> list[TaskInfo]:
    """Action spec and timing of each task; fails if an episode cannot hold the frames asked."""
    c = params.collect
    infos = []
    for task in c.tasks:
        env = _env_for(params, task)
        if c.frames_per_episode > env.max_frames:
            raise ValueError(
                f"collect.frames_per_episode = {c.frames_per_episode}: {task} episodes hold at "
                f"most {env.max_frames} frames at action_repeat {c.settings(task).action_repeat}"
            )
        spec = env.action_spec
        env.reset(0)  # a state to measure
        s = c.settings(task)
        camera = None if is_synthetic(task) else s.camera
        infos.append(
            TaskInfo(
                task,
                action_dim=spec.dim,
                action_low=spec.low.tolist(),
                action_high=spec.high.tolist(),
                control_timestep=env.control_timestep,
                action_repeat=s.action_repeat,
                camera=camera,
                state_dim=int(env.get_state().size),
                position_names=_position_names(task),
            )
        )
    return infos


def _position_names(task: str) -> list[str]:
    from worldmodel.tasks import POSITIONS, success_spec

    if is_synthetic(task) or split_task(task)[0] in POSITIONS:
        return success_spec(task).names
    return []


def make_jobs(params: Params) -> list[Job]:
    """Every episode to record, in file order (task-major)."""
    c = params.collect
    return [
        Job(
            index=t * c.episodes_per_task + e,
            task=task,
            seed=derive_seed(params.base.seed, task, e),
        )
        for t, task in enumerate(c.tasks)
        for e in range(c.episodes_per_task)
    ]


def run_jobs(params: Params, jobs: list[Job]) -> Iterator[Episode]:
    """Record ``jobs`` in order, in-process for one worker, else in a spawned pool."""
    workers = min(params.collect.workers, len(jobs))
    if workers <= 1:
        _init_worker(params)
        try:
            yield from map(_work, jobs)
        finally:
            _WORKER.clear()
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers, _init_worker, (params,)) as pool:
        yield from pool.imap(_work, jobs, chunksize=1)


def collect(
    params: Params,
    out: str | Path,
    on_episode: Callable[[int, int, int], None] | None = None,
    versions: dict[str, str] | None = None,
) -> CollectResult:
    """Record the episodes ``params.collect`` asks for into ``out``, atomically.

    Args:
        params: validated params (``base`` and ``collect`` are read).
        out: destination ``.h5``; written under a temporary name and renamed at the end.
        on_episode: called as ``on_episode(done, total, frames_done)`` after each episode.
        versions: package versions to record in the file's attributes.

    Returns:
        The metrics (episodes, frames, frames/s, return per task) and sample frames.
    """
    c = params.collect
    out = Path(out)
    remove_stale_tmp(out)
    infos = describe_tasks(params)
    jobs = make_jobs(params)
    task_ids = np.repeat(np.arange(len(c.tasks)), c.episodes_per_task)
    returns = np.zeros(len(jobs))
    samples: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    with atomic_path(out) as tmp:
        writer = EpisodeWriter(
            tmp,
            infos,
            [c.frames_per_episode] * len(jobs),
            c.image_size,
            attrs={
                "params": params.model_dump(include={"base", "collect"}),
                "versions": versions or {},
            },
        )
        try:
            frames_done = 0
            for i, ep in enumerate(run_jobs(params, jobs)):
                writer.write(i, ep)
                returns[i] = float(ep.rewards.sum())
                if ep.task not in samples:
                    pick = np.linspace(0, ep.length - 1, 8).astype(int)
                    samples[ep.task] = ep.frames[pick]
                frames_done += ep.length
                if on_episode is not None:
                    on_episode(i + 1, len(jobs), frames_done)
            split = assign_splits(
                task_ids, c.val_fraction, c.test_fraction, derive_seed(params.base.seed, "split")
            )
            writer.finish(split)
        finally:
            writer.close()
    seconds = time.perf_counter() - t0
    n_frames = len(jobs) * c.frames_per_episode
    per_task = {}
    for t, task in enumerate(c.tasks):
        r = returns[task_ids == t]
        per_task[task] = {
            "episodes": int(len(r)),
            "val_episodes": int((split[task_ids == t] == VAL).sum()),
            "test_episodes": int((split[task_ids == t] == TEST).sum()),
            "return_mean": round(float(r.mean()), 4),
            "return_max": round(float(r.max()), 4),
        }
    metrics: dict[str, Any] = {
        "episodes": len(jobs),
        "frames": n_frames,
        "seconds": round(seconds, 2),
        "frames_per_s": round(n_frames / seconds, 1),
    }
    if len(per_task) == 1:  # one task: its numbers are the whole run's, no second block
        metrics.update({k: v for k, v in next(iter(per_task.values())).items() if k != "episodes"})
    else:
        metrics["tasks"] = per_task
    return CollectResult(metrics=metrics, samples=samples)
