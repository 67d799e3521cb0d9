"""Where each stage's numbers go: three small files instead of one wide one.

DVC draws ``dvc metrics show`` as one table whose columns are the union of every metric
name of every file, so a file of 60 numbers makes a table 2,000 characters wide. Each
stage therefore writes (``metrics/<name>.json`` being the path the stage is given):

- ``metrics/<name>.json``: the headline, a few quality numbers with short names. Only
  these files are DVC ``metrics``, so ``dvc metrics show``, ``dvc metrics diff`` and
  ``dvc exp show`` print them by default (120 columns for one task).
- ``metrics/details/<name>.json``: every quality number, confidence intervals included;
  per task only when there are several tasks.
  ``dvc metrics diff --targets metrics/details/evaluate.json`` compares them.
- ``metrics/timings/<name>.json``: wall seconds and rates. They differ between machines
  (and between a busy and an idle one), not between recipes, so they never mix with
  quality numbers in a diff. ``dvc metrics show -R metrics/timings`` lists them.

Keys whose value is ``None`` (LPIPS where its weights are missing) are left out of the
files; ``lpips_available`` says why they are absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worldmodel.utils import write_json

# headline name -> key in the details (dots walk into nested dicts), per stage
HEADLINE: dict[str, dict[str, str]] = {
    "collect": {"episodes": "episodes"},
    "train_tokenizer": {"val_psnr_db": "val.psnr"},
    "tokenize": {},
    "train_dynamics": {"val_latent_gain_db": "val_latent_gain_db"},
    "evaluate": {
        "gain_db": "gain_over_repeat_last_db",
        "shuffle_cost_db": "action_sensitivity_db",
        "exposure_bias_db": "exposure_bias_db",
    },
    "plan": {
        "model_success": "model_success",
        "oracle_success": "oracle_success",
        "random_success": "random_success",
    },
}

# what one sees in each headline column, for docs/metrics.md and `wm exps`
HEADLINE_MEANING: dict[str, str] = {
    "episodes": "episodes recorded (all tasks, all splits)",
    "val_psnr_db": "tokenizer reconstruction PSNR on the val episodes (dB)",
    "val_latent_gain_db": (
        "end of training, val rollouts in latent space: 10 log10(MSE of repeat-last / "
        "MSE of the model) (dB)"
    ),
    "gain_db": "test rollouts: PSNR gain over repeat-last, mean over h = 1..H (dB)",
    "shuffle_cost_db": "test rollouts: PSNR lost at h = H when the actions are shuffled (dB)",
    "exposure_bias_db": "test: PSNR of teacher-forced minus rollout, mean over h (dB)",
    "model_success": "test goals reached on the real simulator, planning in the world model",
    "oracle_success": (
        "test goals reached by the same planner and cost with the simulator as its model"
    ),
    "random_success": "test goals reached by uniform random actions (the floor)",
}

TIMING_KEYS = frozenset(
    {
        "seconds",
        "frames_per_s",
        "train_seconds",
        "train_steps_per_s",
        "recon_frames_per_s",
        "fps_k4_batch1",
        "fps_k4_batched",
        "fps_kmax_batch1",
        "fps_kmax_batched",
        "fps_speedup_k4_over_kmax",
        "model_frames_per_s",
        "model_seconds_per_plan",
        "oracle_seconds_per_plan",
        "random_seconds_per_plan",
        "replay_seconds_per_plan",
        "distance_fit_seconds",
    }
)


def side_paths(headline: Path) -> tuple[Path, Path]:
    """``(details, timings)`` paths beside a stage's headline metrics file."""
    return headline.parent / "details" / headline.name, headline.parent / "timings" / headline.name


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _drop_none(v)
        if v is not None:
            out[k] = v
    return out


def _get(d: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        d = d[part]
    return d


def split_result(stage: str, result: dict[str, Any]) -> tuple[dict, dict, dict]:
    """``(headline, details, timings)`` of a stage's result dict.

    ``evaluate``'s and ``plan``'s result is ``{"overall": ..., "tasks": {task: ...}}``: the details
    are the overall numbers at the top level, plus ``tasks`` when there are several.
    """
    spec = HEADLINE[stage]
    if stage in ("evaluate", "plan"):
        overall, tasks = result["overall"], result["tasks"]
        timings = {k: v for k, v in overall.items() if k in TIMING_KEYS}
        details = {k: v for k, v in overall.items() if k not in TIMING_KEYS}
        # an agent left out of the run (`plan.oracle: false`) has no headline number
        headline = {name: details[key] for name, key in spec.items() if key in details}
        if len(tasks) > 1:
            per_task = {
                t: {k: v for k, v in s.items() if k not in TIMING_KEYS} for t, s in tasks.items()
            }
            details["tasks"] = per_task
            headline["tasks"] = {
                t: {name: s[key] for name, key in spec.items() if key in s}
                for t, s in per_task.items()
            }
    else:
        timings = {k: v for k, v in result.items() if k in TIMING_KEYS}
        details = {k: v for k, v in result.items() if k not in TIMING_KEYS}
        headline = {name: _get(details, key) for name, key in spec.items()}
    headline = {k: round(v, 3) if isinstance(v, float) else v for k, v in headline.items()}
    return _drop_none(headline), _drop_none(details), timings


def write_stage_metrics(path: Path, stage: str, result: dict[str, Any]) -> None:
    """Write a stage's headline to ``path`` and its details and timings beside it
    (``metrics/details/<name>``, ``metrics/timings/<name>``)."""
    headline, details, timings = split_result(stage, result)
    details_path, timings_path = side_paths(path)
    files = [(details_path, details), (timings_path, timings)]
    if HEADLINE[stage]:  # tokenize has no quality number of its own: no headline file
        files.append((path, headline))
    for p, content in files:
        p.parent.mkdir(parents=True, exist_ok=True)
        write_json(p, content)
