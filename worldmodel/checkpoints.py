"""Model files and resumable training checkpoints: how weights are written and read back.

Two kinds of file:

- the **model file** a training stage writes as its DVC output (``data/<model>/model.pt``):
  the final weights with the architecture (``model.cfg``, a dataclass) and a
  :class:`ModelMeta` (stage, params it was trained with, fingerprints of its inputs), so
  it loads without guessing (:func:`save_model`, :func:`load_model`);
- the **resume checkpoint** (``data/.resume/<stage>.pt``) the trainer writes every few
  steps: model, optimiser, RNG and curves, enough to continue exactly
  (:func:`save_checkpoint`; read by :meth:`worldmodel.training.trainer.Trainer.try_resume`).

Both are written to a temporary name and renamed when complete, and both are refused
with a message naming the file when they do not fit this code (:class:`CheckpointMismatch`).

**Safety.** Both hold only tensors and plain data (dicts, lists, tuples, strings, numbers,
booleans, ``None``) and are read with ``torch.load(..., weights_only=True)``
(:func:`read_torch_file`), so opening a file never runs code from it: a file that needs
any other Python object to unpickle, such as one carrying a ``__reduce__`` payload, is
refused as :class:`UnsafeFile` before anything in it is built. No type is on an
allow-list; RNG states and hard examples are stored as tensors.
A model class loads through :func:`load_model` when it declares ``KIND`` (a name stored
in the file) and ``Config`` (its config dataclass).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from worldmodel.config import Params, ParamsError, parse_params
from worldmodel.errors import CheckpointMismatch, MissingInput, UnsafeFile
from worldmodel.utils import atomic_path

MODEL_FILE = "model.pt"  # name of the weights file inside a training stage's output folder
MODEL_FILE_VERSION = 1
CHECKPOINT_VERSION = 2  # 2: RNG state and hard examples as tensors (weights-only loadable)


@dataclass(frozen=True)
class ModelMeta:
    """What a model file records about how its weights were made.

    Attributes:
        stage: the DVC stage that trained it (``train_tokenizer``, ``train_dynamics``).
        sections: the params sections the stage read (e.g. ``{"base": ..., "tokenizer": ...}``).
        inputs: fingerprints of the files it was trained on (``{"episodes": "ab12..."}``).
        fingerprint: hash of sections, inputs and process count; a resume checkpoint whose
            fingerprint differs belongs to another run and is not resumed from.
    """

    stage: str
    sections: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""

    @property
    def params(self) -> Params:
        """The recorded sections as typed params (sections the stage did not read: defaults)."""
        return parse_params(self.sections, source=f"params recorded by {self.stage}")

    def to_dict(self) -> dict[str, Any]:
        """The plain dict stored in files (inputs at the top level, as earlier files have it)."""
        return {
            "stage": self.stage,
            "params": self.sections,
            **self.inputs,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMeta:
        rest = {k: v for k, v in data.items() if k not in ("stage", "params", "fingerprint")}
        return cls(data.get("stage", ""), data.get("params", {}), rest, data.get("fingerprint", ""))


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temporary name, then rename: the old file stays until the new one is whole."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load weights, refusing with a list of missing/unexpected/mis-shaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        raise CheckpointMismatch(
            source,
            f"does not fit this model: missing keys {missing[:8]}, unexpected keys "
            f"{unexpected[:8]}, shape mismatches {shapes[:8]}",
        )
    model.load_state_dict(state)


def read_torch_file(path: Path, device: str | torch.device = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain data, never code.

    Raises:
        UnsafeFile: the file needs other Python objects to load (it could run code).
        CheckpointMismatch: the file is truncated, corrupt or not a torch file.
    """
    import pickle

    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower():
            found = re.search(r"GLOBAL (\S+)", str(exc))
            what = f" ({found.group(1)})" if found else ""
            raise UnsafeFile(
                path,
                f"unsafe: it holds a Python object{what} beyond tensors and plain data, which "
                "could run code when opened; refused without loading it",
            ) from None
        raise CheckpointMismatch(path, _unreadable(exc)) from None
    except Exception as exc:  # zip, EOF, decode errors: all mean "unreadable"
        raise CheckpointMismatch(path, _unreadable(exc)) from None


def _unreadable(exc: Exception) -> str:
    return (
        f"not a readable torch file, truncated or corrupt ({type(exc).__name__}: "
        f"{str(exc).split('. ')[0]})"
    )


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, shapes, dtypes and bytes, in order."""
    import hashlib

    h = hashlib.sha256()
    for name, t in state.items():
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_model(path: Path, model: nn.Module, meta: ModelMeta) -> None:
    """Write final weights with their config (``model.cfg``) and metadata.

    Write inside an :func:`~worldmodel.utils.atomic_path` (the stages write the whole
    output folder that way), so a kill never leaves a partial file under the final name.
    """
    state = model.state_dict()
    torch.save(
        {
            "kind": model.KIND,
            "file_version": MODEL_FILE_VERSION,
            "config": asdict(model.cfg),
            "state": state,
            "state_sha256": state_digest(state),
            "meta": meta.to_dict(),
        },
        path,
    )


def load_model(
    path: str | Path, model_cls: type, device: str | torch.device = "cpu"
) -> tuple[Any, ModelMeta]:
    """Rebuild a model saved by :func:`save_model`; refuse clearly on any mismatch.

    Args:
        path: the model file.
        model_cls: e.g. :class:`~worldmodel.models.tokenizer.Tokenizer`; its ``KIND`` must
            match the file's and its ``Config`` must accept the stored config.

    Returns:
        ``(model in eval mode on device, its ModelMeta)``.
    """
    path, kind = Path(path), model_cls.KIND
    if not path.is_file():
        raise MissingInput(path, f"no {kind} model here")
    blob = read_torch_file(path, device)
    if not isinstance(blob, dict) or blob.get("kind") != kind:
        raise CheckpointMismatch(path, f"not a {kind} file")
    if blob.get("file_version") != MODEL_FILE_VERSION:
        raise CheckpointMismatch(
            path,
            f"file version {blob.get('file_version')}, this code reads "
            f"{MODEL_FILE_VERSION}; retrain",
        )
    try:
        cfg = model_cls.Config(**blob["config"])
    except TypeError as exc:
        raise CheckpointMismatch(path, f"config does not match this code: {exc}") from None
    if blob.get("state_sha256") != state_digest(blob["state"]):
        raise CheckpointMismatch(
            path, "the weights do not match their recorded checksum: the file is corrupt"
        )
    meta = ModelMeta.from_dict(blob["meta"])
    try:
        meta.params  # noqa: B018  (the recorded params must still be valid params)
    except ParamsError as exc:
        raise CheckpointMismatch(path, f"recorded params do not fit this code: {exc}") from None
    model = model_cls(cfg).to(device)
    load_model_state(model, blob["state"], str(path))
    return model.eval(), meta
