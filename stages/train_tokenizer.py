"""`train_tokenizer` stage: masked-autoencoder video tokenizer -> ``data/tokenizer/``.

    python -m stages.train_tokenizer                          # as dvc.yaml runs it
    torchrun --nproc_per_node 2 -m stages.train_tokenizer     # several processes / GPUs

A killed run resumes from ``data/.resume/train_tokenizer.pt`` when rerun with the same
params and data (the file is deleted once the stage completes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from stages.common import PARAMS_OPTION, stage_main, tracked_run
from worldmodel.config import Params

STAGE = "train_tokenizer"
SECTIONS = ("base", "tokenizer")
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
    from worldmodel.data.windows import FrameClips
    from worldmodel.metrics import load_lpips
    from worldmodel.models.tokenizer import Tokenizer
    from worldmodel.progress import console
    from worldmodel.runtime import launch_rank, setup_process
    from worldmodel.training import mae_objective as tt
    from worldmodel.training.stage import TrainingOutputs, fit_and_save, training_meta
    from worldmodel.training.trainer import Trainer

    p, b = params.tokenizer, params.base
    with tracked_run(track and launch_rank() == 0, STAGE, params, SECTIONS) as tracker:
        device, rank, world = setup_process(b.device, b.torch_threads, b.seed)
        train_clips = FrameClips(episodes, "train", p.clip_frames)
        val_clips = FrameClips(episodes, "val", p.clip_frames)
        cfg = tt.tokenizer_config(p, train_clips.store.image_size)
        lpips = load_lpips(p.lpips_net)  # metrics need it even when the loss term is off
        model = Tokenizer(cfg)

        def finish(final: Tokenizer) -> Any:
            # the latent map (tokenizer.latent_norm) is fitted on train frames before the
            # held-out check; the check's reconstructions do not depend on it
            norm = tt.calibrate_latent_norm(final, train_clips, device)
            if tracker is not None and norm:
                tracker.set_tag("latent_scale", " ".join(f"{s:.3f}" for s in norm["latent_scale"]))
            return tt.final_check(final, val_clips=val_clips, p=p, device=device, lpips=lpips)

        if tracker is not None:
            tracker.set_tag("lpips", "available" if lpips is not None else "unavailable")
        trainer = Trainer(
            tt.objective(model, p, lpips),
            make_batch=tt.TokenizerBatches(train_clips, params, cfg.num_patches),
            cfg=p.train,
            ckpt_path=resume,
            meta=training_meta(
                STAGE, params=params, sections=SECTIONS, data=("episodes", episodes), world=world
            ),
            device=device,
            loss_weights=tt.loss_weights(p),
        )

        result = fit_and_save(
            STAGE,
            trainer=trainer,
            tracker=tracker,
            describe=f"{p.size}, {p.train.steps} steps of {p.train.batch_size} clips x {p.clip_frames} "
            "frames" + ("; LPIPS unavailable" if lpips is None else ""),
            outputs=TrainingOutputs(out_dir, metrics, curve, resume),
            finish=finish,
            final_losses={"final_loss_mse": "loss/mse", "final_loss_lpips": "loss/lpips"},
            inputs={"episodes": episodes},
        )
    if result:
        console.print(f"{STAGE}: {tt.result_line(result)}")
    return result


@app.command()
def main(params_file: Path = PARAMS_OPTION) -> None:
    """Train the masked-autoencoder video tokenizer on the collected episodes."""
    stage_main(run, params_file)


if __name__ == "__main__":
    app()
