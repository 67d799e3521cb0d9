"""Integrity checks of the project's files (``wm verify``): read everything, trust nothing.

- HDF5 stores: schema, shapes and index on open, then every chunk read back, which
  checks each one against its Fletcher-32 checksum (all datasets are written with one);
- model files: readable, the weights' SHA-256 matches the one recorded at save, the
  config and recorded params fit this code;
- resume checkpoints: readable.
"""

from __future__ import annotations

from pathlib import Path

from worldmodel.errors import DataError

DEFAULT_TARGETS = (
    "data/episodes.h5",
    "data/latents.h5",
    "data/tokenizer/model.pt",
    "data/dynamics/model.pt",
)


def verify(path: str | Path) -> str:
    """Check one file completely; return what it is, or raise :class:`DataError`."""
    import h5py

    from worldmodel.errors import MissingInput

    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise MissingInput(path, "file not found")
    if path.suffix == ".h5":
        from worldmodel.data.episodes import SCHEMA as EPISODES
        from worldmodel.data.episodes import EpisodeStore
        from worldmodel.data.latents import LatentStore
        from worldmodel.errors import StoreError

        try:
            with h5py.File(path, "r") as f:
                schema = f.attrs.get("schema")
        except OSError as exc:
            raise StoreError(
                path, f"not a readable HDF5 file, truncated or corrupt ({exc})"
            ) from None
        if schema == EPISODES:
            with EpisodeStore(path) as store:
                for e in range(store.num_episodes):
                    store.read(e)  # every chunk against its checksum
                return f"episode store, {store.num_episodes} episodes, {store.num_frames} frames"
        store = LatentStore(path)  # reads all latents; refuses any other schema
        return f"latent store, {len(store.starts)} episodes, {len(store.latents)} frames"
    return _verify_torch_file(path)


def _verify_torch_file(path: Path) -> str:
    from worldmodel.checkpoints import load_model, read_torch_file
    from worldmodel.errors import CheckpointMismatch
    from worldmodel.models.dynamics import Dynamics
    from worldmodel.models.tokenizer import Tokenizer

    blob = read_torch_file(path)
    kinds = {cls.KIND: cls for cls in (Tokenizer, Dynamics)}
    if isinstance(blob, dict) and blob.get("kind") in kinds:
        model, meta = load_model(path, kinds[blob["kind"]])
        n = sum(p.numel() for p in model.parameters())
        return f"{blob['kind']} model, {n / 1e6:.2f}M parameters, trained by {meta.stage}"
    if isinstance(blob, dict) and "checkpoint_version" in blob:
        return f"resume checkpoint at step {blob.get('step')}"
    raise CheckpointMismatch(path, "neither a model file nor a resume checkpoint")


def verify_all(paths: list[str | Path]) -> list[tuple[Path, bool, str]]:
    """``(path, ok, what or problem)`` for each path; a missing default target is skipped
    when no paths were given (see ``wm verify``)."""
    out = []
    for p in paths:
        try:
            out.append((Path(p), True, verify(p)))
        except DataError as exc:
            out.append((Path(p), False, str(exc).removeprefix(f"{exc.path}: ")))
    return out
