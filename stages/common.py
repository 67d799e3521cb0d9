"""What every stage command shares: params loading with clean errors, signals, progress."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from worldmodel.config import Params, ParamsError, load_params

err_console = Console(stderr=True)

PARAMS_OPTION = typer.Option(
    Path("params.yaml"), "--params", "-p", help="Params file to read.", exists=False
)


def load_or_exit(path: Path) -> Params:
    """Load params; on a bad file print which key is wrong and exit with status 2."""
    try:
        return load_params(path)
    except ParamsError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None


def stage_main(run: Callable[[Params], Any], params_file: Path) -> None:
    """A stage command's body: load params (exit 2 when bad), clean up on SIGTERM, run."""
    from worldmodel.utils import install_sigterm_cleanup

    params = load_or_exit(params_file)
    install_sigterm_cleanup()
    run(params)


def versions() -> dict[str, str]:
    """Versions of the packages that shape the data, for artifact attributes."""
    out = {"python": sys.version.split()[0]}
    for pkg in ("worldmodel", "numpy", "h5py", "torch", "dm_control", "mujoco"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


@contextmanager
def progress_bar(description: str, total: int, unit: str) -> Iterator:
    """A rich progress bar (count, rate, ETA); silent when stderr is not a terminal.

    Yields ``update(completed, rate)``.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
    )
    with progress:
        task = progress.add_task(description, total=total, rate="")

        def update(completed: int, rate: float | None = None) -> None:
            progress.update(
                task, completed=completed, rate=f"{rate:,.0f} {unit}" if rate is not None else ""
            )

        yield update


def write_curve(path: Path, rows: list[dict[str, float]]) -> None:
    """Write training-curve rows as TSV with a leading ``step`` column (for `dvc plots`)."""
    from worldmodel.utils import atomic_path

    cols = ["step"] + sorted({k for r in rows for k in r} - {"step"})
    lines = ["\t".join(cols)]
    for r in rows:
        lines.append("\t".join("" if r.get(c) is None else f"{r[c]:.6g}" for c in cols))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def fit_tracked(
    stage: str,
    trainer: Any,
    tracker: Any,
    describe: str,
) -> float:
    """Resume if possible, then run ``trainer.fit`` with a progress bar, MLflow curves and
    hard-example images (rank 0). Returns the training wall time in seconds."""
    import numpy as np

    from worldmodel.viz import frame_grid

    def on_log(step: int, row: dict[str, float]) -> None:
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in row.items() if k != "step"}, step)

    def on_checkpoint(tr: Any) -> None:
        if tracker is not None and tr.hard.heap:
            images = np.stack([im for _, _, im in tr.hard.ranked()])
            tracker.log_image(frame_grid([images]), f"hard_examples/step_{tr.step:07d}.png")

    trainer.on_log, trainer.on_checkpoint = on_log, on_checkpoint
    resumed = trainer.try_resume()
    if trainer.rank == 0:
        err_console.print(
            f"{stage}: {describe}" + (f"; resumed at step {trainer.step}" if resumed else "")
        )
    t0, start = time.perf_counter(), trainer.step
    with progress_bar(stage, trainer.cfg.steps, "steps/s") as update:
        trainer.fit(on_step=lambda s: update(s, (s - start) / (time.perf_counter() - t0)))
    return time.perf_counter() - t0


def tracked_run(enabled: bool, stage: str, params: Params, sections: tuple[str, ...]) -> Any:
    """The stage's MLflow run as a context manager (yields None when disabled)."""
    from contextlib import nullcontext

    if not enabled:
        return nullcontext(None)
    from worldmodel.tracking import stage_run

    return stage_run(stage, params, sections)
