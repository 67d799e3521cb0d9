"""Offline plots and a one-file report of a run, or of several revisions side by side.

``dvc plots show`` writes an HTML page that loads its chart library from the internet,
so it is blank offline. :func:`write_report` takes the same charts as DVC fills them
(``dvc plots show --json``, or ``dvc plots diff REV... --json``), renders each to PNG
with vl-convert (a Vega-Lite renderer shipped as a wheel: no browser, no network) and
writes ``report.html`` (images embedded: one self-contained file) and ``report.md``
(beside the PNGs) with the headline metrics of each revision.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class ReportError(RuntimeError):
    """DVC could not produce the plots; the message says what it printed."""


@dataclass
class Chart:
    """One rendered chart: its DVC plot id, title and PNG file."""

    plot_id: str
    title: str
    png: Path


def _slug(plot_id: str, rev: str = "") -> str:
    name = f"{plot_id}_{rev}" if rev else plot_id
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def render_charts(plots: dict[str, list[dict[str, Any]]], out: Path) -> list[Chart]:
    """Render DVC's filled plot specs (``dvc plots ... --json``'s ``data``) to PNGs.

    Vega-Lite specs go through vl-convert; image plots (one per revision) are copied.
    """
    import vl_convert

    out.mkdir(parents=True, exist_ok=True)
    charts = []
    for plot_id, entries in plots.items():
        for entry in entries:
            revs = ", ".join(entry.get("revisions") or [])
            if entry["type"] == "vega":
                spec = entry["content"]
                title = spec.get("title")
                title = title.get("text", plot_id) if isinstance(title, dict) else title or plot_id
                png = out / f"{_slug(plot_id)}.png"
                png.write_bytes(vl_convert.vegalite_to_png(spec, scale=2))
            elif entry["type"] == "image" and Path(entry.get("url", "")).is_file():
                title = f"{plot_id} ({revs})"
                png = out / f"{_slug(plot_id, revs)}{Path(entry['url']).suffix}"
                shutil.copyfile(entry["url"], png)
            else:
                continue
            charts.append(Chart(plot_id, title, png))
    return charts


def metrics_table(headlines: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Rows ``[file, metric, value per revision...]`` of the headline metrics files.

    ``headlines``: ``{revision: {metrics file: content}}``; missing values print ``-``.
    """
    revs = list(headlines)
    keys: dict[tuple[str, str], None] = {}
    flat: dict[str, dict[tuple[str, str], Any]] = {}
    for rev, files in headlines.items():
        flat[rev] = {}
        for f, content in files.items():
            for k, v in _flatten(content).items():
                keys[(f, k)] = None
                flat[rev][(f, k)] = v
    rows = [["file", "metric", *revs]]
    for f, k in keys:
        rows.append([f, k, *(_cell(flat[r].get((f, k))) for r in revs)])
    return rows


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def write_report(
    charts: list[Chart], table: list[list[str]], out: Path, heading: str
) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` into ``out``."""
    md = [f"# {heading}", "", "## Headline metrics", ""]
    md.append("| " + " | ".join(table[0]) + " |")
    md.append("|" + "---|" * len(table[0]))
    md += ["| " + " | ".join(r) + " |" for r in table[1:]]
    md += ["", "## Charts", ""]
    md += [f"### {c.title}\n\n![{c.plot_id}]({c.png.name})\n" for c in charts]
    (out / "report.md").write_text("\n".join(md) + "\n")

    def img(c: Chart) -> str:
        kind = "png" if c.png.suffix == ".png" else c.png.suffix.lstrip(".")
        data = base64.b64encode(c.png.read_bytes()).decode()
        return (
            f"<h3>{html.escape(c.title)}</h3>\n"
            f'<img alt="{html.escape(c.plot_id)}" src="data:image/{kind};base64,{data}" '
            'style="max-width: 100%">'
        )

    cells = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in r) + "</tr>" for r in table[1:]
    )
    head = "".join(f"<th>{html.escape(x)}</th>" for x in table[0])
    page = (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(heading)}</title>\n<style>body{{font-family:sans-serif;"
        "margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;"
        "padding:2px 8px;text-align:left}}</style></head><body>\n"
        f"<h1>{html.escape(heading)}</h1>\n<h2>Headline metrics</h2>\n"
        f"<table><tr>{head}</tr>\n{cells}</table>\n<h2>Charts</h2>\n"
        + "\n".join(img(c) for c in charts)
        + "\n</body></html>\n"
    )
    (out / "report.html").write_text(page)
    return out / "report.html", out / "report.md"


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg")


def plot_ids(repo: Path) -> list[str]:
    """The plots dvc.yaml defines (chart ids and image paths), in order."""
    plots = yaml.safe_load((repo / "dvc.yaml").read_text()).get("plots") or []
    return [next(iter(p)) if isinstance(p, dict) else p for p in plots]


def dvc_plots(repo: Path, revs: list[str], scratch: Path) -> dict[str, list[dict[str, Any]]]:
    """DVC's filled plot specs for the workspace (no ``revs``) or the given revisions.

    Charts and images are asked for separately: an image inside a DVC output that is not
    checked out (a fresh clone before ``dvc repro``) fails DVC's whole answer, and the
    charts need only the git-tracked plot data.
    """
    ids = plot_ids(repo)
    images = [i for i in ids if i.lower().endswith(IMAGE_SUFFIXES)]
    charts = [i for i in ids if i not in images]
    out: dict[str, list[dict[str, Any]]] = {}
    for targets, required in ((charts, True), (images, False)):
        if not targets:
            continue
        cmd = (
            ["dvc", "plots", "show", *targets]
            if not revs
            else ["dvc", "plots", "diff", *revs, "--targets", *targets]
        )
        res = subprocess.run(
            [*cmd, "--json", "-o", str(scratch)], cwd=repo, capture_output=True, text=True
        )
        data = json.loads(res.stdout).get("data") if res.stdout.strip() else None
        if data is None:
            if required:
                why = res.stdout.strip()[-400:] or res.stderr.strip()[-400:]
                raise ReportError(f"{' '.join(cmd)} failed: {why}")
            continue
        out.update(data)
    return out


def headline_files(repo: Path) -> list[str]:
    """The metrics files dvc.yaml declares (each stage's headline)."""
    dvc = yaml.safe_load((repo / "dvc.yaml").read_text())
    files = []
    for spec in dvc["stages"].values():
        for entry in spec.get("metrics", []):
            files.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    return files


def read_headlines(repo: Path, revs: list[str]) -> dict[str, dict[str, Any]]:
    """``{rev: {file: content}}`` of the headline metrics; ``workspace`` reads the files."""
    from wm.compare import experiment_revs, resolve_name

    files = headline_files(repo)
    exps = experiment_revs(repo) if revs else {}
    out: dict[str, dict[str, Any]] = {}
    for rev in revs or ["workspace"]:
        out[rev] = {}
        commit = None if rev == "workspace" else resolve_name(exps, rev) or rev
        for f in files:
            if commit is None:
                text = (repo / f).read_text() if (repo / f).is_file() else None
            else:
                res = subprocess.run(
                    ["git", "show", f"{commit}:{f}"],
                    cwd=repo,
                    capture_output=True,
                    text=True,
                )
                text = res.stdout if res.returncode == 0 else None
            if text is not None:
                out[rev][f] = json.loads(text)
    return out


def experiments_table(exp_show: list[dict[str, Any]]) -> list[list[str]]:
    """Rows of ``wm exps``: per experiment, the params it changed and each stage's headline.

    ``exp_show``: the output of ``dvc exp show --json``. The workspace comes first (its
    params compared with HEAD's), as ``dvc exp show`` lists it: after a ``dvc repro`` that
    changed the numbers it holds them before any commit does. Experiments are listed,
    indented, under the commit they are based on, and their params compared with that
    commit's; headline columns are those of :data:`worldmodel.results.HEADLINE`.
    """
    from worldmodel.config import flatten
    from worldmodel.results import HEADLINE

    columns = [n for spec in HEADLINE.values() for n in spec]
    rows = [["experiment", "changed params", *columns]]

    def headline(data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for content in (data.get("metrics") or {}).values():
            out.update({k: v for k, v in (content.get("data") or {}).items() if k in columns})
        return out

    def params(data: dict[str, Any]) -> dict[str, Any]:
        return flatten((data.get("params") or {}).get("params.yaml", {}).get("data") or {})

    head = next((c for c in exp_show if c.get("rev") != "workspace" and c.get("data")), None)
    for i, commit in enumerate(exp_show):
        if commit.get("rev") == "workspace" and commit.get("data"):
            data = commit["data"]
            base = params(head["data"]) if head is not None else {}
            p, h = params(data), headline(data)
            changed = ", ".join(f"{k}={v}" for k, v in p.items() if base.get(k) != v)
            rows.append(["workspace", changed or "-", *(_cell(h.get(c)) for c in columns)])
            continue
        if not commit.get("data"):
            continue
        if i > 1 and not commit.get("experiments"):
            continue  # older commits only where they have experiments
        base = params(commit["data"])
        entries = [(commit.get("name") or commit["rev"][:7], commit["data"])]
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                if rev.get("data"):  # listed under the commit it is based on
                    entries.append(("  " + (rev.get("name") or rev["rev"][:7]), rev["data"]))
        for name, data in entries:
            p, h = params(data), headline(data)
            changed = ", ".join(f"{k}={v}" for k, v in p.items() if base.get(k) != v)
            rows.append([name, changed or "-", *(_cell(h.get(c)) for c in columns)])
    return rows


def text_table(rows: list[list[str]]) -> str:
    """A plain, left-aligned text table (header, rule, rows)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
