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
    name: str = typer.Argument(..., help="Preset name (listed above)."),
    params_file: Path = PARAMS_OPTION,
) -> None:
    """Set params.yaml to a preset over the defaults (validated first; comments kept)."""
    from wm.presets import apply_preset
    from worldmodel.config import ParamsError

    try:
        _, changes = apply_preset(name, params_file)
    except ParamsError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    for line in changes:
        typer.echo(f"  {line}")
    typer.echo(
        f"applied preset {name} to {params_file} ({len(changes)} values changed); "
        "run `dvc repro` or `dvc exp run`"
    )


def preset_help() -> str:
    """`wm preset --help`: what it does, and each preset with its one-line summary."""
    from wm.presets import list_presets, preset_summary

    names = list_presets()
    width = max(map(len, names))
    lines = [f"{n:<{width}}  {preset_summary(n)}" for n in names]
    return (
        "Set params.yaml to a preset over the defaults: every value is the preset's where "
        "it sets one and the default elsewhere (`wm preset tier1` restores the defaults). "
        "Comments and layout of the file are kept; the result is validated first.\n\n"
        "Presets (presets/NAME.yaml):\n\n" + "\n".join(lines)
    )


def params_doc(
    write: Path = typer.Option(
        None, help="Replace the table between the params markers of this file (docs/params.md)."
    ),
) -> None:
    """Print the params reference as a Markdown table (from the field descriptions)."""
    from wm.params_doc import params_markdown, replace_params_section

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
