"""``wm``: one command line for humans that groups the stages and project helpers.

wm collect               record episodes (the `collect` DVC stage)
wm tasks                 list the task names `collect.tasks` accepts
wm preset tier2          merge presets/tier2.yaml into params.yaml
wm params-doc            print the params reference (Markdown)
wm check-params          validate params.yaml and print it resolved
"""

from __future__ import annotations

from pathlib import Path

import typer

from stages import collect as collect_stage
from stages import evaluate as evaluate_stage
from stages import tokenize as tokenize_stage
from stages import train_dynamics as train_dynamics_stage
from stages import train_tokenizer as train_tokenizer_stage
from stages.common import PARAMS_OPTION, load_or_exit
from worldmodel.progress import console as err_console

app = typer.Typer(
    add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True, help=__doc__
)
app.command("collect")(collect_stage.main)
app.command("train-tokenizer")(train_tokenizer_stage.main)
app.command("tokenize")(tokenize_stage.main)
app.command("train-dynamics")(train_dynamics_stage.main)
app.command("evaluate")(evaluate_stage.main)


@app.command()
def tasks() -> None:
    """List the task names `collect.tasks` accepts."""
    from worldmodel.tasks import ALL_TASK_NAMES

    for name in ALL_TASK_NAMES:
        typer.echo(name)


@app.command()
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


@app.command("params-doc")
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


@app.command("check-params")
def check_params(params_file: Path = PARAMS_OPTION) -> None:
    """Validate a params file and print it with every default filled in."""
    import yaml

    params = load_or_exit(params_file)
    typer.echo(yaml.safe_dump(params.model_dump(), sort_keys=False), nl=False)


if __name__ == "__main__":
    app()
