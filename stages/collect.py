"""`collect` stage: record DMC episodes (pixels, actions, rewards) to ``data/episodes.h5``.

python -m stages.collect            # as dvc.yaml runs it
wm collect --params params.yaml     # the same, for humans
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from stages.common import PARAMS_OPTION, stage_main, tracked_run
from worldmodel.config import Params
from worldmodel.progress import console, progress_bar
from worldmodel.recording import CollectResult, collect
from worldmodel.results import write_stage_metrics
from worldmodel.utils import package_versions

STAGE = "collect"
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def run(
    params: Params,
    out: Path = Path("data/episodes.h5"),
    metrics: Path = Path("metrics/collect.json"),
    track: bool = True,
) -> CollectResult:
    """Record episodes, write the store and metrics, log the run to MLflow."""
    c = params.collect
    total = len(c.tasks) * c.episodes_per_task
    console.print(
        f"collect: {total} episodes x {c.frames_per_episode} frames of {', '.join(c.tasks)} "
        f"at {c.image_size}px with {c.workers} worker(s) -> {out}"
    )
    with tracked_run(track, STAGE, params, ("base", "collect")) as tracker:
        t0 = time.perf_counter()
        with progress_bar("collect", total, "frames/s") as update:
            result = collect(
                params,
                out,
                versions=package_versions(),
                on_episode=lambda done, _, n: update(done, n / (time.perf_counter() - t0)),
            )
        write_stage_metrics(metrics, STAGE, result.metrics)
        if tracker is not None:
            from worldmodel.viz import contact_sheet

            tracker.log_metrics(result.metrics)
            sheet = contact_sheet(result.samples, out.parent / ".collect_samples.png")
            tracker.log_artifact(sheet, "samples")
            sheet.unlink()
    m = result.metrics
    console.print(
        f"collect: wrote {m['episodes']} episodes, {m['frames']} frames in {m['seconds']} s "
        f"({m['frames_per_s']} frames/s)"
    )
    return result


@app.command()
def main(
    params_file: Path = PARAMS_OPTION,
    out: Path = typer.Option(Path("data/episodes.h5"), help="Episode store to write."),
    metrics: Path = typer.Option(Path("metrics/collect.json"), help="Metrics JSON to write."),
) -> None:
    """Record DMC episodes to an HDF5 episode store."""
    stage_main(lambda params: run(params, out, metrics), params_file, expected=(ValueError,))


if __name__ == "__main__":
    app()
