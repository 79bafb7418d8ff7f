"""The worker as a real process: kill -9 and resume, SIGTERM, cancel, the run lock, and two processes (DDP)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, make_example
from curation.datasets.snapshots import create_snapshot
from curation.store import Store
from tiny_lm import LEAD, DemoTemplate, copy_demo, demo_db, demo_template, tiny_config, tiny_lm, train_here  # noqa: F401
from training import runs
from training.checkpoints import complete_checkpoints

pytestmark = pytest.mark.slow

WAIT_S = 300  # generous: two busy cores, and a cold start imports torch, transformers and peft
# A run the kill test can interrupt and then finish (60 steps, a checkpoint every 2), and one that
# outlasts anything the other tests do to it (they stop it long before its last step).
SHORT = {"batch_size": 2, "max_steps": 60, "save_every": 2, "eval_every": 1000, "keep_checkpoints": 2}
ENDLESS = {**SHORT, "max_steps": 5000, "save_every": 5}


def worker_env() -> dict[str, str]:
    # One thread each: the test's own polling and a second worker keep a core between them.
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def start_worker(db: Path, run_id: str, log: Path) -> subprocess.Popen:
    with open(log, "ab") as handle:
        return subprocess.Popen(
            runs.worker_command(str(db), run_id), cwd=ROOT, env=worker_env(), stdout=handle, stderr=subprocess.STDOUT
        )


def run_worker(db: Path, run_id: str, *, processes: int = 1) -> subprocess.CompletedProcess:
    return subprocess.run(
        runs.worker_command(str(db), run_id, processes=processes),
        cwd=ROOT,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=WAIT_S * 2,
    )


def wait_for(condition: Callable[[], Any], what: str, *, log: Path | None = None, timeout: float = WAIT_S) -> Any:
    """Poll until condition() is truthy; fail (with the worker's log) if it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    detail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    pytest.fail(f"gave up waiting for {what} after {timeout} s\n{detail}")


def first_checkpoint(run_dir: Path) -> Callable[[], list[Path]]:
    return lambda: complete_checkpoints(run_dir)


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def train_steps(store: Store, run_id: str) -> list[int]:
    return [p.step for p in runs.metrics(store, run_id, kind="train")]


def test_kill_9_then_resume_from_the_last_complete_checkpoint(demo_db, demo_template, tiny_lm, tmp_path):  # noqa: F811
    store = Store(demo_db)
    run = runs.create_run(store, LEAD, demo_template.small_id, tiny_config(tiny_lm, **SHORT))
    run_dir, log = Path(run.run_dir), tmp_path / "worker.log"
    proc = start_worker(demo_db, run.id, log)
    try:
        wait_for(first_checkpoint(run_dir), "a complete checkpoint", log=log)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL  # killed mid-run, not finished
    finally:
        stop_process(proc)

    died = runs.get_run(store, run.id)
    assert died.status == "died" and f"resume with `goldsmith runs resume {run.id}`" in died.error
    assert runs.events(store, run.id)[-1].kind == "died"
    checkpoint = complete_checkpoints(run_dir)[0]
    resume_step = int(checkpoint.name.removeprefix("step-"))
    assert 0 < resume_step < 60
    before = train_steps(store, run.id)
    seen = store.db.execute("SELECT max(rowid) FROM run_metrics").fetchone()[0]

    done = run_worker(demo_db, run.id)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"run {run.id}: completed" in done.stdout
    resumed = runs.get_run(store, run.id)
    assert resumed.status == "completed" and resumed.result["steps"] == resumed.total_steps == 60
    kinds = [(e.kind, e.message) for e in runs.events(store, run.id)]
    assert ("checkpoint_loaded", f"resumed from {checkpoint.name}") in kinds
    assert [k for k, _ in kinds].count("resumed") == 1

    # The second process trained exactly the steps after the checkpoint ...
    after = [
        r["step"]
        for r in store.db.query("SELECT step FROM run_metrics WHERE kind = 'train' AND rowid > ? ORDER BY rowid", [seen])
    ]
    assert after == list(range(resume_step + 1, 61))
    # ... and the store holds every step up to the checkpoint exactly once, written by the first.
    steps = train_steps(store, run.id)
    assert [s for s in steps if s <= resume_step] == list(range(1, resume_step + 1))
    assert sorted(set(before)) == before and set(before) >= set(range(1, resume_step + 1))
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert resumed.step == 60  # the record ends where training did
    store.close()


def test_sigterm_saves_a_checkpoint_and_a_second_worker_is_refused(demo_db, demo_template, tiny_lm, tmp_path):  # noqa: F811
    store = Store(demo_db)
    run = runs.create_run(store, LEAD, demo_template.small_id, tiny_config(tiny_lm, **ENDLESS))
    run_dir, log = Path(run.run_dir), tmp_path / "worker.log"
    proc = start_worker(demo_db, run.id, log)
    try:
        wait_for(first_checkpoint(run_dir), "a complete checkpoint", log=log)
        second = run_worker(demo_db, run.id)
        assert proc.poll() is None  # the first was still training all along
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"error: run {run.id} is already running (pid {proc.pid}); cancel it or wait" in second.stderr
        current = runs.get_run(store, run.id)
        assert current.status == "running" and current.pid == proc.pid  # the refused worker changed nothing

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=WAIT_S) == 0
    finally:
        stop_process(proc)
    assert f"run {run.id}: interrupted" in log.read_text()
    stopped = runs.get_run(store, run.id)
    assert stopped.status == "interrupted" and stopped.error is None
    step = stopped.result["step"]
    assert 0 < step < 5000 and stopped.step == step  # the record shows where it stopped
    assert complete_checkpoints(run_dir)[0].name == f"step-{step:08d}"  # saved where it stopped
    assert json.loads((complete_checkpoints(run_dir)[0] / "state.json").read_text())["step"] == step
    assert train_steps(store, run.id) == list(range(1, step + 1))  # flushed before it ended
    events = [(e.kind, e.message) for e in runs.events(store, run.id)]
    assert events[-2:] == [
        ("checkpoint_saved", f"stopped at step {step}; resume with `goldsmith runs resume {run.id}`"),
        ("interrupted", "interrupted"),
    ]
    assert not (run_dir / "adapter").exists()
    store.close()


def exit_code(pid: int) -> tuple[int | None] | None:
    """(exit code,) once this process's child `pid` has ended; None while it runs.

    The code is None if subprocess's own clean-up reaped the child first (launch() drops its
    Popen while the worker runs); the worker's last log line then tells how it ended.
    """
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return (None,)
    return (os.waitstatus_to_exitcode(status),) if done else None


def kill_child(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_cancel_stops_the_worker_as_cancelled(demo_db, demo_template, tiny_lm):  # noqa: F811
    store = Store(demo_db)
    run = runs.create_run(store, LEAD, demo_template.small_id, tiny_config(tiny_lm, **ENDLESS))
    run_dir = Path(run.run_dir)
    launched = runs.launch(store, LEAD, run.id)  # as the app starts it: a train job's process, logging to worker.log
    assert launched.status == "queued" and launched.pid
    log = run_dir / "worker.log"
    try:
        wait_for(first_checkpoint(run_dir), "a complete checkpoint", log=log)
        assert runs.get_run(store, run.id).status == "running"
        asked = runs.cancel_run(store, LEAD, run.id)
        assert asked.cancel_requested
        (code,) = wait_for(lambda: exit_code(launched.pid), "the worker to exit", log=log)
    finally:
        kill_child(launched.pid)
    assert code in (0, None), log.read_text()[-2000:]
    final = runs.get_run(store, run.id)
    assert final.status == "cancelled", log.read_text()[-2000:]
    assert f"run {run.id}: cancelled" in log.read_text()
    kinds = [e.kind for e in runs.events(store, run.id)]
    assert kinds[-3:] == ["cancel_requested", "checkpoint_saved", "cancelled"]
    assert complete_checkpoints(run_dir)[0].name == f"step-{final.result['step']:08d}"
    assert final.step == final.result["step"]
    assert [h.action for h in store.history("run", run.id)] == ["create_run", "cancel_run"]
    store.close()


@pytest.fixture(params=["same-answers", "demo"])
def ddp_snapshot(request, tmp_path: Path, demo_template: DemoTemplate):  # noqa: F811
    """(store, snapshot id, lead) for the two-process test.

    same-answers: ten examples with different questions and one answer, so every micro-batch of
    two carries as many loss tokens as any other. demo: the small demo snapshot, whose answers
    differ in length, so the ranks' micro-batches carry different numbers of loss tokens.
    """
    if request.param == "demo":
        store = Store(copy_demo(demo_template, tmp_path))
        yield store, demo_template.small_id, LEAD
        store.close()
        return
    from curation.people import users

    store = Store(tmp_path / "goldsmith.db")
    for name, role in {"ada": "admin", "lee": "lead", "amy": "author", "rita": "reviewer"}.items():
        users.add_user(store, None if role == "admin" else "ada", name, role, password="correct horse battery")
    towns = ["Harlan", "Mill Creek", "Fairview", "Oakdale", "Riverton", "Lakeside", "Brookfield", "Ashton", "Elmwood", "Westport"]
    for n, town in enumerate(towns):
        make_example(
            store,
            "approved",
            prompt=f"My car broke down near {town} after {n + 2} miles. Who do I call?",
            response="Call roadside assistance at 1-800-555-0199; a tow truck is usually there within an hour.",
        )
    # One answer on purpose: dedup would group all ten (one side of the split), so no groups here
    snapshot = create_snapshot(store, "lee", "same-answers", eval_fraction=0.2, groups="none", validate=False)
    assert (snapshot.train, snapshot.eval) == (8, 2)
    yield store, snapshot.id, "lee"
    store.close()


@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_two_processes_train_like_one_accumulating_both_micro_batches(ddp_snapshot, tiny_lm, tmp_path, sharding):  # noqa: F811
    """Rank r's micro-batch of step k is the one process's micro-batch 2k + r. One process divides
    the summed loss of both by their total number of loss tokens; if two processes do the same
    (each rank's loss over the tokens of all ranks, gradients averaged), every step matches, whether
    each process holds the whole model (DDP) or a shard of it (FSDP2, gathered for checkpoints)."""
    import shutil

    import torch
    from safetensors.torch import load_file

    store, snapshot_id, lead = ddp_snapshot
    settings = {"batch_size": 2, "max_steps": 4, "eval_every": 2, "learning_rate": 1e-2}
    single = runs.create_run(
        store,
        lead,
        snapshot_id,
        tiny_config(tiny_lm, **settings, gradient_accumulation_steps=2, save_every=1, keep_checkpoints=4),
    )
    assert train_here(store.path, single.id) == "completed"
    single = runs.get_run(store, single.id)

    # Both start from the single run's state after step 1 (its checkpoint), so they share the
    # LoRA initialisation and optimizer state and differ only in how the gradients are combined.
    ddp = runs.create_run(
        store, lead, snapshot_id, tiny_config(tiny_lm, **settings, save_every=2, sharding=sharding, merge=True), name=sharding
    )
    start = Path(single.run_dir) / "checkpoints" / "step-00000001"
    shutil.copytree(start, Path(ddp.run_dir) / "checkpoints" / start.name)
    done = run_worker(store.path, ddp.id, processes=2)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]

    ddp = runs.get_run(store, ddp.id)
    assert ddp.status == "completed" and ddp.world_size == 2
    assert json.loads((Path(ddp.run_dir) / "lineage.json").read_text())["world_size"] == 2
    events = runs.events(store, ddp.id)
    assert "2 process(es)" in next(e.message for e in events if e.kind == "started")
    assert ("sharded (FSDP) over 2 processes" in next(e.message for e in events if e.kind == "data")) == (sharding == "fsdp")
    assert ("checkpoint_loaded", "resumed from step-00000001") in [(e.kind, e.message) for e in events]
    adapter = Path(ddp.run_dir) / "adapter" / "adapter_model.safetensors"
    assert adapter.is_file() and (Path(ddp.run_dir) / "merged" / "config.json").is_file()

    for kind, field in (("train", "loss"), ("eval", "eval_loss")):
        two = [(p.step, getattr(p, field)) for p in runs.metrics(store, ddp.id, kind=kind)]
        one = [(p.step, getattr(p, field)) for p in runs.metrics(store, single.id, kind=kind, after_step=1)]
        assert [s for s, _ in two] == [s for s, _ in one] == ([2, 3, 4] if kind == "train" else [2, 4])
        for (step, a), (_, b) in zip(two, one, strict=True):
            # equal up to summation order (~1e-7); token weighting that differs by rank shows at ~1e-4
            assert a == pytest.approx(b, rel=1e-6), f"{kind} loss at step {step}"

    ours, theirs = load_file(adapter), load_file(Path(single.run_dir) / "adapter" / "adapter_model.safetensors")
    moved = sum(float((t - load_file(start / "adapter.safetensors")[k]).norm()) for k, t in theirs.items())
    apart = sum(float((ours[k] - theirs[k]).norm()) for k in theirs)
    assert moved > 0 and apart < 1e-3 * moved  # the weights moved in steps 2-4, and moved alike

    # The two processes' step-2 checkpoint (gathered from the shards under FSDP) is the one process's.
    mine, single_ck = Path(ddp.run_dir) / "checkpoints" / "step-00000002", Path(single.run_dir) / "checkpoints" / "step-00000002"
    a, b = load_file(mine / "adapter.safetensors"), load_file(single_ck / "adapter.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    opt_a, opt_b = (torch.load(c / "optimizer.pt", weights_only=True) for c in (mine, single_ck))
    assert opt_a["state"].keys() == opt_b["state"].keys() and len(opt_a["state"]) == len(a)
    for i, moments in opt_b["state"].items():
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.allclose(opt_a["state"][i][name], moments[name], rtol=1e-4, atol=1e-9), (i, name)


def test_ctrl_c_stops_the_foreground_train_command_with_a_checkpoint(demo_db, demo_template, tiny_lm, tmp_path):  # noqa: F811
    """`goldsmith train` runs its train job attached: the worker's progress on stderr, the run on stdout.
    Ctrl+C (SIGINT to the terminal's process group) reaches the worker too: it saves a checkpoint and
    the command ends with the run interrupted, resumable."""
    import sys

    import yaml

    from training import jobs

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_lm, **ENDLESS).model_dump(mode="json")))
    command = [sys.executable, "-m", "app.cli", "train", demo_template.small_id, "--config", str(config)]
    command += ["--db", str(demo_db), "--as", LEAD, "--json"]
    log = tmp_path / "cli.err"
    store = Store(demo_db)
    with open(log, "wb") as err:
        # its own process group, as a terminal gives a command: the attached worker shares it
        proc = subprocess.Popen(command, cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE, stderr=err, start_new_session=True)
    try:
        run = wait_for(lambda: next(iter(runs.list_runs(store)), None), "the run to be recorded", log=log)
        wait_for(first_checkpoint(Path(run.run_dir)), "a complete checkpoint", log=log)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]
    shown = json.loads(out)
    stopped = runs.get_run(store, run.id)
    assert shown["id"] == run.id and shown["status"] == stopped.status == "interrupted"
    assert complete_checkpoints(Path(run.run_dir))[0].name == f"step-{stopped.step:08d}"
    progress = log.read_text()
    assert f"Run {run.id}: {tiny_lm} on snapshot {demo_template.small_id}" in progress  # the worker's lines, streamed
    assert "Stopping: the work ends at its next safe point" in progress and f"run {run.id}: interrupted" in progress
    job = jobs.latest_job(store, "train", run.id)
    assert job.status == "cancelled" and job.result["step"] == stopped.step and "runs resume" in job.error
    assert f"run {run.id}: interrupted" in (Path(run.run_dir) / "worker.log").read_text()  # the log keeps a copy
    store.close()
