"""MLflow tracking: one run per stage execution.

Store: ``$MLFLOW_TRACKING_URI`` when set (e.g. a real ``mlflow server``), otherwise
``sqlite:///<project root>/mlflow.db`` (gitignored), with artifacts in ``mlartifacts/``
beside the database, addressed by absolute ``file://`` URIs as MLflow records them; when
the project folder moves, the next stage run rewrites them to the new place
(:func:`relocate_artifacts`), so nothing of a run is lost. Experiment: ``$MLFLOW_EXPERIMENT_NAME``
or ``worldmodel``. Every run is tagged with the git commit (and whether the tree was
dirty), the DVC stage (``$DVC_STAGE``, set by DVC, else the stage's own name) and the DVC
experiment (``$DVC_EXP_NAME``, set by ``dvc exp run``), so the runs of one experiment are
found with ``tags.dvc_exp_name = '<name>'``.

A run opens before its stage's work and closes with it: FINISHED, FAILED (an exception),
or KILLED (SIGTERM or Ctrl-C). A run whose process died without closing it (SIGKILL)
is marked KILLED when the stage next starts on this host, and the new run lists it in
its ``previous_attempts`` tag (the old one points back with ``superseded_by``).

Per-step metrics are buffered and sent in batches (at 1000 or every 15 s) (one ``log_metric`` costs ~10 ms against
sqlite; a batch of 1000 ~0.2 s). ``mlflow`` is imported only when a run starts.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.config import flatten
from worldmodel.utils import project_root

_BATCH = 1000
_FLUSH_SECONDS = 15.0  # so a live run shows progress in the UI


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else the project's sqlite store ``<root>/mlflow.db``.

    The root is ``$DVC_ROOT`` when DVC runs the stage: for a queued or ``--temp``
    experiment DVC points it at the real repository, not at the temporary copy under
    ``.dvc/tmp/exps/`` the experiment runs in (deleted afterwards, with anything stored
    there). Outside DVC it is the nearest folder above the working directory holding a
    ``dvc.yaml`` (:func:`worldmodel.utils.project_root`).
    """
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = Path(os.environ["DVC_ROOT"]) if os.environ.get("DVC_ROOT") else project_root()
    return f"sqlite:///{root.resolve() / 'mlflow.db'}"


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: ``mlartifacts/`` beside a sqlite store.

    MLflow's default is ``./mlruns`` under the *current* directory, which scatters
    artifacts wherever a stage happens to run. A server (``http://...``) decides itself
    (None).
    """
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return None


def git_state(cwd: str | Path | None = None) -> tuple[str, bool]:
    """``(commit, dirty)`` of the repository at ``cwd``; ``("unknown", False)`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=cwd,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        return commit, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def run_tags(stage: str) -> dict[str, str]:
    """Tags that identify a stage run: git commit, DVC stage and DVC experiment, and the
    process running it (host and pid: a run left RUNNING by a dead process is stale)."""
    import socket

    commit, dirty = git_state()
    return {
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "dvc_stage": os.environ.get("DVC_STAGE", stage),
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "dvc_exp_baseline": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "stage": stage,
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
    }


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def close_stale_runs(client: Any, exp_id: str, tags: dict[str, str]) -> list[str]:
    """Mark KILLED the runs of this stage and DVC experiment left RUNNING by a process of
    this host that no longer exists (killed with SIGKILL, or the machine went down).
    Returns their ids; the new run links to them (tag ``previous_attempts``)."""
    query = (
        f"attributes.status = 'RUNNING' and tags.stage = '{tags['stage']}' "
        f"and tags.host = '{tags['host']}'"
    )
    stale = []
    for run in client.search_runs([exp_id], filter_string=query, max_results=100):
        t = run.data.tags
        if t.get("dvc_exp_name", "") != tags["dvc_exp_name"] or _alive(t.get("pid", "")):
            continue
        client.set_terminated(run.info.run_id, status="KILLED")
        client.set_tag(run.info.run_id, "killed_reason", "its process ended without closing it")
        stale.append(run.info.run_id)
    return stale


class Tracker:
    """Logs to one active MLflow run; metrics are buffered and flushed in batches."""

    def __init__(self, client: Any, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self._pending: list[Any] = []
        self._last_flush = time.monotonic()

    def log_metrics(self, metrics: dict[str, Any], step: int = 0) -> None:
        """Queue metrics for ``step``; nested dicts become dotted keys.

        Non-numeric, None and non-finite values are skipped (MLflow cannot hold null).
        """
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for key, value in flatten(metrics).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not np.isfinite(value):
                continue
            self._pending.append(Metric(key, float(value), now, int(step)))
        if len(self._pending) >= _BATCH or time.monotonic() - self._last_flush > _FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Send queued metrics in batches of 1000."""
        self._last_flush = time.monotonic()
        while self._pending:
            batch, self._pending = self._pending[:_BATCH], self._pending[_BATCH:]
            self.client.log_batch(self.run_id, metrics=batch, synchronous=True)

    def set_tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, key, value)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a file or directory into the run's artifacts."""
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_image(self, image: np.ndarray, name: str) -> None:
        """Log a ``uint8 (H, W, 3)`` image as ``<name>`` (PNG) among the artifacts."""
        import imageio.v3 as iio

        with tempfile.TemporaryDirectory() as d:
            target = Path(d) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(target, image)
            self.client.log_artifact(self.run_id, str(target), str(Path(name).parent) or None)


LOADER_NOTE = """Trained {kind} model of worldmodel (stage {stage}).

    from worldmodel.checkpoints import load_model
    from worldmodel.models.{kind} import {cls}
    model, meta = load_model("model.pt", {cls})   # meta.params: the params it was trained with

load_model reads the file with torch.load(..., weights_only=True): tensors and plain data
only, so opening it never runs code from it, and a file carrying anything else is refused.
To look inside without this project: torch.load("model.pt", weights_only=True). Never open
a model file with weights_only switched off: a file from elsewhere could run code as you.

model.pt md5 {md5}: the hash DVC lists for it in dvc.lock / the {out} .dir manifest.
"""


def record_model(
    tracker: Tracker, model_file: Path, kind: str, stage: str, inputs: dict[str, Path]
) -> None:
    """Put a trained model on record: the weights and a loader note as artifacts under
    ``model/``, and tags linking the run to DVC's hashes (file MD5s) of the weights
    (``model_md5``) and of each input file (``input_md5.<name>``)."""
    from worldmodel.utils import file_md5

    md5 = file_md5(model_file)
    tracker.log_artifact(model_file, "model")
    note = LOADER_NOTE.format(
        kind=kind,
        cls=kind.capitalize(),
        stage=stage,
        md5=md5,
        out=model_file.parent,
    )
    tracker.client.log_text(tracker.run_id, note, "model/LOADING.txt")
    tracker.set_tag("model_md5", md5)
    tracker.set_tag("model_path", str(model_file))
    for name, path in inputs.items():
        tracker.set_tag(f"input_md5.{name}", file_md5(path))
        tracker.set_tag(f"input_path.{name}", str(path))


def runs_of_models(tracker: Tracker, model_files: dict[str, Path]) -> dict[str, str]:
    """Tag this run with the MD5 of each model it used (``<name>_md5``) and the id of the
    run that trained it (``<name>_run``, when the store holds one); returns those ids."""
    from worldmodel.utils import file_md5

    exp_id = tracker.client.get_run(tracker.run_id).info.experiment_id
    found = {}
    for name, path in model_files.items():
        md5 = file_md5(path)
        tracker.set_tag(f"{name}_md5", md5)
        runs = tracker.client.search_runs(
            [exp_id],
            filter_string=f"tags.model_md5 = '{md5}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if runs:
            found[name] = runs[0].info.run_id
            tracker.set_tag(f"{name}_run", runs[0].info.run_id)
    return found


def relocate_artifacts(uri: str) -> int:
    """After the project folder moved, point the sqlite store's artifact locations at the
    ``mlartifacts/`` that moved with it.

    MLflow records artifact locations as absolute ``file://`` URIs; a store whose
    recorded folder no longer exists but whose ``mlartifacts/`` sits beside the database
    gets the old prefix replaced by the new one (experiments and runs). The only location
    ever written is that ``mlartifacts/`` beside the database, and only rows that start
    with an old location ending in ``/mlartifacts`` are rewritten. Returns the number of
    rows updated (0 when nothing moved, or for a server).
    """
    if not uri.startswith("sqlite:///"):
        return 0
    import sqlite3

    db = Path(uri.removeprefix("sqlite:///"))
    here = db.parent / "mlartifacts"
    if not db.is_file() or not here.is_dir():
        return 0
    with sqlite3.connect(db) as c:
        try:
            rows = c.execute("SELECT artifact_location FROM experiments").fetchall()
        except sqlite3.OperationalError:  # not initialised yet
            return 0
        new = here.resolve().as_uri()
        changed = 0
        for (loc,) in rows:
            if not loc or not loc.startswith("file://") or not loc.endswith("/mlartifacts"):
                continue
            if loc == new or Path(loc.removeprefix("file://")).is_dir():
                continue
            changed += c.execute(
                "UPDATE experiments SET artifact_location = ? WHERE artifact_location = ?",
                (new, loc),
            ).rowcount
            # an exact prefix match (LIKE would read `_` and `%` in the path as wildcards)
            changed += c.execute(
                "UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                "WHERE substr(artifact_uri, 1, ?) = ?",
                (new, len(loc) + 1, len(loc), loc),
            ).rowcount
    return changed


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock beside a sqlite store (``<db>.lock``) while a process creates or
    migrates it: MLflow's schema migration is not safe to run twice at once (measured:
    two stages starting together on a new store made one fail). No-op for servers."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    lock = Path(uri.removeprefix("sqlite:///")).with_suffix(".db.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def stage_run(stage: str, params: Any, sections: tuple[str, ...] = ()) -> Iterator[Tracker]:
    """Open the MLflow run of one stage execution and log its params and tags.

    Args:
        stage: the stage name (``collect``, ``train_tokenizer``, ...).
        params: the validated :class:`worldmodel.config.Params`.
        sections: params sections the stage reads; all when empty.
    """
    import logging

    import mlflow
    from mlflow import MlflowClient

    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "worldmodel")
    with store_lock(uri):  # two stages starting at once must not both create the store
        relocate_artifacts(uri)
        client = MlflowClient()
        exp = client.get_experiment_by_name(experiment)
        exp_id = (
            exp.experiment_id
            if exp is not None
            else client.create_experiment(experiment, artifact_location=artifact_location(uri))
        )
    tags = run_tags(stage)
    stale = close_stale_runs(client, exp_id, tags)
    if stale:
        tags["previous_attempts"] = ",".join(stale)
    name = f"{tags['dvc_exp_name']}/{stage}" if tags["dvc_exp_name"] else stage
    run = client.create_run(exp_id, run_name=name, tags=tags)
    for old in stale:
        client.set_tag(old, "superseded_by", run.info.run_id)
    tracker = Tracker(client, run.info.run_id)

    def killed() -> None:  # SIGTERM: record the truth before the process leaves
        tracker.flush()
        client.set_terminated(run.info.run_id, status="KILLED")

    from worldmodel.utils import ON_TERMINATE

    ON_TERMINATE.append(killed)
    data = params.model_dump(include=set(sections) if sections else None)
    from mlflow.entities import Param

    flat = [Param(k, str(v)[:6000]) for k, v in flatten(data).items()]
    for i in range(0, len(flat), 100):
        client.log_batch(run.info.run_id, params=flat[i : i + 100], synchronous=True)
    status = "FAILED"
    try:
        yield tracker
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        ON_TERMINATE.remove(killed)
        try:
            tracker.flush()
        finally:
            client.set_terminated(run.info.run_id, status=status)
