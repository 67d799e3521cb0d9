"""Probes: how much of the simulator's positions a set of latents holds.

Fit a map from flattened latents to a task's success positions
(``worldmodel.tasks.POSITIONS``; an angle as its sine and cosine) on *train* episodes,
then report R² per position on *held-out* episodes. Applied to the tokenizer's latents it
says whether the tokenizer keeps a moving part (reacher's one-pixel arm); applied to the
dynamics' predicted latents at a horizon, whether the model still moves it there.

Two kinds: :class:`Probe`, a ridge regression (what the latents hold *linearly*), and
:class:`MLPProbe`, a two-layer MLP (what they hold at all). They differ where a position
is a non-linear function of what is drawn: reacher's wrist angle is the angle *between*
its two links, which no linear map of where the links are recovers (a ridge on the
pixels themselves scores below 0 on it), so only the MLP says whether the forearm is kept.

SIGNAL-LEVEL CONVENTION (docs/forcing.md): ``tau = 1`` is clean, ``tau = 0`` pure noise;
the rollouts here corrupt their context frames to ``tau_ctx`` (0.9: 10% noise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from worldmodel.tasks import SuccessSpec


def position_features(positions: np.ndarray, spec: SuccessSpec) -> np.ndarray:
    """``(N, F)`` regression targets: each linear position as is, each angle as sin, cos."""
    cols = []
    for i, angle in enumerate(spec.is_angle):
        x = positions[:, i]
        cols += [np.sin(x), np.cos(x)] if angle else [x]
    return np.stack(cols, 1)


@dataclass
class Probe:
    """A fitted ridge map from flattened latents to position features."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # (D + 1, F)
    spec: SuccessSpec

    @classmethod
    def fit(
        cls, latents: np.ndarray, positions: np.ndarray, spec: SuccessSpec, ridge: float = 1.0
    ) -> Probe:
        """Fit on ``latents (N, ...)`` and their ``positions (N, P)``."""
        x = latents.reshape(len(latents), -1).astype(np.float64)
        mean, scale = x.mean(0), x.std(0) + 1e-6
        x = np.concatenate([(x - mean) / scale, np.ones((len(x), 1))], 1)
        y = position_features(positions, spec)
        reg = ridge * np.eye(x.shape[1])
        reg[-1, -1] = 0.0  # the intercept is not shrunk
        weights = np.linalg.solve(x.T @ x + reg, x.T @ y)
        return cls(mean, scale, weights, spec)

    def predict(self, latents: np.ndarray) -> np.ndarray:
        x = (latents.reshape(len(latents), -1) - self.mean) / self.scale
        return np.concatenate([x, np.ones((len(x), 1))], 1) @ self.weights

    def r2(self, latents: np.ndarray, positions: np.ndarray) -> dict[str, float]:
        """R² per position on held-out ``latents`` (an angle: over its sine and cosine)."""
        return r2_per_position(self.predict(latents), positions, self.spec)


def r2_per_position(
    predicted: np.ndarray, positions: np.ndarray, spec: SuccessSpec
) -> dict[str, float]:
    """R² of ``predicted`` position features ``(N, F)`` per position of ``positions (N, P)``
    (an angle: over its sine and cosine together)."""
    y = position_features(positions, spec)
    err = (y - predicted) ** 2
    var = (y - y.mean(0)) ** 2
    out, col = {}, 0
    for name, angle in zip(spec.names, spec.is_angle, strict=True):
        k = 2 if angle else 1
        out[name] = float(1 - err[:, col : col + k].sum() / max(var[:, col : col + k].sum(), 1e-12))
        col += k
    return out


@dataclass
class MLPProbe:
    """A fitted two-layer MLP (GELU) from standardised flattened latents to position
    features, trained by MSE with AdamW; deterministic for a ``seed``."""

    mean: np.ndarray
    scale: np.ndarray
    net: Any  # torch.nn.Sequential
    spec: SuccessSpec

    @classmethod
    def fit(
        cls,
        latents: np.ndarray,
        positions: np.ndarray,
        spec: SuccessSpec,
        *,
        hidden: int = 256,
        steps: int = 2000,
        batch: int = 256,
        lr: float = 1e-3,
        seed: int = 0,
    ) -> MLPProbe:
        """Fit on ``latents (N, ...)`` and their ``positions (N, P)``."""
        import torch
        from torch import nn

        x = latents.reshape(len(latents), -1).astype(np.float32)
        mean, scale = x.mean(0), x.std(0) + 1e-6
        xt = torch.from_numpy((x - mean) / scale)
        y = torch.from_numpy(position_features(positions, spec).astype(np.float32))
        g = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):  # the caller's RNG is left as it was
            torch.manual_seed(seed)
            net = nn.Sequential(
                nn.Linear(xt.shape[1], hidden),
                nn.GELU(),
                nn.Linear(hidden, hidden),
                nn.GELU(),
                nn.Linear(hidden, y.shape[1]),
            )
        opt = torch.optim.AdamW(net.parameters(), lr, weight_decay=0.05)
        for _ in range(steps):
            i = torch.randint(0, len(xt), (min(batch, len(xt)),), generator=g)
            loss = (net(xt[i]) - y[i]).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return cls(mean, scale, net.eval(), spec)

    def predict(self, latents: np.ndarray) -> np.ndarray:
        import torch

        x = (latents.reshape(len(latents), -1).astype(np.float32) - self.mean) / self.scale
        with torch.no_grad():
            return self.net(torch.from_numpy(x)).numpy().astype(np.float64)

    def r2(self, latents: np.ndarray, positions: np.ndarray) -> dict[str, float]:
        """R² per position on held-out ``latents`` (an angle: over its sine and cosine)."""
        return r2_per_position(self.predict(latents), positions, self.spec)


PROBES = {"ridge": Probe, "mlp": MLPProbe}  # kind -> class with fit(latents, positions, spec)


def _check_kinds(kinds: tuple[str, ...]) -> None:
    unknown = sorted(set(kinds) - set(PROBES))
    if unknown:
        raise ValueError(f"unknown probe kind(s) {unknown}; expected some of {sorted(PROBES)}")


def _split_positions(store: Any, task: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``task``'s episodes in ``split`` and their frames' success positions, concatenated
    in episode order; an empty split is refused."""
    eps = store.episode_ids(split, task)
    if not len(eps):
        raise ValueError(f"{store.path}: {task} has no {split} episodes to probe")
    return eps, np.concatenate([store.read_states(int(e))[1] for e in eps])


def probe_positions(
    store: Any,
    latents: Any,
    task: str,
    dynamics: Any,
    *,
    tau_ctx: float,
    window: int,
    windows: int = 120,
    context: int = 4,
    horizons: tuple[int, ...] = (1, 4, 16),
    steps: int = 4,
    seed: int = 0,
    kinds: tuple[str, ...] = ("ridge",),
) -> dict[str, dict[str, float]]:
    """R² of ``task``'s positions from its latents: where a moving part is lost.

    A probe of each of ``kinds`` (``PROBES``) is fitted on the tokenizer's latents of *train*
    episodes and scored on *test* episodes: on the tokenizer's own latents
    (``"tokenizer"``); on the latents the ``dynamics`` model predicts at each horizon ``h``
    of rollouts from ``context`` true frames with the recorded actions (``"model_h{h}"``,
    the evaluate stage's sampler: ``steps``, ``tau_ctx``, ``window``); and on the last
    context frame, as repeat-last would predict (``"repeat_last_h{h}"``). A kind other
    than ``ridge`` suffixes its sources (``"tokenizer_mlp"``, ...).

    Args:
        store: the :class:`~worldmodel.data.episodes.EpisodeStore` (splits, positions).
        latents: its :class:`~worldmodel.data.latents.LatentStore` (the same rows).
        windows: test windows of ``context + max(horizons)`` frames, spread evenly.

    Returns:
        ``{source: {position name: R²}}``.
    """
    import torch

    _check_kinds(kinds)

    from worldmodel.data.windows import window_slots
    from worldmodel.sampler import rollout
    from worldmodel.tasks import success_spec

    spec = success_spec(task)
    if len(latents.latents) != store.num_frames:
        raise ValueError(
            f"{latents.path} holds {len(latents.latents)} frames, {store.path} "
            f"{store.num_frames}: "
            "the latents are not of these episodes (run `dvc repro tokenize`)"
        )
    names = store.position_names[store.tasks.index(task)]
    if list(names) != list(spec.names):
        raise ValueError(f"{store.path}: {task} stores positions {names}, expected {spec.names}")

    def split_rows(split: str) -> tuple[np.ndarray, np.ndarray]:
        eps, positions = _split_positions(store, task, split)
        rows = [np.arange(store.starts[e], store.starts[e] + store.lengths[e]) for e in eps]
        return np.concatenate(rows), positions

    (train, train_pos), (test, test_pos) = split_rows("train"), split_rows("test")
    position_of = dict(zip(test.tolist(), range(len(test)), strict=True))
    probes = {
        ("" if kind == "ridge" else f"_{kind}"): PROBES[kind].fit(
            latents.latents[train], train_pos, spec
        )
        for kind in kinds
    }
    table = {
        f"tokenizer{sfx}": probe.r2(latents.latents[test], test_pos)
        for sfx, probe in probes.items()
    }

    length = context + max(horizons)
    starts = [
        int(store.starts[e]) + s
        for e, s in window_slots(store, task, length, windows, split="test")
    ]
    idx = np.asarray(starts)[:, None] + np.arange(length)
    z = torch.from_numpy(latents.latents[idx]).float()
    a = torch.from_numpy(latents.actions[idx]).float()
    device = next(dynamics.parameters()).device
    with torch.no_grad():
        pred = (
            rollout(
                dynamics,
                context=z[:, :context].to(device),
                actions=a.to(device),
                horizon=max(horizons),
                steps=steps,
                tau_ctx=tau_ctx,
                window=window,
                generator=torch.Generator().manual_seed(seed),
                context_d=1.0 / dynamics.cfg.k_max,
            )
            .cpu()
            .numpy()
        )
    last = latents.latents[idx[:, context - 1]]
    truths = {h: test_pos[[position_of[int(r)] for r in idx[:, context + h - 1]]] for h in horizons}
    for sfx, probe in probes.items():
        for h, truth in truths.items():
            table[f"model_h{h}{sfx}"] = probe.r2(pred[:, h - 1], truth)
            table[f"repeat_last_h{h}{sfx}"] = probe.r2(last, truth)
    return {src: {k: round(v, 4) for k, v in r2.items()} for src, r2 in table.items()}


def probe_tokenizer(
    model: Any,
    store: Any,
    task: str,
    clip_frames: int,
    device: Any,
    score_split: str = "val",
    kinds: tuple[str, ...] = ("ridge", "mlp"),
) -> dict[str, dict[str, float]]:
    """R² of ``task``'s positions from a tokenizer's latents, without a latent store:
    ``{kind: {position name: R²}}``.

    Encodes the *train* episodes of ``task`` (as the ``tokenize`` stage would, through
    :func:`worldmodel.codec.encode_episode`), fits a probe of each of ``kinds`` on them and
    scores it on the ``score_split`` episodes (``val`` for tuning, ``test`` for a headline).
    """
    from worldmodel.codec import encode_episode
    from worldmodel.tasks import success_spec

    _check_kinds(kinds)
    spec = success_spec(task)

    def rows(split: str) -> tuple[np.ndarray, np.ndarray]:
        eps, positions = _split_positions(store, task, split)
        z = [encode_episode(model, store.read(int(e)).frames, clip_frames, device) for e in eps]
        return np.concatenate(z), positions

    train, held_out = rows("train"), rows(score_split)
    return {
        kind: {k: round(v, 4) for k, v in PROBES[kind].fit(*train, spec).r2(*held_out).items()}
        for kind in kinds
    }
