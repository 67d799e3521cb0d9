"""Fixed-length clips of frames cut from one split of an episode store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worldmodel.data.episodes import EpisodeStore


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
