"""`train_dynamics` stage: shortcut-forcing dynamics on latents -> ``data/dynamics/``.

    python -m stages.train_dynamics                           # as dvc.yaml runs it
    torchrun --nproc_per_node 2 -m stages.train_dynamics      # several processes / GPUs

A killed run resumes from ``data/.resume/train_dynamics.pt`` when rerun.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from stages.common import PARAMS_OPTION, stage_main, tracked_run
from worldmodel.config import Params

STAGE = "train_dynamics"
SECTIONS = ("base", "dynamics")
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def run(
    params: Params,
    latents: Path = Path("data/latents.h5"),
    out_dir: Path = Path("data/dynamics"),
    metrics: Path = Path("metrics/dynamics.json"),
    curve: Path = Path("metrics/dynamics_curve.tsv"),
    resume: Path = Path("data/.resume/train_dynamics.pt"),
    track: bool = True,
    tokenizer: Path = Path("data/tokenizer/model.pt"),
) -> dict[str, Any]:
    """Train the dynamics model on train-episode windows; check rollouts on val windows."""
    from worldmodel.data.latents import LatentStore
    from worldmodel.models.dynamics import Dynamics
    from worldmodel.progress import console
    from worldmodel.runtime import launch_rank, setup_process
    from worldmodel.training import forcing_objective as dt
    from worldmodel.training.stage import TrainingOutputs, fit_and_save, training_meta
    from worldmodel.training.trainer import Trainer

    p, b = params.dynamics, params.base
    with tracked_run(track and launch_rank() == 0, STAGE, params, SECTIONS) as tracker:
        device, rank, world = setup_process(b.device, b.torch_threads, b.seed)
        store = LatentStore(latents)
        model = Dynamics(dt.dynamics_config(p, store.latent_shape, store.actions.shape[1]))
        val_windows = dt.rollout_check_windows(store, p)
        render = dt.hard_example_renderer(tokenizer, device) if tracker is not None else None
        tokenizer_id = store.tokenizer_meta.get("fingerprint")
        meta = training_meta(
            STAGE,
            params=params,
            sections=SECTIONS,
            data=("latents", latents),
            world=world,
            tokenizer=tokenizer_id,
        )
        trainer = Trainer(
            dt.DynamicsObjective(model, p.loss_weight),
            make_batch=dt.DynamicsBatches(store, params),
            cfg=p.train,
            ckpt_path=resume,
            meta=meta,
            device=device,
            periodic_eval=(
                p.eval_every,
                lambda m: dt.rollout_check(m, windows=val_windows, p=p, device=device, seed=b.seed),
            ),
        )
        result = fit_and_save(
            STAGE,
            trainer=trainer,
            tracker=tracker,
            describe=f"{p.size} ({model.cfg.dim} wide, {model.cfg.depth} deep), "
            f"{p.train.steps} steps of {p.train.batch_size} x {p.seq_len} frames "
            f"(every {p.long_every}th: {p.long_batch_size} x {p.long_seq_len})",
            outputs=TrainingOutputs(out_dir, metrics, curve, resume),
            finish=lambda final: dt.final_check(
                final, windows=val_windows, p=p, device=device, seed=b.seed
            ),
            final_losses={
                "final_loss_shortcut": "loss/shortcut",
                "final_loss_flow": "part/flow",
                "final_loss_bootstrap": "part/bootstrap",
            },
            inputs={"latents": latents},
            render=render,
        )
    if result:
        console.print(f"{STAGE}: {dt.result_line(result)}")
    return result


@app.command()
def main(params_file: Path = PARAMS_OPTION) -> None:
    """Train the action-conditioned dynamics model with shortcut forcing."""
    stage_main(run, params_file)


if __name__ == "__main__":
    app()
