"""Compare DVC experiments across seeds: which differences are real and which are noise.

An experiment here is one run of the DAG (a DVC experiment or a git revision) with its
``params.yaml`` and metrics files. :func:`compare` groups experiments by every param
except ``base.seed``, so the seeds of one configuration form a group, and reports for
each headline metric

- per group: the mean over seeds with a 95% Student-t interval and the seed-to-seed
  standard deviation; a goal-success rate of the plan stage instead gets the Wilson
  interval of all its seeds' goals pooled (a t interval of three rates can leave [0, 1]),
  and a line says whether the world model's and random actions' intervals are apart and
  what share of the oracle's rate the world model reaches;
- per pair of groups (each against the first): the difference of means with its 95%
  interval: paired over the seeds both groups ran (same seed = same data and noise),
  otherwise Welch's interval; a difference whose interval contains 0 is *within noise*.

A run of several tasks (``collect.tasks`` with several entries, one model for all) is
read per task: :meth:`Experiment.per_task` gives one view per task whose evaluate numbers
are that task's, labelled ``trained on`` all of its tasks, so the task's section compares
the shared model with the task's own model, paired by seed on the same test episodes.
Numbers that a shared model has only for all its tasks together (the tokenizer's val
PSNR) are left out of that section, and the section says so.

One seed alone gives no interval (``n = 1``): a single run cannot tell a change from
another seed. :func:`read_experiments` reads experiments from a repository through
``dvc exp show --json`` and ``git show``; everything else is pure and tested directly.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from worldmodel.config import flatten, parse_params

# (metrics file, key path, short label) of the headline numbers, in table order.
EVAL, TOK = "metrics/details/evaluate.json", "metrics/details/tokenizer.json"
PLAN = "metrics/details/plan.json"
HEADLINE: list[tuple[str, str, str]] = [
    (EVAL, "gain_over_repeat_last_db", "gain over repeat-last (dB)"),
    (EVAL, "action_sensitivity_db", "shuffled-actions cost, h=H (dB)"),
    (EVAL, "moving_gain_over_repeat_last_db", "gain over repeat-last, moving pixels (dB)"),
    (EVAL, "moving_action_sensitivity_db", "shuffled-actions cost, moving pixels (dB)"),
    (EVAL, "exposure_bias_db", "exposure bias (dB)"),
    (EVAL, "min_gain_h4_plus_db", "smallest gain, h >= 4 (dB)"),
    (EVAL, "model_psnr_mean", "rollout PSNR, mean h1..H (dB)"),
    (EVAL, "psnr_h1", "rollout PSNR, h1 (dB)"),
    (EVAL, "tokenizer_ceiling_psnr", "tokenizer PSNR, test (dB)"),
    (TOK, "val.psnr", "tokenizer PSNR, val (dB)"),
    (PLAN, "model_success", "goal success: world model"),
    (PLAN, "oracle_success", "goal success: oracle planner"),
    (PLAN, "random_success", "goal success: random actions"),
]
# runs made before the plan stage existed have no plan numbers: left out, and said so
OPTIONAL_FILES = {PLAN}


# the derived param that tells a task's own model from a model shared by several tasks
TRAINED_ON = "trained on"


class CompareError(ValueError):
    """Experiments that cannot be compared; the message names them."""


@dataclass
class Experiment:
    """One run: its name, flattened params and metrics files."""

    name: str
    params: dict[str, Any]  # flattened, e.g. {"base.seed": 0, "collect.tasks": "cartpole-swingup"}
    metrics: dict[str, dict[str, Any]]  # {"metrics/evaluate.json": {...}, ...}

    @property
    def seed(self) -> int:
        return int(self.params["base.seed"])

    @property
    def tasks(self) -> list[str]:
        return str(self.params.get("collect.tasks", "")).split(",")

    def per_task(self) -> list[Experiment]:
        """One view per task: its ``collect.tasks`` that task, its evaluate numbers the
        task's own, and ``trained on`` naming every task the model was trained on (a run of
        one task is its own view)."""
        trained_on = self.params.get("collect.tasks")
        if len(self.tasks) == 1:
            return [Experiment(self.name, {**self.params, TRAINED_ON: trained_on}, self.metrics)]
        views = []
        for task in self.tasks:
            per_task = (self.metrics.get(EVAL) or {}).get("tasks", {}).get(task, {})
            params = {**self.params, "collect.tasks": task, TRAINED_ON: trained_on}
            metrics = {f: m for f, m in self.metrics.items() if f != TOK}
            metrics[EVAL] = per_task
            if PLAN in metrics:  # the plan stage's numbers for this task's goals alone
                metrics[PLAN] = (metrics[PLAN] or {}).get("tasks", {}).get(task, {})
            views.append(Experiment(f"{self.name}[{task}]", params, metrics))
        return views

    def has(self, file: str, key: str) -> bool:
        try:
            self.value(file, key)
        except CompareError:
            return False
        return True

    def value(self, file: str, key: str) -> float:
        node: Any = self.metrics.get(file)
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, int | float) or isinstance(node, bool):
            raise CompareError(f"experiment {self.name!r}: {file} has no number at `{key}`")
        return float(node)


@dataclass
class Group:
    """Experiments that differ only in ``base.seed``."""

    label: str
    members: list[Experiment]

    def values(self, file: str, key: str) -> dict[int, float]:
        """``{seed: value}``."""
        return {e.seed: e.value(file, key) for e in self.members}

    def pooled_success(self, key: str) -> tuple[int, int] | None:
        """``(goals reached, goals)`` of a plan success rate pooled over the seeds, or
        None when a run does not say how many goals it planned."""
        reached = total = 0
        for e in self.members:
            if not e.has(PLAN, "goals"):
                return None
            goals = int(e.value(PLAN, "goals"))
            reached += round(e.value(PLAN, key) * goals)
            total += goals
        return reached, total


def t_interval(x: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of ``x`` (nan with fewer than two values)."""
    from scipy import stats

    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def wilson_interval(reached: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a rate of ``reached`` out of ``n`` (sound at 0 and n)."""
    from worldmodel.goal_reaching import success_interval

    return success_interval(np.arange(n) < reached, confidence)


def difference_interval(
    a: dict[int, float], b: dict[int, float], confidence: float = 0.95
) -> tuple[float, float, float, str]:
    """``(mean(b) - mean(a), low, high, method)``: paired over common seeds when both groups
    ran the same seeds (at least two), else Welch's interval."""
    from scipy import stats

    common = sorted(set(a) & set(b))
    if len(common) >= 2 and len(common) == len(a) == len(b):
        d = np.array([b[s] - a[s] for s in common])
        lo, hi = t_interval(d, confidence)
        return float(d.mean()), lo, hi, "paired"
    xa, xb = np.array(list(a.values())), np.array(list(b.values()))
    diff = float(xb.mean() - xa.mean())
    if len(xa) < 2 or len(xb) < 2:
        return diff, float("nan"), float("nan"), "n/a"
    va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
    se = np.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff, "welch"
    dof = (va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1))
    half = stats.t.ppf(0.5 + confidence / 2, dof) * se
    return diff, diff - half, diff + half, "welch"


def group_experiments(experiments: list[Experiment]) -> list[Group]:
    """Group by every param except ``base.seed``; labels name the params that differ.

    Raises :class:`CompareError` when the experiments are not of the same tasks, or one
    group ran a seed twice.
    """
    tasks = {e.params.get("collect.tasks") for e in experiments}
    if len(tasks) > 1:
        listed = ", ".join(f"{e.name}: {e.params.get('collect.tasks')}" for e in experiments)
        raise CompareError(f"experiments of different tasks cannot be compared ({listed})")
    keys = sorted({k for e in experiments for k in e.params} - {"base.seed"})
    groups: dict[tuple, list[Experiment]] = {}
    for e in experiments:
        groups.setdefault(tuple(e.params.get(k) for k in keys), []).append(e)
    varying = [k for i, k in enumerate(keys) if len({g[i] for g in groups}) > 1]
    out = []
    for config, members in groups.items():
        seeds = [m.seed for m in members]
        if len(set(seeds)) != len(seeds):
            names = ", ".join(m.name for m in members)
            raise CompareError(f"experiments {names} have the same params and seeds {seeds}")
        label = ", ".join(f"{k}={config[keys.index(k)]}" for k in varying) or "all the same params"
        out.append(Group(label, sorted(members, key=lambda m: m.seed)))
    return out


def _fmt(v: float, digits: int = 2) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:+.{digits}f}" if v < 0 else f"{v:.{digits}f}"


def compare(experiments: list[Experiment], headline: list[tuple[str, str, str]] = HEADLINE) -> str:
    """The comparison as Markdown (fits 100 columns): per task (``collect.tasks``), one
    table per group of seeds, then one table per group against the first.

    Experiments of different tasks are never compared with each other: each task gets
    its own section (numbers of different tasks are not on one scale). A run of several
    tasks appears in the section of each of its tasks, with that task's numbers.
    """
    views = [v for e in experiments for v in e.per_task()]
    by_task: dict[Any, list[Experiment]] = {}
    for v in views:
        by_task.setdefault(v.params.get("collect.tasks"), []).append(v)
    if len(by_task) == 1:
        return _compare_one_task(views, headline)
    parts = []
    for tasks, members in by_task.items():
        parts += [f"### Task: {tasks}", "", _compare_one_task(members, headline)]
    return "\n".join(parts)


def _compare_one_task(experiments: list[Experiment], headline: list[tuple[str, str, str]]) -> str:
    groups = group_experiments(experiments)
    shared = any(e.params.get(TRAINED_ON, "") != e.params.get("collect.tasks") for e in experiments)
    missing = [
        h
        for h in headline
        if (shared or h[0] in OPTIONAL_FILES) and not all(e.has(h[0], h[1]) for e in experiments)
    ]
    headline = [h for h in headline if h not in missing]
    lines: list[str] = []
    for i, g in enumerate(groups):
        seeds = ", ".join(str(m.seed) for m in g.members)
        lines += [f"**Group {chr(65 + i)}**: {g.label}; seeds {seeds} ({len(g.members)} runs)", ""]
        lines += ["| metric | mean | 95% CI | seed sd |", "|---|---|---|---|"]
        pooled: dict[str, tuple[int, int]] = {}
        for file, key, label in headline:
            x = np.array(list(g.values(file, key).values()))
            lo, hi = t_interval(x)
            counts = g.pooled_success(key) if file == PLAN else None
            if counts is not None:  # a rate over goals: Wilson over all the seeds' goals
                pooled[key] = counts
                lo, hi = wilson_interval(*counts)
                label = f"{label} (pooled, Wilson)"
            sd = x.std(ddof=1) if len(x) > 1 else float("nan")
            lines.append(f"| {label} | {_fmt(x.mean())} | [{_fmt(lo)}, {_fmt(hi)}] | {_fmt(sd)} |")
        lines += ["", *_goal_verdict(pooled)]
    base = groups[0]
    for i, g in enumerate(groups[1:], start=1):
        name = chr(65 + i)
        lines += [f"**{name} minus A** ({g.label} against {base.label})", ""]
        lines += ["| metric | difference | 95% CI | verdict |", "|---|---|---|---|"]
        for file, key, label in headline:
            diff, lo, hi, method = difference_interval(base.values(file, key), g.values(file, key))
            if not np.isfinite(lo):
                verdict = "no interval: needs 2+ seeds per group"
            elif lo <= 0 <= hi:
                verdict = "within noise"
            else:
                verdict = f"{'higher' if diff > 0 else 'lower'} ({method})"
            lines.append(f"| {label} | {_fmt(diff)} | [{_fmt(lo)}, {_fmt(hi)}] | {verdict} |")
        lines.append("")
    if missing:
        left_out = ", ".join(label for _, _, label in missing)
        why = "Not per task for a model of several tasks" if shared else "Not in every run"
        lines += [f"{why}, so left out: {left_out}.", ""]
    return "\n".join(lines)


def _goal_verdict(pooled: dict[str, tuple[int, int]]) -> list[str]:
    """One line on the planning targets: does the world model reach more goals than
    random actions, with the two pooled intervals apart, and what share of the oracle's?"""
    model, rand = pooled.get("model_success"), pooled.get("random_success")
    if model is None or rand is None:
        return []
    (m_lo, m_hi), (r_lo, r_hi) = wilson_interval(*model), wilson_interval(*rand)
    apart = "apart" if m_lo > r_hi or r_lo > m_hi else "overlapping"
    text = (
        f"Goals reached, pooled over the seeds: world model {model[0]} of {model[1]}, random "
        f"actions {rand[0]} of {rand[1]}: the intervals are {apart}"
    )
    oracle = pooled.get("oracle_success")
    if oracle is not None and oracle[0] > 0:
        share = (model[0] / model[1]) / (oracle[0] / oracle[1])
        text += f"; the world model reaches {share:.0%} of the oracle's rate"
    return [*textwrap.wrap(text + ".", 100), ""]


def _git(repo: Path, *args: str) -> str:
    res = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if res.returncode != 0:
        raise CompareError(f"git {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def experiment_revs(repo: Path) -> dict[str, list[str]]:
    """``{experiment name: [commit, ...]}`` of every DVC experiment in ``repo`` (all
    baselines): its finished runs, one unless a name was reused, none where every run of
    it failed (see :func:`named_revs`)."""
    try:
        res = subprocess.run(
            ["dvc", "exp", "show", "--json", "--all-commits"],
            cwd=repo,
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        raise CompareError("`dvc` is not on PATH: `source .venv/bin/activate` first") from None
    if res.returncode != 0:
        raise CompareError(f"dvc exp show failed: {res.stderr.strip()[-500:]}")
    return named_revs(json.loads(res.stdout or "[]"))


def named_revs(shown: list[dict[str, Any]]) -> dict[str, list[str]]:
    """``{name: [commit, ...]}`` from ``dvc exp show --json --all-commits``.

    A run that failed (``error`` set) is left out: it has no results of its own, only
    its baseline's files, and re-running an experiment under the same name after a
    failure is common. A name that only failed runs had maps to ``[]``.
    """
    found: dict[str, list[str]] = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                name, sha = rev.get("name"), rev.get("rev")
                if not (name and sha):
                    continue
                shas = found.setdefault(name, [])  # a name only failed runs had: []
                if not rev.get("error") and sha not in shas:
                    shas.append(sha)
    return found


def resolve_name(revs: dict[str, list[str]], name: str) -> str | None:
    """The one commit of experiment ``name``, None when there is no such experiment.

    Raises :class:`CompareError` when several finished experiments share the name
    (rather than picking one silently) or when every run of it failed."""
    shas = revs.get(name)
    if shas is None:
        return None
    if not shas:
        raise CompareError(
            f"experiment {name} failed and has no results of its own; see `dvc queue logs "
            f"{name}`, then run it again"
        )
    if len(shas) > 1:
        raise CompareError(
            f"several finished experiments are named {name}: "
            f"{', '.join(sha[:7] for sha in shas)}; name one by its commit, or "
            "`dvc exp remove COMMIT` the others"
        )
    return shas[0]


# Knobs this code no longer has, each with the value at which an older run behaved as
# today's code does: such a run compares with today's; any other value keeps it apart.
REMOVED_KNOBS: dict[str, Any] = {"dynamics.inference_regime_fraction": 0.0}


def params_of_revision(raw: dict[str, Any] | None, source: str) -> dict[str, Any]:
    """Flat, validated params of a revision's params.yaml, knobs since removed included
    only where they changed behaviour (:data:`REMOVED_KNOBS`)."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in (raw or {}).items()}
    removed = {}
    for key, same in REMOVED_KNOBS.items():
        section, name = key.split(".", 1)
        if isinstance(raw.get(section), dict) and name in raw[section]:
            value = raw[section].pop(name)
            if value != same:
                removed[key] = value
    return {**flatten(parse_params(raw, source)), **removed}


def read_experiments(
    names: list[str], repo: Path, files: list[str] | None = None
) -> list[Experiment]:
    """Read each named DVC experiment (or git revision) of ``repo``: params and metrics.

    Raises :class:`CompareError` naming any experiment that does not exist.
    """
    files = files or sorted({f for f, _, _ in HEADLINE})
    revs = experiment_revs(repo)
    out, unknown = [], []
    for name in names:
        rev = resolve_name(revs, name)
        if rev is None:
            probe = subprocess.run(
                ["git", "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"],
                cwd=repo,
                capture_output=True,
                text=True,
            )
            if probe.returncode != 0:
                unknown.append(name)
                continue
            rev = probe.stdout.strip()
        raw = yaml.safe_load(_git(repo, "show", f"{rev}:params.yaml"))
        params = params_of_revision(raw, f"{name}:params.yaml")
        metrics = {}
        for f in files:
            try:
                metrics[f] = json.loads(_git(repo, "show", f"{rev}:{f}"))
            except CompareError:
                metrics[f] = {}
        out.append(Experiment(name, params, metrics))
    if unknown:
        known = ", ".join(sorted(revs)) or "none"
        raise CompareError(f"unknown experiments {', '.join(unknown)} (known: {known})")
    return out
