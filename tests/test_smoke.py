"""The five stages end to end in seconds (fast tier): synthetic data, tiny models.

The slow tier (`tests/test_evaluate.py`, `tests/test_dvc.py`) runs the same DAG with two
tasks, the benchmark scripts and DVC itself; this keeps every module exercised offline
in the fast tier.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import tiny_params


def test_stage_functions_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stages import collect, evaluate, tokenize, train_dynamics, train_tokenizer

    p = tiny_params(episodes_per_task=5, frames_per_episode=20, val_fraction=0.2, test_fraction=0.4)
    d = tmp_path
    collect.run(p, d / "e.h5", d / "c.json", track=True)
    tok = train_tokenizer.run(
        p,
        episodes=d / "e.h5",
        out_dir=d / "tok",
        metrics=d / "t.json",
        curve=d / "t.tsv",
        resume=d / "t.pt",
        track=True,
    )
    tokenize.run(
        p,
        episodes=d / "e.h5",
        tokenizer=d / "tok" / "model.pt",
        out=d / "l.h5",
        metrics=d / "z.json",
        track=True,
    )
    # `base.torch_threads` holds for tokenize too, as for the training stages (runs that
    # share a machine each keep to their threads)
    import torch

    threads: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    one_thread = p.model_copy(update={"base": p.base.model_copy(update={"torch_threads": 1})})
    tokenize.run(
        one_thread, d / "e.h5", d / "tok" / "model.pt", d / "l1.h5", d / "z1.json", track=False
    )
    assert threads == [1]
    monkeypatch.undo()
    dyn = train_dynamics.run(
        p,
        latents=d / "l.h5",
        out_dir=d / "dyn",
        metrics=d / "d.json",
        curve=d / "d.tsv",
        resume=d / "d.pt",
        track=True,
        tokenizer=d / "tok" / "model.pt",
    )
    out = evaluate.run(
        p,
        episodes=d / "e.h5",
        latents=d / "l.h5",
        tokenizer=d / "tok" / "model.pt",
        dynamics=d / "dyn" / "model.pt",
        out_dir=d / "eval",
        metrics=d / "v.json",
        rollout_tsv=d / "r.tsv",
        sweep_tsv=d / "s.tsv",
        track=True,
    )
    assert tok["val"]["psnr"] > 0 and dyn["val_rollout_latent_mse"] >= 0
    # headline / details / timings (worldmodel/results.py); one task: no per-task block
    headline = json.loads((d / "v.json").read_text())
    details = json.loads((d / "details" / "v.json").read_text())
    timings = json.loads((d / "timings" / "v.json").read_text())
    assert set(headline) == {"gain_db", "shuffle_cost_db", "exposure_bias_db"}
    assert headline["gain_db"] == details["gain_over_repeat_last_db"]
    assert "tasks" not in details and "seconds" not in details and timings["seconds"] > 0
    # the position probe of every task: from the tokenizer's latents, the model's
    # predictions and the last context frame, one R² per position, at most 1; by a ridge
    # and by an MLP (sources ending in _mlp)
    (task,) = details["probe_r2"]
    probe = details["probe_r2"][task]
    horizons = [h for h in p.evaluate.sweep_at if h <= p.evaluate.horizon]
    sources = {"tokenizer"} | {f"{src}_h{h}" for src in ("model", "repeat_last") for h in horizons}
    assert set(probe) == sources | {f"{s}_mlp" for s in sources}
    assert all(set(r2) == {"agent_y", "agent_x"} and max(r2.values()) <= 1 for r2 in probe.values())
    # the same probe from its script, and its reference regressor beside the model
    from tests.conftest import load_script

    script = load_script("probe_positions")
    files = ["--episodes", str(d / "e.h5"), "--latents", str(d / "l.h5")]
    files += ["--dynamics", str(d / "dyn" / "model.pt"), "--context", str(p.evaluate.context)]
    monkeypatch.setattr(
        "sys.argv", ["probe_positions.py", *files, "--horizons", "1", "--reference-steps", "5"]
    )
    capsys.readouterr()
    script.main()
    printed = capsys.readouterr().out.splitlines()
    assert printed[1] == "source\tagent_y\tagent_x" and printed[2].startswith("tokenizer\t")
    assert [line.split("\t")[0] for line in printed[3:]] == [
        "tokenizer_mlp",
        "model_h1",
        "repeat_last_h1",
        "model_h1_mlp",
        "repeat_last_h1_mlp",
    ]
    monkeypatch.setattr(
        "sys.argv", ["probe_positions.py", *files, "--reference", "--reference-steps", "5"]
    )
    script.main()
    printed = capsys.readouterr().out.splitlines()
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in printed[2:]}
    assert list(rows) == [
        "MLP of 2 past frames, clean",
        f"MLP of 2 past frames, noised to tau_ctx {p.dynamics.tau_ctx:g}",
        "dynamics model, one step from pure noise",
        "  the same, with another episode's past",
        "repeat-last",
        "mean train latent (reads nothing)",
    ]
    assert all(len(v) == 3 and float(v[0]) >= 0 for v in rows.values())  # MSE, R² y, R² x
    assert float(rows["mean train latent (reads nothing)"][1]) <= 0  # a constant: no R²
    monkeypatch.setattr(
        "sys.argv", ["probe_positions.py", *files, "--reference", "--reference-steps", "0"]
    )
    script.main()
    printed = capsys.readouterr().out.splitlines()
    assert not any(line.startswith("MLP") for line in printed)  # 0 steps: no MLP rows
    assert not (d / "z.json").exists() and (d / "details" / "z.json").is_file()
    assert out["overall"]["split"] == "test" and out["overall"]["episodes"] == 2
    for f in (
        "tok/model.pt",
        "tok/samples.png",
        "dyn/model.pt",
        "eval/psnr_vs_horizon.png",
        "eval/sampler_sweep_frames.png",
    ):
        assert (d / f).is_file(), f
    assert not (d / "t.pt").exists() and not (d / "d.pt").exists()  # resume files removed

    # models on record: weights + loader note as artifacts, tags with DVC's file hashes,
    # and the evaluate run linked to the runs that trained what it scored
    from mlflow import MlflowClient

    from worldmodel.tracking import tracking_uri
    from worldmodel.utils import file_md5

    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name("worldmodel")

    def last_run(stage: str):
        (run,) = client.search_runs(
            [exp.experiment_id],
            f"tags.stage = '{stage}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return run

    for stage, out, data in (("train_tokenizer", "tok", "e.h5"), ("train_dynamics", "dyn", "l.h5")):
        run = last_run(stage)
        assert run.info.status == "FINISHED"
        assert run.data.tags["model_md5"] == file_md5(d / out / "model.pt")
        name = "episodes" if data == "e.h5" else "latents"
        assert run.data.tags[f"input_md5.{name}"] == file_md5(d / data)
        files = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
        assert files == {"model/model.pt", "model/LOADING.txt"}
        hard = client.list_artifacts(run.info.run_id, "hard_examples")
        assert hard, stage  # decoded frames for the dynamics: context | truth | prediction
        if stage == "train_tokenizer":
            tok_run = run.info.run_id
        else:
            dyn_run = run.info.run_id
    ev = last_run("evaluate").data.tags
    assert ev["tokenizer_run"] == tok_run and ev["dynamics_run"] == dyn_run
