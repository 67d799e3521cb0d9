"""A stage run logged to a real `mlflow server` over HTTP, queried back, server stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import tiny_params

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stage_run_reaches_a_real_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        [
            str(mlflow_bin),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--default-artifact-root",
            str(tmp_path / "artifacts"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                assert time.time() < deadline, "mlflow server did not start"
                assert proc.poll() is None, "mlflow server exited"
                time.sleep(0.5)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.setenv("DVC_EXP_NAME", "server-test")
        from mlflow import MlflowClient

        from stages.collect import run

        run(tiny_params(), tmp_path / "e.h5", tmp_path / "m.json")
        client = MlflowClient(tracking_uri=url)
        exp = client.get_experiment_by_name("worldmodel")
        runs = client.search_runs([exp.experiment_id], "tags.dvc_exp_name = 'server-test'")
        assert len(runs) == 1 and runs[0].data.metrics["episodes"] == 4
        assert runs[0].data.tags["dvc_stage"] == "collect"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.poll() is not None
