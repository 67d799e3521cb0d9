"""The latent store (``data/latents.h5``): every frame of every episode, encoded.

Schema ``worldmodel.latents``, version 2: ``latents`` (float32 ``(N, L, C)`` in (-1, 1))
with rows aligned one-to-one with the episode store's frames, and the episode store's
``actions``, ``rewards``, ``discounts`` and ``episodes/`` index copied beside them. The
full table of datasets and attributes is in docs/data.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from worldmodel.data.episodes import (
    ALIGNED_FIELDS,
    StoreError,
    check_fields,
    check_index,
    json_attr,
    open_h5,
)
from worldmodel.data.splits import in_split

SCHEMA = "worldmodel.latents"
SCHEMA_VERSION = 2  # 2: the test split; `clip_frames` attribute (was `context_frames`)
_REQUIRED = {"latents": (np.float32, 3), **ALIGNED_FIELDS}


class LatentWriter:
    """Write a latent store beside the episode store it encodes, one episode at a time.

    The episode index, actions, rewards and discounts are copied from ``source`` at
    creation; :meth:`write` fills one episode's latents; :meth:`finish` marks the file
    complete. Use inside :func:`worldmodel.utils.atomic_path` so that only a complete
    file gets the final name.
    """

    def __init__(
        self,
        path: Path,
        source: h5py.File,
        starts: np.ndarray,
        latent_shape: tuple[int, int],
        attrs: dict[str, Any],
    ) -> None:
        n = source["frames"].shape[0]
        self.starts = starts
        self.f = f = h5py.File(path, "w")
        f.create_dataset(
            "latents",
            (n, *latent_shape),
            np.float32,
            chunks=(min(256, n), *latent_shape),
            fletcher32=True,  # checksummed: corruption is named at read
        )
        for name in ALIGNED_FIELDS:  # actions, rewards, discounts and the episode index
            f.create_dataset(name, data=source[name][:], fletcher32=True)
        f.attrs["schema"] = SCHEMA
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["complete"] = False
        for key in ("tasks", "action_dims", "control_timestep"):
            f.attrs[key] = source.attrs[key]
        for key, value in attrs.items():
            f.attrs[key] = value if isinstance(value, str | int | float) else json.dumps(value)

    def write(self, episode: int, latents: np.ndarray) -> None:
        """Store the latents ``(T, L, C)`` of ``episode``."""
        s = int(self.starts[episode])
        self.f["latents"][s : s + len(latents)] = latents

    def finish(self) -> None:
        """Mark the file complete and close it."""
        self.f.attrs["complete"] = True
        self.close()

    def close(self) -> None:
        if self.f.id.valid:
            self.f.close()


class LatentStore:
    """Validated, read-only access to a latent store (loaded into memory: latents are small)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._read()
        except OSError as exc:  # a chunk that fails its checksum or decompression
            raise StoreError(self.path, f"cannot be read, the file is corrupt ({exc})") from None

    def _read(self) -> None:
        with open_h5(self.path, SCHEMA, SCHEMA_VERSION) as f:
            check_fields(f, self.path, _REQUIRED)
            n = f["latents"].shape[0]
            for name in ("actions", "rewards", "discounts"):
                if f[name].shape[0] != n:
                    raise StoreError(
                        self.path, f"`{name}` has {f[name].shape[0]} rows, `latents` has {n}"
                    )
            check_index(f, self.path, n)
            try:
                self.latents = f["latents"][:]
            except OSError as exc:  # a chunk that fails its checksum
                raise StoreError(
                    self.path, f"`latents` cannot be read, the file is corrupt ({exc})"
                ) from None
            self.actions = f["actions"][:]
            self.rewards = f["rewards"][:]
            self.starts = f["episodes/start"][:]
            self.lengths = f["episodes/length"][:]
            self.task_ids = f["episodes/task"][:]
            self.splits = f["episodes/split"][:]
            self.tasks: list[str] = json_attr(f, self.path, "tasks")
            self.clip_frames = int(f.attrs["clip_frames"])
            self.tokenizer_meta: dict[str, Any] = json_attr(f, self.path, "tokenizer", {})
            file_id = f.attrs.get("tokenizer_file")  # the encoding tokenizer file's identity
            self.tokenizer_file: str | None = None if file_id is None else str(file_id)

    @property
    def latent_shape(self) -> tuple[int, int]:
        return tuple(self.latents.shape[1:])  # type: ignore[return-value]

    def episode_ids(self, split: str | None = None) -> np.ndarray:
        """Episode indices of ``split`` (``train``, ``val``, ``test``; None = all)."""
        return np.flatnonzero(in_split(self.splits, split))
