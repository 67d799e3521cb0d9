"""`wm` commands about params: tasks, presets, the reference, validation."""

from __future__ import annotations

from pathlib import Path

import typer

from stages.common import PARAMS_OPTION, load_or_exit
from worldmodel.progress import console as err_console


def tasks() -> None:
    """List the task names `collect.tasks` accepts."""
    from worldmodel.tasks import ALL_TASK_NAMES

    for name in ALL_TASK_NAMES:
        typer.echo(name)


def preset(
    name: str = typer.Argument(..., help="Preset name: a file presets/<name>.yaml."),
    params_file: Path = PARAMS_OPTION,
) -> None:
    """Merge presets/<name>.yaml into params.yaml (validated first; comments kept)."""
    from worldmodel.config import ParamsError, apply_preset

    try:
        apply_preset(name, params_file)
    except ParamsError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    typer.echo(f"applied preset {name} to {params_file}; run `dvc repro` or `dvc exp run`")


def params_doc(
    write: Path = typer.Option(
        None, help="Replace the table between the params markers of this file (README.md)."
    ),
) -> None:
    """Print the params reference as a Markdown table (from the field descriptions)."""
    from worldmodel.config import params_markdown, replace_params_section

    if write is None:
        typer.echo(params_markdown(), nl=False)
    else:
        write.write_text(replace_params_section(write.read_text()))
        typer.echo(f"updated the params reference in {write}")


def check_params(params_file: Path = PARAMS_OPTION) -> None:
    """Validate a params file and print it with every default filled in."""
    import yaml

    params = load_or_exit(params_file)
    typer.echo(yaml.safe_dump(params.model_dump(), sort_keys=False), nl=False)
