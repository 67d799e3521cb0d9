"""Where numbers go (headline / details / timings) and how progress reads off a terminal."""

from __future__ import annotations

import json
from pathlib import Path

from worldmodel.progress import ProgressLog
from worldmodel.results import HEADLINE, HEADLINE_MEANING, split_result, write_stage_metrics


def _eval_result(tasks: list[str]) -> dict:
    one = {
        "gain_over_repeat_last_db": 2.5,
        "gain_over_repeat_last_db_ci95": [2.0, 3.0],
        "action_sensitivity_db": 1.0,
        "exposure_bias_db": 1.5,
        "lpips_h1": None,
        "seconds": 12.0,
        "fps_k4_batched": 700.0,
    }
    return {"overall": dict(one), "tasks": {t: dict(one) for t in tasks}, "sampler_sweep": []}


def test_one_task_has_no_per_task_block_and_timings_apart(tmp_path: Path) -> None:
    path = tmp_path / "evaluate.json"
    write_stage_metrics(path, "evaluate", _eval_result(["cartpole-swingup"]))
    headline = json.loads(path.read_text())
    details = json.loads((tmp_path / "details" / "evaluate.json").read_text())
    timings = json.loads((tmp_path / "timings" / "evaluate.json").read_text())
    assert headline == {"gain_db": 2.5, "shuffle_cost_db": 1.0, "exposure_bias_db": 1.5}
    assert details["gain_over_repeat_last_db_ci95"] == [2.0, 3.0]
    assert "tasks" not in details and "sampler_sweep" not in details
    assert "lpips_h1" not in details  # None is left out, not written as null
    assert timings == {"seconds": 12.0, "fps_k4_batched": 700.0}


def test_several_tasks_are_reported_per_task_in_headline_and_details() -> None:
    headline, details, _ = split_result("evaluate", _eval_result(["a-b", "c-d"]))
    assert set(headline["tasks"]) == {"a-b", "c-d"} == set(details["tasks"])
    assert headline["tasks"]["a-b"] == {
        "gain_db": 2.5,
        "shuffle_cost_db": 1.0,
        "exposure_bias_db": 1.5,
    }
    assert "seconds" not in details["tasks"]["c-d"]


def test_a_plan_run_without_the_oracle_writes_the_other_headlines() -> None:
    """`plan.oracle: false` leaves the oracle out: its headline is absent, not a crash
    after every goal was planned."""
    rates = {"model_success": 0.3, "random_success": 0.1, "replay_success": 1.0, "seconds": 9.0}
    result = {"overall": dict(rates), "tasks": {"a-b": dict(rates), "c-d": dict(rates)}}
    headline, details, timings = split_result("plan", result)
    assert "oracle_success" not in details and timings == {"seconds": 9.0}
    assert set(headline) == {"model_success", "random_success", "tasks"}
    assert headline["tasks"]["c-d"] == {"model_success": 0.3, "random_success": 0.1}


def test_training_stage_split_and_tokenize_has_no_headline(tmp_path: Path) -> None:
    result = {"val": {"psnr": 30.1, "lpips": None}, "train_seconds": 100.0, "params_millions": 1.3}
    headline, details, timings = split_result("train_tokenizer", result)
    assert headline == {"val_psnr_db": 30.1}
    assert details == {"val": {"psnr": 30.1}, "params_millions": 1.3}
    assert timings == {"train_seconds": 100.0}
    write_stage_metrics(tmp_path / "tokenize.json", "tokenize", {"frames": 10, "seconds": 1.0})
    assert not (tmp_path / "tokenize.json").exists()
    assert json.loads((tmp_path / "details" / "tokenize.json").read_text()) == {"frames": 10}


def test_every_headline_name_is_explained() -> None:
    names = {n for spec in HEADLINE.values() for n in spec}
    assert names == set(HEADLINE_MEANING)


def test_progress_lines_at_a_steady_interval_with_eta() -> None:
    now = [0.0]
    lines: list[str] = []
    log = ProgressLog(
        "train", total=100, unit="steps/s", interval=30, write=lines.append, clock=lambda: now[0]
    )
    for step in range(1, 101):
        now[0] = step * 1.0  # one step per second
        log.update(step, 1.0, f"loss/mse {1 / step:.3g}")
    log.close()
    assert len(lines) == 4  # at 30, 60 and 90 s, and the closing line
    assert lines[0] == "train: 30/100 (30%), 1.0 steps/s, elapsed 0:30, ETA 1:10, loss/mse 0.0333"
    assert lines[-1].startswith("train: 100/100 (100%)") and "ETA" not in lines[-1]
    quiet: list[str] = []
    off = ProgressLog("x", total=10, unit="u", interval=0, write=quiet.append, clock=lambda: now[0])
    off.update(5)
    off.close()
    assert quiet == []  # WM_PROGRESS_SECONDS=0: no lines at all


def test_the_docs_explain_every_headline_column() -> None:
    from tests.conftest import REPO

    readme = (REPO / "docs" / "metrics.md").read_text()
    for name, meaning in HEADLINE_MEANING.items():
        assert f"| `{name}` |" in readme and meaning in readme, name
