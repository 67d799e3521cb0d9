"""Dynamics budget study: the evaluate headline numbers on val windows against training time.

    python scripts/bench_dynamics.py                                    # params.yaml as is
    python scripts/bench_dynamics.py --set dynamics.train.steps=4000 --eval-every 1000
    python scripts/bench_dynamics.py --episodes /tmp/ar4/episodes.h5 --latents /tmp/ar4/latents.h5
    python scripts/bench_dynamics.py --save /tmp/m.pt           # keep the trained model
    python scripts/bench_dynamics.py --model /tmp/m.pt --set dynamics.tau_ctx=0.95   # score only
    python scripts/bench_dynamics.py --model data/dynamics/model.pt --split train   # fit check

Trains the dynamics exactly as the `train_dynamics` stage would (same batches, same
trainer) on ``--latents`` with the ``--set`` overrides applied to params.yaml, and every
``--eval-every`` steps rolls out ``--windows`` windows of the *validation* episodes of
``--episodes`` (``evaluate.context`` true frames, then ``evaluate.horizon`` frames with
``evaluate.steps`` sampler steps; the test episodes stay for the evaluate stage's
headline numbers; ``--split train`` scores training episodes instead, to tell a model
short of data from one short of fit), decodes them with ``--tokenizer`` and prints the evaluate stage's
headline numbers, computed by the same code:

- ``gain_db``: mean over horizons of model PSNR minus repeat-last PSNR, with its paired,
  episode-clustered bootstrap 95% interval (``gain_ci_low``, ``gain_ci_high``);
- ``min_gain_h4_db``: the smallest per-horizon gain at horizon >= 4;
- ``shuffle_cost_h{H}_db``: true-action minus shuffled-action PSNR at the last horizon
  with the same sampling noise for both rollouts, and its interval;
- ``exposure_bias_db``: teacher-forced (one-step, the true past) minus rollout PSNR, mean
  over horizons, and ``teacher_forced_psnr``;
- latent MSE at the last horizon for the model, shuffled actions and repeat-last;
- with ``--sweep``, after training: PSNR and sharpness (high-frequency energy over the
  ground truth's) of the last horizon's frame for K = 1, ``evaluate.steps`` and k_max;
- with ``--pixel-anatomy``: where the PSNR is lost, on the pixels that move (those of a
  true frame that differ from the last context frame) and on those that stay still, for the
  model's rollout, repeat-last (the true last frame, the evaluate stage's baseline),
  repeat-last as the tokenizer draws it (its reconstruction of the last context frame, a
  baseline that pays the tokenizer's price as the model does) and the tokenizer ceiling,
  with each one's share of its squared error that falls on the moving pixels; with a
  tokenizer's spatial prior (each latent starts from one square region of the frame), the
  latent error of the model and of repeat-last in the regions where something moves and
  in those where nothing does, and the h1 PSNR with the model's still regions' latents
  copied from the last context frame (chosen by the true moving pixels: a bound on what
  keeping still regions still would give, not a method);
- with ``--error-anatomy``: the one-step (teacher-forced) PSNR next to the PSNR of the true
  latents plus the model's own error at half and a quarter of its size, and plus i.i.d.
  noise of the same MSE: whether the loss comes from the error's size or its direction.

Context frames are corrupted to ``dynamics.tau_ctx`` as in the evaluate stage.

``--save PATH`` writes the trained model (the weights the evaluation used: the EMA where
``dynamics.train.ema_decay`` > 0). ``--model PATH`` trains nothing: it scores that model
once, with the inference settings of params.yaml and ``--set`` (``dynamics.tau_ctx``,
``evaluate.steps``, ``--no-kv-cache``), so settings that need no retraining are
compared on the same weights. Nothing under ``data/`` is written and MLflow is not used.
Run `dvc repro tokenize` first (or pass the files of another collection).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import Table, params_with_overrides  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--episodes", type=Path, default=Path("data/episodes.h5"))
    ap.add_argument("--latents", type=Path, default=Path("data/latents.h5"))
    ap.add_argument("--tokenizer", type=Path, default=Path("data/tokenizer/model.pt"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--windows", type=int, default=64, help="held-out windows per evaluation")
    ap.add_argument(
        "--split",
        choices=("val", "train"),
        default="val",
        help="episodes of the scored windows; train: a fit check against val (is the "
        "model short of data or of fit?), never a held-out number",
    )
    ap.add_argument("--out", type=Path, default=None, help="TSV of the evaluation rows")
    ap.add_argument("--save", type=Path, default=None, help="write the trained model here")
    ap.add_argument("--model", type=Path, default=None, help="score this model; no training")
    ap.add_argument(
        "--no-kv-cache",
        action="store_true",
        help="rollouts re-run the whole window at every sampler step instead of caching the past",
    )
    ap.add_argument(
        "--error-anatomy",
        action="store_true",
        help="after training, the PSNR of the true latents plus the model's one-step error "
        "scaled by 0.5 and 0.25, and plus i.i.d. noise of the same MSE",
    )
    ap.add_argument(
        "--pixel-anatomy",
        action="store_true",
        help="after training, the PSNR at h1, h4 and the last horizon on the pixels that move "
        "and on those that stay still, for the model, repeat-last, repeat-last as the "
        "tokenizer draws it and the tokenizer ceiling",
    )
    ap.add_argument(
        "--sweep",
        action="store_true",
        help="after training, PSNR and sharpness at the last horizon for K = 1, 4 and k_max",
    )
    args = ap.parse_args()

    import torch

    from worldmodel.checkpoints import ModelMeta, load_model, save_model
    from worldmodel.data.episodes import EpisodeStore
    from worldmodel.data.latents import LatentStore
    from worldmodel.data.windows import spread_windows
    from worldmodel.evaluation.evaluate_store import Evaluator
    from worldmodel.evaluation.summary import action_and_gain, per_window
    from worldmodel.metrics import moving_pixels, psnr, region_psnr, sharpness_ratio
    from worldmodel.models.dynamics import Dynamics
    from worldmodel.models.tokenizer import Tokenizer
    from worldmodel.runtime import setup_process
    from worldmodel.training import forcing_objective as dt
    from worldmodel.training.trainer import Trainer

    params = params_with_overrides(args.params, args.set)
    p, e = params.dynamics, params.evaluate
    device, _, _ = setup_process(params.base.device, params.base.torch_threads, params.base.seed)
    if args.model is not None:
        trainer, model = None, load_model(args.model, Dynamics, device)[0]
    else:
        store = LatentStore(args.latents)
        model = Dynamics(dt.dynamics_config(p, store.latent_shape, store.actions.shape[1]))
        sections = {
            "base": params.base.model_dump(mode="json"),
            "dynamics": p.model_dump(mode="json"),
        }
        trainer = Trainer(
            dt.DynamicsObjective(model, p.loss_weight),
            make_batch=dt.DynamicsBatches(store, params),
            cfg=p.train,
            ckpt_path=None,
            meta=ModelMeta("bench_dynamics", sections),
            device=device,
        )
        model = trainer.eval_model()
    tok, tok_meta = load_model(args.tokenizer, Tokenizer, device)
    episodes = EpisodeStore(args.episodes)
    task = episodes.tasks[0]
    w = spread_windows(episodes, task, e.context + e.horizon, args.windows, split=args.split)
    c, h = e.context, e.horizon
    frames = torch.from_numpy(w.frames).float() / 255
    target = frames[:, c:]
    n_params = sum(x.numel() for x in model.parameters()) / 1e6
    print(
        f"# {' '.join(args.set) or 'params.yaml'}{f' ({args.model})' if args.model else ''}: "
        f"{n_params:.2f}M params on {device}; "
        f"{len(w.frames)} {args.split} windows of {len(set(w.episodes.tolist()))} {task} episodes, "
        f"C={c} H={h} K={e.steps}; CIs: paired, episode-clustered bootstrap 95%"
    )
    table = Table(
        [
            "step",
            "train_seconds",
            "gain_db",
            "gain_ci_low",
            "gain_ci_high",
            "min_gain_h4_db",
            f"shuffle_cost_h{h}_db",
            "shuffle_ci_low",
            "shuffle_ci_high",
            "exposure_bias_db",
            "teacher_forced_psnr",
            "psnr_h1",
            f"psnr_h{h}",
            f"mse_h{h}",
            f"mse_shuffled_h{h}",
            f"mse_repeat_h{h}",
        ]
    )
    # the tokenizer and the windows are fixed: encode them and score the baseline once
    ev = Evaluator(
        tok,
        dynamics=model,
        context=c,
        tau_ctx=p.tau_ctx,
        window=p.long_seq_len,
        clip_frames=tok_meta.params.tokenizer.clip_frames,
        device=device,
        lpips=None,
        seed=params.base.seed,
        batch=e.batch_size,
        kv_cache=not args.no_kv_cache,
    )
    z = ev.encode(w.frames)
    z_true = z[:, c:]
    a = torch.from_numpy(w.actions).to(device)
    shuffled = torch.roll(a, 1, dims=0)
    shuffled[:, :c] = a[:, :c]
    rep = psnr(frames[:, c - 1 : c].expand_as(target), target).view(-1, h).numpy()
    rep_mse = round(float((z[:, c - 1] - z_true[:, -1]).pow(2).mean()), 4)

    def score(step: int, seconds: float) -> dict:
        """The headline numbers of ``model`` (the trained weights) on the val windows."""
        scores, mse = {"repeat_last": {"psnr": rep}}, {}
        for name, acts in (("model", a), ("shuffled_actions", shuffled)):
            zp = ev.roll(z, acts, h, e.steps)
            pix = ev.decode(torch.cat([z[:, :c], zp], 1))[:, c:]
            scores[name] = {"psnr": psnr(pix, target).view(len(zp), h).numpy()}
            mse[name] = float((zp[:, -1] - z_true[:, -1]).pow(2).mean())
        zt = ev.roll(z, a, h, e.steps, teacher_forced=True)  # one-step, true past
        pix = ev.decode(torch.cat([z[:, :c], zt], 1))[:, c:]
        scores["teacher_forced"] = {"psnr": psnr(pix, target).view(len(zt), h).numpy()}
        # the evaluate stage's own definitions and intervals
        headline = action_and_gain(scores, h, w.episodes, params.base.seed)
        bias = per_window(scores, h)["exposure_bias_db"]
        model_psnr = scores["model"]["psnr"].mean(0)
        return {
            "step": step,
            "train_seconds": round(seconds, 1),
            "gain_db": headline["gain_over_repeat_last_db"],
            "gain_ci_low": headline["gain_over_repeat_last_db_ci95"][0],
            "gain_ci_high": headline["gain_over_repeat_last_db_ci95"][1],
            "min_gain_h4_db": headline["min_gain_h4_plus_db"],
            f"shuffle_cost_h{h}_db": headline["action_sensitivity_db"],
            "shuffle_ci_low": headline["action_sensitivity_db_ci95"][0],
            "shuffle_ci_high": headline["action_sensitivity_db_ci95"][1],
            "exposure_bias_db": round(float(bias.mean()), 3),
            "teacher_forced_psnr": round(float(scores["teacher_forced"]["psnr"].mean()), 2),
            "psnr_h1": round(float(model_psnr[0]), 2),
            f"psnr_h{h}": round(float(model_psnr[-1]), 2),
            f"mse_h{h}": round(mse["model"], 4),
            f"mse_shuffled_h{h}": round(mse["shuffled_actions"], 4),
            f"mse_repeat_h{h}": rep_mse,
        }

    if trainer is None:
        table.add(score(0, 0.0))
    seconds = 0.0
    while trainer is not None and trainer.step < p.train.steps:
        t0 = time.perf_counter()
        trainer.fit(stop_at=min(trainer.step + args.eval_every, p.train.steps))
        seconds += time.perf_counter() - t0
        table.add(score(trainer.step, seconds))
        trainer.model.train()
    if args.save is not None and trainer is not None:
        save_model(args.save, model, trainer.meta)
    if args.sweep:
        ks = sorted({1, e.steps, p.k_max})
        print(f"K\tpsnr_h{h}\tsharpness_h{h}\tseconds")
        for k in ks:
            t0 = time.perf_counter()
            zp = ev.roll(z, a, h, k)
            took = time.perf_counter() - t0
            pix = ev.decode(torch.cat([z[:, :c], zp], 1))[:, c:]
            last = float(psnr(pix[:, -1], target[:, -1]).mean())
            sharp = sharpness_ratio(pix[:, -1], target[:, -1])
            print(f"{k}\t{last:.2f}\t{sharp:.3f}\t{took:.1f}", flush=True)
    if args.pixel_anatomy:
        # repeat-last copies the true frame, exact wherever nothing moves; the model draws
        # every pixel through the tokenizer's decoder. Split each method's error into the
        # pixels that move and those that stay still, and add the copy drawn by the decoder.
        zp = ev.roll(z, a, h, e.steps)
        drawn = ev.decode(torch.cat([z[:, :c], zp], 1), start=c - 1)  # (N, 1 + H, ...)
        ceiling = ev.decode(z, start=c - 1)
        moving = moving_pixels(target, frames[:, c - 1 : c])  # (N, H, S, S)
        horizons = sorted({1, min(4, h), h})
        methods = {
            "model": drawn[:, 1:],
            "repeat-last": frames[:, c - 1 : c].expand_as(target),
            "repeat-last drawn by the tokenizer": ceiling[:, :1].expand_as(target),
            "tokenizer ceiling": ceiling[:, 1:],
        }
        print(
            "method\thorizon\tmoving_fraction\tpsnr\tpsnr_moving\tpsnr_still\tmoving_share_of_error"
        )
        for name, pred in methods.items():
            for k in horizons:
                pk, tk, mk = pred[:, k - 1].clamp(0, 1), target[:, k - 1], moving[:, k - 1]
                se = (pk - tk).pow(2).mean(-1)  # (N, S, S)
                share = float((se * mk).sum() / se.sum().clamp_min(1e-12))
                print(
                    f"{name}\t{k}\t{float(mk.float().mean()):.4f}\t"
                    f"{float(psnr(pk, tk).mean()):.2f}\t"
                    f"{float(region_psnr(pk, tk, mk).mean()):.2f}\t"
                    f"{float(region_psnr(pk, tk, ~mk).mean()):.2f}\t{share:.3f}",
                    flush=True,
                )
        side = tok.cfg.latent_grid
        if side:
            # with the spatial prior each latent starts from one square region of the
            # frame: split the latent error into regions where something moves and regions
            # where nothing does, and copy the still regions' latents from the last context
            # frame (the true moving pixels choose them: a bound, not a method)
            r = target.shape[2] // side
            still = ~moving.view(*moving.shape[:2], side, r, side, r).any(5).any(3)
            still = still.flatten(2)  # (N, H, L)
            print("latents\thorizon\tstill_region_fraction\tmse_still\tmse_moving")
            for name, zz in (("model", zp), ("repeat-last", z[:, c - 1 : c].expand_as(z_true))):
                for k in horizons:
                    se, sk = (zz[:, k - 1] - z_true[:, k - 1]).pow(2).mean(-1), still[:, k - 1]
                    print(
                        f"{name}\t{k}\t{float(sk.float().mean()):.3f}\t"
                        f"{float(se[sk].mean()):.4f}\t{float(se[~sk].mean()):.4f}",
                        flush=True,
                    )
            copied = torch.where(still[:, 0, :, None], z[:, c - 1], zp[:, 0])
            pix = ev.decode(torch.cat([z[:, :c], copied[:, None]], 1), start=c)[:, 0].clamp(0, 1)
            t1, m1 = target[:, 0], moving[:, 0]
            print(
                "h1, the model's still regions copied from the last frame: psnr "
                f"{float(psnr(pix, t1).mean()):.2f}\tpsnr_moving "
                f"{float(region_psnr(pix, t1, m1).mean()):.2f}\tpsnr_still "
                f"{float(region_psnr(pix, t1, ~m1).mean()):.2f}",
                flush=True,
            )
    if args.error_anatomy:
        # one-step predictions from the true past: how much of their PSNR loss is the size
        # of the latent error, and how much its direction (what the decoder draws)
        zt = ev.roll(z, a, h, e.steps, teacher_forced=True)
        err = zt - z_true
        g = torch.Generator().manual_seed(params.base.seed)
        iid = torch.randn(err.shape, generator=g).to(err) * err.pow(2).mean().sqrt()
        print("one-step latents\tlatent_mse\tpsnr")
        for name, zz in (
            ("true (tokenizer ceiling)", z_true),
            ("model", zt),
            ("true + i.i.d. noise, the model's MSE", z_true + iid),
            ("true + 0.5 x the model's error", z_true + 0.5 * err),
            ("true + 0.25 x the model's error", z_true + 0.25 * err),
        ):
            pix = ev.decode(torch.cat([z[:, :c], zz], 1))[:, c:]
            mse_ = float((zz - z_true).pow(2).mean())
            print(f"{name}\t{mse_:.4f}\t{float(psnr(pix, target).mean()):.2f}", flush=True)
    if args.out is not None:
        table.write(args.out)


if __name__ == "__main__":
    main()
