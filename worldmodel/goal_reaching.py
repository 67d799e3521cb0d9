"""Goal-reaching on the real simulator: the protocol that asks a world model to act.

The protocol of DINO-WM / LeWM / stable-worldmodel: from frame ``s`` of a *test* episode
the goal is frame ``s + G`` of the same episode, so the recorded actions reach it. The
real simulator is reset to frame ``s`` (the episode store keeps every frame's physics
state); an agent sees the ``C`` recorded frames up to ``s`` and the goal frame, chooses
actions, and the simulator carries out up to ``replan_every`` of them before the agent
chooses again, until the task's positions are within their tolerances of the goal's
(:class:`~worldmodel.tasks.SuccessSpec`) or ``B`` decisions are spent.

Agents (each has ``reset(pair, ...)`` and ``act(history) -> (k, A) actions``):

- :class:`WorldModelAgent`: plans in the world model (tokenizer latents, the dynamics'
  KV-cached sampler), its cost the distance between predicted and goal latents;
- :class:`SimulatorAgent`: the oracle, the same planner with the real simulator as its
  model and a state-space cost (the positions' distance to the goal's), or the world
  model's own latent cost on rendered frames (:class:`LatentCost`): it separates what the
  planner, its horizon and its cost lose from what the world model loses;
- :class:`RandomAgent`: uniform random actions, the floor;
- :class:`ReplayAgent`: the recorded actions, a check of the protocol (must reach).

Latents follow the sampler's signal-level convention (``worldmodel/sampler.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from worldmodel.codec import decode_latents, encode_episode
from worldmodel.data.episodes import EpisodeStore
from worldmodel.envs import make_env
from worldmodel.goal_distance import Distance
from worldmodel.planner import Planner, PlannerConfig
from worldmodel.sampler import context_kv_cache, corrupt, rollout_cached
from worldmodel.tasks import SuccessSpec


def recorded_env(store: EpisodeStore, task: str) -> Any:
    """The simulator of ``task`` as the store's episodes were recorded: their frame size,
    camera and action repeat."""
    ti = store.tasks.index(task)
    return make_env(
        task,
        image_size=store.image_size,
        camera=store.camera[ti],
        action_repeat=store.action_repeat[ti] or 1,
    )


@dataclass(frozen=True)
class GoalPair:
    """Start frame ``start`` and goal frame ``goal`` of test episode ``episode``."""

    task: str
    episode: int
    start: int
    goal: int


def goal_pairs(
    store: EpisodeStore, task: str, n: int, offset: int, context: int, seed: int
) -> list[GoalPair]:
    """``n`` goal pairs of ``task`` from *test* episodes only, spread over the episodes.

    Each start is at least ``context - 1`` frames into its episode (the agent sees
    ``context`` recorded frames up to it) and its goal ``offset`` frames later.
    """
    episodes = store.episode_ids("test", task)
    if len(episodes) == 0:
        raise ValueError(f"{store.path}: no test episodes of {task}")
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        e = int(episodes[i % len(episodes)])
        length = int(store.lengths[e])
        lo, hi = context - 1, length - 1 - offset
        if hi < lo:
            raise ValueError(
                f"{task} episodes hold {length} frames: too short for a context of {context} "
                f"and a goal {offset} decisions ahead"
            )
        s = int(rng.integers(lo, hi + 1))
        pairs.append(GoalPair(task, e, s, s + offset))
    return pairs


@dataclass
class History:
    """What an agent knows when it chooses: real frames so far, the actions that led into
    them (``actions[t]`` leads into ``frames[t]``), the simulator's state, the goal."""

    frames: list[np.ndarray]
    actions: list[np.ndarray]
    goal_frame: np.ndarray
    goal_positions: np.ndarray
    state: np.ndarray


@dataclass
class GoalResult:
    """The outcome of one goal for one agent."""

    success: bool
    decisions: int
    start_distance: float  # scaled distance of the start positions to the goal's
    final_distance: float  # ... of the positions where the agent stopped
    plans: int = 0
    plan_seconds: float = 0.0
    frames: list[np.ndarray] = field(default_factory=list)  # real frames, start first
    imagined: np.ndarray | None = None  # (H, S, S, 3) uint8: the first plan, as the model saw it


class Agent(Protocol):
    name: str

    def reset(self, pair: GoalPair, history: History) -> None: ...

    def act(self, history: History) -> np.ndarray: ...


def run_goal(
    env: Any,
    store: EpisodeStore,
    pair: GoalPair,
    agent: Agent,
    spec: SuccessSpec,
    *,
    context: int,
    budget: int,
    replan_every: int,
    keep_frames: bool = False,
) -> GoalResult:
    """Reset the real simulator to the pair's start, let ``agent`` act, judge success.

    Success: after any decision, every position within its tolerance of the goal's.
    """
    ep = store.read(pair.episode, pair.start - context + 1, pair.goal + 1)
    states, positions = store.read_states(pair.episode, pair.start, pair.goal + 1)
    goal_pos = positions[-1]
    env.set_state(states[0])
    history = History(
        frames=list(ep.frames[:context]),
        actions=list(ep.actions[:context, : env.action_spec.dim]),
        goal_frame=ep.frames[-1],
        goal_positions=goal_pos,
        state=states[0],
    )
    start = spec.scaled_distance(positions[0], goal_pos)
    agent.reset(pair, history)
    decisions, success, plans, seconds = 0, spec.reached(positions[0], goal_pos), 0, 0.0
    pos = positions[0]
    while not success and decisions < budget:
        t0 = time.perf_counter()
        chosen = agent.act(history)
        seconds += time.perf_counter() - t0
        plans += 1
        if len(chosen) == 0:
            break  # the agent has nothing left to do (the replay after its goal)
        for a in chosen[: min(replan_every, budget - decisions)]:
            frame, _, _ = env.step(a)
            decisions += 1
            history.frames.append(frame)
            history.actions.append(np.asarray(a, np.float32))
            pos = env.positions()
            if spec.reached(pos, goal_pos):
                success = True
                break
        history.state = env.get_state()
    return GoalResult(
        success=success,
        decisions=decisions,
        start_distance=start,
        final_distance=spec.scaled_distance(pos, goal_pos),
        plans=plans,
        plan_seconds=seconds,
        frames=history.frames[context - 1 :] if keep_frames else [],
        imagined=getattr(agent, "first_imagined", None),
    )


class RandomAgent:
    """Uniform random actions within the bounds (the floor)."""

    name = "random"

    def __init__(self, low: np.ndarray, high: np.ndarray, seed: int, chunk: int) -> None:
        self.low, self.high, self.chunk = low, high, chunk
        self.rng = np.random.default_rng(seed)

    def reset(self, pair: GoalPair, history: History) -> None:
        pass

    def act(self, history: History) -> np.ndarray:
        return self.rng.uniform(self.low, self.high, (self.chunk, len(self.low))).astype(np.float32)


class ReplayAgent:
    """The recorded actions from the start to the goal (a check of the protocol)."""

    name = "replay"

    def __init__(self, store: EpisodeStore, dim: int, chunk: int) -> None:
        self.store, self.dim, self.chunk = store, dim, chunk
        self.todo = np.zeros((0, dim), np.float32)

    def reset(self, pair: GoalPair, history: History) -> None:
        ep = self.store.read(pair.episode, pair.start + 1, pair.goal + 1)
        self.todo = ep.actions[:, : self.dim]

    def act(self, history: History) -> np.ndarray:
        out, self.todo = self.todo[: self.chunk], self.todo[self.chunk :]
        return out


def latent_cost(z: torch.Tensor, goal: torch.Tensor, kind: str, distance: Distance) -> torch.Tensor:
    """The world model's cost ``(N,)`` of candidates' frames ``z (N, H, L, C)``: their
    ``distance`` (:mod:`worldmodel.goal_distance`) to the goal frame's latents ``(L, C)``,
    of the last frame (``last``) or averaged over the frames (``mean``)."""
    if kind == "last":
        return distance(z[:, -1], goal)
    return distance(z, goal).mean(1)


def goal_latents(tokenizer: Any, history: History, clip_frames: int, device: Any) -> torch.Tensor:
    """The goal frame's latents ``(L, C)``, encoded after the last real frames (its clip)."""
    frames = np.stack([*history.frames[-(clip_frames - 1) :], history.goal_frame])
    z = encode_episode(tokenizer, frames[-clip_frames:], clip_frames, device)[-1]
    return torch.from_numpy(z).to(device)


@dataclass(frozen=True)
class LatentCost:
    """The world model's cost for the oracle: render each candidate's planned frames on the
    real simulator (only the last one for ``last``), encode them with the tokenizer (clips
    of one frame) and score them with :func:`latent_cost` of ``kind`` and ``distance``."""

    tokenizer: Any
    kind: str
    device: Any
    distance: Distance


class SimulatorAgent:
    """The oracle: the planner with the real simulator as its model. Its cost is
    state-space by default (the scaled distance of the last planned step's positions to
    the goal's); with ``latent`` it is the world model's own latent cost on the frames the
    simulator renders, so that only the model's predictions differ from the world-model
    agent's."""

    name = "oracle"

    def __init__(
        self,
        env: Any,
        cfg: PlannerConfig,
        spec: SuccessSpec,
        seed: int,
        latent: LatentCost | None = None,
    ) -> None:
        low, high = (torch.from_numpy(x) for x in (env.action_spec.low, env.action_spec.high))
        self.env, self.spec, self.latent = env, spec, latent
        self.planner = Planner(cfg, low, high, seed=seed)
        self.goal: torch.Tensor | None = None

    def reset(self, pair: GoalPair, history: History) -> None:
        self.planner.reset()
        self.seen = len(history.actions)
        if self.latent is not None:
            self.goal = goal_latents(self.latent.tokenizer, history, 1, self.latent.device)

    def act(self, history: History) -> np.ndarray:
        goal = history.goal_positions
        self.planner.shift(len(history.actions) - self.seen)  # warm start: what is left
        self.seen = len(history.actions)

        def state_cost(actions: torch.Tensor) -> torch.Tensor:
            pos = self.env.simulate(history.state, actions.numpy())  # (N, H, P)
            return torch.from_numpy(self.spec.scaled_distances(pos[:, -1], goal))

        def rendered_cost(actions: torch.Tensor) -> torch.Tensor:
            lc = self.latent
            assert lc is not None and self.goal is not None
            frames = self.env.simulate_frames(history.state, actions.numpy(), lc.kind == "mean")
            flat = frames.reshape(-1, *frames.shape[-3:])  # one-frame clips, independent
            z = torch.from_numpy(encode_episode(lc.tokenizer, flat, 1, lc.device))
            z = z.view(len(actions), -1, *z.shape[1:])  # (N, 1 or H, L, C)
            return latent_cost(z, self.goal.cpu(), lc.kind, lc.distance)

        cost = state_cost if self.latent is None else rendered_cost

        plan = self.planner.plan(cost)
        return plan.actions.numpy()


class WorldModelAgent:
    """Plans inside the world model: candidates rolled out together in latents (the
    dynamics' KV cache, ``steps`` sampler steps each), scored by their distance to the
    goal's latents.

    Args:
        tokenizer, dynamics: the trained models (eval mode).
        clip_frames, tau_ctx, window: as the models were trained (their model files).
        cfg: planner settings; ``context`` real frames are its past.
        steps: sampler steps per predicted frame (1: the conditional mean).
        cost: ``last`` (the last planned frame's distance to the goal's) or ``mean``
            (the mean over the planned frames).
        distance: between a frame's latents and the goal's (:mod:`worldmodel.goal_distance`).
        action_dim: the task's own action size (the model's may be padded wider).
    """

    name = "model"

    def __init__(
        self,
        tokenizer: Any,
        dynamics: Any,
        *,
        clip_frames: int,
        tau_ctx: float,
        window: int,
        cfg: PlannerConfig,
        context: int,
        steps: int,
        cost: str,
        distance: Distance,
        low: np.ndarray,
        high: np.ndarray,
        device: torch.device,
        seed: int,
    ) -> None:
        self.tok, self.dyn = tokenizer, dynamics
        self.clip_frames, self.tau_ctx, self.window = clip_frames, tau_ctx, window
        self.context, self.steps, self.cost_kind = context, steps, cost
        self.distance = distance
        self.device, self.seed = device, seed
        self.dim = len(low)
        self.planner = Planner(cfg, torch.from_numpy(low), torch.from_numpy(high), seed=seed)
        self.goal: torch.Tensor | None = None
        self.first_imagined: np.ndarray | None = None
        self.frames_predicted = 0
        self.predict_seconds = 0.0

    def encode(self, frames: list[np.ndarray]) -> torch.Tensor:
        """Latents ``(T, L, C)`` of the last frames, each with its causal clip context."""
        x = np.stack(frames[-(self.context + self.clip_frames - 1) :])
        z = encode_episode(self.tok, x, self.clip_frames, self.device)
        return torch.from_numpy(z[-self.context :]).to(self.device)

    def reset(self, pair: GoalPair, history: History) -> None:
        self.planner.reset()
        self.seen = len(history.actions)
        self.first_imagined = None
        self.goal = goal_latents(self.tok, history, self.clip_frames, self.device)

    def context_cache(self, history: History) -> Any:
        """The KV cache of the last ``context`` real frames (a batch of one), corrupted to
        the context level as in training; every candidate of a plan continues from it."""
        g = torch.Generator().manual_seed(self.seed)
        past = [
            corrupt(z[None], self.tau_ctx, torch.randn(z.shape, generator=g).to(z)[None])
            for z in self.encode(history.frames)  # (L, C) each
        ]
        acts = self.padded(np.stack(history.actions[-self.context :]))  # (C, A)
        return context_kv_cache(
            self.dyn,
            past,
            acts[None],
            tau_ctx=self.tau_ctx,
            label_d=1.0 / self.dyn.cfg.k_max,
            window=self.window,
        )

    def padded(self, actions: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Actions ``(..., A)`` zero-padded to the model's action width."""
        x = torch.as_tensor(np.asarray(actions), dtype=torch.float32, device=self.device)
        width = self.dyn.cfg.action_dim
        return torch.nn.functional.pad(x, (0, width - x.shape[-1]))

    @torch.no_grad()
    def predict(self, cache: Any, candidates: torch.Tensor) -> torch.Tensor:
        """Latents ``(N, H, L, C)`` the model predicts for candidate actions ``(N, H, A)``,
        all from one context cache and with the same noise (common random numbers: the
        candidates differ by their actions only)."""
        n = candidates.shape[0]
        g = torch.Generator().manual_seed(self.seed + 1)
        shape = (1, self.dyn.cfg.latent_tokens, self.dyn.cfg.latent_dim)

        def noise_like(x: torch.Tensor) -> torch.Tensor:
            return torch.randn(shape, generator=g).to(self.device).expand(x.shape[0], -1, -1)

        t0 = time.perf_counter()
        z = rollout_cached(
            self.dyn,
            cache.repeated(n),
            actions=self.padded(candidates),
            steps=self.steps,
            tau_ctx=self.tau_ctx,
            context_d=1.0 / self.dyn.cfg.k_max,
            noise_like=noise_like,
            like=torch.zeros(n, *shape[1:], device=self.device),
            commit_last=False,
        )
        self.predict_seconds += time.perf_counter() - t0
        self.frames_predicted += n * candidates.shape[1]
        return z

    def act(self, history: History) -> np.ndarray:
        assert self.goal is not None
        self.planner.shift(len(history.actions) - self.seen)  # warm start: what is left
        self.seen = len(history.actions)
        cache = self.context_cache(history)

        def cost(actions: torch.Tensor) -> torch.Tensor:
            return latent_cost(
                self.predict(cache, actions), self.goal, self.cost_kind, self.distance
            )

        plan = self.planner.plan(cost)
        if self.first_imagined is None:  # what the model expects of its first plan
            z = self.predict(cache, plan.actions[None])
            frames = decode_latents(self.tok, z, self.clip_frames)[0]
            self.first_imagined = (frames.clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        return plan.actions.numpy()


def success_interval(successes: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a success rate over goals (sound at 0 and 1 too)."""
    from scipy.stats import norm

    n = len(successes)
    if n == 0:
        return float("nan"), float("nan")
    p, z = float(np.mean(successes)), float(norm.ppf(0.5 + confidence / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize_agent(results: list[GoalResult]) -> dict[str, Any]:
    """Success rate with its interval, relative final distance, decisions and plan time."""
    ok = np.array([r.success for r in results], float)
    lo, hi = success_interval(ok)
    rel = [r.final_distance / max(r.start_distance, 1e-9) for r in results]
    plans = sum(r.plans for r in results)
    return {
        "success": round(float(ok.mean()), 4),
        "success_ci95": [round(lo, 4), round(hi, 4)],
        "goals": len(results),
        "final_distance_relative": round(float(np.mean(rel)), 4),
        "final_distance_relative_median": round(float(np.median(rel)), 4),
        "decisions": round(float(np.mean([r.decisions for r in results])), 2),
        "seconds_per_plan": round(sum(r.plan_seconds for r in results) / max(plans, 1), 4),
    }
