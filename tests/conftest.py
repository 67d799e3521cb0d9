"""Shared fixtures: tiny params, a tracking store per session, a synthetic episode store."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

from worldmodel.config import Params, parse_params

REPO = Path(__file__).resolve().parent.parent


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (the benchmark scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_params(**collect) -> Params:
    """Params for a seconds-long synthetic collection; override collect keys by keyword."""
    c = {
        "tasks": ["synthetic-shapes"],
        "episodes_per_task": 4,
        "frames_per_episode": 12,
        "action_repeat": 1,
        "image_size": 32,
        "workers": 1,
        "val_fraction": 0.25,
    }
    c.update(collect)
    return parse_params({"base": {"seed": 0}, "collect": c})


@pytest.fixture(scope="session", autouse=True)
def _tracking_store(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Send MLflow runs of the whole session to a throwaway sqlite store."""
    if "WM_TEST_KEEP_TRACKING_URI" not in os.environ:
        db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{db}"
    from worldmodel.envs.dmc import configure_headless

    configure_headless()  # also loads triton before Mesa (see worldmodel/envs/dmc.py)


@pytest.fixture()
def synthetic_store(tmp_path: Path) -> Path:
    """A small synthetic episode store written by the real collector."""
    from worldmodel.collect import collect

    path = tmp_path / "episodes.h5"
    collect(tiny_params(), path)
    return path
