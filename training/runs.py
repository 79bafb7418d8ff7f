"""Training runs in the store: create, claim, heartbeat, metrics, events, cancel, liveness, launch.

A run is one row in `runs`; its files live in its run folder (config.yaml, checkpoints/,
adapter/, lineage.json, worker.log). The process that trains holds an exclusive lock on
`run.lock` in that folder for as long as it lives: a second launch of the same run fails to
take it, and a run marked running whose lock is free has died (the kernel drops the lock with
the process, so kill -9 is detected at once).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from curation.datasets.snapshots import verify_snapshot
from curation.errors import Conflict, InvalidInput, NotFound
from curation.osutil import pid_alive
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store, now
from schemas.training import ACTIVE_STATUSES, RESUMABLE_STATUSES, MetricPoint, Run, RunEvent, TrainConfig
from training.config import save_config

LOCK_FILE = "run.lock"


def runs_root(store: Store) -> Path:
    """Run folders go in `runs/` beside the database (or the working directory for a memory store)."""
    return (store.path.parent if store.path else Path.cwd()) / "runs"


def code_version() -> str:
    """The package version plus the git commit it runs from, when there is one (lineage)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        base = version("goldsmith")
    except PackageNotFoundError:
        base = "unknown"
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        return f"{base}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return base


def _from_row(row: dict[str, Any]) -> Run:
    return Run.model_validate(
        {
            **row,
            "config": json.loads(row["config"]),
            "result": json.loads(row["result"] or "{}"),
            "cancel_requested": bool(row["cancel_requested"]),
        }
    )


def get_run(store: Store, run_id: str) -> Run:
    """A run by id or unique id prefix, with its liveness refreshed."""
    rows = list(store.db.query("SELECT * FROM runs WHERE id = ? OR id LIKE ? ORDER BY created_at DESC", [run_id, f"{run_id}%"]))
    exact = [r for r in rows if r["id"] == run_id]
    rows = exact or rows
    if len(rows) != 1:
        found = "several runs match" if rows else "no run matches"
        raise NotFound(f"{found} {run_id!r}; `goldsmith runs list` shows run ids")
    return refresh(store, _from_row(rows[0]))


def list_runs(store: Store, *, snapshot_id: str | None = None) -> list[Run]:
    where, params = ("snapshot_id = ?", [snapshot_id]) if snapshot_id else (None, [])
    return [refresh(store, _from_row(r)) for r in store.db["runs"].rows_where(where, params, order_by="created_at desc")]


def create_run(
    store: Store, actor: str, snapshot_key: str, config: TrainConfig, *, name: str | None = None, root: Path | None = None
) -> Run:
    """Record a new queued run on a snapshot (leads) and write its config beside it."""
    user = acting_user(store, actor)
    require(user, "launch_training")
    snapshot = store.get_snapshot(snapshot_key)
    try:
        verify_snapshot(Path(snapshot.path))
    except Exception as error:  # a moved or edited snapshot folder must not be trained on
        raise InvalidInput(f"snapshot {snapshot.id} cannot be trained on: {error}") from error
    if snapshot.train == 0:
        raise InvalidInput(f"snapshot {snapshot.id} has no training examples")
    run_id = f"run-{uuid.uuid4().hex[:10]}"
    run_dir = (root or runs_root(store)) / run_id
    run_dir.mkdir(parents=True)
    save_config(config, run_dir / "config.yaml")
    row = {
        "id": run_id,
        "name": (name or "").strip() or f"{snapshot.name}-{config.base_model.rsplit('/', 1)[-1]}",
        "snapshot_id": snapshot.id,
        "base_model": config.base_model,
        "config": json.dumps(config.model_dump(mode="json"), sort_keys=True),
        "config_hash": config.config_hash(),
        "code_version": code_version(),
        "status": "queued",
        "created_by": user.username,
        "created_at": now(),
        "world_size": 1,
        "run_dir": str(run_dir.resolve()),
        "step": 0,
        "cancel_requested": 0,
        "result": "{}",
        "version": 1,
    }
    with store.write():
        store.db["runs"].insert(row)
        store.add_history(
            "run", run_id, "create_run", user.username, None, {"snapshot": snapshot.id, "config_hash": row["config_hash"]}
        )
        _event(store, run_id, "created", f"queued on snapshot {snapshot.name} ({snapshot.id}) by {user.username}")
    return get_run(store, run_id)


def _event(store: Store, run_id: str, kind: str, message: str) -> None:
    store.db["run_events"].insert({"run_id": run_id, "at": now(), "kind": kind, "message": message})


def log_event(store: Store, run_id: str, kind: str, message: str) -> None:
    with store.write():
        _event(store, run_id, kind, message)


def _update(store: Store, run_id: str, changes: dict[str, Any]) -> None:
    store.db.execute(
        f"UPDATE runs SET {', '.join(f'{k} = ?' for k in changes)}, version = version + 1 WHERE id = ?",
        [*changes.values(), run_id],
    )


# ---------------------------------------------------------------------------- the worker's side


@contextmanager
def run_lock(
    run_dir: Path, name: str = LOCK_FILE, busy: str = "is already running", advice: str = "cancel it or wait"
) -> Iterator[None]:
    """Hold one of the run's locks (training: run.lock; evaluation: eval.lock) for the life of the block.

    The kernel drops the lock when the process dies, kill -9 included, so a free lock means nobody
    is at work. A held lock raises Conflict saying the run `busy`, the holder's pid and `advice`.
    """
    handle = open(Path(run_dir) / name, "a+")  # noqa: SIM115 - held across the yield
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise Conflict(f"run {Path(run_dir).name} {busy} (pid {holder}); {advice}") from error
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def lock_holder(run_dir: Path, name: str = LOCK_FILE) -> str | None:
    """The pid (as written) of the process holding one of the run's locks, or None when it is free."""
    path = Path(run_dir) / name
    if not path.exists():
        return None
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            return handle.read().strip() or "?"
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def claim(store: Store, run_id: str, *, world_size: int) -> Run:
    """Mark the run running in this process (the caller holds its lock)."""
    with store.write():
        run = _from_row(store.db["runs"].get(run_id))
        if run.status == "completed":
            raise InvalidInput(f"run {run_id} already completed; start a new run to train again")
        resumed = run.status in RESUMABLE_STATUSES or run.step > 0
        _update(
            store,
            run_id,
            {
                "status": "running",
                "pid": os.getpid(),
                "world_size": world_size,
                "started_at": run.started_at.isoformat() if run.started_at else now(),
                "heartbeat_at": now(),
                "cancel_requested": 0,
                "error": None,
                "finished_at": None,
            },
        )
        _event(store, run_id, "resumed" if resumed else "started", f"pid {os.getpid()}, {world_size} process(es)")
    return _from_row(store.db["runs"].get(run_id))


def heartbeat(store: Store, run_id: str, *, step: int | None = None, total_steps: int | None = None) -> bool:
    """Record that the worker lives; returns whether a cancel was requested."""
    changes: dict[str, Any] = {"heartbeat_at": now()}
    if step is not None:
        changes["step"] = step
    if total_steps is not None:
        changes["total_steps"] = total_steps
    with store.write():
        store.db["runs"].update(run_id, changes)
        return bool(store.db["runs"].get(run_id)["cancel_requested"])


def log_metrics(store: Store, points: list[dict[str, Any]]) -> None:
    with store.write():
        store.db["run_metrics"].insert_all({**p, "at": now()} for p in points)


def finish(
    store: Store,
    run_id: str,
    status: str,
    *,
    error: str | None = None,
    result: dict[str, Any] | None = None,
    step: int | None = None,
    total_steps: int | None = None,
) -> None:
    with store.write():
        changes: dict[str, Any] = {"status": status, "finished_at": now(), "error": error}
        if step is not None:  # where training ended, not the last heartbeat before it
            changes["step"] = step
        if total_steps is not None:
            changes["total_steps"] = total_steps
        if result is not None:
            changes["result"] = json.dumps(result, sort_keys=True)
        _update(store, run_id, changes)
        _event(store, run_id, status, error or status)


# ---------------------------------------------------------------------------- the watcher's side


def refresh(store: Store, run: Run) -> Run:
    """Mark a run whose process is gone as died (its lock is free, or its launcher never started it)."""
    if run.status not in ACTIVE_STATUSES or run.pid is None:
        return run
    if run.status == "running" and lock_holder(Path(run.run_dir)) is not None:
        return run
    if run.status == "queued" and pid_alive(run.pid):
        return run
    with store.write():
        current = _from_row(store.db["runs"].get(run.id))
        if current.status not in ACTIVE_STATUSES or current.pid is None:
            return current
        if current.status == "running" and lock_holder(Path(run.run_dir)) is not None:
            return current
        if current.status == "queued" and pid_alive(current.pid):
            return current
        message = f"the worker (pid {run.pid}) is gone; resume with `goldsmith train --resume {run.id}`"
        _update(store, run.id, {"status": "died", "finished_at": now(), "error": message})
        _event(store, run.id, "died", message)
    return _from_row(store.db["runs"].get(run.id))


def cancel_run(store: Store, actor: str, run_id: str) -> Run:
    """Ask a run to stop (leads): the worker saves a checkpoint and ends as cancelled."""
    require(acting_user(store, actor), "launch_training")
    run = get_run(store, run_id)
    if run.status not in ACTIVE_STATUSES:
        raise InvalidInput(f"run {run.id} is {run.status}, not running; nothing to cancel")
    if run.status == "queued" and run.pid is None:  # created, never launched: no worker will read the request
        with store.write():
            _update(store, run.id, {"status": "cancelled", "cancel_requested": 1, "finished_at": now()})
            _event(store, run.id, "cancelled", f"by {actor}, before it started")
            store.add_history("run", run.id, "cancel_run", actor, {"status": run.status}, {"status": "cancelled"})
        return get_run(store, run.id)
    with store.write():
        _update(store, run.id, {"cancel_requested": 1})
        _event(store, run.id, "cancel_requested", f"by {actor}")
        store.add_history("run", run.id, "cancel_run", actor, {"status": run.status}, {"cancel_requested": True})
    if run.pid and pid_alive(run.pid):
        with suppress(ProcessLookupError):
            os.kill(run.pid, signal.SIGTERM)
    return get_run(store, run.id)


def metrics(store: Store, run_id: str, *, kind: str | None = None, after_step: int = -1) -> list[MetricPoint]:
    where, params = "run_id = ? AND step > ?", [run_id, after_step]
    if kind:
        where += " AND kind = ?"
        params.append(kind)
    return [MetricPoint.model_validate(r) for r in store.db["run_metrics"].rows_where(where, params, order_by="step, rowid")]


def events(store: Store, run_id: str) -> list[RunEvent]:
    return [RunEvent.model_validate(r) for r in store.db["run_events"].rows_where("run_id = ?", [run_id], order_by="rowid")]


def launch(store: Store, run: Run, *, processes: int = 1) -> Run:
    """Start the run's worker as a separate process (the app never trains inside its own script)."""
    if store.path is None:
        raise InvalidInput("a run launched in the background needs a database file, not a memory store")
    if run.status not in ("queued", *RESUMABLE_STATUSES):
        raise InvalidInput(f"run {run.id} is {run.status}; only queued or stopped runs can be launched")
    command = worker_command(str(store.path), run.id, processes=processes)
    log = open(Path(run.run_dir) / "worker.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    with store.write():
        _update(store, run.id, {"status": "queued", "pid": process.pid, "cancel_requested": 0})
        _event(store, run.id, "launched", f"pid {process.pid}: {' '.join(command[1:])}")
    return get_run(store, run.id)


def worker_command(db: str, run_id: str, *, processes: int = 1) -> list[str]:
    """The worker's command line: one process, or torchrun for several (DDP; gloo on CPU)."""
    if processes < 1:
        raise InvalidInput(f"processes must be at least 1, got {processes}")
    module = ["-m", "training.worker", run_id, "--db", db]
    if processes == 1:
        return [sys.executable, *module]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *module]
