"""``wm``: one command line for humans that groups the stages and project helpers.

wm collect               record episodes (the `collect` DVC stage)
wm tasks                 list the task names `collect.tasks` accepts
wm preset tier2          merge presets/tier2.yaml into params.yaml
wm params-doc            print the params reference (Markdown)
wm check-params          validate params.yaml and print it resolved
wm compare EXP...        compare experiments across seeds (mean, 95% CI, differences)
wm verify [PATH...]      check stores and model files completely (checksums, schema)
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
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help=__doc__,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"worldmodel {version('worldmodel')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """worldmodel: a DreamerV4-style video world model of DMC tasks, as a DVC pipeline."""


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


@app.command()
def compare(
    experiments: list[str] = typer.Argument(
        None, help="DVC experiment names or git revisions; none = every experiment."
    ),
    repo: Path = typer.Option(Path("."), help="The repository holding the experiments."),
    out: Path = typer.Option(None, help="Also write the Markdown to this file."),
) -> None:
    """Compare experiments across seeds: each group of runs that differ only in
    `base.seed` gets mean, 95% CI and seed-to-seed sd of the headline metrics, and each
    group its difference from the first with a 95% CI (paired by seed when both ran the
    same seeds), marked "within noise" when the interval holds 0."""
    from worldmodel.compare import CompareError, compare, experiment_revs, read_experiments

    try:
        names = experiments or sorted(experiment_revs(repo))
        if not names:
            raise CompareError(f"no DVC experiments in {repo.resolve()}; run `dvc exp run` first")
        text = compare(read_experiments(names, repo))
    except CompareError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    typer.echo(text)
    if out is not None:
        out.write_text(text + "\n")


@app.command()
def verify(
    paths: list[Path] = typer.Argument(
        None, help="Stores (.h5), model files or folders; none = the DAG's data files."
    ),
) -> None:
    """Read stores and model files completely and check them: HDF5 schema and every
    chunk's checksum, model weights against their recorded SHA-256. Exit 3 on a problem."""
    from worldmodel.errors import EXIT_DATA, remedy
    from worldmodel.integrity import DEFAULT_TARGETS, verify_all

    targets = list(paths) if paths else [Path(p) for p in DEFAULT_TARGETS if Path(p).exists()]
    if not targets:
        err_console.print("nothing to verify: no data files here (run `dvc repro`)")
        raise typer.Exit(EXIT_DATA)
    bad = 0
    for path, ok, what in verify_all(targets):
        if ok:
            typer.echo(f"ok   {path}: {what}")
        else:
            bad += 1
            typer.echo(f"BAD  {path}: {what}\n     {remedy(path)}")
    if bad:
        raise typer.Exit(EXIT_DATA)


if __name__ == "__main__":
    app()
