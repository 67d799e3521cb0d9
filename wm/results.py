"""`wm` commands about results and files: compare experiments, verify data files."""

from __future__ import annotations

from pathlib import Path

import typer

from worldmodel.progress import console as err_console


def compare(
    experiments: list[str] = typer.Argument(
        None, help="DVC experiment names or git revisions; none = every experiment."
    ),
    repo: Path = typer.Option(Path("."), help="The repository holding the experiments."),
    out: Path = typer.Option(None, help="Also write the Markdown to this file."),
) -> None:
    """Compare experiments across seeds (mean, 95% CI, differences, verdicts).

    Each group of runs that differ only in `base.seed` gets mean, 95% CI and seed-to-seed
    sd of the headline metrics, and each group its difference from the first with a 95%
    CI (paired by seed when both ran the same seeds), marked "within noise" when the
    interval holds 0.
    """
    from wm.compare import CompareError, experiment_revs

    try:
        names = experiments or sorted(n for n, shas in experiment_revs(repo).items() if shas)
        if not names:
            raise CompareError(f"no DVC experiments in {repo.resolve()}; run `dvc exp run` first")
    except CompareError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    _print_comparison(names, repo, out)


def _print_comparison(names: list[str], repo: Path, out: Path | None) -> None:
    """`wm compare`'s table of the named experiments, printed (and written to ``out``);
    exit 2 naming the problem when they cannot be compared."""
    from wm.compare import CompareError, compare, read_experiments

    try:
        text = compare(read_experiments(names, repo))
    except CompareError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    typer.echo(text)
    if out is not None:
        out.write_text(text + "\n")


def verify(
    paths: list[Path] = typer.Argument(
        None, help="Stores (.h5), model files or folders; none = the DAG's data files."
    ),
) -> None:
    """Check data files completely: stores' checksums and schema, model files' weights.

    Every HDF5 chunk is read against its Fletcher-32 checksum and model weights against
    the SHA-256 recorded at save. Exit 3 on a problem.
    """
    from stages.common import EXIT_DATA, remedy
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


def plots(
    revisions: list[str] = typer.Argument(
        None, help="Git revisions or DVC experiments to overlay; none = the workspace."
    ),
    out: Path = typer.Option(Path("reports/plots"), help="Folder for the PNGs and the report."),
    repo: Path = typer.Option(Path("."), help="The repository (its dvc.yaml defines the charts)."),
) -> None:
    """Render the DVC charts offline to PNG and write report.html + report.md.

    The same charts as `dvc plots show` / `dvc plots diff REV...` (dvc.yaml's `plots`),
    drawn without a browser or a network, with each revision's headline metrics.
    """
    import tempfile

    from wm.report import (
        ReportError,
        dvc_plots,
        metrics_table,
        read_headlines,
        render_charts,
        write_report,
    )

    revs = list(revisions or [])
    shown = (["workspace"] if len(revs) == 1 else []) + revs  # as `dvc plots diff` does
    from wm.compare import CompareError

    try:
        # names first (CompareError: one several runs share, or only failed runs had)
        table = metrics_table(read_headlines(repo, shown))
        with tempfile.TemporaryDirectory() as scratch:
            charts = render_charts(dvc_plots(repo, revs, Path(scratch)), out)
    except (ReportError, CompareError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    heading = "worldmodel: " + (", ".join(shown) if shown else "workspace")
    html_path, md_path = write_report(charts, table, out, heading)
    for c in charts:
        typer.echo(f"{c.png}  {c.title}")
    typer.echo(f"wrote {html_path} (self-contained) and {md_path}")


def exps(
    repo: Path = typer.Option(Path("."), help="The repository holding the experiments."),
    all_commits: bool = typer.Option(
        False, "--all-commits", "-A", help="Experiments of every commit, not only HEAD's."
    ),
) -> None:
    """One line per experiment: the params it changed and each stage's headline metric."""
    import json
    import subprocess

    from wm.report import experiments_table, text_table

    cmd = ["dvc", "exp", "show", "--json"] + (["--all-commits"] if all_commits else [])
    res = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    if res.returncode != 0:
        err_console.print(f"[bold red]error:[/] {' '.join(cmd)}: {res.stderr.strip()[-300:]}")
        raise typer.Exit(2)
    typer.echo(text_table(experiments_table(json.loads(res.stdout or "[]"))))


def study(
    tasks: list[str] = typer.Argument(..., help="Task names (`wm tasks`); one DAG per task."),
    seeds: int = typer.Option(3, min=1, help="Seeds per task: base.seed 0 .. N-1."),
    overrides: list[str] = typer.Option(
        None, "--set", "-S", help="Params for every run, key=value (as `dvc exp run -S`)."
    ),
    prefix: str = typer.Option("study", help="Experiment names: PREFIX-TASK-sSEED."),
    joint: bool = typer.Option(
        False,
        "--joint",
        help=(
            "Also train one model on all the TASKS per seed (PREFIX-TASK1+TASK2-sSEED, "
            "same steps) and compare it on each task with the task's own model."
        ),
    ),
    out: Path = typer.Option(None, help="Also write the Markdown to this file."),
) -> None:
    """Run the whole DAG per task and seed (queued DVC experiments, one at a time), then
    compare them: one table per task (mean, 95% CI and seed sd of the headline metrics).

    Each task is recorded at its own conventions. With --joint, each task's table also
    has the model shared by all the tasks, and its difference to the task's own model,
    paired by seed on the same test episodes. Each run takes a DAG's time (DVC's run
    cache does not skip them: the stages write uncached outputs); `dvc queue status` and
    `dvc queue logs NAME` show the runs.
    """
    import re
    import subprocess
    import time

    from worldmodel.config import ParamsError, parse_params

    try:
        parse_params({"collect": {"tasks": tasks}}, source="wm study")
    except ParamsError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    if joint and len(tasks) < 2:
        err_console.print("[bold red]error:[/] --joint needs two or more tasks")
        raise typer.Exit(2)
    names = []
    runs = [[task] for task in tasks] + ([list(tasks)] if joint else [])
    for run_tasks in runs:
        for seed in range(seeds):
            name = f"{prefix}-{'+'.join(run_tasks)}-s{seed}".replace("_", "-")
            listed = ",".join(run_tasks)
            cmd = ["dvc", "exp", "run", "--queue", "-n", name, "-S", f"collect.tasks=[{listed}]"]
            cmd += ["-S", f"base.seed={seed}"]
            for o in overrides or []:
                cmd += ["-S", o]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                err_console.print(f"[bold red]error:[/] {' '.join(cmd)}: {res.stderr.strip()}")
                raise typer.Exit(2)
            names.append(name)
    typer.echo(f"queued {len(names)} runs: {', '.join(names)}; running them one at a time")
    # the worker outlives `dvc queue start` and would hold a captured pipe open until the
    # queue is empty (other users' runs included): let it inherit no pipe of ours
    subprocess.run(
        ["dvc", "queue", "start", "-j", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    while True:
        status = subprocess.run(["dvc", "queue", "status"], capture_output=True, text=True)
        lines = [ln for ln in status.stdout.splitlines() if set(ln.split()) & set(names)]
        if lines and not any(re.search(r"\b(Queued|Running)\b", ln) for ln in lines):
            break
        time.sleep(10)
    failed = [n for n in names for ln in lines if n in ln.split() and "Success" not in ln]
    if failed:
        err_console.print(f"[bold red]error:[/] runs failed: {', '.join(failed)} (dvc queue logs)")
        raise typer.Exit(1)
    _print_comparison(names, Path("."), out)
