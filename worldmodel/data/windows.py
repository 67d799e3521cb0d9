"""Windows of consecutive frames cut from one split of a store, never across episodes.

Three kinds, one per consumer:

- :class:`FrameClips`: pixel clips of ``tokenizer.clip_frames`` frames for the tokenizer;
- :class:`LatentWindows`: latent windows cut with a stride for the dynamics model;
- :class:`PixelWindows` (:func:`heldout_windows`): pixel windows with their actions from
  held-out episodes, for evaluation and the benchmark scripts.

Splits are by whole episode, made at collection (``episodes/split`` in the store).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from worldmodel.data.episodes import EpisodeStore

if TYPE_CHECKING:  # type-only: the tokenizer's stage does not run the latent store
    from worldmodel.data.latents import LatentStore


class FrameClips:
    """Random or evenly spaced ``clip_frames``-long windows of one split, never across episodes.

    Frames of the split are loaded into memory when they fit in ``memory_limit`` bytes,
    otherwise each window is read from the file (same output either way).
    """

    def __init__(
        self, path: str | Path, split: str, clip_frames: int, memory_limit: float = 4e9
    ) -> None:
        self.store = EpisodeStore(path)
        self.clip = clip_frames
        eps = self.store.episode_ids(split)
        eps = eps[self.store.lengths[eps] >= clip_frames]
        if len(eps) == 0:
            raise ValueError(f"{path}: no {split} episode has {clip_frames} frames")
        self.episodes = eps
        self.starts_per_ep = self.store.lengths[eps] - clip_frames + 1
        self.cum = np.concatenate([[0], np.cumsum(self.starts_per_ep)])
        size = self.store.lengths[eps].sum() * self.store.image_size**2 * 3
        self.cache = (
            {int(e): self.store.read(int(e)).frames for e in eps} if size <= memory_limit else None
        )

    @property
    def num_windows(self) -> int:
        return int(self.cum[-1])

    def window(self, index: int) -> np.ndarray:
        """Window ``index`` of all windows, ``(T, H, W, 3)`` uint8."""
        i = int(np.searchsorted(self.cum, index, side="right") - 1)
        ep, start = int(self.episodes[i]), int(index - self.cum[i])
        if self.cache is not None:
            return self.cache[ep][start : start + self.clip]
        return self.store.read(ep, start, start + self.clip).frames

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` windows drawn uniformly over all windows: ``(n, T, H, W, 3)``."""
        return np.stack([self.window(int(i)) for i in rng.integers(0, self.num_windows, n)])

    def evenly_spaced(self, n: int) -> np.ndarray:
        """``n`` windows spread evenly over the split (deterministic)."""
        idx = np.linspace(0, self.num_windows - 1, min(n, self.num_windows)).astype(int)
        return np.stack([self.window(int(i)) for i in idx])


class LatentWindows:
    """Windows cut with a stride from one split of a latent store."""

    def __init__(self, store: LatentStore, split: str, length: int, stride: int) -> None:
        self.store, self.length = store, length
        index = []
        for e in store.episode_ids(split):
            n = int(store.lengths[e])
            index += [(int(store.starts[e]) + s) for s in range(0, n - length + 1, stride)]
        if not index:
            raise ValueError(f"{store.path}: no {split} episode holds a {length}-frame window")
        self.starts = np.asarray(index)

    def get(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Latents ``(n, T, L, C)`` and actions ``(n, T, A)`` of windows ``idx``."""
        rows = self.starts[idx][:, None] + np.arange(self.length)
        return self.store.latents[rows], self.store.actions[rows]

    def evenly_spaced(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.get(np.linspace(0, len(self.starts) - 1, min(n, len(self.starts))).astype(int))


@dataclass
class PixelWindows:
    """Held-out windows of one task: frames, actions and where they came from."""

    task: str
    frames: np.ndarray  # (N, C + H, S, S, 3) uint8
    actions: np.ndarray  # (N, C + H, A) float32
    episodes: np.ndarray  # (N,) episode index in the store
    starts: np.ndarray  # (N,) first frame within the episode


def heldout_windows(
    store: EpisodeStore, task: str, length: int, n: int, *, split: str
) -> PixelWindows:
    """``n`` windows of ``length`` frames spread evenly over ``task``'s ``split`` episodes.

    ``split`` is ``val`` (periodic checks, benchmarks, tuning) or ``test`` (the headline
    numbers); never ``train``. Windows do not overlap: an episode of ``T`` frames gives
    ``T // length`` slots, and ``n`` of all slots are picked evenly, so every episode is
    represented when ``n`` is at least the number of episodes.
    """
    if split not in ("val", "test"):
        raise ValueError(f"held-out windows come from val or test episodes, not {split!r}")
    return spread_windows(store, task, length, n, split=split)


def window_slots(
    store: EpisodeStore, task: str, length: int, n: int, *, split: str
) -> list[tuple[int, int]]:
    """``(episode, start)`` of ``n`` non-overlapping ``length``-frame windows of ``split``,
    spread evenly over every episode's slots (all of them when there are fewer)."""
    eps = [int(e) for e in store.episode_ids(split, task) if store.lengths[e] >= length]
    if not eps:
        raise ValueError(
            f"{store.path}: no {split} episode of {task} holds {length} frames "
            "(raise collect.frames_per_episode or lower evaluate.context/extended_horizon)"
        )
    slots = [(e, s) for e in eps for s in range(0, int(store.lengths[e]) - length + 1, length)]
    pick = np.linspace(0, len(slots) - 1, min(n, len(slots))).astype(int)
    return [slots[i] for i in pick]


def spread_windows(
    store: EpisodeStore, task: str, length: int, n: int, *, split: str
) -> PixelWindows:
    """:func:`heldout_windows` for any split, ``train`` included: for fit diagnostics
    (how a model scores on what it trained on), never for a held-out number."""
    chosen = window_slots(store, task, length, n, split=split)
    frames, actions = [], []
    for e, s in chosen:
        ep = store.read(e, s, s + length)
        frames.append(ep.frames)
        actions.append(ep.actions)
    return PixelWindows(
        task,
        frames=np.stack(frames),
        actions=np.stack(actions),
        episodes=np.array([e for e, _ in chosen]),
        starts=np.array([s for _, s in chosen]),
    )
