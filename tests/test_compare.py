"""`wm compare`: grouping by params other than the seed, intervals, verdicts, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import tiny_params
from wm.compare import (
    EVAL,
    TOK,
    CompareError,
    Experiment,
    compare,
    difference_interval,
    group_experiments,
)
from worldmodel.config import flatten

HEAD = [("m.json", "overall.gain", "gain (dB)")]


def _exp(name: str, seed: int, gain: float, lr: float = 0.003, task: str = "synthetic-shapes"):
    params = flatten(tiny_params(tasks=[task]))
    params.update({"base.seed": seed, "dynamics.train.lr": lr})
    return Experiment(name, params, {"m.json": {"overall": {"gain": gain}}})


def test_groups_by_params_other_than_the_seed() -> None:
    exps = [_exp("a0", 0, 1.0), _exp("a1", 1, 1.2), _exp("b0", 0, 2.0, lr=0.001)]
    groups = group_experiments(exps)
    assert [g.label for g in groups] == ["dynamics.train.lr=0.003", "dynamics.train.lr=0.001"]
    assert [m.name for m in groups[0].members] == ["a0", "a1"]


def test_paired_difference_over_common_seeds_and_welch_otherwise() -> None:
    a = {0: 1.0, 1: 2.0, 2: 3.0}
    b = {0: 1.5, 1: 2.5, 2: 3.6}  # +0.5 each, almost no spread: paired interval is narrow
    diff, lo, hi, method = difference_interval(a, b)
    assert method == "paired" and diff == pytest.approx(0.5333, abs=1e-3) and 0.3 < lo < hi < 0.8
    diff, lo, hi, method = difference_interval(a, {5: 1.5, 6: 2.5, 7: 3.6})
    assert method == "welch" and lo < 0 < hi  # unpaired, the seed spread dominates


def test_markdown_verdicts_and_width() -> None:
    rng = np.random.default_rng(0)
    exps = [_exp(f"a{s}", s, 1 + rng.normal(0, 0.3)) for s in range(3)]
    exps += [_exp(f"b{s}", s, 3 + rng.normal(0, 0.3), lr=0.001) for s in range(3)]
    exps += [_exp(f"c{s}", s, 1 + rng.normal(0, 0.3), lr=0.01) for s in range(3)]
    text = compare(exps, HEAD)
    assert "**Group A**" in text and "**B minus A**" in text and "**C minus A**" in text
    b_row, c_row = [ln for ln in text.splitlines() if ln.startswith("| gain (dB) |")][-2:]
    assert "higher (paired)" in b_row and "within noise" in c_row
    assert max(len(ln) for ln in text.splitlines()) <= 100


def test_bad_input_is_named() -> None:
    with pytest.raises(CompareError, match="different tasks"):
        group_experiments([_exp("a", 0, 1.0), _exp("b", 1, 1.0, task="cartpole-swingup")])
    with pytest.raises(CompareError, match="'a'.*has no number at `overall.other`"):
        compare([_exp("a", 0, 1.0)], [("m.json", "overall.other", "x")])
    with pytest.raises(CompareError, match="same params and seeds"):
        group_experiments([_exp("a", 0, 1.0), _exp("b", 0, 2.0)])


def test_one_section_per_task() -> None:
    """Runs of several tasks: each task compared within itself, never across tasks."""
    exps = [_exp(f"s{s}", s, 1.0 + 0.1 * s) for s in range(3)]
    exps += [_exp(f"c{s}", s, 2.0 + 0.1 * s, task="cartpole-swingup") for s in range(3)]
    text = compare(exps, HEAD)
    sections = text.split("### Task: ")[1:]
    assert [s.splitlines()[0] for s in sections] == ["synthetic-shapes", "cartpole-swingup"]
    assert "| gain (dB) | 1.10 |" in sections[0] and "| gain (dB) | 2.10 |" in sections[1]
    assert "minus" not in text  # nothing compared across tasks


def _joint(name: str, seed: int, gains: dict[str, float]) -> Experiment:
    """A run of one model on several tasks: per-task numbers under evaluate's `tasks`."""
    params = flatten(tiny_params(tasks=list(gains)))
    params["base.seed"] = seed
    evaluate = {"gain": 0.0, "tasks": {t: {"gain": g} for t, g in gains.items()}}
    return Experiment(name, params, {EVAL: evaluate, TOK: {"val": {"psnr": 30.0}}})


def test_a_shared_model_is_compared_with_each_tasks_own_model() -> None:
    """One model of two tasks appears in each task's section with that task's numbers,
    against the task's own model, paired by seed; numbers it has only for all its tasks
    together are left out there, and the section says so."""
    head = [(EVAL, "gain", "gain (dB)"), (TOK, "val.psnr", "tokenizer val (dB)")]

    def own(name: str, seed: int, task: str, gain: float) -> Experiment:
        e = _exp(name, seed, gain, task=task)
        return Experiment(name, e.params, {EVAL: {"gain": gain}, TOK: {"val": {"psnr": 31.0}}})

    tasks = ["synthetic-shapes", "cartpole-swingup"]
    exps = [own(f"s{s}", s, tasks[0], 1.0 + 0.1 * s) for s in range(3)]
    exps += [own(f"c{s}", s, tasks[1], 2.0 + 0.1 * s) for s in range(3)]
    exps += [
        _joint(f"j{s}", s, {tasks[0]: 0.5 + 0.1 * s, tasks[1]: 2.5 + 0.1 * s}) for s in range(3)
    ]
    text = compare(exps, head)
    sections = dict(s.split("\n", 1) for s in text.split("### Task: ")[1:])
    assert list(sections) == tasks
    shapes, cartpole = sections[tasks[0]], sections[tasks[1]]
    assert "trained on=synthetic-shapes; seeds 0, 1, 2" in shapes
    assert "trained on=synthetic-shapes,cartpole-swingup; seeds 0, 1, 2" in shapes
    assert "| gain (dB) | 1.10 |" in shapes and "| gain (dB) | 0.60 |" in shapes
    assert "| gain (dB) | 2.60 |" in cartpole  # the shared model's cartpole number
    assert "| gain (dB) | -0.50 | [-0.50, -0.50] | lower (paired) |" in shapes
    assert "| gain (dB) | 0.50 | [0.50, 0.50] | higher (paired) |" in cartpole
    for section in (shapes, cartpole):
        assert "tokenizer val (dB) |" not in section
        assert "left out: tokenizer val (dB)" in section
    # one task's runs alone keep every number
    assert "| tokenizer val (dB) | 31.00 |" in compare(exps[:3], head)


def test_a_revision_with_a_removed_knob_is_still_read() -> None:
    """An older params.yaml that sets a knob this code no longer has compares with
    today's runs when the knob had its neutral value, and stays apart otherwise."""
    from wm.compare import params_of_revision
    from worldmodel.config import Params, flatten

    today = flatten(Params())
    neutral = {"dynamics": {"inference_regime_fraction": 0.0}}
    assert params_of_revision(neutral, "old") == today
    used = params_of_revision({"dynamics": {"inference_regime_fraction": 0.25}}, "old")
    assert used == {**today, "dynamics.inference_regime_fraction": 0.25}


def test_runs_made_before_the_plan_stage_are_compared_without_its_rows() -> None:
    from wm.compare import HEADLINE, PLAN, Experiment, compare

    def exp(name: str, seed: int, plan: bool) -> Experiment:
        details = {key: 1.0 + seed for file, key, _ in HEADLINE if file != PLAN and "." not in key}
        metrics = {
            "metrics/details/evaluate.json": details,
            "metrics/details/tokenizer.json": {"val": {"psnr": 30.0 + seed}},
        }
        if plan:
            metrics[PLAN] = {"model_success": 0.5, "oracle_success": 0.9, "random_success": 0.1}
        params = {"base.seed": seed, "collect.tasks": "cartpole-swingup"}
        return Experiment(name, params, metrics)

    with_plan = compare([exp("a", 0, True), exp("b", 1, True)])
    assert "goal success: world model | 0.50" in with_plan
    older = compare([exp("a", 0, True), exp("b", 1, False)])
    assert "goal success" not in older.split("so left out")[0]
    assert "Not in every run, so left out: goal success: world model" in older


def _plan_run(name: str, seed: int, rates: dict[str, float], goals: int = 20) -> Experiment:
    from wm.compare import PLAN

    plan = {f"{agent}_success": rate for agent, rate in rates.items()}
    metrics = {PLAN: {**plan, "goals": goals}}
    return Experiment(name, {"base.seed": seed, "collect.tasks": "cartpole-swingup"}, metrics)


def test_goal_success_gets_a_wilson_interval_over_all_seeds_goals() -> None:
    """Three rates of 20 goals: the interval is Wilson's over the 60 goals pooled (it stays
    in [0, 1], where a t interval over the seeds does not), and one line gives the verdict
    the plan targets ask for."""
    from wm.compare import PLAN, wilson_interval

    head = [(PLAN, f"{a}_success", a) for a in ("model", "oracle", "random")]
    rates = [(0.40, 0.65, 0.05), (0.15, 0.85, 0.10), (0.35, 0.80, 0.20)]
    exps = [
        _plan_run(f"s{i}", i, dict(zip(("model", "oracle", "random"), r, strict=True)))
        for i, r in enumerate(rates)
    ]
    text = compare(exps, head)
    lo, hi = wilson_interval(18, 60)
    assert (round(lo, 2), round(hi, 2)) == (0.20, 0.43)
    assert "| model (pooled, Wilson) | 0.30 | [0.20, 0.43] |" in text
    assert "| random (pooled, Wilson) | 0.12 | [0.06, 0.22] |" in text
    verdict = " ".join(text.split())
    assert "world model 18 of 60, random actions 7 of 60: the intervals are overlapping" in verdict
    assert "reaches 39% of the oracle's rate" in verdict
    # twice the goals at the same rates: the intervals part
    doubled = [
        _plan_run(f"s{i}", i, dict(zip(("model", "oracle", "random"), r, strict=True)), goals=40)
        for i, r in enumerate(rates)
    ]
    assert "the intervals are apart" in " ".join(compare(doubled, head).split())


def test_runs_without_a_goal_count_keep_the_t_interval() -> None:
    from wm.compare import PLAN

    exps = [_plan_run(f"s{i}", i, {"model": 0.3, "random": 0.1}) for i in range(2)]
    for e in exps:
        del e.metrics[PLAN]["goals"]
    text = compare(exps, [(PLAN, "model_success", "model"), (PLAN, "random_success", "random")])
    assert "Wilson" not in text and "Goals reached" not in text
    assert "| model | 0.30 |" in text


def test_a_model_of_several_tasks_reports_each_tasks_own_goals() -> None:
    from wm.compare import PLAN

    def run(seed: int) -> Experiment:
        tasks = {
            "cartpole-swingup": {"model_success": 0.5, "random_success": 0.1, "goals": 10},
            "reacher-easy": {"model_success": 0.2, "random_success": 0.0, "goals": 10},
        }
        metrics = {
            PLAN: {"model_success": 0.35, "random_success": 0.05, "goals": 20, "tasks": tasks}
        }
        params = {"base.seed": seed, "collect.tasks": "cartpole-swingup,reacher-easy"}
        return Experiment(f"s{seed}", params, metrics)

    text = compare([run(0), run(1)], [(PLAN, "model_success", "model")])
    cartpole, reacher = text.split("### Task: reacher-easy")
    assert "| model (pooled, Wilson) | 0.50 |" in cartpole
    assert "| model (pooled, Wilson) | 0.20 |" in reacher
    assert "0.35" not in text


def test_a_failed_run_never_stands_for_its_name_and_a_shared_name_is_refused() -> None:
    """A queued experiment that failed and was re-run under the same name: `dvc exp show`
    lists both. The failed one holds only its baseline's files (another task's metrics,
    once read silently as this run's); the finished one is the name's."""
    from wm.compare import named_revs, resolve_name

    def rev(name: str, sha: str, error: bool = False) -> dict:
        return {"name": name, "rev": sha, "error": {"msg": "failed"} if error else None}

    shown = [
        {"rev": "base1", "experiments": [{"revs": [rev("s2", "a" * 40)]}]},
        {"rev": "base0", "experiments": [{"revs": [rev("s2", "f" * 40, error=True)]}]},
        {"rev": "base0", "experiments": [{"revs": [rev("s0", "b" * 40)]}, {"revs": None}]},
    ]
    revs = named_revs(shown)
    assert revs == {"s2": ["a" * 40], "s0": ["b" * 40]}
    assert resolve_name(revs, "s2") == "a" * 40 and resolve_name(revs, "nope") is None
    shown.append({"rev": "base2", "experiments": [{"revs": [rev("s2", "c" * 40)]}]})
    with pytest.raises(
        CompareError, match=r"several finished experiments are named s2: aaaaaaa, ccccccc"
    ):
        resolve_name(named_revs(shown), "s2")
    assert resolve_name(named_revs(shown), "s0") == "b" * 40  # other names still resolve
    # a name whose every run failed is named as failed, not as unknown
    shown.append({"rev": "base0", "experiments": [{"revs": [rev("s9", "d" * 40, error=True)]}]})
    assert named_revs(shown)["s9"] == []
    with pytest.raises(CompareError, match="experiment s9 failed and has no results"):
        resolve_name(named_revs(shown), "s9")
