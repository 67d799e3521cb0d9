"""`train_tokenizer` stage: masked-autoencoder video tokenizer -> ``data/tokenizer/``.

    python -m stages.train_tokenizer                          # as dvc.yaml runs it
    torchrun --nproc_per_node 2 -m stages.train_tokenizer     # several processes / GPUs

A killed run resumes from ``data/.resume/train_tokenizer.pt`` when rerun with the same
params and data (the file is deleted once the stage completes).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from stages.common import (
    PARAMS_OPTION,
    err_console,
    fit_tracked,
    stage_main,
    tracked_run,
    write_curve,
)
from worldmodel.config import Params

STAGE = "train_tokenizer"
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def run(
    params: Params,
    episodes: Path = Path("data/episodes.h5"),
    out_dir: Path = Path("data/tokenizer"),
    metrics: Path = Path("metrics/tokenizer.json"),
    curve: Path = Path("metrics/tokenizer_curve.tsv"),
    resume: Path = Path("data/.resume/train_tokenizer.pt"),
    track: bool = True,
) -> dict[str, Any]:
    """Train the tokenizer on the train episodes; evaluate on the val episodes."""
    import imageio.v3 as iio

    from worldmodel import tokenizer_training as tt
    from worldmodel.data.clips import FrameClips
    from worldmodel.metrics import load_lpips
    from worldmodel.models.tokenizer import Tokenizer, TokenizerObjective
    from worldmodel.train import Trainer, setup_process
    from worldmodel.utils import atomic_path, file_fingerprint, fingerprint, write_json

    p = params.tokenizer
    b = params.base
    device, rank, world = setup_process(b.device, b.torch_threads, b.seed)
    train_clips = FrameClips(episodes, "train", p.clip_frames)
    val_clips = FrameClips(episodes, "val", p.clip_frames)
    cfg = tt.tokenizer_config(p, train_clips.store.image_size)
    lpips = load_lpips(p.lpips_net)  # metrics need it even when the loss term is off
    model = Tokenizer(cfg)
    objective = TokenizerObjective(model, lpips if p.lpips_weight > 0 else None)
    sections = params.model_dump(include={"base", "tokenizer"})
    data_id = file_fingerprint(episodes)
    meta = {
        "stage": STAGE,
        "params": sections,
        "episodes": data_id,
        "fingerprint": fingerprint(sections, data_id, world),
    }
    result: dict[str, Any] = {}
    with tracked_run(track and rank == 0, STAGE, params, ("base", "tokenizer")) as tracker:
        if tracker is not None:
            tracker.set_tag("lpips", "available" if lpips is not None else "unavailable")
        trainer = Trainer(
            objective,
            tt.BatchMaker(train_clips, params, cfg.num_patches),
            tt.train_config(p),
            resume,
            meta,
            device,
            loss_weights={"lpips": p.lpips_weight},
        )
        n_params = sum(x.numel() for x in model.parameters())
        seconds = fit_tracked(
            STAGE,
            trainer,
            tracker,
            f"{p.size} ({n_params / 1e6:.2f}M params) on {device} x{world}, {p.train.steps} steps of "
            f"{p.train.batch_size} clips x {p.clip_frames} frames"
            + ("; LPIPS unavailable" if lpips is None else ""),
        )
        if rank != 0:
            return result
        final = trainer.eval_model()
        t1 = time.perf_counter()
        val = tt.evaluate(final, val_clips, p.eval_clips, device, lpips)
        fps = val["clips"] * p.clip_frames / (time.perf_counter() - t1)
        last = trainer.curve[-1] if trainer.curve else {}
        result = {
            "val": {k: v for k, v in val.items() if k != "clips"},
            "val_clips": val["clips"],
            "lpips_available": lpips is not None,
            "final_loss_mse": last.get("loss/mse"),
            "final_loss_lpips": last.get("loss/lpips"),
            "train_seconds": round(seconds, 1),
            "train_steps_per_s": round(p.train.steps / max(seconds, 1e-9), 3),
            "recon_frames_per_s": round(fps, 1),
            "params_millions": round(n_params / 1e6, 3),
        }
        with atomic_path(out_dir) as tmp:
            tmp.mkdir()
            tt.save_tokenizer(tmp / tt.MODEL_FILE, final, meta)
            iio.imwrite(tmp / "samples.png", tt.sample_grid(final, val_clips, device))
        write_curve(curve, trainer.curve)
        write_json(metrics, result)
        if tracker is not None:
            tracker.log_metrics(result, trainer.step)
            tracker.log_artifact(out_dir / "samples.png", "samples")
        resume.unlink(missing_ok=True)
    v = result["val"]
    err_console.print(
        f"{STAGE}: val PSNR {v['psnr']:.2f} dB, SSIM {v['ssim']:.3f}, LPIPS "
        f"{'n/a' if v['lpips'] is None else format(v['lpips'], '.3f')}, collapse score "
        f"{v['collapse_score']:.3f}; {seconds:.0f} s"
    )
    return result


@app.command()
def main(params_file: Path = PARAMS_OPTION) -> None:
    """Train the masked-autoencoder video tokenizer on the collected episodes."""
    stage_main(run, params_file)


if __name__ == "__main__":
    app()
