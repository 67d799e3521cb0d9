"""Two processes writing to one sqlite tracking store at once lose no runs and no metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

WRITER = r"""
import sys
sys.path.insert(0, {repo!r})
from tests.conftest import tiny_params
from worldmodel.tracking import stage_run
with stage_run("writer", tiny_params(), ("base", "collect")) as t:
    for step in range(1500):
        t.log_metrics({{"loss": step * 0.5, "other": float({which})}}, step)
        if step % 300 == 0:
            t.flush()
"""


def test_two_processes_one_store(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "DVC_EXP_NAME": ""}
    procs = []
    for which in (1, 2):
        script = tmp_path / f"w{which}.py"
        script.write_text(WRITER.format(repo=str(REPO), which=which))
        env_i = {**env, "DVC_EXP_NAME": f"exp{which}"}
        procs.append(subprocess.Popen([sys.executable, str(script)], env=env_i, cwd=tmp_path))
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("worldmodel")
    runs = client.search_runs([exp.experiment_id], "tags.stage = 'writer'")
    assert sorted(r.data.tags["dvc_exp_name"] for r in runs) == ["exp1", "exp2"]
    for r in runs:
        assert r.info.status == "FINISHED"
        history = client.get_metric_history(r.info.run_id, "loss")
        assert len(history) == 1500 and len(r.data.params) > 5
