"""The DVC pipeline, run for real in a temporary copy of the repository."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from wm.presets import apply_preset

pytestmark = pytest.mark.slow


def _sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture()
def repo_copy(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The working tree's tracked and new files in a fresh git repo, with tiny params."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    dest = tmp_path / "repo"
    for rel in files:
        src = REPO / rel
        if src.is_file() and not rel.startswith(("data/", "metrics/")) and rel != "dvc.lock":
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    apply_preset("tiny", dest / "params.yaml")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    _sh(["git", "init", "-q"], dest, env)
    _sh(["git", "add", "-A"], dest, env)
    _sh(["git", "commit", "-qm", "copy"], dest, env)
    return dest, env


def test_bad_param_fails_repro(repo_copy: tuple[Path, dict[str, str]]) -> None:
    repo, env = repo_copy
    dvc = str(Path(sys.executable).parent / "dvc")
    params = (repo / "params.yaml").read_text().replace("image_size: 32", "image_size: -1")
    (repo / "params.yaml").write_text(params)
    res = subprocess.run([dvc, "repro"], cwd=repo, env=env, capture_output=True, text=True)
    assert res.returncode != 0
    assert "collect.image_size" in res.stdout + res.stderr
    assert not (repo / "data/episodes.h5").exists()


def _status(dvc: str, repo: Path, env: dict[str, str]) -> set[str]:
    """Stages `dvc repro` would run now (changed ones and everything downstream)."""
    out = _sh([dvc, "repro", "--dry"], repo, env).stdout
    return set(re.findall(r"Running stage '([^']+)'", out))


def test_full_dag_exactness_remote_and_mlflow(
    repo_copy: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """The whole DAG on tiny params: a param change reruns exactly its stage and those
    downstream; a code change likewise; outputs survive push / cache wipe / pull."""
    repo, env = repo_copy
    dvc = str(Path(sys.executable).parent / "dvc")
    _sh([dvc, "repro"], repo, env)
    assert _status(dvc, repo, env) == set()
    for name in ("collect", "tokenizer", "tokenize", "dynamics", "evaluate", "plan"):
        for kind in ("details", "timings"):
            assert (repo / "metrics" / kind / f"{name}.json").is_file(), (kind, name)
        # headline files for every stage with a quality number (tokenize has none)
        assert (repo / "metrics" / f"{name}.json").is_file() == (name != "tokenize")
    assert json.loads((repo / "metrics/collect.json").read_text())["episodes"] == 6
    assert (repo / "data/eval/psnr_vs_horizon.png").is_file()
    assert json.loads((repo / "metrics/details/plan.json").read_text())["replay_success"] == 1.0

    res = _sh([dvc, "repro"], repo, env)  # a no-op: nothing reruns
    assert "didn't change" in res.stdout or "up to date" in res.stdout
    assert "Running stage" not in res.stdout
    assert json.loads(_sh([dvc, "status", "--json"], repo, env).stdout) == {}

    # an experiment that changes only evaluate's params reruns only evaluate
    files = [repo / "dvc.lock", *(f for f in (repo / "metrics").rglob("*") if f.is_file())]
    kept = {f: f.read_bytes() for f in files}
    res = _sh([dvc, "exp", "run", "-S", "evaluate.steps=1", "-n", "k1"], repo, env).stdout
    assert set(re.findall(r"Running stage '([^']+)'", res)) == {"evaluate"}
    assert "k1" in _sh([dvc, "exp", "show", "--json"], repo, env).stdout
    _sh(["git", "checkout", "--", "params.yaml"], repo, env)  # back to the run above
    for f, data in kept.items():
        f.write_bytes(data)
    _sh([dvc, "checkout", "--force"], repo, env)
    assert _status(dvc, repo, env) == set()

    stages = ["collect", "train_tokenizer", "tokenize", "train_dynamics", "evaluate", "plan"]
    import yaml

    original = (repo / "params.yaml").read_text()
    for i, (section, key) in enumerate(
        [
            ("collect", "frames_per_episode"),
            ("tokenizer", "lpips_weight"),
            ("tokenize", "batch_size"),
            ("dynamics", "tau_ctx"),
            ("evaluate", "steps"),
            ("plan", "budget"),
        ]
    ):
        data = yaml.safe_load(original)
        data[section][key] = data[section][key] + 1 if isinstance(data[section][key], int) else 0.5
        (repo / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        assert _status(dvc, repo, env) == {stages[i]}, section  # only the stage that reads it
    # Run one for real: the changed stage and those downstream of its new output rerun.
    res = _sh([dvc, "repro"], repo, env).stdout
    assert set(re.findall(r"Running stage '([^']+)'", res)) == {"plan"}
    data = yaml.safe_load(original)
    data["dynamics"]["tau_ctx"] = 0.7  # the context's signal level
    (repo / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    res = _sh([dvc, "repro"], repo, env).stdout
    assert set(re.findall(r"Running stage '([^']+)'", res)) == {
        "train_dynamics",
        "evaluate",
        "plan",
    }
    (repo / "params.yaml").write_text(original)
    _sh([dvc, "repro"], repo, env)
    assert _status(dvc, repo, env) == set()

    forcing = repo / "worldmodel" / "forcing.py"
    text = forcing.read_text()
    forcing.write_text(text + "\n# edited\n")
    # train_dynamics, evaluate and plan import forcing.py
    assert _status(dvc, repo, env) == {"train_dynamics", "evaluate", "plan"}
    forcing.write_text(text)
    assert _status(dvc, repo, env) == set()

    # Storage: push everything to a local remote, wipe cache and workspace, pull back.
    remote = tmp_path / "remote"
    _sh([dvc, "remote", "add", "-d", "local", str(remote)], repo, env)
    _sh([dvc, "push"], repo, env)
    before = (repo / "data" / "episodes.h5").read_bytes()
    shutil.rmtree(repo / ".dvc" / "cache")
    for out in ("data/episodes.h5", "data/latents.h5"):
        (repo / out).unlink()
    for out in ("data/tokenizer", "data/dynamics", "data/eval"):
        shutil.rmtree(repo / out)
    _sh([dvc, "pull"], repo, env)
    assert (repo / "data" / "episodes.h5").read_bytes() == before
    assert _status(dvc, repo, env) == set()
    for out in (
        "data/tokenizer/model.pt",
        "data/dynamics/model.pt",
        "data/eval/psnr_vs_horizon.png",
    ):
        assert (repo / out).is_file()

    diff = _sh([dvc, "metrics", "show", "--json"], repo, env).stdout
    assert "gain_db" in diff and "val_psnr_db" in diff  # the headline files
    details = _sh(
        [dvc, "metrics", "diff", "--targets", "metrics/details/tokenizer.json"], repo, env
    )
    assert details.returncode == 0  # details and timings are read through --targets


def test_queued_seeds_are_tracked_in_the_project_store_and_compared(
    repo_copy: tuple[Path, dict[str, str]],
) -> None:
    """`dvc exp run --queue -S 'base.seed=range(0,2)'` + `dvc queue start`: every stage run
    of both experiments lands in the project's own MLflow store (not in the temporary copy
    DVC runs them in), and `wm compare` reads them back as one group of two seeds."""
    import sqlite3

    repo, env = repo_copy
    env = {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"}  # the default store
    dvc = str(Path(sys.executable).parent / "dvc")
    wm = str(Path(sys.executable).parent / "wm")
    # `wm study`: queues the DAG per task and seed, runs the queue, compares per task
    res = _sh([wm, "study", "synthetic-shapes", "--seeds", "2"], repo, env)
    assert "### Task" not in res.stdout and "seeds 0, 1 (2 runs)" in res.stdout, res.stdout
    status = _sh([dvc, "queue", "status"], repo, env).stdout
    assert status.count("Success") == 2, status

    with sqlite3.connect(repo / "mlflow.db") as db:
        rows = db.execute(
            "SELECT t1.value, t2.value FROM tags t1 JOIN tags t2 ON t1.run_uuid = t2.run_uuid "
            "JOIN runs r ON r.run_uuid = t1.run_uuid "
            "WHERE t1.key = 'dvc_exp_name' AND t2.key = 'stage' AND r.status = 'FINISHED'"
        ).fetchall()
    names = {name for name, _ in rows}
    assert len(names) == 2 and all(names), rows
    stages = {"collect", "train_tokenizer", "tokenize", "train_dynamics", "evaluate", "plan"}
    for name in names:
        assert {stage for n, stage in rows if n == name} == stages, rows

    res = _sh([wm, "compare", *sorted(names)], repo, env)
    assert "seeds 0, 1 (2 runs)" in res.stdout and "gain over repeat-last" in res.stdout
    bad = subprocess.run(
        [wm, "compare", "no-such-exp"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown experiments no-such-exp" in bad.stderr
