"""The episode store: pixel episodes in one HDF5 file (``data/episodes.h5``).

Schema ``worldmodel.episodes``, version 2: ``frames`` (uint8, chunked and gzipped),
``actions`` (the action that led *into* each frame), ``rewards``, ``discounts`` and a
per-episode index ``episodes/{start,length,task,split,seed,return}``. The full table of
datasets and attributes is in docs/data.md.

Writers write to a temporary name and rename when complete (:func:`worldmodel.utils.atomic_path`).
:class:`EpisodeStore` validates the schema on open and names the file and field of any
mismatch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from worldmodel.data.splits import SPLITS, in_split
from worldmodel.errors import StoreError

__all__ = ["Episode", "EpisodeStore", "EpisodeWriter", "StoreError", "TaskInfo"]

SCHEMA = "worldmodel.episodes"
SCHEMA_VERSION = 3  # 2: a test split; 3: each frame's simulator state and positions
CHUNK_FRAMES = 16


@dataclass
class Episode:
    """One recorded episode, frames aligned with the actions that led into them."""

    task: str
    seed: int
    frames: np.ndarray  # (T, H, W, 3) uint8
    actions: np.ndarray  # (T, A) float32; actions[0] = 0 (reset)
    rewards: np.ndarray  # (T,) float32; rewards[0] = 0
    discounts: np.ndarray  # (T,) float32; discounts[0] = 1
    states: np.ndarray | None = None  # (T, D) float64: the simulator state of each frame
    positions: np.ndarray | None = None  # (T, P) float64: the task's success positions

    @property
    def length(self) -> int:
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class TaskInfo:
    """What the store records about each task."""

    name: str
    action_dim: int
    action_low: list[float]
    action_high: list[float]
    control_timestep: float
    action_repeat: int = 1  # simulator steps per frame
    camera: int | None = None  # the camera rendered (None: no camera, e.g. synthetic)
    state_dim: int = 0  # floats of simulator state per frame
    position_names: list[str] | None = None  # the success positions (worldmodel.tasks)


class EpisodeWriter:
    """Write a store whose total size is known up front (episodes arrive in order).

    Use inside :func:`worldmodel.utils.atomic_path` so that only a complete file gets
    the final name.
    """

    def __init__(
        self,
        path: str | Path,
        tasks: list[TaskInfo],
        lengths: list[int],
        image_size: int,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.tasks = tasks
        self.lengths = np.asarray(lengths, np.int64)
        n, e = int(self.lengths.sum()), len(lengths)
        a = max(t.action_dim for t in tasks)
        s = image_size
        self.f = h5py.File(self.path, "w")
        self.f.create_dataset(
            "frames",
            (n, s, s, 3),
            np.uint8,
            chunks=(min(CHUNK_FRAMES, n), s, s, 3),
            compression="gzip",
            compression_opts=4,
            fletcher32=True,
        )
        sums = {"fletcher32": True}  # every dataset checksummed: corruption is named at read
        self.f.create_dataset("actions", (n, a), np.float32, **sums)
        self.f.create_dataset("rewards", (n,), np.float32, **sums)
        self.f.create_dataset("discounts", (n,), np.float32, **sums)
        d = max(1, max(t.state_dim for t in tasks))
        p = max(1, max(len(t.position_names or []) for t in tasks))
        self.f.create_dataset("states", (n, d), np.float64, **sums)
        self.f.create_dataset("positions", (n, p), np.float64, **sums)
        g = self.f.create_group("episodes")
        starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        g.create_dataset("start", data=starts, **sums)
        g.create_dataset("length", data=self.lengths, **sums)
        for name, dtype in (
            ("task", np.int32),
            ("split", np.uint8),
            ("seed", np.int64),
            ("return", np.float32),
        ):
            g.create_dataset(name, (e,), dtype, **sums)
        self.starts = starts
        at = self.f.attrs
        at["schema"] = SCHEMA
        at["schema_version"] = SCHEMA_VERSION
        at["complete"] = False
        at["tasks"] = json.dumps([t.name for t in tasks])
        at["action_dims"] = json.dumps([t.action_dim for t in tasks])
        at["action_low"] = json.dumps([t.action_low for t in tasks])
        at["action_high"] = json.dumps([t.action_high for t in tasks])
        at["control_timestep"] = json.dumps([t.control_timestep for t in tasks])
        at["action_repeat"] = json.dumps([t.action_repeat for t in tasks])
        at["camera"] = json.dumps([t.camera for t in tasks])
        at["state_dims"] = json.dumps([t.state_dim for t in tasks])
        at["position_names"] = json.dumps([t.position_names or [] for t in tasks])
        at["image_size"] = image_size
        at["splits"] = json.dumps(SPLITS)
        for key, value in (attrs or {}).items():
            at[key] = value if isinstance(value, str | int | float) else json.dumps(value)
        self._names = [t.name for t in tasks]

    def write(self, index: int, ep: Episode) -> None:
        """Store episode ``index`` (its length must match the one declared)."""
        if ep.length != self.lengths[index]:
            raise ValueError(f"episode {index}: {ep.length} frames, declared {self.lengths[index]}")
        s = slice(int(self.starts[index]), int(self.starts[index]) + ep.length)
        self.f["frames"][s] = ep.frames
        self.f["actions"][s, : ep.actions.shape[1]] = ep.actions
        self.f["rewards"][s] = ep.rewards
        self.f["discounts"][s] = ep.discounts
        if ep.states is not None:
            self.f["states"][s, : ep.states.shape[1]] = ep.states
        if ep.positions is not None:
            self.f["positions"][s, : ep.positions.shape[1]] = ep.positions
        g = self.f["episodes"]
        g["task"][index] = self._names.index(ep.task)
        g["seed"][index] = ep.seed
        g["return"][index] = float(ep.rewards.sum())

    def finish(self, split: np.ndarray) -> None:
        """Write the split, mark the file complete and close it."""
        self.f["episodes/split"][:] = split
        self.f.attrs["complete"] = True
        self.f.close()

    def close(self) -> None:
        if self.f.id.valid:
            self.f.close()


# Per-frame fields aligned with the frames, and the episode index: (dtype, ndim). The
# latent store (worldmodel/data/latents.py) carries the same ones beside its latents.
ALIGNED_FIELDS = {
    "actions": (np.float32, 2),
    "rewards": (np.float32, 1),
    "discounts": (np.float32, 1),
    "episodes/start": (np.int64, 1),
    "episodes/length": (np.int64, 1),
    "episodes/task": (np.int32, 1),
    "episodes/split": (np.uint8, 1),
    "episodes/seed": (np.int64, 1),
    "episodes/return": (np.float32, 1),
}
_REQUIRED = {
    "frames": (np.uint8, 4),
    "states": (np.float64, 2),
    "positions": (np.float64, 2),
    **ALIGNED_FIELDS,
}


def open_h5(path: str | Path, schema: str, version: int) -> h5py.File:
    """Open an HDF5 store read-only and check its schema name, version and completeness."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(path, "file not found (run the stage that writes it)")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise StoreError(path, f"not a readable HDF5 file (truncated or corrupt?): {exc}") from None
    at = f.attrs
    if at.get("schema") != schema:
        f.close()
        raise StoreError(path, f"attribute `schema` is {at.get('schema')!r}, expected {schema!r}")
    if int(at.get("schema_version", -1)) != version:
        got = at.get("schema_version")
        f.close()
        raise StoreError(
            path,
            f"attribute `schema_version` is {got}, this code reads version {version}; "
            "re-run the stage that writes it",
        )
    if not bool(at.get("complete", False)):
        f.close()
        raise StoreError(path, "attribute `complete` is false: the writer did not finish")
    return f


def json_attr(f: h5py.File, path: Path, name: str, default: Any = None) -> Any:
    """An attribute stored as JSON text, parsed as JSON (never evaluated); ``default``
    when absent; a :class:`StoreError` naming the file and attribute when it is not JSON."""
    if name not in f.attrs:
        if default is None:
            raise StoreError(path, f"attribute `{name}` is missing")
        return default
    try:
        return json.loads(f.attrs[name])
    except (TypeError, ValueError):
        raise StoreError(path, f"attribute `{name}` is not valid JSON") from None


def check_fields(f: h5py.File, path: Path, required: dict[str, tuple[Any, int]]) -> None:
    """Check each required dataset exists with its dtype and rank; name the bad field."""
    for name, (dtype, ndim) in required.items():
        if name not in f:
            raise StoreError(path, f"missing dataset `{name}`")
        ds = f[name]
        if ds.dtype != dtype or ds.ndim != ndim:
            raise StoreError(
                path,
                f"dataset `{name}` is {ds.dtype}{ds.shape}, expected {np.dtype(dtype)} "
                f"with {ndim} dims",
            )


def check_index(f: h5py.File, path: Path, n_rows: int) -> None:
    """Check the per-episode index tiles ``n_rows`` rows exactly, in order."""
    e = f["episodes/start"].shape[0]
    for name in ("length", "task", "split", "seed", "return"):
        if f[f"episodes/{name}"].shape[0] != e:
            raise StoreError(
                path, f"`episodes/{name}` has {f[f'episodes/{name}'].shape[0]} rows, expected {e}"
            )
    starts, lengths = f["episodes/start"][:], f["episodes/length"][:]
    expect = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    if e == 0 or not np.array_equal(starts, expect) or int(lengths.sum()) != n_rows:
        raise StoreError(path, f"`episodes/start`/`episodes/length` do not tile the {n_rows} rows")


class EpisodeStore:
    """Read-only, validated access to an episode store.

    Args:
        path: the ``.h5`` file.

    Raises:
        StoreError: naming the file and the field, on any schema or shape mismatch.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        f = open_h5(self.path, SCHEMA, SCHEMA_VERSION)
        try:
            check_fields(f, self.path, _REQUIRED)
            n = f["frames"].shape[0]
            if f["frames"].shape[3] != 3 or f["frames"].shape[1] != f["frames"].shape[2]:
                raise StoreError(
                    self.path, f"`frames` has shape {f['frames'].shape}, expected (N, S, S, 3)"
                )
            for name in ("actions", "rewards", "discounts"):
                if f[name].shape[0] != n:
                    raise StoreError(
                        self.path, f"`{name}` has {f[name].shape[0]} rows, `frames` has {n}"
                    )
            check_index(f, self.path, n)
            self.tasks: list[str] = json_attr(f, self.path, "tasks")
            self.action_dims: list[int] = json_attr(f, self.path, "action_dims")
            self.control_timestep: list[float] = json_attr(f, self.path, "control_timestep")
            # per task, as recorded (older stores: unknown)
            none = [None] * len(self.tasks)
            self.action_repeat: list[int | None] = json_attr(f, self.path, "action_repeat", none)
            self.camera: list[int | None] = json_attr(f, self.path, "camera", none)
            self.params: dict[str, Any] = json_attr(f, self.path, "params", {})
            self.state_dims: list[int] = json_attr(f, self.path, "state_dims")
            self.position_names: list[list[str]] = json_attr(f, self.path, "position_names")
            task_ids = f["episodes/task"][:]
            if task_ids.size and (task_ids.min() < 0 or task_ids.max() >= len(self.tasks)):
                raise StoreError(self.path, "`episodes/task` refers to a task not in attrs `tasks`")
        except OSError as exc:  # an index chunk that fails its checksum
            f.close()
            raise StoreError(
                self.path, f"the episode index cannot be read, the file is corrupt ({exc})"
            ) from None
        except Exception:
            f.close()
            raise
        self.f = f
        self.starts = f["episodes/start"][:]
        self.lengths = f["episodes/length"][:]
        self.task_ids = task_ids
        self.splits = f["episodes/split"][:]
        self.seeds = f["episodes/seed"][:]
        self.returns = f["episodes/return"][:]
        self.image_size = int(f["frames"].shape[1])
        self.action_dim = int(f["actions"].shape[1])

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.f.id.valid:
            self.f.close()

    @property
    def num_episodes(self) -> int:
        return len(self.starts)

    @property
    def num_frames(self) -> int:
        return int(self.lengths.sum())

    def episode_ids(self, split: str | None = None, task: str | None = None) -> np.ndarray:
        """Episode indices in ``split`` (``train``, ``val``, ``test``; None = all), optionally
        of one task."""
        chosen = in_split(self.splits, split)
        if task is not None:
            chosen &= self.task_ids == self.tasks.index(task)
        return np.flatnonzero(chosen)

    def _rows(self, episode: int, start: int, stop: int | None) -> slice:
        """The store rows of frames ``[start, stop)`` of ``episode`` (None: to its end)."""
        length = int(self.lengths[episode])
        stop = length if stop is None else stop
        if not 0 <= start < stop <= length:
            raise IndexError(f"episode {episode} has {length} frames; asked [{start}, {stop})")
        return slice(int(self.starts[episode]) + start, int(self.starts[episode]) + stop)

    def read_states(
        self, episode: int, start: int = 0, stop: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Simulator states ``(T, D)`` and success positions ``(T, P)`` of frames
        ``[start, stop)`` of ``episode``, at the task's own sizes."""
        task = int(self.task_ids[episode])
        s = self._rows(episode, start, stop)
        try:
            states = self.f["states"][s, : self.state_dims[task]]
            positions = self.f["positions"][s, : len(self.position_names[task])]
        except OSError as exc:
            raise StoreError(
                self.path,
                f"episode {episode} (frames {s.start}..{s.stop - 1}): states cannot be read, "
                f"the file is corrupt ({exc})",
            ) from None
        return states, positions

    def read(self, episode: int, start: int = 0, stop: int | None = None) -> Episode:
        """Frames ``[start, stop)`` of ``episode`` with their actions, rewards and discounts."""
        s = self._rows(episode, start, stop)
        try:
            data = {k: self.f[k][s] for k in ("frames", "actions", "rewards", "discounts")}
        except OSError as exc:  # a chunk that fails its checksum or decompression
            raise StoreError(
                self.path,
                f"episode {episode} (frames {s.start}..{s.stop - 1}) cannot be read, the file "
                f"is corrupt ({exc})",
            ) from None
        return Episode(
            task=self.tasks[int(self.task_ids[episode])], seed=int(self.seeds[episode]), **data
        )
