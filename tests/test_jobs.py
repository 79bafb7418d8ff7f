"""The job service with real worker processes and a real SQLite file: start, poll, refuse, cancel, die.

Train jobs run the tiny Llama on the demo's small snapshot (tests/tiny_lm.py); drafting jobs use
an untied tiny Llama as a base model folder. Nothing is mocked: every job is a real
`python -m training.worker --job` process, killed or cancelled for real.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import make_example
from curation.datasets.snapshots import create_snapshot
from curation.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from curation.store import Store, now
from schemas import Job
from schemas.training import TrainConfig
from tiny_lm import LEAD, REVIEWER, build_tiny_lm, demo_db, demo_template, tiny_config, tiny_lm  # noqa: F401
from training import jobs, runs
from training.checkpoints import complete_checkpoints
from training.drafts import run_gap_drafting, start_gap_drafting
from training.evaluate import start_evaluation
from training.playground import base_ref

pytestmark = pytest.mark.slow  # the workers import torch and load a model

WAIT_S = 300  # generous: busy cores, and each worker imports torch, transformers and peft
ENDLESS = {"batch_size": 2, "max_steps": 5000, "save_every": 2, "eval_every": 1000, "keep_checkpoints": 2}


@pytest.fixture(autouse=True)
def one_thread_per_worker(monkeypatch):
    # Workers inherit this environment: one thread each keeps a core for the test's own polling.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def draft_lm(tmp_path_factory) -> Path:
    """A tiny untied Llama chat model (a tied random one drafts blanks)."""
    return build_tiny_lm(tmp_path_factory.mktemp("jobs-lm") / "tiny-llama", tied=False)


def cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from app.cli import app

    return CliRunner().invoke(app, list(args))


def wait_for(condition: Callable[[], Any], what: str, *, log: str | None = None, timeout: float = WAIT_S) -> Any:
    """Poll until condition() is truthy; fail (with the worker's log) if it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    detail = Path(log).read_text(errors="replace")[-3000:] if log and Path(log).exists() else ""
    pytest.fail(f"gave up waiting for {what} after {timeout} s\n{detail}")


def ended(store: Store, job: Job) -> Job:
    """The job once its worker has finished (and, for a child of this process, was reaped)."""
    final = wait_for(lambda: (j := jobs.get_job(store, job.id)) and not j.active and j, f"job {job.id} to end", log=job.log_path)
    if job.pid:
        wait_for(lambda: not _alive(job.pid), f"worker {job.pid} to exit")
    return final


def _alive(pid: int) -> bool:
    from curation.osutil import pid_alive

    return pid_alive(pid)


def kill(job: Job) -> None:
    """Make sure a test's worker is gone, whatever happened to the test."""
    if job.pid and _alive(job.pid):
        os.kill(job.pid, signal.SIGKILL)
        wait_for(lambda: not _alive(job.pid), f"worker {job.pid} to die")


def gap_topic(store: Store, questions: list[str]) -> int:
    ids = [
        store.db.table("questions").insert({"text": q, "content_hash": f"h{n}", "source": "log", "imported_at": now()}).last_pk
        for n, q in enumerate(questions)
    ]
    row = {"label": "claims photos", "question_ids": json.dumps(ids), "representatives": "[]", "similarity": 0.2}
    return store.db.table("gap_topics").insert(row | {"created_at": now()}).last_pk


# ------------------------------------------------------------------------------------------ who and what


def test_nobody_but_a_lead_starts_any_kind_and_nothing_is_recorded(team, tmp_path):
    make_example(team, "approved")
    make_example(team, "approved", prompt="When is my bill due?", response="On the first.")
    snapshot = create_snapshot(team, "lee", "v1", eval_fraction=0.5, validate=False)
    run = runs.create_run(team, "lee", snapshot.id, TrainConfig(base_model=str(tmp_path / "missing"), max_steps=1))
    topic = gap_topic(team, ["Where do I send photos?"])
    params = {
        "train": {"run_id": run.id},
        "evaluate": {"run_id": run.id},
        "draft_gap": {"gap_topic_id": topic, "model": "base:x", "assignee": "amy"},
    }
    for actor in ("amy", "rita", "ada"):
        for kind, values in params.items():
            with pytest.raises(PermissionDenied, match=f"{actor} is an? "):
                jobs.start_job(team, actor, kind, values)
        with pytest.raises(PermissionDenied, match="cannot launch training"):
            runs.launch(team, actor, run.id)
        with pytest.raises(PermissionDenied, match="cannot launch training"):
            start_evaluation(team, actor, run.id)
        with pytest.raises(PermissionDenied, match="cannot manage coverage"):
            start_gap_drafting(team, actor, topic, "base:x", "amy")
    assert jobs.list_jobs(team) == [] and team.db.table("jobs").count == 0
    assert runs.get_run(team, run.id).status == "queued" and runs.get_run(team, run.id).pid is None


def test_bad_params_and_a_memory_store_are_refused_before_anything_starts(team):
    with pytest.raises(InvalidInput, match="job kind 'sleep' is not one of"):
        jobs.start_job(team, "lee", "sleep", {})
    with pytest.raises(InvalidInput, match="invalid draft_gap job: .*gap_topic_id"):
        jobs.start_job(team, "lee", "draft_gap", {"gap_topic_id": 0, "model": "base:x", "assignee": "amy"})
    with pytest.raises(InvalidInput, match="processes"):
        jobs.start_job(team, "lee", "train", {"run_id": "run-x", "processes": 0})
    with pytest.raises(InvalidInput, match="temperature: Extra inputs are not permitted"):
        jobs.start_job(team, "lee", "evaluate", {"run_id": "run-x", "temperature": 1})
    memory = Store(memory=True)
    from curation.people import users

    users.add_user(memory, None, "ada", "admin", password="correct horse battery")
    users.add_user(memory, "ada", "lee", "lead", password="correct horse battery")
    with pytest.raises(InvalidInput, match="needs a database file, not a memory store"):
        jobs.start_job(memory, "lee", "evaluate", {"run_id": "run-x"})
    with pytest.raises(NotFound, match="no job matches 'job-nope'"):
        jobs.get_job(team, "job-nope")
    assert team.db.table("jobs").count == 0


def test_resume_run_refuses_a_completed_run_and_a_non_lead(team):
    make_example(team, "approved")
    make_example(team, "approved", prompt="When is my bill due?", response="On the first.")
    snapshot = create_snapshot(team, "lee", "v1", eval_fraction=0.5, validate=False)
    run = runs.create_run(team, "lee", snapshot.id, TrainConfig(max_steps=1))
    with pytest.raises(InvalidInput, match=f"run {run.id} is queued; only interrupted, died, failed, cancelled runs"):
        runs.resume_run(team, "lee", run.id)
    runs.finish(team, run.id, "completed", result={})
    with pytest.raises(InvalidInput, match=f"run {run.id} is completed; .*start a new run to train again"):
        runs.resume_run(team, "lee", run.id)
    with pytest.raises(InvalidInput, match="only queued or stopped"):
        runs.launch(team, "lee", run.id)
    runs.finish(team, run.id, "interrupted")
    for actor in ("rita", "amy"):
        with pytest.raises(PermissionDenied, match=f"{actor} is an? .* and cannot launch training"):
            runs.resume_run(team, actor, run.id)
    assert team.db.table("jobs").count == 0 and runs.get_run(team, run.id).status == "interrupted"


def test_a_queued_job_whose_worker_is_gone_is_reported_died(team):
    """Rows as a crashed starter leaves them: the pid of a finished process, and no pid long after the start."""
    import subprocess

    finished = subprocess.Popen(["true"])
    finished.wait()
    rows = [
        {"id": "job-gone", "pid": finished.pid, "created_at": now()},
        {"id": "job-never", "pid": None, "created_at": "2020-01-01T00:00:00+00:00"},
        {"id": "job-starting", "pid": None, "created_at": now()},
    ]
    for row in rows:
        params = {"gap_topic_id": 1, "model": "base:x", "assignee": "amy"}
        team.db.table("jobs").insert(
            {**row, "kind": "draft_gap", "target": "1", "params": json.dumps(params), "status": "queued", "created_by": "lee"}
        )
    gone, never, starting = (jobs.get_job(team, row["id"]) for row in rows)
    assert gone.status == "died" and gone.error.startswith(f"its worker (pid {finished.pid}) is gone; the drafts it saved")
    assert never.status == "died" and "never started" in never.error
    assert starting.status == "queued"  # its starter is spawning it now
    assert [j.id for j in jobs.list_jobs(team, kind="draft_gap", active=True)] == ["job-starting"]


# ------------------------------------------------------------------------------------------ drafting


def test_a_draft_gap_job_creates_the_drafts_and_records_their_ids(team, draft_lm):
    topic = gap_topic(team, ["Where do I send photos?", "Can I send a video?", "Do you need receipts?"])
    job = start_gap_drafting(team, "lee", topic, base_ref(str(draft_lm)), "amy", limit=2, max_new_tokens=4)
    assert job.kind == "draft_gap" and job.target == str(topic) and job.created_by == "lee" and job.pid
    assert job.params == {
        "gap_topic_id": topic,
        "model": base_ref(str(draft_lm)),
        "assignee": "amy",
        "limit": 2,
        "max_new_tokens": 4,
        "temperature": 0.0,
    }
    assert Path(job.log_path).parent == Path(team.path).parent / "jobs"
    done = ended(team, job)
    assert done.status == "completed", done.error
    drafted = [r["id"] for r in team.db.query("SELECT id FROM examples WHERE source = 'gap_draft' ORDER BY id")]
    assert done.result == {"gap_topic_id": topic, "assignee": "amy", "example_ids": drafted} and len(drafted) == 2
    assert [team.get_example(i).metadata["gap_topic_id"] for i in drafted] == [topic, topic]
    assert done.started_at and done.heartbeat_at and done.finished_at and done.error is None
    assert jobs.latest_job(team, "draft_gap", topic) == done
    assert f"job {job.id}: completed" in Path(job.log_path).read_text()

    # attached, as `goldsmith draft-gap` runs it: the output comes back, and the last question is drafted
    import io

    output = io.StringIO()
    examples = run_gap_drafting(team, "lee", topic, base_ref(str(draft_lm)), "amy", max_new_tokens=4, output=output)
    assert [e.prompt for e in examples] == ["Do you need receipts?"] and f"drafted example {examples[0].id}" in output.getvalue()
    assert len(jobs.list_jobs(team, kind="draft_gap", target=topic)) == 2


def test_a_drafting_batch_is_refused_twice_and_cancelled_keeps_its_drafts(team, draft_lm):
    topic = gap_topic(team, [f"Question number {n}: what does my policy cover?" for n in range(200)])
    job = start_gap_drafting(team, "lee", topic, base_ref(str(draft_lm)), "amy", max_new_tokens=256, temperature=1.0)
    try:
        with pytest.raises(Conflict, match=f"gap topic {topic} is already being drafted by job {job.id}"):
            start_gap_drafting(team, "lee", topic, base_ref(str(draft_lm)), "al")
        with pytest.raises(PermissionDenied):
            jobs.cancel_job(team, "amy", job.id)
        wait_for(lambda: (jobs.get_job(team, job.id).result or {}).get("example_ids"), "a first draft", log=job.log_path)
        listed = cli("jobs", "list", "--active", "--json", "--db", str(team.path))
        assert [(j["id"], j["status"]) for j in json.loads(listed.stdout)] == [(job.id, "running")]
        asked = cli("jobs", "cancel", job.id, "--as", "lee", "--db", str(team.path))  # the CLI twin of cancel_job
        assert asked.exit_code == 0 and f"Cancel requested for job {job.id} (draft_gap of {topic})" in asked.stdout
        done = ended(team, job)
    finally:
        kill(job)
    assert json.loads(cli("jobs", "show", job.id, "--json", "--db", str(team.path)).stdout)["status"] == "cancelled"
    assert [(h.action, h.actor) for h in team.history("job", job.id)] == [("start_job", "lee"), ("cancel_job", "lee")]
    assert done.status == "cancelled" and done.error == "stopped by SIGTERM"
    kept = done.result["example_ids"]
    assert 1 <= len(kept) < 200
    assert sorted(kept) == [r["id"] for r in team.db.query("SELECT id FROM examples WHERE source = 'gap_draft' ORDER BY id")]
    assert done.cancelled_by == "lee" and done.created_by == "lee"
    with pytest.raises(InvalidInput, match=f"job {job.id} is cancelled; nothing to cancel"):
        jobs.cancel_job(team, "lee", job.id)


# ------------------------------------------------------------------------------------------ training


def test_a_train_job_killed_with_sigkill_is_reported_died(demo_db, demo_template, tiny_lm):  # noqa: F811
    store = Store(demo_db)
    run = runs.create_run(store, LEAD, demo_template.small_id, tiny_config(tiny_lm, **ENDLESS))
    launched = runs.launch(store, LEAD, run.id)
    job = jobs.latest_job(store, "train", run.id)
    try:
        assert launched.status == "queued" and launched.pid == job.pid and job.created_by == LEAD
        assert job.log_path == str(Path(run.run_dir) / "worker.log")
        with pytest.raises(Conflict, match=f"run {run.id} is already being trained by job {job.id}"):
            runs.launch(store, LEAD, run.id)
        wait_for(lambda: complete_checkpoints(Path(run.run_dir)), "a checkpoint", log=job.log_path)
        assert jobs.get_job(store, job.id).status == "running" and runs.get_run(store, run.id).pid == job.pid
        os.kill(job.pid, signal.SIGKILL)
        wait_for(lambda: not _alive(job.pid), "the worker to die")
    finally:
        kill(job)
    died = jobs.get_job(store, job.id)
    assert died.status == "died" and died.finished_at
    assert died.error.startswith(f"its worker (pid {job.pid}) is gone; resume the run with `goldsmith runs resume {run.id}`")
    assert runs.get_run(store, run.id).status == "died"
    assert f"resume with `goldsmith runs resume {run.id}`" in runs.get_run(store, run.id).error
    store.close()


def test_cancel_job_stops_a_train_job_as_its_run_is_cancelled(demo_db, demo_template, tiny_lm):  # noqa: F811
    store = Store(demo_db)
    run = runs.create_run(store, LEAD, demo_template.small_id, tiny_config(tiny_lm, **ENDLESS))
    runs.launch(store, LEAD, run.id)
    job = jobs.latest_job(store, "train", run.id)
    try:
        wait_for(lambda: complete_checkpoints(Path(run.run_dir)), "a checkpoint", log=job.log_path)
        with pytest.raises(PermissionDenied, match="cannot launch training"):
            jobs.cancel_job(store, REVIEWER, job.id)
        assert jobs.cancel_job(store, LEAD, job.id).cancel_requested
        done = ended(store, job)
    finally:
        kill(job)
    final = runs.get_run(store, run.id)
    assert done.status == "cancelled", Path(job.log_path).read_text()[-2000:]
    assert final.status == "cancelled" and done.result == {
        "run_id": run.id,
        "status": "cancelled",
        "step": final.step,
        "total_steps": 5000,
    }
    kinds = [e.kind for e in runs.events(store, run.id)]
    assert kinds[-3:] == ["cancel_requested", "checkpoint_saved", "cancelled"]  # the run's own cancel: a checkpoint
    assert complete_checkpoints(Path(run.run_dir))[0].name == f"step-{final.step:08d}"
    assert [h.action for h in store.history("run", run.id)] == ["create_run", "cancel_run"]
    assert f"run {run.id}: cancelled" in Path(job.log_path).read_text()
    store.close()
