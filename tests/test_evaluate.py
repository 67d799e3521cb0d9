"""The evaluate stage: held-out windows only, baselines on the same windows, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import load_script, tiny_params
from worldmodel.data.episodes import EpisodeStore
from worldmodel.data.windows import PixelWindows, heldout_windows, spread_windows


def _pipeline_params():
    """Two tasks, per task 2 train, 1 val and 2 test episodes of 20 frames."""
    return tiny_params(
        tasks=["synthetic-shapes", "cartpole-swingup"],
        episodes_per_task=5,
        frames_per_episode=20,
        val_fraction=0.2,
        test_fraction=0.4,
    )


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The whole DAG on a tiny synthetic dataset with tiny models, via the stage functions."""
    from stages import collect, evaluate, tokenize, train_dynamics, train_tokenizer

    d = tmp_path_factory.mktemp("pipeline")
    params = _pipeline_params()
    data = params.model_dump()
    (d / "params.yaml").write_text(yaml.safe_dump(data))  # for the benchmark scripts
    collect.run(params, d / "episodes.h5", d / "collect.json", track=False)
    train_tokenizer.run(
        params,
        episodes=d / "episodes.h5",
        out_dir=d / "tok",
        metrics=d / "tok.json",
        curve=d / "tok.tsv",
        resume=d / "r1.pt",
        track=False,
    )
    tokenize.run(
        params,
        episodes=d / "episodes.h5",
        tokenizer=d / "tok" / "model.pt",
        out=d / "latents.h5",
        metrics=d / "tz.json",
        track=False,
    )
    train_dynamics.run(
        params,
        latents=d / "latents.h5",
        out_dir=d / "dyn",
        metrics=d / "dyn.json",
        curve=d / "dyn.tsv",
        resume=d / "r2.pt",
        track=False,
    )
    result = evaluate.run(
        params,
        episodes=d / "episodes.h5",
        latents=d / "latents.h5",
        tokenizer=d / "tok" / "model.pt",
        dynamics=d / "dyn" / "model.pt",
        out_dir=d / "eval",
        metrics=d / "eval.json",
        rollout_tsv=d / "rollout.tsv",
        sweep_tsv=d / "sweep.tsv",
        track=False,
    )
    return d, result


@pytest.mark.slow
def test_heldout_windows_come_only_from_their_split(pipeline: tuple[Path, dict]) -> None:
    d, _ = pipeline
    with EpisodeStore(d / "episodes.h5") as store:
        for split in ("val", "test"):
            allowed = set(store.episode_ids(split).tolist())
            for task in store.tasks:
                w = heldout_windows(store, task, 14, 10, split=split)
                assert set(w.episodes.tolist()) <= allowed
                for frames, e, s in zip(w.frames, w.episodes, w.starts, strict=True):
                    np.testing.assert_array_equal(
                        frames, store.read(int(e), int(s), int(s) + 14).frames
                    )
        with pytest.raises(ValueError, match="not 'train'"):
            heldout_windows(store, store.tasks[0], 14, 10, split="train")
        # the fit diagnostic's windows (bench_dynamics --split train): training episodes only
        w = spread_windows(store, store.tasks[0], 14, 10, split="train")
        assert set(w.episodes.tolist()) <= set(store.episode_ids("train").tolist())


@pytest.mark.slow
def test_training_draws_every_task_equally(pipeline: tuple[Path, dict]) -> None:
    """Several tasks, one model: the tokenizer's clips and the dynamics model's windows
    are drawn uniformly over windows, and every task has as many train windows."""
    from worldmodel.data.latents import LatentStore
    from worldmodel.data.windows import FrameClips, LatentWindows

    d, _ = pipeline
    clips = FrameClips(d / "episodes.h5", "train", 1)
    per_task = np.bincount(clips.store.task_ids[clips.episodes], clips.starts_per_ep)
    latents = LatentStore(d / "latents.h5")
    windows = LatentWindows(latents, "train", 8, 2)
    episode_of = np.searchsorted(latents.starts, windows.starts, side="right") - 1
    assert len(per_task) == 2 and per_task[0] == per_task[1] > 0
    assert np.bincount(latents.task_ids[episode_of]).tolist() == [len(windows.starts) // 2] * 2


@pytest.mark.slow
def test_no_test_episode_reaches_training_checks_or_benchmarks(
    pipeline: tuple[Path, dict],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """Test episodes are poisoned: reading their frames raises, and their latents are NaN.
    The tokenizer's and the dynamics' training (with periodic and final checks) and both
    benchmark scripts still run and report finite numbers, so none of them touched one."""
    import shutil
    import sys

    import h5py

    from stages import train_dynamics, train_tokenizer
    from worldmodel.data.splits import TEST

    d, _ = pipeline
    params = _pipeline_params()
    latents = tmp_path / "latents.h5"
    shutil.copy(d / "latents.h5", latents)
    with h5py.File(latents, "r+") as f:
        split, start, length = (f[f"episodes/{k}"][:] for k in ("split", "start", "length"))
        assert (split == TEST).sum() == 4
        for e in np.flatnonzero(split == TEST):
            f["latents"][start[e] : start[e] + length[e]] = np.nan
    read = EpisodeStore.read

    def guarded(self: EpisodeStore, episode: int, *args, **kwargs):
        assert self.splits[episode] != TEST, f"test episode {episode} was read"
        return read(self, episode, *args, **kwargs)

    monkeypatch.setattr(EpisodeStore, "read", guarded)
    tok = train_tokenizer.run(
        params,
        episodes=d / "episodes.h5",
        out_dir=tmp_path / "tok",
        metrics=tmp_path / "t.json",
        curve=tmp_path / "t.tsv",
        resume=tmp_path / "t.pt",
        track=False,
    )
    assert np.isfinite(tok["val"]["psnr"])
    dyn = train_dynamics.run(
        params,
        latents=latents,
        out_dir=tmp_path / "dyn",
        metrics=tmp_path / "d.json",
        curve=tmp_path / "d.tsv",
        resume=tmp_path / "d.pt",
        track=False,
    )  # fmt: skip  (a NaN latent in any batch would stop training as diverged)
    assert np.isfinite(dyn["val_rollout_latent_mse"])
    curve = (tmp_path / "d.tsv").read_text().splitlines()
    col = curve[0].split("\t").index("val/rollout_latent_mse")
    checks = [float(r.split("\t")[col]) for r in curve[1:] if r.split("\t")[col]]
    assert checks and np.isfinite(checks).all()

    args = ["--params", str(d / "params.yaml"), "--episodes", str(d / "episodes.h5")]
    monkeypatch.setattr(
        sys, "argv", ["b", *args, "--set", "tokenizer.train.steps=2", "--eval-every", "2"]
    )
    load_script("bench_tokenizer").main()
    args += ["--latents", str(latents), "--tokenizer", str(d / "tok" / "model.pt")]
    monkeypatch.setattr(
        sys, "argv", ["b", *args, "--set", "dynamics.train.steps=5", "--eval-every", "5"]
    )
    load_script("bench_dynamics").main()
    lines = [ln.split("\t") for ln in capsys.readouterr().out.splitlines()]
    for header in (ln for ln in lines if ln[0] == "step"):
        row = lines[lines.index(header) + 1]
        values = {k: float(v) for k, v in zip(header, row, strict=True) if "_ci_" not in k}
        assert np.isfinite(list(values.values())).all(), values  # (1 val episode: no CI)


@pytest.mark.slow
def test_outputs_per_task_and_overall(pipeline: tuple[Path, dict]) -> None:
    d, result = pipeline
    saved = json.loads((d / "details" / "eval.json").read_text())
    assert set(saved["tasks"]) == {"synthetic-shapes", "cartpole-swingup"}
    o = dict(saved, **json.loads((d / "timings" / "eval.json").read_text()))
    headline = json.loads((d / "eval.json").read_text())  # per task too: which task moved
    assert (
        headline["tasks"]["cartpole-swingup"]["gain_db"]
        == (saved["tasks"]["cartpole-swingup"]["gain_over_repeat_last_db"])
    )
    for key in (
        "psnr_h1",
        "psnr_h4",
        "ssim_h4",
        "gain_over_repeat_last_db",
        "action_sensitivity_db",
        "exposure_bias_db",
        "tokenizer_ceiling_psnr",
        "fps_k4_batched",
        "fps_speedup_k4_over_kmax",
    ):
        assert key in o and o[key] is not None, key
    assert ("lpips_h1" in o) == o["lpips_available"]  # absent, never null, without weights
    assert o["split"] == "test" and o["episodes"] == 4  # 2 test episodes per task, pooled
    for key in (
        "gain_over_repeat_last_db",
        "action_sensitivity_db",
        "action_sensitivity_mean_db",
        "exposure_bias_db",
        "tokenizer_ceiling_psnr",
        "extended_gain_over_repeat_last_db",
        "sampler_k4_minus_kmax_psnr_db_h1",
        "sampler_k4_minus_kmax_psnr_db_h4",
    ):
        lo, hi = o[f"{key}_ci95"]  # paired, episode-clustered bootstrap
        assert lo <= o[key] <= hi, key
    for task in saved["tasks"].values():
        assert len(task["gain_over_repeat_last_db_ci95"]) == 2
    sweep = (d / "sweep.tsv").read_text().splitlines()
    cols = sweep[0].split("\t")
    rows_k = [dict(zip(cols, r.split("\t"), strict=True)) for r in sweep[1:]]
    assert [int(r["k"]) for r in rows_k] == [1, 2, 4]
    assert all(float(r["sharpness_h4"]) > 0 for r in rows_k)
    steps = _pipeline_params().evaluate.steps  # the K of the headline rollouts, marked
    assert [r["default_k"] for r in rows_k] == [str(int(int(r["k"]) == steps)) for r in rows_k]
    assert sum(r["default_k"] == "1" for r in rows_k) == 1
    rows = (d / "rollout.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    assert header[0] == "horizon" and len(rows) == 1 + 4  # evaluate.horizon
    for m in ("model", "repeat_last", "tokenizer_ceiling", "teacher_forced", "shuffled_actions"):
        assert f"psnr/{m}" in header and f"ssim/{m}" in header
        assert f"psnr_ci95_low/{m}" in header and f"psnr_ci95_high/{m}" in header
    for name in ("gain_over_repeat_last_db", "action_sensitivity_db", "exposure_bias_db"):
        assert {name, f"{name}_ci95_low", f"{name}_ci95_high"} <= set(header)
    names = {p.name for p in (d / "eval").iterdir()}
    assert {"psnr_vs_horizon.png", "sampler_sweep.png"} <= names
    assert any(n.endswith(".gif") for n in names) and any(n.endswith("_strip.png") for n in names)


def test_baselines_are_scored_on_the_same_windows() -> None:
    """repeat-last and the ceiling computed by the evaluator equal direct computations."""
    import torch

    from worldmodel.evaluation.evaluate_store import Evaluator
    from worldmodel.metrics import psnr
    from worldmodel.models.dynamics import Dynamics, DynamicsConfig
    from worldmodel.models.tokenizer import Tokenizer, TokenizerConfig

    torch.manual_seed(0)
    tok = Tokenizer(
        TokenizerConfig(
            image_size=16,
            patch_size=4,
            latent_tokens=4,
            latent_dim=4,
            dim=32,
            heads=2,
            enc_depth=1,
            dec_depth=1,
        )
    ).eval()
    dyn = Dynamics(
        DynamicsConfig(
            latent_tokens=4,
            latent_dim=4,
            action_dim=2,
            dim=32,
            heads=2,
            kv_heads=1,
            depth=2,
            k_max=4,
        )
    ).eval()
    rng = np.random.default_rng(0)
    w = PixelWindows(
        "t",
        frames=(rng.random((3, 7, 16, 16, 3)) * 255).astype(np.uint8),
        actions=rng.standard_normal((3, 7, 2)).astype(np.float32),
        episodes=np.arange(3),
        starts=np.zeros(3, int),
    )
    ev = Evaluator(
        tok,
        dynamics=dyn,
        context=3,
        tau_ctx=0.9,
        window=4,
        clip_frames=1,
        device=torch.device("cpu"),
        lpips=None,
        seed=0,
        batch=2,
    )
    scores = ev.run(w, 4, 2)
    frames = torch.from_numpy(w.frames).float() / 255
    rep = psnr(frames[:, 2:3].expand(-1, 4, -1, -1, -1), frames[:, 3:]).view(3, 4).numpy()
    np.testing.assert_allclose(scores["repeat_last"]["psnr"], rep, rtol=1e-5)
    assert all(v["psnr"].shape == (3, 4) for v in scores.values())
    assert (scores["tokenizer_ceiling"]["latent_mse"] == 0).all()


@pytest.mark.slow
def test_bench_dynamics_reports_the_targets(
    pipeline: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """scripts/bench_dynamics.py trains as the stage does and prints the evaluate targets."""
    import sys

    d, _ = pipeline
    bench = load_script("bench_dynamics")
    args = ["--params", str(d / "params.yaml"), "--episodes", str(d / "episodes.h5")]
    args += ["--latents", str(d / "latents.h5"), "--tokenizer", str(d / "tok" / "model.pt")]
    args += ["--set", "dynamics.train.steps=10", "--eval-every", "5", "--windows", "3"]
    saved = d / "bench_dynamics.pt"
    flags = ["--sweep", "--error-anatomy", "--save", str(saved)]
    monkeypatch.setattr(sys, "argv", ["bench_dynamics.py", *args, *flags])
    bench.main()
    lines = [ln.split("\t") for ln in capsys.readouterr().out.splitlines()]
    at = lines.index(["one-step latents", "latent_mse", "psnr"])
    anatomy = {r[0]: (float(r[1]), float(r[2])) for r in lines[at + 1 : at + 6]}
    model_mse = anatomy["model"][0]
    assert anatomy["true (tokenizer ceiling)"][0] == 0 and model_mse > 0
    assert anatomy["true + 0.5 x the model's error"][0] == pytest.approx(model_mse / 4, rel=0.05)
    assert anatomy["true + 0.25 x the model's error"][0] == pytest.approx(model_mse / 16, rel=0.1)
    iid = anatomy["true + i.i.d. noise, the model's MSE"][0]
    assert iid == pytest.approx(model_mse, rel=0.2)
    lines = lines[:at]
    header = next(ln for ln in lines if ln[0] == "step")
    assert "shuffle_cost_h4_db" in header  # named after evaluate.horizon
    rows = [dict(zip(header, ln, strict=True)) for ln in lines if ln[0] in ("5", "10")]
    assert [r["step"] for r in rows] == ["5", "10"]
    for r in rows:
        values = [float(r[k]) for k in header if "_ci_" not in k]  # 1 val episode: no CI
        assert np.isfinite(values).all()
    sweep = lines[lines.index(["K", "psnr_h4", "sharpness_h4", "seconds"]) + 1 :]
    assert [ln[0] for ln in sweep] == ["1", "2", "4"]  # 1, evaluate.steps = 2, k_max = 4

    # --model scores the saved weights without training: the trained run's last row again
    # (but step and seconds); another context level changes the scores of the same weights
    def score_only(*extra: str) -> dict[str, str]:
        monkeypatch.setattr(sys, "argv", ["b", *args, "--model", str(saved), *extra])
        bench.main()
        out = [ln.split("\t") for ln in capsys.readouterr().out.splitlines()]
        assert [ln[0] for ln in out if ln[0][:1].isdigit()] == ["0"]
        return dict(zip(header, next(ln for ln in out if ln[0] == "0"), strict=True))

    again = score_only()
    skip = ("step", "train_seconds")
    assert {k: v for k, v in again.items() if k not in skip} == {
        k: v for k, v in rows[-1].items() if k not in skip
    }
    # (a 10-step model may barely read its context: any score may move, not one chosen)
    noisier = score_only("--set", "dynamics.tau_ctx=0.5")
    assert {k: v for k, v in noisier.items() if k not in skip} != {
        k: v for k, v in again.items() if k not in skip
    }

    # --pixel-anatomy: each method's PSNR on the pixels that move and on those that stay
    # still, at h1 and the last horizon (here 4); the model's row is the scored rollout
    monkeypatch.setattr(sys, "argv", ["b", *args, "--model", str(saved), "--pixel-anatomy"])
    bench.main()
    out = [ln.split("\t") for ln in capsys.readouterr().out.splitlines()]
    at = out.index(
        ["method", "horizon", "moving_fraction", "psnr", "psnr_moving", "psnr_still"]
        + ["moving_share_of_error"]
    )
    end = next((i for i, r in enumerate(out) if r[0] == "latents"), len(out))
    table = {(r[0], int(r[1])): [float(x) for x in r[2:]] for r in out[at + 1 : end]}
    methods = ("model", "repeat-last", "repeat-last drawn by the tokenizer", "tokenizer ceiling")
    assert set(table) == {(m, k) for m in methods for k in (1, 4)}
    for (_, k), (fraction, _, _, _, share) in table.items():
        assert fraction == table["model", k][0]  # one mask of moving pixels for every method
        assert 0 <= fraction <= 1 and 0 <= share <= 1
    assert table["model", 1][1] == pytest.approx(float(again["psnr_h1"]), abs=0.011)
    # the copy of the true frame is exact where nothing moves; the tokenizer's copy is not
    assert table["repeat-last", 1][3] > table["repeat-last drawn by the tokenizer", 1][3]
    # the latents by region (this tokenizer has the spatial prior): one region mask for
    # both methods; then the h1 PSNR with the still regions' latents copied
    rows = {(r[0], int(r[1])): [float(x) for x in r[2:]] for r in out[end + 1 : end + 5]}
    assert set(rows) == {(m, k) for m in ("model", "repeat-last") for k in (1, 4)}
    for k in (1, 4):
        assert rows["model", k][0] == rows["repeat-last", k][0]
        assert 0 <= rows["model", k][0] <= 1 and min(rows["model", k][1:]) >= 0
    copied = dict(kv.rsplit(" ", 1) for kv in out[end + 5][0].split(": ", 1)[1:] + out[end + 5][1:])
    assert set(copied) == {"psnr", "psnr_moving", "psnr_still"}


@pytest.mark.slow
def test_bench_tokenizer_and_action_effect_run(
    pipeline: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The other benchmark scripts run on the current params and print their tables."""
    import sys

    d, _ = pipeline
    args = ["--params", str(d / "params.yaml"), "--episodes", str(d / "episodes.h5")]
    args += ["--set", "tokenizer.train.steps=4", "--eval-every", "2", "--eval-clips", "4"]
    monkeypatch.setattr(sys, "argv", ["bench_tokenizer.py", *args])
    load_script("bench_tokenizer").main()
    rows = [ln.split("\t") for ln in capsys.readouterr().out.splitlines() if ln[:1].isdigit()]
    assert [r[0] for r in rows] == ["2", "4"] and all(len(r) == 6 for r in rows)
    # --probe: R² of the positions from the latents, ridge and MLP, one column per position
    monkeypatch.setattr(sys, "argv", ["bench_tokenizer.py", *args, "--probe"])
    load_script("bench_tokenizer").main()
    out = capsys.readouterr().out.splitlines()
    header = next(ln for ln in out if ln.startswith("step")).split("\t")
    rows = [ln.split("\t") for ln in out if ln[:1].isdigit()]
    probe_cols = [i for i, h in enumerate(header) if h.startswith("r2_")]
    assert {header[i].split("_")[1] for i in probe_cols} == {"ridge", "mlp"}
    assert len(probe_cols) >= 2 and all(float(r[i]) <= 1 for r in rows for i in probe_cols)

    args = ["--params", str(d / "params.yaml"), "--task", "cartpole-swingup"]
    monkeypatch.setattr(sys, "argv", ["bench_action_effect.py", *args, "--trials", "1"])
    load_script("bench_action_effect").main()
    out = capsys.readouterr().out.splitlines()
    psnrs = [float(ln.split("\t")[1]) for ln in out[out.index("horizon\tpsnr_db") + 1 :]]
    assert len(psnrs) == 16 and np.isfinite(psnrs).all()


@pytest.mark.slow
def test_bench_rollout_times_each_batch_size(
    pipeline: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """scripts/bench_rollout.py rolls the trained dynamics out at each batch size and
    prints frames/s and the speed-up over the first."""
    import sys

    d, _ = pipeline
    args = ["--params", str(d / "params.yaml"), "--dynamics", str(d / "dyn" / "model.pt")]
    args += ["--latents", str(d / "latents.h5"), "--batches", "1", "3", "--horizon", "2"]
    monkeypatch.setattr(sys, "argv", ["bench_rollout.py", *args, "--repeats", "1"])
    load_script("bench_rollout").main()
    out = capsys.readouterr().out.splitlines()
    rows = [ln.split("\t") for ln in out[out.index("batch\tframes_per_s\tspeedup") + 1 :]]
    assert [r[0] for r in rows] == ["1", "3"]
    assert all(float(r[1]) > 0 for r in rows) and rows[0][2] == "1.00"


@pytest.mark.slow
def test_study_pairs_each_arm_with_the_first_by_seed(
    pipeline: tuple[Path, dict],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """scripts/study.py runs every arm once per seed and reports its difference from the
    first arm, paired by seed; --reuse takes finished runs from the work folder."""
    import sys

    d, _ = pipeline
    data = f"--params={d / 'params.yaml'};--episodes={d / 'episodes.h5'};tokenizer.train.steps=2"
    args = ["study.py", "--bench", "tokenizer", "--seeds", "2", "--windows", "4"]
    args += ["--work", str(tmp_path), "--out", str(tmp_path / "study.tsv")]
    args += ["--arm", f"base={data}", "--arm", f"frozen={data};tokenizer.train.lr=0.000000001"]

    def study() -> dict[tuple[str, str], list[str]]:
        monkeypatch.setattr(sys, "argv", args)
        load_script("study").main()
        out = [ln.split("\t") for ln in capsys.readouterr().out.splitlines()]
        return {(r[0], r[1]): r[2:] for r in out if len(r) > 2 and r[0] in ("base", "frozen")}

    table = study()
    runs = (tmp_path / "study.tsv").read_text().splitlines()
    assert [r.split("\t")[:2] for r in runs[1:]] == [
        ["base", "0"],
        ["base", "1"],
        ["frozen", "0"],
        ["frozen", "1"],
    ]
    base, frozen = table[("base", "psnr")], table[("frozen", "psnr")]
    assert len(base) == 3 and len(frozen) == 6  # mean, CI; and the paired difference
    assert float(frozen[3]) == pytest.approx(float(frozen[0]) - float(base[0]), abs=2e-3)
    assert float(frozen[3]) != 0  # a learning rate of 1e-9 trains nothing: another result

    # --reuse: the finished runs are read back, not run again (an edited value shows)
    tsv = tmp_path / "frozen_s0.tsv"
    header, row = (ln.split("\t") for ln in tsv.read_text().splitlines()[-2:])
    row[header.index("psnr")] = str(float(row[header.index("psnr")]) + 10)
    tsv.write_text("\t".join(header) + "\n" + "\t".join(row) + "\n")
    args.append("--reuse")
    again = study()
    assert float(again[("frozen", "psnr")][0]) == pytest.approx(float(frozen[0]) + 5, abs=2e-3)
