"""The job service: long work in its own process, started, polled and cancelled through the store.

Five kinds of work run as jobs: `train` (a run, in one process or under torchrun), `evaluate` (a
completed run's evaluation), `draft_gap` (a gap topic's batch of model drafts), `estimate` (a
run's cost worked out before it starts, from a measured probe) and `compare_models` (candidate
base models scored on a snapshot's eval split). `start_job`
checks who asks and what, records a queued row in `jobs` and starts the worker
`python -m training.worker --job JOB_ID --db DB`, detached (its output in a log file) or attached
(its output streamed to the caller, who waits). The worker holds `jobs/JOB_ID.lock` beside the
database for as long as it lives (`execute` below: lock, claim, heartbeat, result or error). The
kernel drops the lock when the process dies, kill -9 included, so a running job whose lock is
free has died; every read (`get_job`, `list_jobs`, `latest_job`) says so.

This module knows no kind's work: training.runs, training.evaluate and training.drafts start
their jobs through it, and training.worker does the work (so nothing here imports them). A
train job is cancelled the way its run is: the worker relays the cancel to
training.runs.cancel_run (the trainer saves a checkpoint and the run ends cancelled). An
evaluation or a drafting batch stops at SIGTERM; a batch keeps the drafts it already saved.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any, TextIO

from pydantic import ValidationError

from curation.errors import Conflict, GoldsmithError, InvalidInput, NotFound, invalid
from curation.osutil import pid_alive
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store, now
from schemas import one_line
from schemas.jobs import (
    ACTIVE_JOB_STATUSES,
    JOB_KINDS,
    CompareModelsJobParams,
    DraftGapJobParams,
    EstimateJobParams,
    EvaluateJobParams,
    Job,
    JobParams,
    JobStatus,
    TrainJobParams,
)

ROOT = Path(__file__).resolve().parent.parent  # where `python -m training.worker` finds the packages
JOBS_FOLDER = "jobs"
HEARTBEAT_S = 2.0
SPAWN_GRACE_S = 60.0  # a queued job still without a pid after this long lost its starter before the spawn
PERMISSIONS: dict[str, str] = {
    "train": "launch_training",
    "evaluate": "launch_training",
    "draft_gap": "manage_coverage",
    "estimate": "launch_training",
    "compare_models": "launch_training",
}
PARAMS: dict[str, type[JobParams]] = {
    "train": TrainJobParams,
    "evaluate": EvaluateJobParams,
    "draft_gap": DraftGapJobParams,
    "estimate": EstimateJobParams,
    "compare_models": CompareModelsJobParams,
}


# ---------------------------------------------------------------------------- locks


@contextmanager
def file_lock(folder: Path, name: str, *, owner: str, busy: str, advice: str) -> Iterator[None]:
    """Hold an exclusive lock on the file `folder/name` for the life of the block (it holds the holder's pid).

    The kernel drops the lock when the process dies, kill -9 included, so a free lock means nobody
    is at work. A held lock raises Conflict: "`owner` `busy` (pid N); `advice`".
    """
    handle = open(Path(folder) / name, "a+")  # noqa: SIM115 - held across the yield
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise Conflict(f"{owner} {busy} (pid {holder}); {advice}") from error
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def file_lock_holder(folder: Path, name: str) -> str | None:
    """The pid (as written) of the process holding the lock file `folder/name`, or None when it is free."""
    path = Path(folder) / name
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


# ---------------------------------------------------------------------------- rows


def jobs_dir(store: Store) -> Path:
    """Job lock files and logs go in `jobs/` beside the database."""
    if store.path is None:
        raise InvalidInput("a job runs in its own process and needs a database file, not a memory store")
    return store.path.resolve().parent / JOBS_FOLDER


def _lock_name(job_id: str) -> str:
    return f"{job_id}.lock"


def _from_row(row: dict[str, Any]) -> Job:
    return Job.model_validate(
        {
            **row,
            "params": json.loads(row["params"] or "{}"),
            "result": json.loads(row["result"]) if row["result"] else None,
            "cancel_requested": bool(row["cancel_requested"]),
        }
    )


def _load(store: Store, job_id: str) -> Job:
    return _from_row(store.db.table("jobs").get(job_id))


def _update(store: Store, job_id: str, changes: dict[str, Any]) -> None:
    store.db.execute(
        f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in changes)}, version = version + 1 WHERE id = ?",
        [*changes.values(), job_id],
    )


# ---------------------------------------------------------------------------- reading: poll and result


def get_job(store: Store, job_id: str) -> Job:
    """A job by id or unique id prefix, with its liveness refreshed.

    Raises:
        NotFound: no job, or several, match.
    """
    rows = list(store.db.query("SELECT * FROM jobs WHERE id = ? OR id LIKE ? ORDER BY created_at DESC", [job_id, f"{job_id}%"]))
    rows = [r for r in rows if r["id"] == job_id] or rows
    if len(rows) != 1:
        raise NotFound(f"{'several jobs match' if rows else 'no job matches'} {job_id!r}")
    return refresh_job(store, _from_row(rows[0]))


def list_jobs(store: Store, *, kind: str | None = None, target: str | int | None = None, active: bool = False) -> list[Job]:
    """Jobs, newest first, with their liveness refreshed: of one kind, on one target, only the active ones, when asked."""
    where: list[str] = []
    params: list[Any] = []
    if active:
        where.append(f"status IN ({', '.join('?' * len(ACTIVE_JOB_STATUSES))})")
        params.extend(ACTIVE_JOB_STATUSES)
    if kind is not None:
        where.append("kind = ?")
        params.append(kind)
    if target is not None:
        where.append("target = ?")
        params.append(str(target))
    rows = store.db.table("jobs").rows_where(" AND ".join(where) or None, params, order_by="created_at DESC")
    jobs = [refresh_job(store, _from_row(r)) for r in rows]
    return [job for job in jobs if job.active] if active else jobs


def latest_job(store: Store, kind: str, target: str | int) -> Job | None:
    """The newest job of `kind` on `target` (a run id, a gap topic id), refreshed; None when there is none."""
    rows = list(
        store.db.table("jobs").rows_where("kind = ? AND target = ?", [kind, str(target)], order_by="created_at DESC", limit=1)
    )
    return refresh_job(store, _from_row(rows[0])) if rows else None


def refresh_job(store: Store, job: Job) -> Job:
    """Mark an active job whose process is gone as died (or cancelled, when a cancel was asked for)."""
    if not _gone(store, job):
        return job
    with store.write():
        current = _load(store, job.id)
        if not _gone(store, current):
            return current
        if current.cancel_requested:
            status: JobStatus = "cancelled"
            message = f"cancelled: its worker (pid {current.pid}) stopped before it could report"
        else:
            status, message = "died", _died_message(current)
        _update(store, job.id, {"status": status, "finished_at": now(), "error": message})
    return _load(store, job.id)


def _gone(store: Store, job: Job) -> bool:
    """Whether an active job has lost its process: running with its lock free, or queued with its pid gone."""
    if not job.active:
        return False
    if job.status == "running":
        return file_lock_holder(jobs_dir(store), _lock_name(job.id)) is None
    if job.pid is None:  # recorded, its process not started yet: give the starter a moment
        return (datetime.now(UTC) - job.created_at).total_seconds() > SPAWN_GRACE_S
    return not pid_alive(job.pid)


def _died_message(job: Job) -> str:
    gone = f"its worker (pid {job.pid}) is gone" if job.pid else "its worker never started"
    advice = {
        "train": f"resume the run with `goldsmith runs resume {job.target}` (or Resume on the Training page)",
        "evaluate": f"evaluate the run again (Training page, or `goldsmith eval {job.target}`)",
        "draft_gap": f"the drafts it saved are kept; draft the rest again (Dashboard, or `goldsmith draft-gap {job.target}`)",
        "estimate": "estimate again (Training page, or `goldsmith train SNAPSHOT --dry-run`)",
        "compare_models": f"compare again (`goldsmith models compare {job.target} --base-model ...`)",
    }[job.kind]
    return f"{gone}; {advice}" + (f"; its log: {job.log_path}" if job.log_path else "")


# ---------------------------------------------------------------------------- starting and cancelling


def start_job(
    store: Store,
    actor: str,
    kind: str,
    params: dict[str, Any],
    *,
    wait: bool = False,
    output: TextIO | None = None,
    log_path: Path | None = None,
    on_spawn: Callable[[str, int], None] | None = None,
) -> Job:
    """Record a job and start its worker process.

    The kind's own service (training.runs.launch, training.evaluate.start_evaluation,
    training.drafts.start_gap_drafting) checks the target first and calls this.

    Args:
        store: the store (a database file: the worker opens it too).
        actor: who starts it; train and evaluate need launch_training, draft_gap manage_coverage.
        kind: train, evaluate or draft_gap.
        params: the kind's parameters (schemas.jobs: TrainJobParams, EvaluateJobParams, DraftGapJobParams).
        wait: stay attached and return once the worker has ended (Ctrl+C stops the work); else return at once.
        output: with `wait`, a text stream that receives the worker's output (its log gets a copy).
        log_path: where the worker's output goes (default: jobs/JOB_ID.log beside the database).
        on_spawn: called with the job's id and the worker's pid once it is started (before any wait).

    Returns:
        The job: queued with its worker's pid, or as it ended (`wait`).

    Raises:
        PermissionDenied: the actor may not do this kind of work.
        InvalidInput: an unknown kind, bad params, or a memory store.
        Conflict: a job of this kind is already active on the same target.
    """
    if kind not in JOB_KINDS:
        raise InvalidInput(f"job kind {kind!r} is not one of: {', '.join(JOB_KINDS)}")
    user = acting_user(store, actor)
    require(user, PERMISSIONS[kind])
    try:
        checked = PARAMS[kind].model_validate(params)
    except ValidationError as error:
        raise invalid(error, f"{kind} job") from None
    folder = jobs_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    job = _record(store, user.username, kind, checked, log_path, folder)
    process = _spawn(store, job, attached=wait, output=output)
    if on_spawn is not None:
        on_spawn(job.id, process.pid)
    if wait:
        _follow(process, output, Path(job.log_path or os.devnull))
    return get_job(store, job.id)


def _record(store: Store, username: str, kind: str, params: JobParams, log_path: Path | None, folder: Path) -> Job:
    """Insert the queued row, unless a job of this kind is active on the same target."""
    job_id = f"job-{uuid.uuid4().hex[:10]}"
    row = {
        "id": job_id,
        "kind": kind,
        "target": params.target,
        "params": json.dumps(params.model_dump(mode="json"), sort_keys=True),
        "status": "queued",
        "created_by": username,
        "created_at": now(),
        "log_path": str(log_path or folder / f"{job_id}.log"),
        "cancel_requested": 0,
        "version": 1,
    }
    with store.write():
        for other in store.db.table("jobs").rows_where(
            f"kind = ? AND target = ? AND status IN ({', '.join('?' * len(ACTIVE_JOB_STATUSES))})",
            [kind, params.target, *ACTIVE_JOB_STATUSES],
        ):
            active = refresh_job(store, _from_row(other))
            if active.active:
                raise Conflict(_busy_message(active))
        store.db.table("jobs").insert(row)
        store.add_history("job", job_id, "start_job", username, None, {"kind": kind, "target": params.target})
    return _load(store, job_id)


def _busy_message(job: Job) -> str:
    pid = f", pid {job.pid}" if job.pid else ""
    return {
        "train": f"run {job.target} is already being trained by job {job.id} ({job.status}{pid}); "
        f"wait for it or cancel it with `goldsmith runs cancel {job.target}`",
        "evaluate": f"run {job.target} is already being evaluated by job {job.id} ({job.status}{pid}); wait for it to finish",
        "draft_gap": f"gap topic {job.target} is already being drafted by job {job.id} ({job.status}{pid}); "
        "wait for it to finish",
        "estimate": f"this run's estimate is already being worked out by job {job.id} ({job.status}{pid}); wait for it",
        "compare_models": f"snapshot {job.target}'s base models are already being compared by job {job.id} "
        f"({job.status}{pid}); wait for it to finish",
    }[job.kind]


def worker_command(db: str, job_id: str) -> list[str]:
    """The job worker's command line (training.worker does each kind's work)."""
    return [sys.executable, "-m", "training.worker", "--job", job_id, "--db", db]


def _spawn(store: Store, job: Job, *, attached: bool, output: TextIO | None) -> subprocess.Popen[Any]:
    """Start the worker: detached (own session, output to the log) or attached (same session; output piped back when asked)."""
    assert store.path is not None and job.log_path is not None  # jobs_dir() refused a memory store
    command = worker_command(str(store.path.resolve()), job.id)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # progress reaches the log or the caller line by line
    options: dict[str, Any] = {"cwd": ROOT, "env": env, "stdin": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
    try:
        if attached and output is not None:
            process: subprocess.Popen[Any] = subprocess.Popen(
                command, stdout=subprocess.PIPE, text=True, errors="replace", bufsize=1, **options
            )
        else:
            with open(job.log_path, "ab") as log:
                # Detached: its own session, so closing the page or the terminal does not stop it.
                process = subprocess.Popen(command, stdout=log, start_new_session=not attached, **options)
    except OSError as error:
        with store.write():
            _update(store, job.id, {"status": "failed", "finished_at": now(), "error": f"could not start: {error}"})
        raise GoldsmithError(f"job {job.id} could not start its worker ({error}); check the Python environment") from error
    with store.write():
        _update(store, job.id, {"pid": process.pid})
    return process


def _follow(process: subprocess.Popen[Any], output: TextIO | None, log: Path) -> None:
    """Wait for an attached worker, copying its output (when piped) to `output` and to its log.

    Ctrl+C reaches the worker too (one process group): it stops its work (a train job saves a
    checkpoint) while this keeps reading; a second Ctrl+C kills it.
    """
    interrupted = False
    while True:
        try:
            if output is not None and process.stdout is not None:
                _copy_lines(process.stdout, output, log)
            process.wait()
            return
        except KeyboardInterrupt:
            if interrupted:
                process.kill()
                process.wait()
                raise
            interrupted = True
            if output is not None:
                output.write("Stopping: the work ends at its next safe point (Ctrl+C again kills it).\n")


def _copy_lines(source: IO[str], output: TextIO, log: Path) -> None:
    with open(log, "a", encoding="utf-8") as copy:
        for line in source:
            output.write(line)
            output.flush()
            copy.write(line)


def cancel_job(store: Store, actor: str, job_id: str) -> Job:
    """Ask an active job to stop.

    A job whose worker has not started yet is cancelled at once. An evaluation or a drafting batch
    gets SIGTERM and ends cancelled (a batch keeps the drafts it saved). A train job is cancelled
    as its run is: its worker relays the request to training.runs.cancel_run within a heartbeat,
    the trainer saves a checkpoint and the run and the job end cancelled.

    Raises:
        PermissionDenied: the actor may not do this kind of work.
        InvalidInput: the job has already ended.
    """
    job = get_job(store, job_id)
    user = acting_user(store, actor)
    require(user, PERMISSIONS[job.kind])
    with store.write():
        current = _load(store, job.id)
        if not current.active:
            raise InvalidInput(f"job {job.id} is {current.status}; nothing to cancel")
        changes: dict[str, Any] = {"cancel_requested": 1, "cancelled_by": user.username}
        if current.status == "queued" and current.pid is None:
            changes |= {"status": "cancelled", "finished_at": now(), "error": f"cancelled by {user.username} before it started"}
        _update(store, job.id, changes)
        store.add_history("job", job.id, "cancel_job", user.username, {"status": current.status}, {"cancel_requested": True})
    # A train job's worker relays the cancel to its run (the trainer's own SIGTERM handler would end it "interrupted").
    if job.kind != "train" and current.pid and pid_alive(current.pid):
        with suppress(ProcessLookupError):
            os.kill(current.pid, signal.SIGTERM)
    return get_job(store, job.id)


# ---------------------------------------------------------------------------- the worker's side


class JobStopped(BaseException):
    """SIGTERM reached the worker (cancel_job, a scheduler, `kill`): stop the work where it is."""


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """The worker's SIGTERM handler: raise JobStopped in the main thread."""
    raise JobStopped("SIGTERM")


@dataclass
class Running:
    """What a worker's work function gets: the claimed job, and an event set once a cancel is asked for."""

    job: Job
    cancel: threading.Event = field(default_factory=threading.Event)


Outcome = tuple[JobStatus, dict[str, Any] | None, str | None]  # final status, result, error
Work = Callable[[Store, Running], Outcome]


def _claim(store: Store, job_id: str) -> Job | None:
    """Mark the job running in this process (which holds its lock); None when it was cancelled before it started."""
    with store.write():
        job = _load(store, job_id)
        if job.status != "queued":
            raise Conflict(f"job {job_id} is {job.status}; only a queued job can start")
        if job.cancel_requested:
            _update(store, job_id, {"status": "cancelled", "finished_at": now(), "error": "cancelled before it started"})
            return None
        stamp = now()
        _update(store, job_id, {"status": "running", "pid": os.getpid(), "started_at": stamp, "heartbeat_at": stamp})
    return _load(store, job_id)


def _finish(store: Store, job_id: str, status: JobStatus, *, result: dict[str, Any] | None, error: str | None) -> None:
    changes: dict[str, Any] = {"status": status, "finished_at": now(), "error": error}
    if result is not None:  # a stopped batch keeps the progress it recorded
        changes["result"] = json.dumps(result, sort_keys=True)
    with store.write():
        _update(store, job_id, changes)


def set_result(store: Store, job_id: str, result: dict[str, Any]) -> None:
    """Record a running job's partial result (a drafting batch's saved drafts so far)."""
    with store.write():
        _update(store, job_id, {"result": json.dumps(result, sort_keys=True)})


class _Heartbeat(threading.Thread):
    """Stamps heartbeat_at every HEARTBEAT_S seconds on its own connection and notices a cancel request."""

    def __init__(self, db: str, running: Running):
        super().__init__(daemon=True, name="goldsmith-job-heartbeat")
        self.db, self.running = db, running
        self.done = threading.Event()

    def run(self) -> None:
        store = Store(self.db)
        try:
            while not self.done.wait(HEARTBEAT_S):
                with suppress(Exception), store.write():  # a busy store skips one beat; the next one retries
                    store.db.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ?", [now(), self.running.job.id])
                    if store.db.table("jobs").get(self.running.job.id)["cancel_requested"]:
                        self.running.cancel.set()
        finally:
            store.close()

    def stop(self) -> None:
        self.done.set()
        self.join()


def _run_claimed(store: Store, job: Job, work: Work) -> int:
    """Run a claimed job to its end and record how it ended; the exit code (0 done or stopped, 1 failed, 2 bad input)."""
    print(f"job {job.id}: {job.kind} {job.target}, pid {os.getpid()}", flush=True)
    running = Running(job)
    beat = _Heartbeat(str(store.path), running)
    beat.start()
    result: dict[str, Any] | None = None
    try:
        status, result, error = work(store, running)
        code = 1 if status == "failed" else 0
    except (JobStopped, KeyboardInterrupt) as stop:
        status, error, code = "cancelled", f"stopped by {'SIGTERM' if isinstance(stop, JobStopped) else 'Ctrl+C'}", 0
    except GoldsmithError as failure:
        status, error, code = "failed", one_line(str(failure), 500), 2
    except Exception as failure:  # recorded as one line; the log keeps the traceback
        import traceback

        traceback.print_exc()
        status, error, code = "failed", one_line(f"{type(failure).__name__}: {failure}", 500), 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the work is over: let the record be written
        beat.stop()
    _finish(store, job.id, status, result=result, error=error)
    print(f"job {job.id}: {status}" + (f" ({error})" if error else ""), flush=True)
    return code


def execute(store: Store, job_id: str, work: Work) -> int:
    """The worker's body: take the job's lock, claim it, beat a heartbeat, run `work`, record its end.

    The caller installs `stop_on_sigterm` first. Returns the exit code: 0 completed, stopped or
    cancelled; 1 failed; 2 refused (no such job, not queued, or its bad input).
    """
    try:
        job = get_job(store, job_id)
        with file_lock(
            jobs_dir(store), _lock_name(job.id), owner=f"job {job.id}", busy="is already running", advice="it has a worker"
        ):
            claimed = _claim(store, job.id)
            if claimed is None:
                print(f"job {job.id}: cancelled before it started", flush=True)
                return 0
            return _run_claimed(store, claimed, work)
    except GoldsmithError as error:  # refused before it started: the row is not this process's to change
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    except JobStopped:  # stopped before it claimed the job: a refresh reports it (cancelled, or died)
        print(f"job {job_id}: stopped before it started", file=sys.stderr, flush=True)
        return 0
