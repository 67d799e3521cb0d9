"""The DVC pipeline, run for real in a temporary copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from worldmodel.config import apply_preset

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


def test_repro_noop_and_exp_run(repo_copy: tuple[Path, dict[str, str]]) -> None:
    repo, env = repo_copy
    dvc = str(Path(sys.executable).parent / "dvc")
    _sh([dvc, "repro"], repo, env)
    metrics = json.loads((repo / "metrics/collect.json").read_text())
    assert (repo / "data/episodes.h5").is_file() and metrics["episodes"] == 6
    assert (repo / "dvc.lock").is_file()

    t0 = time.perf_counter()
    res = _sh([dvc, "repro"], repo, env)
    assert "didn't change" in res.stdout or "up to date" in res.stdout
    assert time.perf_counter() - t0 < 5

    status = _sh([dvc, "status", "--json"], repo, env)
    assert json.loads(status.stdout) == {}

    _sh([dvc, "exp", "run", "-S", "collect.episodes_per_task=3", "-n", "three"], repo, env)
    assert json.loads((repo / "metrics/collect.json").read_text())["episodes"] == 3
    show = _sh([dvc, "exp", "show", "--json"], repo, env).stdout
    assert "three" in show


def test_bad_param_fails_repro(repo_copy: tuple[Path, dict[str, str]]) -> None:
    repo, env = repo_copy
    dvc = str(Path(sys.executable).parent / "dvc")
    params = (repo / "params.yaml").read_text().replace("image_size: 32", "image_size: -1")
    (repo / "params.yaml").write_text(params)
    res = subprocess.run([dvc, "repro"], cwd=repo, env=env, capture_output=True, text=True)
    assert res.returncode != 0
    assert "collect.image_size" in res.stdout + res.stderr
    assert not (repo / "data/episodes.h5").exists()
