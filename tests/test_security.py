"""Opening a file never runs code from it.

Each test plants a real payload: an object whose ``__reduce__`` runs a shell command that
writes a marker file when unpickled. Every reader of model files and resume checkpoints
must refuse such a file in one line naming it, and the marker must never appear. The other
ways in (YAML, HDF5 attributes, the MLflow store's relocation, subprocesses, servers) are
checked too.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sqlite3
from pathlib import Path

import h5py
import pytest
import torch
import yaml
from typer.testing import CliRunner

from tests.conftest import REPO, tiny_params
from wm.app import app
from worldmodel.checkpoints import CHECKPOINT_VERSION, ModelMeta, load_model, save_model
from worldmodel.errors import StoreError, UnsafeFile
from worldmodel.models.dynamics import Dynamics
from worldmodel.models.tokenizer import Tokenizer

runner = CliRunner()


class Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _poison_model(path: Path, marker: Path) -> None:
    """Add a payload to a real model file's metadata, as an attacker would."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    blob["meta"]["note"] = Payload(marker)
    torch.save(blob, path)


def _poisoned_checkpoint(path: Path, marker: Path) -> None:
    """A resume checkpoint shaped as the trainer writes it, carrying a payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"checkpoint_version": CHECKPOINT_VERSION, "meta": {}, "step": 1, "curve": Payload(marker)},
        path,
    )


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with params, episodes, latents and (untrained) model files."""
    from stages import tokenize
    from worldmodel.recording import collect
    from worldmodel.training.forcing_objective import dynamics_config

    monkeypatch.chdir(tmp_path)
    params = tiny_params()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.model_dump()))
    data = tmp_path / "data"
    data.mkdir()
    collect(params, data / "episodes.h5")
    torch.manual_seed(0)
    tok = Tokenizer(_tokenizer_config())
    (data / "tokenizer").mkdir()
    save_model(
        data / "tokenizer" / "model.pt", tok, ModelMeta("train_tokenizer", params.model_dump())
    )
    tokenize.run(params, track=False)
    from worldmodel.data.latents import LatentStore

    latents = LatentStore(data / "latents.h5")
    dyn = Dynamics(dynamics_config(params.dynamics, latents.latent_shape, latents.actions.shape[1]))
    (data / "dynamics").mkdir()
    save_model(
        data / "dynamics" / "model.pt", dyn, ModelMeta("train_dynamics", params.model_dump())
    )
    return tmp_path


def _refused_in_one_line(res, name: str) -> None:
    assert res.exit_code == 3, res.output
    assert "Traceback" not in res.output
    assert name in res.output and "unsafe" in res.output, res.output


def test_the_payload_is_real(tmp_path: Path) -> None:
    """The control: a full unpickle of the same file runs the payload (which is why the
    project never does one)."""
    marker = tmp_path / "PWNED"
    torch.save({"x": Payload(marker)}, tmp_path / "f.pt")
    torch.load(tmp_path / "f.pt", weights_only=False)
    assert marker.exists()


def test_model_files_with_a_payload_are_refused_everywhere(project: Path) -> None:
    marker = project / "PWNED"
    tok_file = project / "data" / "tokenizer" / "model.pt"
    dyn_file = project / "data" / "dynamics" / "model.pt"
    assert load_model(tok_file, Tokenizer)[0] is not None  # clean files load
    res = runner.invoke(app, ["verify", str(tok_file), str(dyn_file)])
    assert res.exit_code == 0 and res.output.count("ok   ") == 2, res.output

    _poison_model(tok_file, marker)
    _poison_model(dyn_file, marker)
    for path, cls in ((tok_file, Tokenizer), (dyn_file, Dynamics)):
        with pytest.raises(UnsafeFile, match=rf"{re.escape(str(path))}: unsafe.*posix.system"):
            load_model(path, cls)
    res = runner.invoke(app, ["verify", str(tok_file), str(dyn_file)])
    assert res.output.count("BAD  ") == 2 and "ok " not in res.output
    _refused_in_one_line(res, str(tok_file))
    res = runner.invoke(app, ["tokenize"])
    _refused_in_one_line(res, "data/tokenizer/model.pt")
    res = runner.invoke(app, ["evaluate"])
    _refused_in_one_line(res, "data/tokenizer/model.pt")
    res = runner.invoke(app, ["plan"])
    _refused_in_one_line(res, "data/tokenizer/model.pt")
    # evaluate and plan read the dynamics model too: a clean tokenizer, a poisoned dynamics model
    meta = ModelMeta("train_tokenizer", tiny_params().model_dump())
    save_model(tok_file, Tokenizer(_tokenizer_config()), meta)
    res = runner.invoke(app, ["evaluate"])
    _refused_in_one_line(res, "data/dynamics/model.pt")
    res = runner.invoke(app, ["plan"])
    _refused_in_one_line(res, "data/dynamics/model.pt")
    assert not marker.exists()


def _tokenizer_config():
    from worldmodel.training.mae_objective import tokenizer_config

    p = tiny_params()
    return tokenizer_config(p.tokenizer, p.collect.image_size)


@pytest.mark.parametrize("stage", ["train-tokenizer", "train-dynamics"])
def test_resume_checkpoints_with_a_payload_are_refused(project: Path, stage: str) -> None:
    marker = project / "PWNED"
    resume = project / "data" / ".resume" / f"{stage.replace('-', '_')}.pt"
    _poisoned_checkpoint(resume, marker)
    res = runner.invoke(app, [stage])
    _refused_in_one_line(res, str(Path("data/.resume") / resume.name))
    assert "to train from the first step" in res.output
    res = runner.invoke(app, ["verify", str(resume)])
    _refused_in_one_line(res, str(resume))
    assert not marker.exists()


def test_yaml_is_read_safely(tmp_path: Path) -> None:
    from worldmodel.config import ParamsError, load_params

    marker = tmp_path / "PWNED"
    params = tmp_path / "params.yaml"
    params.write_text(f'base: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ParamsError):
        load_params(params)
    assert not marker.exists()
    # and nothing in the project reads YAML any other way
    for path in _sources():
        text = path.read_text()
        assert not re.search(r"yaml\.(unsafe_)?load\(|yaml\.load_all\(|typ=.unsafe", text), path


def test_hdf5_attributes_are_json_never_evaluated(synthetic_store: Path, tmp_path: Path) -> None:
    from worldmodel.data.episodes import EpisodeStore

    marker = tmp_path / "PWNED"
    with h5py.File(synthetic_store, "a") as f:
        f.attrs["tasks"] = f"__import__('os').system('touch {marker}')"
    with pytest.raises(StoreError, match=r"episodes.h5: attribute `tasks` is not valid JSON"):
        EpisodeStore(synthetic_store)
    assert not marker.exists()
    for path in _sources():
        tree = ast.parse(path.read_text())
        calls = {
            n.func.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        assert not calls & {"eval", "exec"}, path


def test_artifact_relocation_only_points_inside_the_project(tmp_path: Path) -> None:
    """Only ``<db folder>/mlartifacts`` is ever written, and only rows that start with
    the moved location (an ``_`` or ``%`` in a path is no wildcard)."""
    from worldmodel.tracking import relocate_artifacts

    db = tmp_path / "mlflow.db"
    (tmp_path / "mlartifacts").mkdir()
    old = "file:///gone/my_proj/mlartifacts"
    lookalike = "file:///gone/myXproj/mlartifacts/1/run"  # matches `my_proj` as a LIKE pattern
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE experiments (artifact_location TEXT)")
        c.execute("CREATE TABLE runs (artifact_uri TEXT)")
        c.executemany(
            "INSERT INTO experiments VALUES (?)",
            [(old,), ("file:///elsewhere/artifacts",), ("s3://bucket/mlartifacts",)],
        )
        c.executemany("INSERT INTO runs VALUES (?)", [(old + "/1/run",), (lookalike,)])
    assert relocate_artifacts(f"sqlite:///{db}") == 2
    new = (tmp_path / "mlartifacts").resolve().as_uri()
    with sqlite3.connect(db) as c:
        exps = [r for (r,) in c.execute("SELECT artifact_location FROM experiments")]
        runs = [r for (r,) in c.execute("SELECT artifact_uri FROM runs")]
    assert exps == [new, "file:///elsewhere/artifacts", "s3://bucket/mlartifacts"]
    assert runs == [new + "/1/run", lookalike]


def test_subprocesses_take_argument_lists(tmp_path: Path) -> None:
    """No shell anywhere: every subprocess call gets a list, never ``shell=True``; an
    experiment name is one argument, so shell syntax in it is inert."""
    for path in _sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            if not isinstance(node.func.value, ast.Name):
                continue
            name = ast.unparse(node.func)
            assert name not in ("os.system", "os.popen", "subprocess.getoutput"), path
            if name.startswith("subprocess."):
                assert not any(k.arg == "shell" for k in node.keywords), (path, node.lineno)
                first = node.args[0] if node.args else None
                assert not isinstance(first, ast.Constant | ast.JoinedStr), (path, node.lineno)
    marker = tmp_path / "PWNED"
    res = runner.invoke(app, ["compare", f"x; touch {marker}", "--repo", str(REPO)])
    assert res.exit_code == 2 and not marker.exists()


def test_servers_listen_on_loopback_only() -> None:
    """The project starts no server of its own; any host it names is the loopback one."""
    for path in [*_sources(), *REPO.glob("*.md"), *(REPO / "docs").glob("*.md")]:
        text = path.read_text()
        assert "0.0.0.0" not in text, path
        for host in re.findall(r"--host[\s=\"',]+([\w.:\[\]]+)", text):
            assert host in ("127.0.0.1", "localhost", "HOST"), (path, host)


def _sources() -> list[Path]:
    return [
        p
        for d in ("worldmodel", "stages", "scripts", "tests")
        for p in (REPO / d).rglob("*.py")
        if p.name != "test_security.py"
    ]


def test_loader_note_shows_the_safe_way() -> None:
    from worldmodel.tracking import LOADER_NOTE

    assert "weights_only=True" in LOADER_NOTE
    assert json.dumps(LOADER_NOTE)  # plain text
