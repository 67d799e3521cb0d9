"""MLflow tracking of a stage run: tags, flattened params, metrics, artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import tiny_params


def test_collect_run_is_tracked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    from stages.collect import run

    monkeypatch.setenv("DVC_EXP_NAME", "exp-tracking-test")
    monkeypatch.setenv("DVC_STAGE", "collect")
    run(tiny_params(), tmp_path / "e.h5", tmp_path / "m.json")
    client = MlflowClient()
    exp = client.get_experiment_by_name("worldmodel")
    runs = client.search_runs([exp.experiment_id], "tags.dvc_exp_name = 'exp-tracking-test'")
    assert len(runs) == 1
    r = runs[0]
    assert r.info.status == "FINISHED"
    assert r.data.tags["dvc_stage"] == "collect" and r.data.tags["stage"] == "collect"
    assert len(r.data.tags["git_commit"]) in (40, 7) or r.data.tags["git_commit"] == "unknown"
    assert r.data.params["collect.tasks"] == "synthetic-shapes"
    assert r.data.params["collect.policy.kind"] == "ou"
    assert r.data.params["base.seed"] == "0"
    assert r.data.metrics["episodes"] == 4
    assert "return_mean" in r.data.metrics
    arts = [a.path for a in client.list_artifacts(r.info.run_id, "samples")]
    assert arts == ["samples/.collect_samples.png"] or any(a.endswith(".png") for a in arts)


def test_metric_batches_and_null_skipping(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from worldmodel.tracking import stage_run

    with stage_run("unit", tiny_params(), ("base",)) as t:
        for step in range(2500):
            t.log_metrics({"loss": 1.0 / (step + 1), "lpips": None, "bad": float("nan")}, step)
        run_id = t.run_id
    client = MlflowClient()
    hist = client.get_metric_history(run_id, "loss")
    assert len(hist) == 2500
    assert "lpips" not in client.get_run(run_id).data.metrics
    assert set(client.get_run(run_id).data.params) == {
        "base.seed",
        "base.device",
        "base.torch_threads",
    }


def test_moving_the_project_keeps_artifacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Artifacts stay reachable after the project folder (store + mlartifacts/) moves."""
    import shutil

    from mlflow import MlflowClient

    from tests.conftest import tiny_params
    from worldmodel.tracking import stage_run

    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{old / 'mlflow.db'}")
    note = old / "note.txt"
    note.write_text("kept")
    with stage_run("mover", tiny_params(), ("base",)) as t:
        t.log_artifact(note, "notes")
        run_id = t.run_id
    shutil.move(old, new)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{new / 'mlflow.db'}")
    with stage_run("mover", tiny_params(), ("base",)):
        pass
    client = MlflowClient(f"sqlite:///{new / 'mlflow.db'}")
    got = client.download_artifacts(run_id, "notes/note.txt", str(tmp_path))
    assert Path(got).read_text() == "kept"
    assert str(new) in client.get_run(run_id).info.artifact_uri
