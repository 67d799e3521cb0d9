"""What every stage command shares: params loading with clean errors, signals, tracking."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import typer

from worldmodel.config import Params, ParamsError, load_params
from worldmodel.progress import console

PARAMS_OPTION = typer.Option(
    Path("params.yaml"), "--params", "-p", help="Params file to read.", exists=False
)


def load_or_exit(path: Path) -> Params:
    """Load params; on a bad file print which key is wrong and exit with status 2."""
    try:
        return load_params(path)
    except ParamsError as exc:
        console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None


def stage_main(
    run: Callable[[Params], Any],
    params_file: Path,
    expected: tuple[type[Exception], ...] = (),
) -> None:
    """A stage command's body: load params (exit 2 when bad), clean up on SIGTERM, run.

    An ``expected`` error raised by the run (e.g. a setting found impossible once the
    simulator is known) is printed as one line and exits with status 2.
    """
    from worldmodel.utils import install_sigterm_cleanup

    params = load_or_exit(params_file)
    install_sigterm_cleanup()
    try:
        run(params)
    except expected as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


def tracked_run(enabled: bool, stage: str, params: Params, sections: tuple[str, ...]) -> Any:
    """The stage's MLflow run as a context manager (yields None when disabled).

    Stages open it before their work, so its duration and status (FAILED when the work
    raises) are true.
    """
    if not enabled:
        return nullcontext(None)
    from worldmodel.tracking import stage_run

    return stage_run(stage, params, sections)
