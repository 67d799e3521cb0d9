"""The episode store: round trip, schema validation, and clear errors on bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from worldmodel.data.episodes import (
    SCHEMA_VERSION,
    Episode,
    EpisodeStore,
    EpisodeWriter,
    StoreError,
    TaskInfo,
)
from worldmodel.data.splits import TEST, TRAIN, VAL, assign_splits, split_sizes


def _episode(task: str, t: int, a: int, seed: int) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(
        task=task,
        seed=seed,
        frames=rng.integers(0, 256, (t, 8, 8, 3), dtype=np.uint8),
        actions=rng.standard_normal((t, a)).astype(np.float32),
        rewards=rng.random(t).astype(np.float32),
        discounts=np.ones(t, np.float32),
    )


def _write(path: Path) -> list[Episode]:
    tasks = [
        TaskInfo("a-x", action_dim=1, action_low=[-1.0], action_high=[1.0], control_timestep=0.02),
        TaskInfo(
            "b-y", action_dim=3, action_low=[-1.0] * 3, action_high=[1.0] * 3, control_timestep=0.04
        ),
    ]
    eps = [_episode("a-x", 5, 1, 0), _episode("b-y", 7, 3, 1), _episode("a-x", 20, 1, 2)]
    w = EpisodeWriter(path, tasks, [e.length for e in eps], 8, attrs={"params": {"k": 1}})
    for i, e in enumerate(eps):
        w.write(i, e)
    w.finish(np.array([TRAIN, VAL, TEST], np.uint8))
    return eps


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "e.h5"
    eps = _write(path)
    with EpisodeStore(path) as s:
        assert s.num_episodes == 3 and s.num_frames == 32
        assert s.tasks == ["a-x", "b-y"] and s.action_dims == [1, 3] and s.action_dim == 3
        assert list(s.episode_ids("train")) == [0] and list(s.episode_ids("test")) == [2]
        assert list(s.episode_ids(task="a-x")) == [0, 2]
        assert s.params == {"k": 1}
        for i, e in enumerate(eps):
            got = s.read(i)
            assert got.task == e.task and got.seed == e.seed
            np.testing.assert_array_equal(got.frames, e.frames)
            np.testing.assert_array_equal(got.actions[:, : e.actions.shape[1]], e.actions)
            assert (got.actions[:, e.actions.shape[1] :] == 0).all()  # padding
            np.testing.assert_array_equal(got.rewards, e.rewards)
        np.testing.assert_allclose(s.returns, [e.rewards.sum() for e in eps], rtol=1e-6)
        window = s.read(2, 4, 9)
        np.testing.assert_array_equal(window.frames, eps[2].frames[4:9])
        with pytest.raises(IndexError):
            s.read(0, 3, 6)


def test_frames_are_chunked_and_compressed(tmp_path: Path) -> None:
    path = tmp_path / "e.h5"
    _write(path)
    with h5py.File(path) as f:
        assert f["frames"].chunks == (16, 8, 8, 3)
        assert f["frames"].compression == "gzip"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="file not found"):
        EpisodeStore(tmp_path / "nope.h5")


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "e.h5"
    _write(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match=r"e\.h5.*truncated or corrupt"):
        EpisodeStore(path)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "e.h5"
    path.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(StoreError, match="not a readable HDF5"):
        EpisodeStore(path)


def _mutate(tmp_path: Path, fn) -> Path:
    path = tmp_path / "e.h5"
    _write(path)
    with h5py.File(path, "a") as f:
        fn(f)
    return path


def test_wrong_version(tmp_path: Path) -> None:
    path = _mutate(tmp_path, lambda f: f.attrs.__setitem__("schema_version", SCHEMA_VERSION + 1))
    with pytest.raises(StoreError, match="schema_version"):
        EpisodeStore(path)


def test_wrong_schema(tmp_path: Path) -> None:
    path = _mutate(tmp_path, lambda f: f.attrs.__setitem__("schema", "something.else"))
    with pytest.raises(StoreError, match="`schema`"):
        EpisodeStore(path)


def test_incomplete_file(tmp_path: Path) -> None:
    path = _mutate(tmp_path, lambda f: f.attrs.__setitem__("complete", False))
    with pytest.raises(StoreError, match="did not finish"):
        EpisodeStore(path)


def test_missing_field_is_named(tmp_path: Path) -> None:
    path = _mutate(tmp_path, lambda f: f.__delitem__("rewards"))
    with pytest.raises(StoreError, match="missing dataset `rewards`"):
        EpisodeStore(path)


def test_wrong_dtype_is_named(tmp_path: Path) -> None:
    def fn(f: h5py.File) -> None:
        data = f["actions"][:]
        del f["actions"]
        f["actions"] = data.astype(np.float64)

    with pytest.raises(StoreError, match="`actions` is float64"):
        EpisodeStore(_mutate(tmp_path, fn))


def test_inconsistent_rows_are_named(tmp_path: Path) -> None:
    def fn(f: h5py.File) -> None:
        del f["rewards"]
        f["rewards"] = np.zeros(31, np.float32)

    with pytest.raises(StoreError, match="`rewards` has 31 rows"):
        EpisodeStore(_mutate(tmp_path, fn))


def test_bad_index_is_named(tmp_path: Path) -> None:
    def fn(f: h5py.File) -> None:
        f["episodes/length"][0] = 6

    with pytest.raises(StoreError, match="do not tile"):
        EpisodeStore(_mutate(tmp_path, fn))


def test_splits_are_by_episode_per_task_and_seeded() -> None:
    task_ids = np.array([0] * 10 + [1] * 3)
    s1 = assign_splits(task_ids, 0.2, 0.3, seed=1)
    assert (s1[:10] == VAL).sum() == 2 and (s1[:10] == TEST).sum() == 3
    assert (s1[10:] == VAL).sum() == 1 and (s1[10:] == TEST).sum() == 1  # at least one each
    assert (s1[10:] == TRAIN).sum() == 1
    assert np.array_equal(s1, assign_splits(task_ids, 0.2, 0.3, seed=1))
    assert not np.array_equal(s1, assign_splits(task_ids, 0.2, 0.3, seed=2))
    assert split_sizes(3, 0.5, 0.5) == (-1, 2, 2)  # no train left: params validation refuses


def test_store_reads_each_split(tmp_path: Path) -> None:
    path = tmp_path / "e.h5"
    _write(path)
    with EpisodeStore(path) as store:
        assert store.episode_ids("train").tolist() == [0]
        assert store.episode_ids("val").tolist() == [1]
        assert store.episode_ids("test").tolist() == [2]
        with pytest.raises(ValueError, match="split must be one of train, val, test"):
            store.episode_ids("holdout")


def test_attrs_are_json(tmp_path: Path) -> None:
    path = tmp_path / "e.h5"
    _write(path)
    with h5py.File(path) as f:
        assert json.loads(f.attrs["action_low"]) == [[-1.0], [-1.0, -1.0, -1.0]]
        assert json.loads(f.attrs["control_timestep"]) == [0.02, 0.04]
    shutil.copy(path, tmp_path / "copy.h5")
    EpisodeStore(tmp_path / "copy.h5").close()


def test_a_tasks_split_does_not_depend_on_the_other_tasks() -> None:
    """A run of several tasks holds out the same episodes of each task as its own run."""
    alone = assign_splits(np.zeros(40, int), 0.1, 0.375, seed=7)
    for together in (np.repeat([0, 1], 40), np.repeat([1, 0], 40), np.repeat([0, 1, 2], 40)):
        split = assign_splits(together, 0.1, 0.375, seed=7)
        for t in np.unique(together):
            assert np.array_equal(split[together == t], alone)
