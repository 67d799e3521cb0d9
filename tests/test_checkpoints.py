"""Model files: the save -> load contract for every model, typed metadata, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_params
from worldmodel.checkpoints import CheckpointMismatch, ModelMeta, load_model, save_model
from worldmodel.models.dynamics import Dynamics, DynamicsConfig
from worldmodel.models.tokenizer import Tokenizer, TokenizerConfig


def _tokenizer() -> tuple[Tokenizer, tuple[torch.Tensor, ...]]:
    cfg = TokenizerConfig(
        image_size=16,
        patch_size=4,
        latent_tokens=4,
        latent_dim=6,
        dim=32,
        heads=2,
        enc_depth=2,
        dec_depth=2,
    )
    return Tokenizer(cfg).eval(), (torch.rand(2, 2, 16, 16, 3),)


def _dynamics() -> tuple[Dynamics, tuple[torch.Tensor, ...]]:
    cfg = DynamicsConfig(
        latent_tokens=4, latent_dim=3, action_dim=2, dim=32, heads=2, kv_heads=1, depth=2, k_max=8
    )
    z = torch.randn(2, 3, 4, 3)
    return Dynamics(cfg).eval(), (
        z,
        torch.rand(2, 3),
        torch.full((2, 3), 0.125),
        torch.randn(2, 3, 2),
    )


MODELS = {"tokenizer": _tokenizer, "dynamics": _dynamics}


def _meta() -> ModelMeta:
    sections = tiny_params().model_dump(include={"base", "tokenizer", "dynamics"})
    return ModelMeta("train_x", sections, {"episodes": "abc"}, fingerprint="f00")


@pytest.mark.parametrize("kind", list(MODELS))
def test_save_load_same_outputs_and_meta(kind: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, inputs = MODELS[kind]()
    save_model(tmp_path / "m.pt", model, _meta())
    loaded, meta = load_model(tmp_path / "m.pt", type(model))
    with torch.no_grad():
        assert torch.equal(model(*inputs), loaded(*inputs))
    assert meta == _meta()
    assert meta.params.tokenizer.clip_frames == tiny_params().tokenizer.clip_frames  # typed
    assert meta.to_dict()["episodes"] == "abc"  # inputs stored at the top level


@pytest.mark.parametrize("kind", list(MODELS))
def test_other_config_or_kind_refused(kind: str, tmp_path: Path) -> None:
    model, _ = MODELS[kind]()
    path = tmp_path / "m.pt"
    save_model(path, model, _meta())
    blob = torch.load(path, weights_only=True)
    blob["config"]["dim"] = 64  # a different architecture under the same weights
    torch.save(blob, path)
    with pytest.raises(CheckpointMismatch, match="does not fit this model.*shape mismatches"):
        load_model(path, type(model))
    blob["config"]["no_such_field"] = 1
    torch.save(blob, path)
    with pytest.raises(CheckpointMismatch, match="config does not match"):
        load_model(path, type(model))
    other = Dynamics if kind == "tokenizer" else Tokenizer
    save_model(path, model, _meta())
    with pytest.raises(CheckpointMismatch, match=f"not a {other.KIND}"):
        load_model(path, other)


def test_recorded_params_that_no_longer_validate_are_refused(tmp_path: Path) -> None:
    model, _ = _tokenizer()
    meta = ModelMeta("train_tokenizer", {"tokenizer": {"no_such_key": 1}})
    save_model(tmp_path / "m.pt", model, meta)
    with pytest.raises(CheckpointMismatch, match="(?s)recorded params.*no_such_key"):
        load_model(tmp_path / "m.pt", Tokenizer)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="m.pt: no tokenizer model"):
        load_model(tmp_path / "m.pt", Tokenizer)
