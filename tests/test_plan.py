"""Goal-reaching: simulator state in the store, the planner, the protocol, the `plan` stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import tiny_params
from worldmodel.planner import Planner, PlannerConfig


def _store(tmp_path: Path, **collect) -> Path:
    from worldmodel.recording import collect as record

    path = tmp_path / "episodes.h5"
    record(tiny_params(**collect), path)
    return path


def test_a_stored_state_resets_the_simulator_to_its_frame(synthetic_store: Path) -> None:
    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.envs import make_env

    with EpisodeStore(synthetic_store) as store:
        ep = store.read(1)
        states, positions = store.read_states(1)
        assert store.position_names == [["agent_y", "agent_x"]]
        env = make_env("synthetic-shapes", image_size=store.image_size)
        for t in (0, 5, 13):
            assert np.array_equal(env.set_state(states[t]), ep.frames[t])
            assert np.allclose(env.positions(), positions[t])
        # and stepping on from there follows the recording
        env.set_state(states[5])
        frame, _, _ = env.step(ep.actions[6, :2])
        assert np.array_equal(frame, ep.frames[6])


def test_an_older_store_gets_the_version_error(synthetic_store: Path) -> None:
    import h5py

    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.errors import StoreError

    with h5py.File(synthetic_store, "a") as f:
        f.attrs["schema_version"] = 2
    with pytest.raises(StoreError, match="schema_version.*2.*3"):
        EpisodeStore(synthetic_store)


def test_candidates_are_scored_in_one_batch_and_a_seed_fixes_the_plan() -> None:
    cfg = PlannerConfig(horizon=4, samples=32, iterations=5, elites=4)
    target = torch.tensor([0.5, -0.25])
    calls = []

    def cost(actions: torch.Tensor) -> torch.Tensor:
        calls.append(actions.shape)
        return (actions - target).pow(2).sum((1, 2))

    low, high = -torch.ones(2), torch.ones(2)
    plans = [Planner(cfg, low, high, seed=7).plan(cost) for _ in range(2)]
    assert calls == [(32, 4, 2)] * 10  # one batched call per iteration
    assert torch.equal(plans[0].actions, plans[1].actions)
    assert (plans[0].actions - target).abs().max() < 0.2  # it found the target
    other = Planner(cfg, low, high, seed=8).plan(cost)
    assert not torch.equal(other.actions, plans[0].actions)
    mppi = Planner(PlannerConfig(solver="mppi", horizon=4, samples=64, iterations=8), low, high)
    zero = float(cost(torch.zeros(1, 4, 2)))  # the start of the search: the action range's centre
    assert mppi.plan(cost).cost < 0.3 * zero


def test_the_exact_simulator_reaches_goals_and_random_actions_do_not(tmp_path: Path) -> None:
    """synthetic-shapes (a square pushed by a 2-D action): the planner with the exact
    simulator as its model reaches at least 90% of the goals; random actions far fewer;
    the recorded actions all of them."""
    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.envs import make_env
    from worldmodel.goal_reaching import (
        RandomAgent,
        ReplayAgent,
        SimulatorAgent,
        goal_pairs,
        run_goal,
    )
    from worldmodel.tasks import success_spec

    path = _store(tmp_path, episodes_per_task=10, frames_per_episode=40, test_fraction=0.5)
    store = EpisodeStore(path)
    env = make_env("synthetic-shapes", image_size=store.image_size)
    spec = success_spec("synthetic-shapes")
    cfg = PlannerConfig(horizon=5, samples=64, iterations=4, elites=8)
    pairs = goal_pairs(store, "synthetic-shapes", n=20, offset=25, context=4, seed=0)
    assert all(store.splits[p.episode] == 2 for p in pairs)  # test episodes only
    low, high = env.action_spec.low, env.action_spec.high
    agents = {
        "oracle": SimulatorAgent(env, cfg=cfg, spec=spec, seed=0),
        "random": RandomAgent(low, high, seed=0, chunk=5),
        "replay": ReplayAgent(store, dim=2, chunk=5),
    }
    rate = {}
    for name, agent in agents.items():
        ok = [
            run_goal(env, store, pair, agent, spec, context=4, budget=50, replan_every=5).success
            for pair in pairs
        ]
        rate[name] = np.mean(ok)
    assert rate["replay"] == 1.0, rate
    assert rate["oracle"] >= 0.9, rate
    assert rate["random"] <= 0.3, rate


def test_simulated_frames_are_the_frames_stepping_renders() -> None:
    """``simulate_frames`` (the latent-cost oracle's renders) gives, per candidate, the frame
    that stepping the simulator with its actions renders (``every``: each step's), and
    leaves the simulator where it was."""
    from worldmodel.envs import make_env

    env = make_env("synthetic-shapes", image_size=32)
    env.reset(3)
    for _ in range(3):
        env.step(np.array([0.5, -0.5]))
    state, here = env.get_state(), env.render()
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 4, 2))
    last = env.simulate_frames(state, actions)
    every = env.simulate_frames(state, actions, every=True)
    assert last.shape == (3, 32, 32, 3) and every.shape == (3, 4, 32, 32, 3)
    assert np.array_equal(env.render(), here)  # left at the state
    for i, seq in enumerate(actions):
        env.set_state(state)
        stepped = [env.step(a)[0] for a in seq]
        assert np.array_equal(every[i], np.stack(stepped))
        assert np.array_equal(last[i], stepped[-1])
    assert not np.array_equal(last[0], last[1])  # the actions matter


def test_plan_runs_end_to_end_on_the_tiny_preset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from stages import collect, evaluate, plan, tokenize, train_dynamics, train_tokenizer  # noqa: F401

    p = tiny_params(episodes_per_task=6, frames_per_episode=24, test_fraction=0.34)
    d = tmp_path
    collect.run(p, d / "e.h5", d / "c.json", track=False)
    train_tokenizer.run(
        p, episodes=d / "e.h5", out_dir=d / "tok", metrics=d / "t.json", curve=d / "t.tsv",
        resume=d / "t.pt", track=False,
    )  # fmt: skip
    tokenize.run(p, d / "e.h5", d / "tok" / "model.pt", d / "l.h5", d / "z.json", track=False)
    train_dynamics.run(
        p, latents=d / "l.h5", out_dir=d / "dyn", metrics=d / "d.json", curve=d / "d.tsv",
        resume=d / "d.pt", track=False, tokenizer=d / "tok" / "model.pt",
    )  # fmt: skip
    summary = plan.run(
        p,
        episodes=d / "e.h5",
        latents=d / "l.h5",
        tokenizer=d / "tok" / "model.pt",
        dynamics=d / "dyn" / "model.pt",
        out_dir=d / "plan",
        metrics=d / "p.json",
        track=True,
    )
    headline = json.loads((d / "p.json").read_text())
    assert set(headline) == {"model_success", "oracle_success", "random_success"}
    details = json.loads((d / "details" / "p.json").read_text())
    assert details["replay_success"] == 1.0  # the protocol's own check
    lo, hi = details["model_success_ci95"]
    assert lo <= details["model_success"] <= hi
    assert "model_final_distance_relative" in details and "tolerance" in str(summary["tasks"])
    # the default cost's temporal distance, fitted on train episodes, is scored on test pairs
    assert p.plan.distance == "temporal" and "temporal distance" in details["protocol"]
    assert -1.0 <= details["distance_test_correlation"] <= 1.0
    timings = json.loads((d / "timings" / "p.json").read_text())
    assert timings["distance_fit_seconds"] > 0
    assert timings["model_frames_per_s"] > 0 and timings["model_seconds_per_plan"] > 0
    assert len(list((d / "plan").glob("*.png"))) == p.plan.pictures
    (task,) = summary["outcomes"]  # each goal's outcome, for paired comparisons
    assert np.mean(summary["outcomes"][task]["model"]) == details["model_success"]

    # scripts/bench_plan.py scores planner arms on the same goals of a run's models: an
    # arm identical to the first meets the same goals with the same seed, so it differs
    # by exactly nothing, goal by goal; so does an arm that swaps in a copy of the run's
    # model (model=TEMPLATE), and one trained with another seed is refused
    import shutil

    import torch
    import yaml

    from tests.conftest import load_script

    run = d / "run"
    (run / "tokenizer").mkdir(parents=True)
    (run / "dynamics").mkdir()
    (run / "episodes.h5").symlink_to(d / "e.h5")
    (run / "latents.h5").symlink_to(d / "l.h5")
    (run / "tokenizer" / "model.pt").symlink_to(d / "tok" / "model.pt")
    (run / "dynamics" / "model.pt").symlink_to(d / "dyn" / "model.pt")
    (d / "params.yaml").write_text(yaml.safe_dump(p.model_dump(mode="json")))
    command = ["bench_plan.py", "--params", str(d / "params.yaml"), "--run", str(run)]
    argv = list(command)
    seed = p.base.seed
    shutil.copy(d / "dyn" / "model.pt", d / f"copy_s{seed}.pt")
    argv += ["--arm", "base=", "--arm", "same=plan.cost=last", "--out", str(d / "arms.tsv")]
    argv += ["--arm", f"swap=model={d}/copy_s{{seed}}.pt"]
    monkeypatch.setattr("sys.argv", argv)
    load_script("bench_plan").main()
    out = capsys.readouterr().out
    assert "same - base: +0% [+0%, +0%] (paired by goal)" in out
    assert "swap - base: +0% [+0%, +0%] (paired by goal)" in out
    rows = [r.split("\t") for r in (d / "arms.tsv").read_text().splitlines()]
    assert len(rows) == 4 and rows[1][rows[0].index("model_success")] == str(
        details["model_success"]
    )
    assert rows[3][rows[0].index("dynamics")] == f"{d}/copy_s{seed}.pt"
    # scripts/bench_oracle_cost.py runs the oracle with other costs on the run's goals: its
    # `temporal` arm is the stage's own oracle (the default distance), goal by goal
    argv = ["bench_oracle_cost.py", "--params", str(d / "params.yaml"), "--run", str(run)]
    argv += ["--arm", "latent", "--arm", "state", "--arm", "pixels:1", "--arm", "temporal"]
    monkeypatch.setattr("sys.argv", argv)
    load_script("bench_oracle_cost").main()
    out = capsys.readouterr().out
    assert f"temporal\t{details['oracle_success']:.0%}" in out
    assert "state - latent:" in out and "pixels:1 - latent:" in out
    monkeypatch.setattr("sys.argv", [*argv[:5], "--arm", "pixels"])
    with pytest.raises(SystemExit):
        load_script("bench_oracle_cost").main()
    capsys.readouterr()

    blob = torch.load(d / "dyn" / "model.pt", weights_only=True)
    blob["meta"]["params"]["base"]["seed"] = seed + 1
    torch.save(blob, d / f"other_s{seed}.pt")
    argv = command + ["--arm", "base=", "--arm", f"other=model={d}/other_s{{seed}}.pt"]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit, match="not trained with base.seed"):
        load_script("bench_plan").main()

    # by default the oracle plans with the world model's own latent cost (its candidates'
    # frames rendered and encoded); with `oracle_cost: state` it plans with the positions'
    # distance instead, on the same goals, and says so; the latent oracle refuses a
    # tokenizer that encodes clips of several frames before any goal, naming its file
    from worldmodel.errors import CheckpointMismatch

    assert p.plan.oracle_cost == "latent"
    assert "latent cost on rendered frames" in summary["overall"]["protocol"]
    st = p.model_copy(update={"plan": p.plan.model_copy(update={"oracle_cost": "state"})})
    kw = dict(episodes=d / "e.h5", latents=d / "l.h5", dynamics=d / "dyn" / "model.pt", track=False)
    state = plan.run(
        st, tokenizer=d / "tok" / "model.pt", out_dir=d / "plan_st", metrics=d / "ps.json", **kw
    )
    assert "state-space cost" in state["overall"]["protocol"]
    assert 0.0 <= state["overall"]["oracle_success"] <= 1.0
    assert state["outcomes"][task]["model"] == summary["outcomes"][task]["model"]
    blob = torch.load(d / "tok" / "model.pt", weights_only=True)
    blob["meta"]["params"]["tokenizer"]["clip_frames"] = 2
    torch.save(blob, d / "tok2.pt")
    with pytest.raises(CheckpointMismatch, match="tok2.pt.*clip_frames 1"):
        plan.run(p, tokenizer=d / "tok2.pt", out_dir=d / "p2", metrics=d / "p2.json", **kw)
    # the temporal distance is fitted on the planning tokenizer's own latents: a latent
    # store another tokenizer encoded is refused, naming it
    with pytest.raises(CheckpointMismatch, match="l.h5: was encoded by another tokenizer"):
        plan.run(st, tokenizer=d / "tok2.pt", out_dir=d / "p3", metrics=d / "p3.json", **kw)


def test_the_blurred_pixel_codec_is_a_blur() -> None:
    """scripts/bench_oracle_cost.py's image cost: sigma 0 keeps the frame; a blur keeps a
    point's mass and spreads it evenly in both directions."""
    from tests.conftest import load_script

    codec = load_script("bench_oracle_cost").BlurredPixels
    x = torch.zeros(1, 1, 15, 15, 3)
    x[0, 0, 7, 7] = 1.0
    assert torch.equal(codec(15, 0.0).encode(x), x.flatten(2, 3))
    y = codec(15, 1.5).encode(x).view(15, 15, 3)
    assert y.sum().item() == pytest.approx(3.0, rel=1e-5)
    assert 0 < y[7, 5, 0] < y[7, 6, 0] < y[7, 7, 0] < 1
    assert y[7, 5, 0] == pytest.approx(y[7, 9, 0].item()) == pytest.approx(y[5, 7, 0].item())


def test_bad_plan_params_are_refused_naming_the_key() -> None:
    from worldmodel.config import ParamsError, parse_params

    for bad, key in (
        ({"plan": {"samples": 8, "elites": 16}}, "plan.elites"),
        ({"plan": {"horizon": 3, "replan_every": 5}}, "plan.replan_every"),
        ({"plan": {"solver": "adam"}}, "plan.solver"),
        ({"plan": {"goal_offset": 200}}, "plan.goal_offset"),
    ):
        with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
            parse_params(bad)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["cartpole-swingup", "reacher-easy"])
def test_a_stored_dmc_state_renders_its_frame(tmp_path: Path, task: str) -> None:
    """The real simulator reset to a stored state renders the stored frame exactly, and
    the episode's constants (reacher's target) come back with it."""
    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.envs import make_env

    path = _store(tmp_path, tasks=[task], episodes_per_task=3, frames_per_episode=16, image_size=32)
    with EpisodeStore(path) as store:
        ep = store.read(1)
        states, positions = store.read_states(1)
        env = make_env(
            task, image_size=32, camera=store.camera[0], action_repeat=store.action_repeat[0]
        )
        env.reset(12345)  # another episode's state first: nothing of it may remain
        for t in (0, 7, 11):
            assert np.array_equal(env.set_state(states[t]), ep.frames[t])
            assert np.allclose(env.positions(), positions[t])
        # the latent-cost oracle's renders: from frame 7's state the recorded actions into
        # frames 8 and 9 render frame 9 (actions[t] leads into frame t)
        dim = env.action_spec.dim
        frames = env.simulate_frames(states[7], ep.actions[None, 8:10, :dim])
        assert np.array_equal(frames[0], ep.frames[9]), np.abs(
            frames[0] - ep.frames[9].astype(float)
        ).mean()
        assert not np.array_equal(frames[0], ep.frames[8])


def test_the_next_plan_starts_from_what_is_left_of_the_last() -> None:
    planner = Planner(
        PlannerConfig(horizon=4, samples=8, iterations=1, elites=2), -torch.ones(1), torch.ones(1)
    )
    planner.mean = torch.tensor([[0.1], [0.2], [0.3], [0.4]])
    planner.shift(3)
    assert torch.equal(planner.mean, torch.tensor([[0.4], [0.4], [0.4], [0.4]]))
    planner.mean = torch.tensor([[0.1], [0.2], [0.3], [0.4]])
    planner.shift(1)
    assert torch.equal(planner.mean, torch.tensor([[0.2], [0.3], [0.4], [0.4]]))


def test_the_temporal_distance_learns_how_far_apart_frames_are() -> None:
    """Fitted on train episodes whose latents drift smoothly with time (a random walk seen
    through a fixed random map), its estimates on *test* episodes rise with the true gap;
    it is symmetric, and a frame is nearer to itself than to one 20 decisions away."""
    from types import SimpleNamespace

    import torch

    from worldmodel.goal_distance import LatentDistance, fit_temporal_distance

    rng = np.random.default_rng(0)
    episodes, length = 12, 60
    walk = np.cumsum(rng.normal(size=(episodes, length, 3)), 1)  # the hidden state
    mix = rng.normal(size=(3, 4 * 8))
    z = np.tanh(walk @ mix / 6).reshape(episodes * length, 4, 8).astype(np.float32)
    splits = np.array(["train"] * 9 + ["test"] * 3)
    store = SimpleNamespace(
        path=Path("walk.h5"),
        latents=z,
        starts=np.arange(episodes) * length,
        lengths=np.full(episodes, length),
        episode_ids=lambda split: np.flatnonzero(splits == split),
    )
    model, fit = fit_temporal_distance(store, span=30, steps=600, seed=0)
    assert fit.test_correlation > 0.6, fit
    zt = torch.from_numpy(z)
    first = int(store.starts[9])  # a test episode
    a, near, far = zt[first + 10], zt[first + 11], zt[first + 30]
    batch = torch.stack([a, near, far])
    d = model(batch, a)
    assert d.shape == (3,) and d[0] < d[2] and d[1] < d[2]
    assert torch.allclose(model(near[None], far), model(far[None], near), atol=1e-5)
    # the latent distance is the mean squared difference
    assert torch.allclose(LatentDistance()(batch, a), (batch - a).pow(2).mean((1, 2)))
    with pytest.raises(ValueError, match="no test episodes"):
        splits[9:] = "val"
        fit_temporal_distance(store, span=30, steps=1)
