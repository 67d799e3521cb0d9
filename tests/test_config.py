"""Params validation: every bad file fails before work, naming the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wm.params_doc import params_markdown
from wm.presets import apply_preset, list_presets, resolve_preset
from worldmodel.config import Params, ParamsError, load_params, parse_params

REPO = Path(__file__).resolve().parent.parent


def _err(data: dict) -> str:
    with pytest.raises(ParamsError) as exc:
        parse_params(data)
    return str(exc.value)


def test_default_params_file_is_valid() -> None:
    p = load_params(REPO / "params.yaml")
    assert p.collect.tasks == ["cartpole-swingup"]
    assert p.collect.image_size == 64


def test_unknown_key_names_key_and_allowed_keys() -> None:
    msg = _err({"collect": {"episodes": 3}})
    assert "collect.episodes" in msg
    assert "episodes_per_task" in msg  # the allowed keys are listed


def test_unknown_section() -> None:
    msg = _err({"colect": {}})
    assert "colect" in msg and "collect" in msg


def test_wrong_type_names_key_and_value() -> None:
    msg = _err({"collect": {"image_size": "big"}})
    assert "collect.image_size" in msg and "'big'" in msg


@pytest.mark.parametrize("key", ["episodes_per_task", "action_repeat", "workers", "image_size"])
def test_non_positive_sizes_rejected(key: str) -> None:
    msg = _err({"collect": {key: 0}})
    assert f"collect.{key}" in msg and "greater than" in msg


def test_unknown_task_suggests_close_names() -> None:
    msg = _err({"collect": {"tasks": ["cartpole-swingupp"]}})
    assert "cartpole-swingupp" in msg and "cartpole-swingup" in msg and "wm tasks" in msg


def test_literal_lists_allowed_values() -> None:
    msg = _err({"base": {"device": "tpu"}})
    assert "base.device" in msg and "'cuda'" in msg


def test_nested_policy_validation() -> None:
    msg = _err({"collect": {"policy": {"kind": "ou", "hold_min": 5, "hold_max": 2}}})
    assert "collect.policy.hold_max" in msg


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("collect: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_applies_to_default_params(tmp_path: Path, name: str) -> None:
    target = tmp_path / "params.yaml"
    target.write_text((REPO / "params.yaml").read_text())
    result, _ = apply_preset(name, target)
    preset = yaml.safe_load((REPO / "presets" / f"{name}.yaml").read_text())
    for section, values in preset.items():
        for key, value in values.items():
            got = getattr(getattr(result, section), key)
            if isinstance(value, dict):
                assert got.model_dump(include=set(value)) == value
            else:
                assert got == value
    assert "# worldmodel params" in target.read_text()  # comments kept


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_builds_its_models(tmp_path: Path, name: str) -> None:
    """Model sizes, patch grid, latent grid and packing of each preset fit together."""
    import torch

    from worldmodel.models.dynamics import Dynamics
    from worldmodel.models.tokenizer import Tokenizer
    from worldmodel.training.forcing_objective import dynamics_config
    from worldmodel.training.mae_objective import tokenizer_config

    target = tmp_path / "params.yaml"
    target.write_text((REPO / "params.yaml").read_text())
    p, _ = apply_preset(name, target)
    tok_cfg = tokenizer_config(p.tokenizer, p.collect.image_size)
    dyn_cfg = dynamics_config(p.dynamics, (tok_cfg.latent_tokens, tok_cfg.latent_dim), 4)
    with torch.device("meta"):
        tok, dyn = Tokenizer(tok_cfg), Dynamics(dyn_cfg)
        z = tok.encode(torch.zeros(2, p.tokenizer.clip_frames, *[p.collect.image_size] * 2, 3))
        assert tuple(z.shape[2:]) == (tok_cfg.latent_tokens, tok_cfg.latent_dim)
        out = dyn(
            z.new_zeros(2, 3, *z.shape[2:]),
            z.new_ones(2, 3),
            z.new_ones(2, 3),
            z.new_zeros(2, 3, 4),
        )
        assert out.shape == (2, 3, *z.shape[2:])
    if p.tokenizer.latent_tokens > 4:  # the spatial prior applies on every real preset
        assert tok_cfg.latent_grid > 0
    assert p.evaluate.extended_horizon >= 2 * p.dynamics.long_seq_len


def test_rules_across_sections() -> None:
    msg = _err({"evaluate": {"extended_horizon": 20}})
    assert "evaluate.extended_horizon" in msg and "dynamics.long_seq_len" in msg
    msg = _err({"tokenizer": {"patch_size": 7}})
    assert "`tokenizer.patch_size` = 7 does not divide `collect.image_size` = 64" in msg
    msg = _err({"dynamics": {"pack": 3}})
    assert "`dynamics.pack` = 3 does not divide `tokenizer.latent_tokens` = 16" in msg
    msg = _err({"collect": {"frames_per_episode": 500}})
    assert "cartpole-swingup episodes hold at most 126 frames" in msg
    assert "valid integer" in _err({"collect": {"workers": True}})  # strict types
    assert "valid number" in _err({"tokenizer": {"train": {"lr": "3e-3"}}})
    assert "leave no training episode" in _err({"collect": {"test_fraction": 0.9}})


def test_presets_cover_the_three_tiers() -> None:
    assert {"tier1", "tier2", "tier2-cpu", "tier3"} <= set(list_presets())
    cpu = resolve_preset("tier2-cpu")  # reacher on a CPU: its own budget, the usual view
    assert cpu.collect.tasks == ["reacher-easy"] and cpu.collect.image_size == 64
    assert cpu.collect.camera is None and cpu.collect.action_repeat is None
    assert cpu.tokenizer.train.steps > Params().tokenizer.train.steps
    # tier1 is the default params, and the committed params.yaml holds the defaults
    assert resolve_preset("tier1") == Params() == load_params(REPO / "params.yaml")


@pytest.mark.parametrize("first", list_presets())
def test_any_preset_after_any_other_is_preset_over_defaults(tmp_path: Path, first: str) -> None:
    """Applying b after a gives the same file as applying b to the default params.yaml:
    values exactly b over the defaults, comments, `null` and flow lists kept."""
    default_text = (REPO / "params.yaml").read_text()
    for second in list_presets():
        fresh, chained = tmp_path / f"fresh_{second}.yaml", tmp_path / f"chain_{second}.yaml"
        fresh.write_text(default_text)
        chained.write_text(default_text)
        apply_preset(second, fresh)
        apply_preset(first, chained)
        result, _ = apply_preset(second, chained)
        assert result == resolve_preset(second) == load_params(chained)
        assert chained.read_text() == fresh.read_text(), (first, second)
    apply_preset("tier1", chained)
    assert chained.read_text() == default_text  # back to the defaults, byte for byte
    assert "  camera: null\n" in default_text and "  tasks: [cartpole-swingup]\n" in default_text


def test_preset_changes_are_reported_and_comments_stay(tmp_path: Path) -> None:
    target = tmp_path / "params.yaml"
    target.write_text((REPO / "params.yaml").read_text().replace("seed: 0", "seed: 7  # mine"))
    _, changes = apply_preset("tier2", target)
    assert "base.seed: 7 -> 0" in changes  # hand edits do not survive a preset
    assert "collect.tasks: ['cartpole-swingup'] -> ['reacher-easy']" in changes
    text = target.read_text()
    assert "seed: 0  # mine" in text and "tasks: [reacher-easy]" in text
    assert "# worldmodel params" in text and "camera: null" in text


@pytest.mark.parametrize("name", ["tier9", "../params", "presets/tier2", ""])
def test_unknown_preset(tmp_path: Path, name: str) -> None:
    target = tmp_path / "params.yaml"
    target.write_text((REPO / "params.yaml").read_text())
    with pytest.raises(ParamsError, match="unknown preset .*available: tier1, tier2"):
        apply_preset(name, target)
    assert target.read_text() == (REPO / "params.yaml").read_text()


def test_params_markdown_documents_every_field() -> None:
    md = params_markdown()
    for key in ("base.seed", "collect.tasks", "collect.policy.kind", "collect.val_fraction"):
        assert f"`{key}`" in md
    assert "| `collect.workers` | int | `2` |" in md


def test_params_reference_is_current() -> None:
    from wm.params_doc import replace_params_section

    text = (REPO / "docs" / "params.md").read_text()
    assert replace_params_section(text) == text, "run `wm params-doc --write docs/params.md`"


def test_documented_defaults_are_the_default_params_file() -> None:
    """The reference's `default` column (pydantic defaults) is what params.yaml runs."""
    from worldmodel.config import Params

    assert Params() == load_params(REPO / "params.yaml")


def test_task_conventions_and_overrides() -> None:
    c = parse_params(
        {"collect": {"tasks": ["cartpole-swingup", "reacher-easy", "finger-spin"]}}
    ).collect
    assert [c.settings(t).action_repeat for t in c.tasks] == [8, 4, 2]  # the DMC protocol
    assert [c.settings(t).camera for t in c.tasks] == [1, 0, 0]
    c = parse_params(
        {
            "collect": {
                "tasks": ["cartpole-swingup", "reacher-easy"],
                "action_repeat": 2,
                "per_task": {"reacher-easy": {"action_repeat": 1, "camera": 1}},
            }
        }
    ).collect
    assert c.settings("cartpole-swingup").action_repeat == 2  # the section's value
    assert (c.settings("reacher-easy").action_repeat, c.settings("reacher-easy").camera) == (1, 1)
    assert (
        parse_params({"collect": {"tasks": ["synthetic-shapes"]}})
        .collect.settings("synthetic-shapes")
        .action_repeat
        == 1
    )


def test_unknown_task_names_are_refused_with_the_list_hint() -> None:
    msg = _err({"collect": {"tasks": ["reacher-eazy"]}})
    assert "unknown task 'reacher-eazy'" in msg and "did you mean reacher-easy" in msg
    assert "wm tasks" in msg
    msg = _err({"collect": {"per_task": {"cheetah-runn": {"action_repeat": 2}}}})
    assert "unknown task 'cheetah-runn'" in msg and "collect.per_task" in msg
    # the frame budget is checked at each task's own action repeat
    msg = _err({"collect": {"tasks": ["reacher-easy"], "frames_per_episode": 300}})
    assert "reacher-easy episodes hold at most 251 frames at action_repeat 4" in msg


def test_conventions_table_in_the_docs_is_current() -> None:
    from worldmodel.tasks import conventions_markdown

    assert conventions_markdown() in (REPO / "docs" / "pipeline.md").read_text()


def test_context_level_above_the_trained_grid_is_refused() -> None:
    """Training draws tau on 0 .. 1 - 1/k_max; a context level above it is refused."""
    msg = _err({"dynamics": {"tau_ctx": 1.0}})
    assert "`dynamics.tau_ctx`" in msg and "1 - 1/k_max = 0.984375" in msg
    assert "never-trained" in msg
    assert parse_params({"dynamics": {"tau_ctx": 63 / 64}}).dynamics.tau_ctx == 63 / 64


def test_dynamics_width_and_depth_override_the_size_preset() -> None:
    from worldmodel.models.dynamics import PRESETS
    from worldmodel.training.forcing_objective import dynamics_config

    default = dynamics_config(parse_params({}).dynamics, (16, 16), 1)
    assert (default.dim, default.depth) == (PRESETS["tiny"]["dim"], PRESETS["tiny"]["depth"])
    p = parse_params({"dynamics": {"width": 192, "depth": 6}}).dynamics
    cfg = dynamics_config(p, (16, 16), 1)
    assert (cfg.dim, cfg.depth, cfg.heads) == (192, 6, PRESETS["tiny"]["heads"])
    small = dynamics_config(
        parse_params({"dynamics": {"size": "small", "depth": 2}}).dynamics, (16, 16), 1
    )
    assert (small.dim, small.depth) == (PRESETS["small"]["dim"], 2)
    assert "`dynamics.width`" in _err({"dynamics": {"width": 100}})
    msg = _err({"dynamics": {"depth": 1, "time_every": 2}})
    assert "dynamics.depth (1)" in msg and "time-attention" in msg
