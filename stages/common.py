"""What every stage command shares: params loading with clean errors, signals, progress."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

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
