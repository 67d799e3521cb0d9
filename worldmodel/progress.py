"""Progress for long work: one stderr console and a progress bar (count, rate, ETA)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

console = Console(stderr=True)


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
        console=console,
        disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task(description, total=total, rate="")

        def update(completed: int, rate: float | None = None) -> None:
            progress.update(
                task, completed=completed, rate=f"{rate:,.0f} {unit}" if rate is not None else ""
            )

        yield update
