"""Tokenizer budget study: held-out reconstruction quality against training time.

    python scripts/bench_tokenizer.py                                   # params.yaml as is
    python scripts/bench_tokenizer.py --set tokenizer.train.steps=3000 --eval-every 250
    python scripts/bench_tokenizer.py --set tokenizer.size=small --out metrics/bench.tsv

Trains the tokenizer exactly as the `train_tokenizer` stage would (same batches, same
trainer) on ``data/episodes.h5`` (run `dvc repro collect` first), with the ``--set``
overrides applied to params.yaml, and every ``--eval-every`` steps measures val-episode
PSNR, SSIM and collapse score at mask 0. Prints one row per evaluation (step, seconds
of training so far, metrics) and optionally writes them as TSV. Nothing under ``data/``
is written, and MLflow is not used.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from worldmodel.config import parse_params, read_yaml


def set_dotted(data: dict, key: str, value: str) -> None:
    node = data
    *path, last = key.split(".")
    for part in path:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--episodes", type=Path, default=Path("data/episodes.h5"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--eval-clips", type=int, default=64)
    ap.add_argument("--out", type=Path, default=None, help="TSV of the evaluation rows")
    args = ap.parse_args()

    import torch

    from worldmodel import tokenizer_training as tt
    from worldmodel.data.clips import FrameClips
    from worldmodel.models.tokenizer import Tokenizer, TokenizerObjective
    from worldmodel.train import Trainer, resolve_device

    data = read_yaml(args.params)
    for item in args.set:
        key, _, value = item.partition("=")
        set_dotted(data, key, value)
    params = parse_params(data, str(args.params))
    p = params.tokenizer
    if params.base.torch_threads:
        torch.set_num_threads(params.base.torch_threads)
    device = resolve_device(params.base.device)
    torch.manual_seed(params.base.seed)
    train = FrameClips(args.episodes, "train", p.clip_frames)
    val = FrameClips(args.episodes, "val", p.clip_frames)
    cfg = tt.tokenizer_config(p, train.store.image_size)
    model = Tokenizer(cfg)
    trainer = Trainer(
        TokenizerObjective(model, None),  # LPIPS term off: speed of the MSE objective
        tt.BatchMaker(train, params, cfg.num_patches),
        tt.train_config(p),
        None,
        {},
        device,
    )
    n_params = sum(x.numel() for x in model.parameters()) / 1e6
    print(f"# {' '.join(args.set) or 'params.yaml'}: {n_params:.2f}M params on {device}")
    rows: list[dict[str, float]] = []
    header = ["step", "train_seconds", "psnr", "ssim", "collapse_score"]
    print("\t".join(header), flush=True)
    seconds = 0.0
    while trainer.step < p.train.steps:
        t0 = time.perf_counter()
        trainer.fit(stop_at=min(trainer.step + args.eval_every, p.train.steps))
        seconds += time.perf_counter() - t0
        m = tt.evaluate(trainer.eval_model(), val, args.eval_clips, device, None)
        trainer.model.train()
        row = {"step": trainer.step, "train_seconds": round(seconds, 1)}
        row.update({k: round(m[k], 4) for k in ("psnr", "ssim", "collapse_score")})
        rows.append(row)
        print("\t".join(str(row[h]) for h in header), flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        lines = ["\t".join(header)] + ["\t".join(str(r[h]) for h in header) for r in rows]
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
