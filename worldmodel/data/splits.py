"""Train / val / test splits by whole episode, per task.

- **train**: the only episodes the tokenizer and the dynamics model learn from;
- **val**: periodic checks during training, the benchmark scripts and any tuning;
- **test**: the headline numbers of the `evaluate` stage, nothing else.

The split is drawn once, at collection, from a seeded permutation and stored with the
episodes (``episodes/split``, codes :data:`SPLITS`); every later file copies it.
"""

from __future__ import annotations

import numpy as np

SPLITS = {"train": 0, "val": 1, "test": 2}  # the codes of ``episodes/split``
TRAIN, VAL, TEST = SPLITS["train"], SPLITS["val"], SPLITS["test"]


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """``(train, val, test)`` episode counts of a task with ``n`` episodes.

    ``round(fraction * n)`` each, at least one for a fraction above 0; train gets the rest
    and may come out empty (params validation refuses that before any work).
    """
    n_val = max(int(round(val_fraction * n)), 1 if val_fraction > 0 else 0)
    n_test = max(int(round(test_fraction * n)), 1 if test_fraction > 0 else 0)
    return n - n_val - n_test, n_val, n_test


def assign_splits(
    task_ids: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> np.ndarray:
    """Split whole episodes of each task into train/val/test (codes :data:`SPLITS`).

    Sizes per task come from :func:`split_sizes`; which episodes go where is a seeded
    permutation, so it is reproducible. Each task draws its permutation from its own
    generator of the same ``seed``: a task's split depends only on its own episodes, not
    on which tasks are listed beside it, so a run of several tasks holds out the same
    episodes of each task as that task's own run (and the two compare on the same test
    episodes).
    """
    split = np.full(len(task_ids), TRAIN, np.uint8)
    for task in np.unique(task_ids):
        rng = np.random.default_rng(seed)
        idx = rng.permutation(np.flatnonzero(task_ids == task))
        _, n_val, n_test = split_sizes(len(idx), val_fraction, test_fraction)
        split[idx[:n_val]] = VAL
        split[idx[n_val : n_val + n_test]] = TEST
    return split


def in_split(splits: np.ndarray, split: str | None) -> np.ndarray:
    """Which episodes (bool per episode) are in ``split`` (``train``, ``val``, ``test``; None = all)."""
    if split is None:
        return np.ones(len(splits), bool)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)} or None, got {split!r}")
    return splits == SPLITS[split]
