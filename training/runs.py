"""Training runs in the store: create, launch and resume, claim, heartbeat, metrics, events, cancel, liveness.

A run is one row in `runs`; its files live in its run folder (config.yaml, checkpoints/,
adapter/, lineage.json, worker.log). A run trains as a train job (training.jobs): `launch`,
`resume_run` and `start_run` check who asks and the run's status, then start the job, whose
worker trains the run (training.worker). The process that trains holds an exclusive lock on
`run.lock` in that folder for as long as it lives: a second worker on the same run fails to
take it, and a run marked running whose lock is free has died (the kernel drops the lock with
the process, so kill -9 is detected at once).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Any, TextIO

from curation.datasets.snapshots import verify_snapshot
from curation.errors import InvalidInput, NotFound
from curation.osutil import pid_alive
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store, now
from schemas.training import ACTIVE_STATUSES, RESUMABLE_STATUSES, MetricPoint, Run, RunEvent, TrainConfig
from training.config import save_config
from training.jobs import file_lock, file_lock_holder, start_job

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
    """Runs, newest first (on one snapshot when given), with their liveness refreshed."""
    where, params = ("snapshot_id = ?", [snapshot_id]) if snapshot_id else (None, [])
    return [refresh(store, _from_row(r)) for r in store.db.table("runs").rows_where(where, params, order_by="created_at desc")]


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
        store.db.table("runs").insert(row)
        store.add_history(
            "run", run_id, "create_run", user.username, None, {"snapshot": snapshot.id, "config_hash": row["config_hash"]}
        )
        _event(store, run_id, "created", f"queued on snapshot {snapshot.name} ({snapshot.id}) by {user.username}")
    return get_run(store, run_id)


def _event(store: Store, run_id: str, kind: str, message: str) -> None:
    store.db.table("run_events").insert({"run_id": run_id, "at": now(), "kind": kind, "message": message})


def log_event(store: Store, run_id: str, kind: str, message: str) -> None:
    """Add an event to the run's timeline (its own write)."""
    with store.write():
        _event(store, run_id, kind, message)


def _update(store: Store, run_id: str, changes: dict[str, Any]) -> None:
    store.db.execute(
        f"UPDATE runs SET {', '.join(f'{k} = ?' for k in changes)}, version = version + 1 WHERE id = ?",
        [*changes.values(), run_id],
    )


# ---------------------------------------------------------------------------- the worker's side


def run_lock(
    run_dir: Path, name: str = LOCK_FILE, busy: str = "is already running", advice: str = "cancel it or wait"
) -> AbstractContextManager[None]:
    """Hold one of the run's locks (training: run.lock; evaluation: eval.lock) for the life of the block.

    The kernel drops the lock when the process dies, kill -9 included, so a free lock means nobody
    is at work. A held lock raises Conflict saying the run `busy`, the holder's pid and `advice`.
    """
    return file_lock(Path(run_dir), name, owner=f"run {Path(run_dir).name}", busy=busy, advice=advice)


def lock_holder(run_dir: Path, name: str = LOCK_FILE) -> str | None:
    """The pid (as written) of the process holding one of the run's locks, or None when it is free."""
    return file_lock_holder(Path(run_dir), name)


def claim(store: Store, run_id: str, *, world_size: int) -> Run:
    """Mark the run running in this process (the caller holds its lock)."""
    with store.write():
        run = _from_row(store.db.table("runs").get(run_id))
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
    return _from_row(store.db.table("runs").get(run_id))


def heartbeat(store: Store, run_id: str, *, step: int | None = None, total_steps: int | None = None) -> bool:
    """Record that the worker lives; returns whether a cancel was requested."""
    changes: dict[str, Any] = {"heartbeat_at": now()}
    if step is not None:
        changes["step"] = step
    if total_steps is not None:
        changes["total_steps"] = total_steps
    with store.write():
        store.db.table("runs").update(run_id, changes)
        return bool(store.db.table("runs").get(run_id)["cancel_requested"])


def log_metrics(store: Store, points: list[dict[str, Any]]) -> None:
    """Write logged metric points (run_id, step, kind and figures), stamped now."""
    with store.write():
        store.db.table("run_metrics").insert_all({**p, "at": now()} for p in points)


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
    """Record how the run ended (completed, failed, cancelled, interrupted), with its error or result, and an event."""
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
        current = _from_row(store.db.table("runs").get(run.id))
        if current.status not in ACTIVE_STATUSES or current.pid is None:
            return current
        if current.status == "running" and lock_holder(Path(run.run_dir)) is not None:
            return current
        if current.status == "queued" and pid_alive(current.pid):
            return current
        message = f"the worker (pid {run.pid}) is gone; resume with `goldsmith runs resume {run.id}`"
        _update(store, run.id, {"status": "died", "finished_at": now(), "error": message})
        _event(store, run.id, "died", message)
    return _from_row(store.db.table("runs").get(run.id))


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
    """The run's metric points after `after_step`, of one kind (train, eval) when given, in step order."""
    where, params = "run_id = ? AND step > ?", [run_id, after_step]
    if kind:
        where += " AND kind = ?"
        params.append(kind)
    return [
        MetricPoint.model_validate(r) for r in store.db.table("run_metrics").rows_where(where, params, order_by="step, rowid")
    ]


def events(store: Store, run_id: str) -> list[RunEvent]:
    """The run's events, oldest first."""
    return [RunEvent.model_validate(r) for r in store.db.table("run_events").rows_where("run_id = ?", [run_id], order_by="rowid")]


def launch(store: Store, actor: str, run_id: str, *, processes: int = 1, wait: bool = False, output: TextIO | None = None) -> Run:
    """Train a queued run, or resume a stopped one, as a job in its own process (leads).

    Args:
        store: the store (a database file: the worker opens it too).
        actor: who launches it (launch_training).
        run_id: the run's id or unique id prefix.
        processes: 1 trains in the job's own process; more run torchrun (DDP or FSDP) under it.
        wait: stay attached until the run ends (Ctrl+C stops it with a checkpoint); else return at once.
        output: with `wait`, where the worker's progress goes (e.g. sys.stderr).

    Returns:
        The run as it stands: queued with its worker's pid (detached), or as it ended (`wait`).

    Raises:
        PermissionDenied: the actor is not a lead.
        InvalidInput: the run is running or completed, or the store is in memory.
        Conflict: a job already trains this run.
    """
    require(acting_user(store, actor), "launch_training")
    run = get_run(store, run_id)
    if run.status not in ("queued", *RESUMABLE_STATUSES):
        raise InvalidInput(
            f"run {run.id} is {run.status}; only queued or stopped ({', '.join(RESUMABLE_STATUSES)}) runs can be launched"
        )
    start_job(
        store,
        actor,
        "train",
        {"run_id": run.id, "processes": processes},
        wait=wait,
        output=output,
        log_path=Path(run.run_dir) / "worker.log",  # the run's files stay together in its folder
        on_spawn=lambda job_id, pid: mark_launched(store, run.id, pid, job_id),
    )
    return get_run(store, run.id)


def resume_run(
    store: Store, actor: str, run_id: str, *, processes: int = 1, wait: bool = False, output: TextIO | None = None
) -> Run:
    """Resume an interrupted, died, failed or cancelled run from its last complete checkpoint (leads).

    Takes the same arguments as `launch` and returns what it returns.

    Raises:
        PermissionDenied: the actor is not a lead.
        InvalidInput: the run is not resumable (queued, running or completed).
        Conflict: a job already trains this run.
    """
    require(acting_user(store, actor), "launch_training")
    run = get_run(store, run_id)
    if run.status not in RESUMABLE_STATUSES:
        hint = "; start a new run to train again" if run.status == "completed" else ""
        raise InvalidInput(f"run {run.id} is {run.status}; only {', '.join(RESUMABLE_STATUSES)} runs can be resumed{hint}")
    return launch(store, actor, run.id, processes=processes, wait=wait, output=output)


def start_run(
    store: Store,
    actor: str,
    snapshot_key: str,
    config: TrainConfig,
    *,
    name: str | None = None,
    processes: int = 1,
    wait: bool = False,
    output: TextIO | None = None,
) -> Run:
    """Record a new run on a snapshot and launch it (leads): `create_run`, then `launch`.

    A run whose launch fails stays queued without a worker; `launch` (the Training page's Start
    button) starts it later.
    """
    run = create_run(store, actor, snapshot_key, config, name=name)
    return launch(store, actor, run.id, processes=processes, wait=wait, output=output)


def mark_launched(store: Store, run_id: str, pid: int, job_id: str) -> None:
    """Record that job `job_id` started a worker process `pid` for the run (the job service calls this).

    The run is queued again (a stopped run waits for its worker to claim it) unless the worker
    already claimed it meanwhile.
    """
    with store.write():
        store.db.execute(
            "UPDATE runs SET status = 'queued', pid = ?, cancel_requested = 0, version = version + 1 "
            "WHERE id = ? AND status != 'running'",
            [pid, run_id],
        )
        _event(store, run_id, "launched", f"job {job_id}, pid {pid}")


def worker_command(db: str, run_id: str, *, processes: int = 1) -> list[str]:
    """The worker's command line: one process, or torchrun for several (DDP; gloo on CPU)."""
    if processes < 1:
        raise InvalidInput(f"processes must be at least 1, got {processes}")
    module = ["-m", "training.worker", run_id, "--db", db]
    if processes == 1:
        return [sys.executable, *module]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *module]
