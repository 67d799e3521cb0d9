"""The five stages end to end in seconds (fast tier): synthetic data, tiny models.

The slow tier (`tests/test_evaluate.py`, `tests/test_dvc.py`) runs the same DAG with two
tasks, the benchmark scripts and DVC itself; this keeps every module exercised offline
in the fast tier.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import tiny_params


def test_stage_functions_end_to_end(tmp_path: Path) -> None:
    from stages import collect, evaluate, tokenize, train_dynamics, train_tokenizer

    p = tiny_params(episodes_per_task=5, frames_per_episode=20, val_fraction=0.2, test_fraction=0.4)
    d = tmp_path
    collect.run(p, d / "e.h5", d / "c.json", track=False)
    tok = train_tokenizer.run(
        p, d / "e.h5", d / "tok", d / "t.json", d / "t.tsv", d / "t.pt", track=False
    )
    tokenize.run(p, d / "e.h5", d / "tok" / "model.pt", d / "l.h5", d / "z.json", track=False)
    dyn = train_dynamics.run(
        p, d / "l.h5", d / "dyn", d / "d.json", d / "d.tsv", d / "d.pt", track=False
    )
    out = evaluate.run(
        p, d / "e.h5", d / "tok" / "model.pt", d / "dyn" / "model.pt", d / "eval",
        d / "v.json", d / "r.tsv", d / "s.tsv", track=False,
    )  # fmt: skip
    assert tok["val"]["psnr"] > 0 and dyn["val_rollout_latent_mse"] >= 0
    assert json.loads((d / "v.json").read_text()) == json.loads(json.dumps(out))
    assert out["overall"]["split"] == "test" and out["overall"]["episodes"] == 2
    for f in ("tok/model.pt", "tok/samples.png", "dyn/model.pt", "eval/psnr_vs_horizon.png"):
        assert (d / f).is_file(), f
    assert not (d / "t.pt").exists() and not (d / "d.pt").exists()  # resume files removed
