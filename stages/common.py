"""What every stage command (and ``wm``) shares: params loading with clean errors, exit
statuses and remedies, signals, tracking.

==========  ================================================  ==========================
exit        cause                                             error class
==========  ================================================  ==========================
2           bad params (a key, a type, a rule across keys)    ``ParamsError`` (config.py)
3           a missing, corrupt, truncated, unsafe or          ``DataError`` (errors.py)
            other-version input file (store, model file,
            checkpoint)
4           no space left on the device while writing         ``OSError`` (ENOSPC)
1           anything else: a bug; the traceback is printed    -
==========  ================================================  ==========================
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import typer

from worldmodel.config import Params, ParamsError, load_params
from worldmodel.progress import console

EXIT_PARAMS, EXIT_DATA, EXIT_DISK = 2, 3, 4

# Which DVC stage writes each tracked input, by the name of the file or folder.
PRODUCERS = {
    "episodes.h5": "collect",
    "latents.h5": "tokenize",
    "tokenizer": "train_tokenizer",
    "dynamics": "train_dynamics",
}

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
    """A stage command's body: load params, clean up on SIGTERM, run, and end every
    expected failure in a line or two with a documented exit status
    (``worldmodel/errors.py``): 2 bad params (also an ``expected`` error of the run),
    3 a bad input file, 4 a full disk. ``WM_DEBUG=1`` shows the traceback instead.
    """
    import errno

    from worldmodel.errors import DataError
    from worldmodel.utils import install_sigterm_cleanup

    params = load_or_exit(params_file)
    install_sigterm_cleanup()
    try:
        run(params)
    except Exception as exc:
        if os.environ.get("WM_DEBUG"):
            raise
        if isinstance(exc, DataError):
            fail(str(exc), remedy(exc.path), EXIT_DATA)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            where = exc.filename or "the output"
            fail(f"no space left on the device writing {where}", "free space and rerun", EXIT_DISK)
        if isinstance(exc, expected):
            fail(str(exc), None, EXIT_PARAMS)
        raise


def fail(message: str, hint: str | None, code: int) -> None:
    """Print ``error: message`` (and ``hint``) on stderr and exit with ``code``."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    tail = f"exit {code}; WM_DEBUG=1 shows the traceback"
    console.print(f"  {hint} ({tail})" if hint else f"  ({tail})", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def tracked_run(enabled: bool, stage: str, params: Params, sections: tuple[str, ...]) -> Any:
    """The stage's MLflow run as a context manager (yields None when disabled).

    Stages open it before their work, so its duration and status (FAILED when the work
    raises) are true.
    """
    if not enabled:
        return nullcontext(None)
    from worldmodel.tracking import stage_run

    return stage_run(stage, params, sections)


def remedy(path: str | Path) -> str:
    """What to do about a bad input file, in one line."""
    p = Path(path)
    if ".resume" in p.parts:
        return f"delete {p} to train from the first step"
    for tracked in (p, p.parent):
        stage = PRODUCERS.get(tracked.name)
        if stage is not None:
            return (
                f"restore the tracked version with `dvc checkout {tracked}`, or rebuild it "
                f"with `dvc repro {stage}`"
            )
    return "check the file, or point the command at another one"
