"""Shared fixtures: tiny params, a tracking store per session, a synthetic episode store.

The tiny configuration has one source, ``presets/tiny.yaml`` (the same preset CI and the
DVC tests apply); :func:`tiny_params` shrinks its collection further for unit tests.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

from wm.presets import PRESETS_DIR
from worldmodel.config import Params, parse_params, read_yaml

REPO = Path(__file__).resolve().parent.parent


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (the benchmark scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_params(**collect) -> Params:
    """``presets/tiny.yaml`` with a seconds-long synthetic collection (4 episodes x 14
    frames at 32 px, one worker); override collect keys by keyword."""
    data = read_yaml(PRESETS_DIR / "tiny.yaml")
    data["collect"].update(
        {"episodes_per_task": 4, "frames_per_episode": 14, "val_fraction": 0.25, **collect}
    )
    return parse_params(data, "presets/tiny.yaml (tests)")


@pytest.fixture(scope="session", autouse=True)
def _tracking_store(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Send MLflow runs of the whole session to a throwaway sqlite store (artifacts beside
    it), and keep LPIPS from trying to download its backbone: tests run offline."""
    os.environ["WM_LPIPS_NO_DOWNLOAD"] = "1"
    if "WM_TEST_KEEP_TRACKING_URI" not in os.environ:
        db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{db}"
    from worldmodel.envs.dmc import configure_headless

    configure_headless()  # also loads triton before Mesa (see worldmodel/envs/dmc.py)


@pytest.fixture()
def synthetic_store(tmp_path: Path) -> Path:
    """A small synthetic episode store written by the real collector."""
    from worldmodel.recording import collect

    path = tmp_path / "episodes.h5"
    collect(tiny_params(), path)
    return path
