"""`wm plots` (offline charts + report), `wm exps`, and the widths of DVC's tables."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from wm.report import experiments_table, metrics_table, render_charts, write_report

SPEC = {
    "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
    "title": "a chart",
    "data": {"values": [{"x": 1, "y": 2.0}, {"x": 2, "y": 3.0}]},
    "mark": "line",
    "encoding": {
        "x": {"field": "x", "type": "quantitative"},
        "y": {"field": "y", "type": "quantitative"},
    },
}


def test_charts_render_offline_into_a_self_contained_report(tmp_path: Path) -> None:
    image = tmp_path / "samples.png"
    image.write_bytes(b"\x89PNG fake")
    plots = {
        "curve": [{"type": "vega", "revisions": ["workspace"], "content": SPEC}],
        "samples.png": [{"type": "image", "revisions": ["workspace"], "url": str(image)}],
        "gone.png": [{"type": "image", "revisions": ["HEAD"], "url": str(tmp_path / "no.png")}],
    }
    charts = render_charts(plots, tmp_path / "out")
    assert [c.plot_id for c in charts] == ["curve", "samples.png"]  # a missing image is skipped
    assert charts[0].png.read_bytes().startswith(b"\x89PNG") and charts[0].title == "a chart"
    table = metrics_table({"workspace": {"metrics/evaluate.json": {"gain_db": 2.5, "t": {"a": 1}}}})
    html, md = write_report(charts, table, tmp_path / "out", "run")
    page = html.read_text()
    assert "data:image/png;base64," in page and "<script" not in page and 'src="http' not in page
    assert "| metrics/evaluate.json | gain_db | 2.5 |" in md.read_text()
    assert "| metrics/evaluate.json | t.a | 1 |" in md.read_text()


def test_metrics_table_lines_up_revisions() -> None:
    rows = metrics_table({"A": {"f.json": {"x": 1.23456}}, "B": {"f.json": {"y": None}}})
    assert rows == [
        ["file", "metric", "A", "B"],
        ["f.json", "x", "1.235", "-"],
        ["f.json", "y", "-", "-"],
    ]


def test_experiments_table_shows_changed_params_and_headlines() -> None:
    def data(seed: int, gain: float) -> dict:
        return {
            "params": {"params.yaml": {"data": {"base": {"seed": seed}, "evaluate": {"steps": 4}}}},
            "metrics": {"metrics/evaluate.json": {"data": {"gain_db": gain}}},
        }

    show = [
        {"rev": "workspace", "data": data(0, 2.506)},  # a `dvc repro` changed the numbers
        {
            "rev": "abcdef0123",
            "name": "main",
            "data": data(0, 2.0),
            "experiments": [
                {"revs": [{"rev": "1234567890", "name": "seed-1", "data": data(1, 2.5)}]}
            ],
        },
    ]
    rows = experiments_table(show)
    header = rows[0]
    assert header[:2] == ["experiment", "changed params"] and "gain_db" in header
    assert rows[1][:2] == ["workspace", "-"] and rows[1][header.index("gain_db")] == "2.506"
    assert rows[2][:2] == ["main", "-"] and rows[2][header.index("gain_db")] == "2"
    assert rows[3][:2] == ["  seed-1", "base.seed=1"]
    assert rows[3][header.index("gain_db")] == "2.5"


@pytest.mark.slow
def test_wm_plots_renders_the_repository_charts_offline(tmp_path: Path) -> None:
    """The committed plot data through dvc.yaml's chart definitions, rendered to PNG."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    for f in ("metrics",):  # the working tree's plot data (may be newer than the last commit)
        shutil.copytree(REPO / f, repo / f, dirs_exist_ok=True)
    shutil.copy(REPO / "dvc.yaml", repo / "dvc.yaml")
    shutil.copytree(REPO / ".dvc" / "plots", repo / ".dvc" / "plots", dirs_exist_ok=True)
    out = tmp_path / "report"
    res = subprocess.run(
        ["wm", "plots", "--out", str(out)], cwd=repo, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    defined = [
        next(iter(p)) if isinstance(p, dict) else p
        for p in yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]
    ]
    charts = [d for d in defined if not d.endswith(".png")]  # images are DVC outputs (not here)
    for plot_id in charts:
        assert (out / f"{plot_id}.png").read_bytes().startswith(b"\x89PNG"), plot_id
    assert "gain_db" in (out / "report.md").read_text()


@pytest.mark.slow
def test_dvc_metrics_tables_stay_narrow() -> None:
    """`dvc metrics show` and `dvc metrics diff` of the default run: quality only (timings
    live in metrics/timings/), no per-task block for one task, and narrow: `dvc metrics
    show` prints one column per headline name, so the width is set by those nine names
    (at most 180 columns: 120 before the plan stage's three success rates)."""
    show = subprocess.run(["dvc", "metrics", "show"], cwd=REPO, capture_output=True, text=True)
    assert show.returncode == 0, show.stderr
    lines = show.stdout.splitlines()
    assert lines and max(map(len, lines)) <= 180, show.stdout
    assert "seconds" not in show.stdout and "tasks." not in show.stdout
    diff = subprocess.run(
        ["dvc", "metrics", "diff", "HEAD", "--all"], cwd=REPO, capture_output=True, text=True
    )
    assert diff.returncode == 0, diff.stderr
    assert max(map(len, diff.stdout.splitlines()), default=0) <= 120, diff.stdout  # rows
    timings = json.loads((REPO / "metrics" / "timings" / "evaluate.json").read_text())
    assert "seconds" in timings
