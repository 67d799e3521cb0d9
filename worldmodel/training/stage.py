"""What both training stages do around the trainer: resume, progress, tracking, outputs.

A training stage builds its data, model, objective and :class:`Trainer`, then hands them
to :func:`fit_and_save`, which resumes from the last checkpoint when it belongs to this
run, trains with a progress bar and MLflow curves, and on rank 0 writes the stage's
outputs: the model folder (``model.pt`` and any extra files, atomically), the training
curve (TSV with a ``step`` column) and the metrics JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from worldmodel.checkpoints import MODEL_FILE, ModelMeta, save_model
from worldmodel.config import Params
from worldmodel.progress import console, progress_bar
from worldmodel.results import write_stage_metrics
from worldmodel.training.trainer import Trainer
from worldmodel.utils import atomic_path, file_fingerprint, fingerprint, write_tsv


@dataclass(frozen=True)
class TrainingOutputs:
    """Where a training stage writes: its DVC outputs and its resume checkpoint."""

    out_dir: Path  # the model folder (model.pt + extra files)
    metrics: Path  # metrics JSON
    curve: Path  # training curve TSV
    resume: Path  # resumable checkpoint, deleted once the stage completes


def training_meta(
    stage: str,
    params: Params,
    sections: tuple[str, ...],
    data: tuple[str, Path],
    world: int,
    **extra_inputs: Any,
) -> ModelMeta:
    """The :class:`ModelMeta` of a model trained by ``stage`` on the file ``data = (name, path)``.

    Its fingerprint covers the params sections the stage reads, the data file and the
    process count: a checkpoint of any other run is not resumed from.
    """
    recorded = params.model_dump(include=set(sections))
    data_id = file_fingerprint(data[1])
    return ModelMeta(
        stage, recorded, {data[0]: data_id, **extra_inputs}, fingerprint(recorded, data_id, world)
    )


def write_curve(path: Path, rows: list[dict[str, float]]) -> None:
    """Training-curve rows as TSV with a leading ``step`` column (for `dvc plots`)."""
    cols = ["step"] + sorted({k for r in rows for k in r} - {"step"})
    write_tsv(path, rows, cols, digits=6)


def fit(
    stage: str,
    trainer: Trainer,
    tracker: Any,
    describe: str,
    render: Callable[[np.ndarray], np.ndarray] | None = None,
) -> float:
    """Resume if possible, then run ``trainer.fit`` with a progress bar, MLflow curves and
    hard-example images (rank 0), drawn by ``render(previews) -> uint8 image`` (default:
    the previews are images, one row). Returns the training wall time in seconds."""
    from worldmodel.viz import frame_grid

    draw = render or (lambda previews: frame_grid([previews]))

    def on_log(step: int, row: dict[str, float]) -> None:
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in row.items() if k != "step"}, step)

    def on_checkpoint(tr: Trainer) -> None:
        if tracker is not None and tr.hard.heap:
            previews = np.stack([im for _, _, im in tr.hard.ranked()])
            tracker.log_image(draw(previews), f"hard_examples/step_{tr.step:07d}.png")

    trainer.on_log, trainer.on_checkpoint = on_log, on_checkpoint
    resumed = trainer.try_resume()
    if trainer.rank == 0:
        n_params = sum(x.numel() for x in trainer.model.parameters())
        console.print(
            f"{stage}: {n_params / 1e6:.2f}M params on {trainer.device} x{trainer.world}; "
            f"{describe}" + (f"; resumed at step {trainer.step}" if resumed else "")
        )
    t0, start = time.perf_counter(), trainer.step

    def on_step(step: int) -> None:
        last = trainer.curve[-1] if trainer.curve else {}
        loss = next((f"{k} {v:.4g}" for k, v in last.items() if k.startswith("loss/")), "")
        update(step, (step - start) / (time.perf_counter() - t0), loss)

    with progress_bar(stage, trainer.cfg.steps, "steps/s") as update:
        trainer.fit(on_step=on_step)
    return time.perf_counter() - t0


Finish = Callable[[nn.Module], tuple[dict[str, Any], dict[str, Callable[[Path], None]]]]


def fit_and_save(
    stage: str,
    trainer: Trainer,
    tracker: Any,
    describe: str,
    outputs: TrainingOutputs,
    finish: Finish,
    final_losses: dict[str, str],
    inputs: dict[str, Path],
    render: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Train (see :func:`fit`), then on rank 0 check the final model and write the outputs.

    Args:
        describe: what is trained, for the start line (e.g. the batch layout).
        finish: ``finish(final_model) -> (metrics, extra_files)``: the stage's held-out
            check as a metrics dict, and files to write beside ``model.pt`` as
            ``{name: write(path)}``.
        final_losses: ``{metric name: curve column}``: the column's last value is
            reported under the name (e.g. ``{"final_loss_mse": "loss/mse"}``).
        inputs: the data files it trained on, ``{name: path}``, recorded with the model.
        render: draws the hard examples (see :func:`fit`).

    Returns:
        The metrics (empty on ranks other than 0): ``finish``'s, the final losses, and
        ``train_seconds``, ``train_steps_per_s``, ``params_millions``.
    """
    seconds = fit(stage, trainer=trainer, tracker=tracker, describe=describe, render=render)
    if trainer.rank != 0:
        return {}
    final = trainer.eval_model()
    result, extra_files = finish(final)
    for name, column in final_losses.items():
        values = [r[column] for r in trainer.curve if column in r]
        result[name] = values[-1] if values else None
    result["train_seconds"] = round(seconds, 1)
    result["train_steps_per_s"] = round(trainer.cfg.steps / max(seconds, 1e-9), 3)
    result["params_millions"] = round(sum(x.numel() for x in final.parameters()) / 1e6, 3)
    with atomic_path(outputs.out_dir) as tmp:
        tmp.mkdir()
        save_model(tmp / MODEL_FILE, final, trainer.meta)
        for name, write in extra_files.items():
            write(tmp / name)
    write_curve(outputs.curve, trainer.curve)
    write_stage_metrics(outputs.metrics, stage, result)
    if tracker is not None:
        from worldmodel.tracking import record_model

        tracker.log_metrics(result, trainer.step)
        for name in extra_files:
            tracker.log_artifact(outputs.out_dir / name, Path(name).stem)
        record_model(
            tracker,
            model_file=outputs.out_dir / MODEL_FILE,
            kind=final.KIND,
            stage=stage,
            inputs=inputs,
        )
    outputs.resume.unlink(missing_ok=True)
    return result
