"""The errors a user can cause and fix: typed, each naming the file and the problem.

The library raises them; the command line (``stages/common.py``) turns each into one or
two lines, a remedy and an exit status.
"""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """An input file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {message}")


class StoreError(DataError, ValueError):
    """An HDF5 store that is missing, truncated, corrupt or does not match its schema."""


class CheckpointMismatch(DataError, RuntimeError):
    """A model file or checkpoint that is unreadable or does not belong to this code."""


class UnsafeFile(CheckpointMismatch):
    """A torch file that would need arbitrary Python objects to load (it could run code);
    refused without unpickling it (see :func:`worldmodel.checkpoints.read_torch_file`)."""


class MissingInput(DataError, FileNotFoundError):
    """An input file that does not exist (its stage has not run, or it was deleted)."""
