"""MLflow runs tell the truth when stages are killed: SIGTERM -> KILLED at once; SIGKILL ->
KILLED when the stage next starts, linked to the run that resumes the work."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_params

pytestmark = pytest.mark.slow


def _runs(db: Path, stage: str) -> dict[str, dict[str, str]]:
    """``{run_id: {"status": ..., tag: value, ...}}`` of one stage's runs."""
    with sqlite3.connect(db) as c:
        runs = {r: {"status": s} for r, s in c.execute("SELECT run_uuid, status FROM runs")}
        for run, key, value in c.execute("SELECT run_uuid, key, value FROM tags"):
            runs[run][key] = value
    return {r: t for r, t in runs.items() if t.get("stage") == stage}


def _start(stage: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def test_killed_stages_leave_true_records(tmp_path: Path) -> None:
    data = tiny_params(episodes_per_task=5, frames_per_episode=20).model_dump()
    data["tokenizer"]["train"].update(steps=150, checkpoint_every=10, log_every=5)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # marks the project root
    db = tmp_path / "mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}", "PYTHONUNBUFFERED": "1"}
    assert (
        subprocess.run([sys.executable, "-m", "stages.collect"], cwd=tmp_path, env=env).returncode
        == 0
    )

    resume = tmp_path / "data" / ".resume" / "train_tokenizer.pt"
    proc = _start("train_tokenizer", tmp_path, env)
    _wait_for(resume, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (killed,) = _runs(db, "train_tokenizer").values()
    assert killed["status"] == "RUNNING"  # nothing can run on SIGKILL ...

    proc = _start("train_tokenizer", tmp_path, env)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0 and "resumed at step" in out, out
    runs = _runs(db, "train_tokenizer")  # ... so the next start records it
    old = next(r for r, t in runs.items() if t["status"] == "KILLED")
    new = next(r for r, t in runs.items() if t["status"] == "FINISHED")
    assert runs[old]["superseded_by"] == new and runs[new]["previous_attempts"] == old

    resume.unlink(missing_ok=True)
    data["tokenizer"]["train"]["steps"] = 151  # a fresh run, stopped with SIGTERM
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    proc = _start("train_tokenizer", tmp_path, env)
    _wait_for(resume, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    statuses = sorted(t["status"] for t in _runs(db, "train_tokenizer").values())
    assert statuses == ["FINISHED", "KILLED", "KILLED"]
