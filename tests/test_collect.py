"""The collector: determinism, worker independence, real dm_control, atomic output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import REPO, load_script, tiny_params
from worldmodel.data.episodes import EpisodeStore
from worldmodel.recording import collect, make_jobs

ARRAYS = (
    "frames",
    "actions",
    "rewards",
    "discounts",
    "episodes/seed",
    "episodes/split",
    "episodes/task",
    "episodes/start",
)


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path) as f:
        return {k: f[k][:] for k in ARRAYS}


def _same(a: Path, b: Path) -> bool:
    x, y = _arrays(a), _arrays(b)
    return all(np.array_equal(x[k], y[k]) for k in ARRAYS)


def test_same_seed_same_arrays_other_seed_differs(tmp_path: Path) -> None:
    collect(tiny_params(), tmp_path / "a.h5")
    collect(tiny_params(), tmp_path / "b.h5")
    assert _same(tmp_path / "a.h5", tmp_path / "b.h5")
    other = tiny_params().model_copy(
        update={"base": tiny_params().base.model_copy(update={"seed": 1})}
    )
    collect(other, tmp_path / "c.h5")
    assert not _same(tmp_path / "a.h5", tmp_path / "c.h5")


def test_episode_seed_independent_of_episode_count() -> None:
    few = make_jobs(tiny_params(episodes_per_task=3))
    many = make_jobs(tiny_params(episodes_per_task=5))
    assert [j.seed for j in few] == [j.seed for j in many[:3]]
    assert len({j.seed for j in many}) == 5


def test_store_contents_and_metrics(synthetic_store: Path) -> None:
    with EpisodeStore(synthetic_store) as s:
        assert s.num_episodes == 4 and s.num_frames == 56 and s.image_size == 32
        assert len(s.episode_ids("val")) == 1 and len(s.episode_ids("test")) == 1
        ep = s.read(0)
        assert (ep.actions[0] == 0).all() and ep.rewards[0] == 0  # reset frame
        assert np.abs(ep.actions[1:]).max() > 0
        assert len(set(map(bytes, ep.frames))) > 1  # the world moves


def test_sample_frames_and_metrics(tmp_path: Path) -> None:
    result = collect(tiny_params(episodes_per_task=3), tmp_path / "e.h5")
    m = result.metrics
    assert m["episodes"] == 3 and m["frames"] == 42 and m["frames_per_s"] > 0
    # one task: its numbers are the run's, with no per-task block repeating them
    assert "tasks" not in m
    assert {"val_episodes", "test_episodes", "return_mean", "return_max"} <= set(m)
    assert result.samples["synthetic-shapes"].shape == (8, 32, 32, 3)


def test_too_many_frames_refused_by_params_validation() -> None:
    from worldmodel.config import ParamsError

    with pytest.raises(ParamsError, match="frames_per_episode` = 600.*at most 501 frames"):
        tiny_params(tasks=["cartpole-swingup"], frames_per_episode=600, action_repeat=2)


@pytest.mark.slow
def test_real_dmc_two_short_episodes(tmp_path: Path) -> None:
    params = tiny_params(
        tasks=["cartpole-swingup"],
        episodes_per_task=3,
        frames_per_episode=14,
        action_repeat=2,
        image_size=32,
    )
    collect(params, tmp_path / "e.h5")
    with EpisodeStore(tmp_path / "e.h5") as s:
        assert s.tasks == ["cartpole-swingup"] and s.action_dims == [1]
        assert s.control_timestep == [pytest.approx(0.02)]
        ep = s.read(0)
        assert ep.frames.shape == (14, 32, 32, 3)
        assert (np.abs(ep.actions) <= 1).all()
        assert ep.frames.std() > 5  # a rendered scene, not a blank frame
        assert not np.array_equal(ep.frames[1], ep.frames[13])
        assert s.action_repeat == [2] and s.camera == [1]  # cartpole's camera follows the cart


@pytest.mark.slow
def test_tasks_are_recorded_at_their_conventions(tmp_path: Path) -> None:
    """Naming a task is enough: each gets its own control rate and camera (DMC protocol),
    in one store, and `per_task` overrides one of them."""
    params = tiny_params(
        tasks=["cartpole-swingup", "reacher-easy", "finger-spin"],
        episodes_per_task=3,
        action_repeat=None,
        per_task={"finger-spin": {"camera": 1}},
        image_size=24,
    )
    collect(params, tmp_path / "e.h5")
    with EpisodeStore(tmp_path / "e.h5") as s:
        assert s.action_repeat == [8, 4, 2]
        assert s.camera == [1, 0, 1]
        # each task's physics step times its own repeat (cartpole 0.01 s, reacher 0.02 s)
        assert s.control_timestep[:2] == [pytest.approx(0.08), pytest.approx(0.08)]


@pytest.mark.slow
def test_one_vs_two_workers_identical_arrays(tmp_path: Path) -> None:
    kw = dict(
        tasks=["cartpole-swingup", "synthetic-shapes"],
        episodes_per_task=3,
        frames_per_episode=14,
        action_repeat=2,
        image_size=24,
    )
    collect(tiny_params(workers=1, **kw), tmp_path / "one.h5")
    collect(tiny_params(workers=2, **kw), tmp_path / "two.h5")
    assert _same(tmp_path / "one.h5", tmp_path / "two.h5")


def _tiny_params_file(tmp_path: Path, **collect_kw) -> Path:
    import yaml

    p = tiny_params(**collect_kw).model_dump()
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_collect_leaves_no_output(tmp_path: Path, sig: int) -> None:
    params = _tiny_params_file(
        tmp_path, episodes_per_task=400, frames_per_episode=50, image_size=48
    )
    out = tmp_path / "data" / "episodes.h5"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stages.collect",
            "--params",
            str(params),
            "--out",
            str(out),
            "--metrics",
            str(tmp_path / "m.json"),
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.parent.glob(".episodes.h5.tmp-*")):
        time.sleep(0.1)
    assert list(out.parent.glob(".episodes.h5.tmp-*")), "collect never started writing"
    time.sleep(0.5)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    assert not out.exists()
    assert not (tmp_path / "m.json").exists()
    if sig == signal.SIGTERM:  # a catchable signal also cleans the temporary up
        assert not list(out.parent.glob(".episodes.h5.tmp-*"))


def test_metrics_json_written_by_stage(tmp_path: Path) -> None:
    from stages.collect import run

    run(tiny_params(), tmp_path / "e.h5", tmp_path / "m.json", track=False)
    assert json.loads((tmp_path / "m.json").read_text()) == {"episodes": 4}  # the headline
    details = json.loads((tmp_path / "details" / "m.json").read_text())
    assert details["frames"] == 56 and "return_mean" in details and "seconds" not in details
    assert json.loads((tmp_path / "timings" / "m.json").read_text())["seconds"] >= 0


@pytest.mark.slow
def test_bench_collect_runs_at_the_default_action_repeat() -> None:
    """scripts/bench_collect.py's collector timing works at the default params' frames and
    action repeat (a fixed 200 frames broke when the default became action_repeat 8)."""
    bench = load_script("bench_collect")
    from worldmodel.config import CollectParams

    c = CollectParams()
    repeat = c.settings("cartpole-swingup").action_repeat
    fps = bench.collect_fps(
        "cartpole-swingup",
        size=32,
        workers=1,
        episodes=3,
        length=c.frames_per_episode,
        action_repeat=repeat,
    )
    assert fps > 0


def test_store_records_each_tasks_settings(tmp_path: Path) -> None:
    params = tiny_params(episodes_per_task=3)
    collect(params, tmp_path / "e.h5")
    with EpisodeStore(tmp_path / "e.h5") as s:
        assert s.action_repeat == [1] and s.camera == [None]  # synthetic: no camera
