"""Corruption is caught and named: checksummed stores, checksummed model files, `wm verify`,
and the one-line messages and exit statuses of the stages."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import pytest
import torch
import yaml
from typer.testing import CliRunner

from tests.conftest import tiny_params
from wm.app import app
from worldmodel.checkpoints import ModelMeta, load_model, save_model
from worldmodel.data.episodes import EpisodeStore
from worldmodel.errors import CheckpointMismatch, StoreError
from worldmodel.models.tokenizer import Tokenizer, TokenizerConfig

runner = CliRunner()


def _corrupt_chunk(path: Path, dataset: str, chunk: int) -> None:
    """Overwrite bytes in the middle of one stored chunk of ``dataset``."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(chunk)
    with path.open("r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(b"\xff\x00" * 8)


def _model_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    cfg = TokenizerConfig(
        image_size=16,
        patch_size=4,
        latent_tokens=4,
        latent_dim=4,
        dim=32,
        heads=2,
        enc_depth=1,
        dec_depth=1,
    )
    path = tmp_path / "tokenizer" / "model.pt"
    path.parent.mkdir()
    save_model(path, Tokenizer(cfg), ModelMeta("train_tokenizer", tiny_params().model_dump()))
    return path


def test_corrupt_frames_are_named_with_the_episode(synthetic_store: Path, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt" / "episodes.h5"
    bad.parent.mkdir()
    shutil.copy(synthetic_store, bad)
    _corrupt_chunk(bad, "frames", 1)  # frames 16..31: episode 1 (14 frames each)
    with EpisodeStore(bad) as store:
        store.read(0)  # untouched chunk
        with pytest.raises(StoreError, match=r"episodes.h5: episode 1 \(frames 14..27\).*corrupt"):
            store.read(1)
    res = runner.invoke(app, ["verify", str(bad), str(synthetic_store)])
    assert res.exit_code == 3
    assert "BAD  " in res.output and "episode 1" in res.output and "dvc checkout" in res.output
    assert f"ok   {synthetic_store}" in res.output


def test_corrupt_model_file_is_refused(tmp_path: Path) -> None:
    path = _model_file(tmp_path)
    load_model(path, Tokenizer)
    data = bytearray(path.read_bytes())
    # flip bytes inside the stored weights (the file's middle may be zip padding or
    # metadata, which say nothing about the weights): the largest tensor's own bytes
    state = torch.load(path, map_location="cpu", weights_only=True)["state"]
    raw = max(state.values(), key=lambda t: t.numel()).numpy().tobytes()
    at = data.find(raw[:64])
    assert at > 0
    data[at + 32 : at + 48] = b"\x13" * 16
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointMismatch, match="model.pt: .*(corrupt)"):
        load_model(path, Tokenizer)
    path.write_bytes(bytes(data[: len(data) // 3]))  # truncated
    with pytest.raises(CheckpointMismatch, match="model.pt: not a readable torch file"):
        load_model(path, Tokenizer)
    res = runner.invoke(app, ["verify", str(path)])
    assert res.exit_code == 3 and "dvc repro train_tokenizer" in res.output


def test_stage_failures_are_one_line_with_an_exit_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Missing input -> 3, corrupt input -> 3 (naming file and remedy), bad params -> 2."""
    monkeypatch.chdir(tmp_path)  # a folder without the DAG's data (and nothing written here)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params().model_dump()))
    res = runner.invoke(app, ["evaluate", "--params", str(params)])
    assert res.exit_code == 3 and "Traceback" not in res.output
    assert "data/tokenizer/model.pt: no tokenizer model here" in res.output

    bad = tiny_params().model_dump()
    bad["tokenizer"]["train"]["lr"] = "3e-3"  # a string where a number belongs
    params.write_text(yaml.safe_dump(bad))
    res = runner.invoke(app, ["tokenize", "--params", str(params)])
    assert res.exit_code == 2 and "`tokenizer.train.lr` = '3e-3'" in res.output


def test_full_disk_and_debug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """ENOSPC while writing ends with exit 4 naming the file; WM_DEBUG=1 re-raises."""
    import errno

    import typer

    from stages.common import stage_main

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params().model_dump()))

    def run(_):
        raise OSError(errno.ENOSPC, "No space left on device", "data/latents.h5")

    with pytest.raises(typer.Exit) as exc:
        stage_main(run, params)
    assert exc.value.exit_code == 4
    assert "no space left on the device writing data/latents.h5" in capsys.readouterr().err
    monkeypatch.setenv("WM_DEBUG", "1")
    with pytest.raises(OSError):
        stage_main(run, params)
