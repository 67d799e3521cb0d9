"""The `wm` command line through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tests.conftest import REPO, tiny_params
from wm.app import app

runner = CliRunner()


def _params_file(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_collect_command(tmp_path: Path) -> None:
    params = _params_file(tmp_path, tiny_params().model_dump())
    out, metrics = tmp_path / "e.h5", tmp_path / "m.json"
    res = runner.invoke(
        app, ["collect", "--params", str(params), "--out", str(out), "--metrics", str(metrics)]
    )
    assert res.exit_code == 0, res.output
    assert out.is_file() and json.loads(metrics.read_text())["episodes"] == 4


def test_bad_param_exits_2_naming_key(tmp_path: Path) -> None:
    params = _params_file(tmp_path, {"collect": {"image_size": -3}})
    out = tmp_path / "e.h5"
    res = runner.invoke(app, ["collect", "--params", str(params), "--out", str(out)])
    assert res.exit_code == 2
    assert "collect.image_size" in res.output and "-3" in res.output
    assert not out.exists()


def test_impossible_episode_length_exits_2(tmp_path: Path) -> None:
    data = tiny_params(tasks=["cartpole-swingup"]).model_dump()
    data["collect"]["frames_per_episode"] = 1200  # params validation refuses it before work
    res = runner.invoke(
        app,
        ["collect", "--params", str(_params_file(tmp_path, data)), "--out", str(tmp_path / "e.h5")],
    )
    assert res.exit_code == 2 and "frames_per_episode" in res.output
    assert "at most 1001" in res.output and not (tmp_path / "e.h5").exists()


def test_tasks_lists_suite_and_synthetic() -> None:
    res = runner.invoke(app, ["tasks"])
    assert res.exit_code == 0
    names = res.output.split()
    assert "cartpole-swingup" in names and "synthetic-shapes" in names and "humanoid-walk" in names


def test_preset_command(tmp_path: Path) -> None:
    target = tmp_path / "params.yaml"
    target.write_text((REPO / "params.yaml").read_text())
    res = runner.invoke(app, ["preset", "tier2", "--params", str(target)])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(target.read_text())["collect"]["tasks"] == ["reacher-easy"]
    assert "collect.tasks: ['cartpole-swingup'] -> ['reacher-easy']" in res.output
    res = runner.invoke(app, ["preset", "nope", "--params", str(target)])
    assert res.exit_code == 2 and "unknown preset" in res.output
    res = runner.invoke(app, ["preset", "--help"], terminal_width=120)
    for name in ("tier1", "tier2", "tier3", "tiny"):  # every preset, with its summary
        assert f" {name}  " in res.output, res.output


def test_params_doc_and_check_params() -> None:
    res = runner.invoke(app, ["params-doc"])
    assert res.exit_code == 0 and "`collect.episodes_per_task`" in res.output
    res = runner.invoke(app, ["check-params", "--params", str(REPO / "params.yaml")])
    assert res.exit_code == 0 and "cartpole-swingup" in res.output


def test_short_help_and_version() -> None:
    res = runner.invoke(app, ["-h"])
    assert res.exit_code == 0 and "compare" in res.output and "collect" in res.output
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.startswith("worldmodel ")


def test_study_refuses_bad_input_before_queueing_anything() -> None:
    """`wm study` checks its tasks and --joint before any `dvc exp run --queue`."""
    res = runner.invoke(app, ["study", "cartpole-swingup", "--joint"])
    assert res.exit_code == 2 and "--joint needs two or more tasks" in res.output
    res = runner.invoke(app, ["study", "no-such-task"])
    assert res.exit_code == 2 and "no-such-task" in res.output
