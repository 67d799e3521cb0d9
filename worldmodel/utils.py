"""Small shared helpers: seeds derived from names, atomic file writes (JSON, TSV),
fingerprints, package versions, project root."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def derive_seed(base_seed: int, *keys: int | str) -> int:
    """A 63-bit seed that depends only on ``base_seed`` and ``keys`` (strings via CRC32).

    Used so that, e.g., episode ``i`` of task ``t`` gets the same seed whatever worker
    records it and whatever else is recorded beside it.
    """
    words = [int(base_seed)] + [
        zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys
    ]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def tmp_name(path: Path) -> Path:
    """The temporary sibling an artifact is written to before it is renamed into place."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` only on success.

    A crash or kill leaves at most a hidden ``.<name>.tmp-<pid>`` file, never a partial
    ``path`` that a later stage could read. Works for files and directories.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    _remove(tmp)
    _ACTIVE_TMP.add(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            _remove(path)
        os.replace(tmp, path)
    finally:
        _ACTIVE_TMP.discard(tmp)
        _remove(tmp)


_ACTIVE_TMP: set[Path] = set()


def install_sigterm_cleanup() -> None:
    """On SIGTERM, delete the temporaries of unfinished atomic writes and exit with 143.

    Raising from a signal handler is not enough: the exception can land inside a
    destructor or weakref callback, where Python prints and ignores it and the work
    carries on. The handler therefore cleans up and leaves with ``os._exit``.
    """
    import signal

    def handler(signum: int, frame: object) -> None:
        for tmp in list(_ACTIVE_TMP):
            _remove(tmp)
        for callback in list(ON_TERMINATE):
            try:
                callback()
            except Exception:  # leaving matters more than one record
                pass
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


# Called (quickly, without raising) by the SIGTERM handler before the process exits, e.g.
# to mark the stage's MLflow run KILLED.
ON_TERMINATE: list = []


def remove_stale_tmp(path: str | Path) -> None:
    """Delete temporaries that killed earlier runs left beside ``path``."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        _remove(stale)


def _remove(p: Path) -> None:
    import shutil

    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink(missing_ok=True)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically, sorted and indented so diffs stay readable."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_tsv(
    path: str | Path, rows: list[dict[str, Any]], columns: list[str], digits: int | None = None
) -> None:
    """Write ``rows`` as TSV (header ``columns``), atomically, for `dvc plots`.

    Values print with ``digits`` significant digits when given (``str`` otherwise); a
    missing or None value is an empty cell.
    """

    def cell(v: Any) -> str:
        if v is None:
            return ""
        return f"{v:.{digits}g}" if digits is not None else str(v)

    lines = ["\t".join(columns)] + ["\t".join(cell(r.get(c)) for c in columns) for r in rows]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the data, for artifact attributes."""
    import sys
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in ("worldmodel", "numpy", "h5py", "torch", "dm_control", "mujoco"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def project_root(start: str | Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: cwd) holding ``dvc.yaml``.

    Inside a DVC experiment's temporary copy (``<repo>/.dvc/tmp/exps/...``) the answer is
    ``<repo>``, the repository the experiment belongs to.
    """
    here = Path(start or Path.cwd()).resolve()
    parts = here.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            here = Path(*parts[:i])
            break
    for cand in (here, *here.parents):
        if (cand / "dvc.yaml").is_file():
            return cand
    return here


def file_md5(path: str | Path) -> str:
    """MD5 of a whole file: what DVC records for a file in ``dvc.lock`` (and in a folder's
    ``.dir`` manifest for each file inside it)."""
    import hashlib

    h = hashlib.md5()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def file_fingerprint(path: str | Path, block: int = 1 << 20) -> str:
    """A cheap identity of a large file: its size and a hash of its first and last MiB."""
    import hashlib

    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(block))
        f.seek(max(0, size - block))
        h.update(f.read(block))
    return h.hexdigest()[:16]


def fingerprint(*parts: Any) -> str:
    """A short hash of JSON-serialisable parts (params sections, file fingerprints)."""
    import hashlib

    blob = json.dumps(parts, sort_keys=True, default=_json_default)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
