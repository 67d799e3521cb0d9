"""Tokenizer budget study: held-out reconstruction quality against training time.

    python scripts/bench_tokenizer.py                                   # params.yaml as is
    python scripts/bench_tokenizer.py --set tokenizer.train.steps=3000 --eval-every 250
    python scripts/bench_tokenizer.py --set tokenizer.size=small --out metrics/bench.tsv

Trains the tokenizer exactly as the `train_tokenizer` stage would (same batches, same
trainer) on ``data/episodes.h5`` (run `dvc repro collect` first), with the ``--set``
overrides applied to params.yaml, and every ``--eval-every`` steps measures val-episode
PSNR, foreground PSNR (on the pixels unlike the median frame: what is not static
background, e.g. reacher's arm), SSIM and collapse score at mask 0. Prints one row per
evaluation (step, seconds of training so far, metrics) and optionally writes them as
TSV. ``--probe`` adds the R² of the task's simulator positions (e.g. reacher's joint
angles) from the latents: does the tokenizer keep the moving part, whatever it draws?
Nothing under ``data/`` is written, and MLflow is not used.
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
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--eval-clips", type=int, default=64)
    ap.add_argument("--out", type=Path, default=None, help="TSV of the evaluation rows")
    ap.add_argument(
        "--probe",
        action="store_true",
        help="also the R² of the task's positions from the latents (ridge and MLP probes "
        "fitted on train episodes, scored on val; worldmodel/probe.py) at each evaluation",
    )
    args = ap.parse_args()

    from worldmodel.checkpoints import ModelMeta
    from worldmodel.data.windows import FrameClips
    from worldmodel.models.tokenizer import Tokenizer
    from worldmodel.probe import probe_tokenizer
    from worldmodel.runtime import setup_process
    from worldmodel.tasks import success_spec
    from worldmodel.training import mae_objective as tt
    from worldmodel.training.trainer import Trainer

    params = params_with_overrides(args.params, args.set)
    p = params.tokenizer
    device, _, _ = setup_process(params.base.device, params.base.torch_threads, params.base.seed)
    train = FrameClips(args.episodes, "train", p.clip_frames)
    val = FrameClips(args.episodes, "val", p.clip_frames)
    cfg = tt.tokenizer_config(p, train.store.image_size)
    model = Tokenizer(cfg)
    trainer = Trainer(
        tt.objective(model, p, None),  # LPIPS term off: speed of the MSE objective
        make_batch=tt.TokenizerBatches(train, params, cfg.num_patches),
        cfg=p.train,
        ckpt_path=None,
        meta=ModelMeta("bench_tokenizer", {}),
        device=device,
        loss_weights=tt.loss_weights(p),
    )
    n_params = sum(x.numel() for x in model.parameters()) / 1e6
    print(f"# {' '.join(args.set) or 'params.yaml'}: {n_params:.2f}M params on {device}")
    task = train.store.tasks[0]
    names = list(success_spec(task).names) if args.probe else []
    table = Table(
        ["step", "train_seconds", "psnr", "psnr_foreground", "ssim", "collapse_score"]
        + [f"r2_{kind}_{n}" for kind in ("ridge", "mlp") for n in names]
    )
    seconds = 0.0
    while trainer.step < p.train.steps:
        t0 = time.perf_counter()
        trainer.fit(stop_at=min(trainer.step + args.eval_every, p.train.steps))
        seconds += time.perf_counter() - t0
        m = tt.evaluate_reconstruction(
            trainer.eval_model(), clips=val, n=args.eval_clips, device=device, lpips=None
        )
        row = {"step": trainer.step, "train_seconds": round(seconds, 1)}
        row.update(
            {k: round(m[k], 4) for k in ("psnr", "psnr_foreground", "ssim", "collapse_score")}
        )
        if args.probe:
            r2 = probe_tokenizer(trainer.eval_model(), train.store, task, p.clip_frames, device)
            row.update({f"r2_{kind}_{n}": r2[kind][n] for kind in r2 for n in names})
        trainer.model.train()
        table.add(row)
    if args.out is not None:
        table.write(args.out)


if __name__ == "__main__":
    main()
