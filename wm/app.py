"""``wm``: one command line for humans that groups the stages and project helpers.

wm collect               record episodes (the `collect` DVC stage)
wm plan                  goal-reaching with the world model (the `plan` DVC stage)
wm tasks                 list the task names `collect.tasks` accepts
wm preset tier2          set params.yaml to presets/tier2.yaml over the defaults
wm params-doc            print the params reference (Markdown)
wm check-params          validate params.yaml and print it resolved
wm compare EXP...        compare experiments across seeds (mean, 95% CI, differences)
wm verify [PATH...]      check stores and model files completely (checksums, schema)
wm plots [REV...]        render the DVC charts offline: PNGs + report.html / report.md
wm exps                  one line per experiment: changed params, each stage's headline
wm study TASK...         the DAG per task and seed (queued experiments), one table per task
"""

from __future__ import annotations

import typer

from stages import collect as collect_stage
from stages import evaluate as evaluate_stage
from stages import plan as plan_stage
from stages import tokenize as tokenize_stage
from stages import train_dynamics as train_dynamics_stage
from stages import train_tokenizer as train_tokenizer_stage
from wm import params as cli_params
from wm import results as cli_results

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
app.command("plan")(plan_stage.main)


app.command()(cli_params.tasks)
app.command(help=cli_params.preset_help())(cli_params.preset)
app.command("params-doc")(cli_params.params_doc)
app.command("check-params")(cli_params.check_params)
app.command()(cli_results.compare)
app.command()(cli_results.verify)
app.command()(cli_results.plots)
app.command()(cli_results.exps)
app.command()(cli_results.study)


if __name__ == "__main__":
    app()
