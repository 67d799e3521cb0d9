"""`train_dynamics` stage: shortcut-forcing dynamics on latents -> ``data/dynamics/``.

    python -m stages.train_dynamics                           # as dvc.yaml runs it
    torchrun --nproc_per_node 2 -m stages.train_dynamics      # several processes / GPUs

Signal level convention: tau = 1 is clean, tau = 0 is pure noise (worldmodel/forcing.py).
"""

from __future__ import annotations

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

STAGE = "train_dynamics"
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def run(
    params: Params,
    latents: Path = Path("data/latents.h5"),
    out_dir: Path = Path("data/dynamics"),
    metrics: Path = Path("metrics/dynamics.json"),
    curve: Path = Path("metrics/dynamics_curve.tsv"),
    resume: Path = Path("data/.resume/train_dynamics.pt"),
    track: bool = True,
) -> dict[str, Any]:
    """Train the dynamics model on train-episode windows; check rollouts on val windows."""

    from worldmodel import dynamics_training as dt
    from worldmodel.data.latents import LatentStore
    from worldmodel.models.dynamics import Dynamics
    from worldmodel.train import Trainer, setup_process
    from worldmodel.utils import atomic_path, file_fingerprint, fingerprint, write_json

    p = params.dynamics
    b = params.base
    device, rank, world = setup_process(b.device, b.torch_threads, b.seed)
    store = LatentStore(latents)
    cfg = dt.dynamics_config(p, store.latent_shape, store.actions.shape[1])
    model = Dynamics(cfg)
    val_windows = dt.LatentWindows(store, "val", p.eval_context + 8, p.seq_len)
    sections = params.model_dump(include={"base", "dynamics"})
    data_id = file_fingerprint(latents)
    meta = {
        "stage": STAGE,
        "params": sections,
        "latents": data_id,
        "tokenizer": store.tokenizer_meta.get("fingerprint"),
        "fingerprint": fingerprint(sections, data_id, world),
    }
    result: dict[str, Any] = {}
    with tracked_run(track and rank == 0, STAGE, params, ("base", "dynamics")) as tracker:
        trainer = Trainer(
            dt.DynamicsObjective(model),
            dt.BatchMaker(store, params),
            dt.train_config(p),
            resume,
            meta,
            device,
            periodic_eval=(
                p.eval_every,
                lambda m: dt.rollout_eval(m, val_windows, p, device, params.base.seed),
            ),
        )
        n_params = sum(x.numel() for x in model.parameters())
        seconds = fit_tracked(
            STAGE,
            trainer,
            tracker,
            f"{p.size} ({n_params / 1e6:.2f}M params) on {device} x{world}, {p.train.steps} steps of "
            f"{p.train.batch_size} x {p.seq_len} frames (every {p.long_every}th: "
            f"{p.long_batch_size} x {p.long_seq_len})",
        )
        if rank != 0:
            return result
        final = trainer.eval_model()
        check = dt.rollout_eval(final, val_windows, p, device, params.base.seed)

        def last(key: str) -> float | None:
            vals = [r[key] for r in trainer.curve if key in r]
            return vals[-1] if vals else None

        result = {
            "final_loss_shortcut": last("loss/shortcut"),
            "final_loss_flow": last("part/flow"),
            "final_loss_bootstrap": last("part/bootstrap"),
            "val_rollout_latent_mse": check["val/rollout_latent_mse"],
            "val_repeat_last_latent_mse": check["val/repeat_last_latent_mse"],
            "train_seconds": round(seconds, 1),
            "train_steps_per_s": round(p.train.steps / max(seconds, 1e-9), 3),
            "params_millions": round(n_params / 1e6, 3),
        }
        with atomic_path(out_dir) as tmp:
            tmp.mkdir()
            dt.save_dynamics(tmp / dt.MODEL_FILE, final, meta)
        write_curve(curve, trainer.curve)
        write_json(metrics, result)
        if tracker is not None:
            tracker.log_metrics(result, trainer.step)
        resume.unlink(missing_ok=True)
    err_console.print(
        f"{STAGE}: val rollout latent MSE {result['val_rollout_latent_mse']:.4f} vs repeat-last "
        f"{result['val_repeat_last_latent_mse']:.4f}; {seconds:.0f} s"
    )
    return result


@app.command()
def main(params_file: Path = PARAMS_OPTION) -> None:
    """Train the action-conditioned dynamics model with shortcut forcing."""
    stage_main(run, params_file)


if __name__ == "__main__":
    app()
