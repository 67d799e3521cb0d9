"""Progress for long work: one stderr console and a progress bar (count, rate, ETA).

In a terminal, a rich progress bar. Anywhere else (CI, ``dvc repro | tee log``, a
queued ``dvc exp run``), one plain line every ``WM_PROGRESS_SECONDS`` seconds (default
30; 0 turns the lines off) and one at the end::

    train_dynamics: 600/2000 steps (30%), 12.1 steps/s, elapsed 0:49, ETA 1:55, loss 0.0123
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

console = Console(stderr=True, soft_wrap=True)  # log lines are never wrapped


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def log_interval() -> float:
    """Seconds between progress lines off a terminal (``WM_PROGRESS_SECONDS``, default 30)."""
    try:
        return float(os.environ.get("WM_PROGRESS_SECONDS", "30"))
    except ValueError:
        return 30.0


class ProgressLog:
    """Plain progress lines at a steady interval, for logs that are not a terminal."""

    def __init__(
        self,
        description: str,
        total: int,
        unit: str,
        interval: float,
        write: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.interval, self.write, self.clock = interval, write, clock
        self.t0 = self.last = clock()
        self.completed, self.rate, self.detail = 0, None, ""

    def line(self) -> str:
        elapsed = self.clock() - self.t0
        frac = self.completed / self.total if self.total else 1.0
        eta = elapsed * (1 - frac) / frac if frac > 0 else None
        parts = [f"{self.description}: {self.completed}/{self.total} ({frac:.0%})"]
        if self.rate is not None:
            parts.append(f"{self.rate:,.1f} {self.unit}")
        parts.append(f"elapsed {_clock(elapsed)}")
        if eta is not None and self.completed < self.total:
            parts.append(f"ETA {_clock(eta)}")
        if self.detail:
            parts.append(self.detail)
        return ", ".join(parts)

    def update(
        self, completed: int, rate: float | None = None, detail: str = "", total: int | None = None
    ) -> None:
        self.completed, self.rate, self.detail = completed, rate, detail
        self.total = self.total if total is None else total
        now = self.clock()
        if self.interval > 0 and now - self.last >= self.interval and completed < self.total:
            self.last = now
            self.write(self.line())

    def close(self) -> None:
        if self.interval > 0 and self.completed > 0:
            self.write(self.line())


@contextmanager
def progress_bar(description: str, total: int, unit: str) -> Iterator:
    """Progress of ``total`` items: a rich bar in a terminal, else lines at an interval.

    Yields ``update(completed, rate=None, detail="", total=None)``; ``rate`` is shown
    with ``unit`` (e.g. "steps/s"), ``detail`` (e.g. "loss 0.012") after it; ``total``
    replaces the total when it is known only once the work has started.
    """
    if not console.is_terminal:
        log = ProgressLog(
            description,
            total=total,
            unit=unit,
            interval=log_interval(),
            write=lambda s: console.print(s, highlight=False),
        )
        yield log.update
        log.close()
        return
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
        TextColumn("{task.fields[detail]}"),
        console=console,
    )
    with progress:
        task = progress.add_task(description, total=total, rate="", detail="")

        def update(
            completed: int, rate: float | None = None, detail: str = "", total: int | None = None
        ) -> None:
            progress.update(
                task,
                total=total,
                completed=completed,
                rate=f"{rate:,.1f} {unit}" if rate is not None else "",
                detail=detail,
            )

        yield update
