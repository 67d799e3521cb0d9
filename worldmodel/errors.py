"""The errors a user can cause and fix, and what to do about each.

Stages turn these into one or two lines and an exit status (``stages/common.py``):

==========  ================================================  ==========================
exit        cause                                             class
==========  ================================================  ==========================
2           bad params (a key, a type, a rule across keys)    ``ParamsError`` (config.py)
3           a missing, corrupt, truncated or other-version    :class:`DataError`
            input file (store, model file, checkpoint)
4           no space left on the device while writing         ``OSError`` (ENOSPC)
1           anything else: a bug; the traceback is printed    -
==========  ================================================  ==========================
"""

from __future__ import annotations

from pathlib import Path

EXIT_PARAMS, EXIT_DATA, EXIT_DISK = 2, 3, 4

# Which DVC stage writes each tracked input, by the name of the file or folder.
PRODUCERS = {
    "episodes.h5": "collect",
    "latents.h5": "tokenize",
    "tokenizer": "train_tokenizer",
    "dynamics": "train_dynamics",
}


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


def remedy(path: str | Path) -> str:
    """What to do about a bad input file, in one line."""
    p = Path(path)
    if ".resume" in p.parts:
        return f"delete {p} to train from the first step"
    for tracked in (p, p.parent):
        stage = PRODUCERS.get(tracked.name)
        if stage is not None:
            return (
                f"restore the tracked version with `dvc checkout {tracked}`, or rebuild it "
                f"with `dvc repro {stage}`"
            )
    return "check the file, or point the command at another one"
