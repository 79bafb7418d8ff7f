"""The worker processes: `python -m training.worker RUN_ID --db DB` and `python -m training.worker --job JOB_ID --db DB`.

`--job` runs one recorded job (training.jobs starts it): it takes the job's lock, beats its
heartbeat and does the work of its kind here, in this process: `train` trains the run in this
process (training.trainer.train) or runs torchrun as a child for several processes; `evaluate`
runs training.evaluate.evaluate_run; `draft_gap` runs training.drafts.draft_gap_topic, recording
each saved draft's id as the job's result as it goes; `estimate` runs
training.evaluation.estimate.estimate_run and `compare_models`
training.evaluation.selection.compare_models. The job records its end.

`RUN_ID` trains one run: what torchrun runs on every rank (accelerate picks DDP, NCCL on GPUs or
gloo on CPUs, from the environment), and what a cluster's scheduler may run directly.

Exit status 0: completed, cancelled or interrupted (SIGTERM; a checkpoint was saved);
1: the work failed (the reason is in the store); 2: bad input.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from contextlib import suppress
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from curation.store import Store
    from schemas.jobs import CompareModelsJobParams, DraftGapJobParams, EstimateJobParams, EvaluateJobParams, TrainJobParams
    from training.jobs import Outcome, Running


def main(argv: list[str] | None = None) -> int:
    """Train a run, or run a recorded job; the exit status as the module docstring says."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = argparse.ArgumentParser(prog="python -m training.worker", description="Run (or resume) one Goldsmith training run.")
    parser.add_argument("run_id", nargs="?", help="the run to train (or resume)")
    parser.add_argument("--job", help="run this recorded job instead (what the job service starts)")
    parser.add_argument("--db", required=True, help="the Goldsmith database file")
    args = parser.parse_args(argv)
    if (args.run_id is None) == (args.job is None):
        parser.error("give a RUN_ID or --job JOB_ID")
    return run_job(args.db, args.job) if args.job else train_run(args.db, args.run_id)


def train_run(db: str, run_id: str) -> int:
    """Train the run in this process (one rank of several under torchrun); the exit status."""
    from curation.errors import GoldsmithError
    from training.trainer import train

    try:
        status = train(db, run_id)
    except GoldsmithError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # recorded in the store by train(); one line here
        print(f"error: training failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"run {run_id}: {status}", flush=True)
    return 0


def run_job(db: str, job_id: str) -> int:
    """Run one recorded job to its end (training.jobs.execute does the lock, heartbeat and record); the exit status."""
    from training.jobs import stop_on_sigterm

    signal.signal(signal.SIGTERM, stop_on_sigterm)  # before the slow imports: an early cancel still ends cleanly
    from curation.errors import GoldsmithError
    from curation.store import Store
    from training.jobs import execute

    try:
        store = Store(db)
    except GoldsmithError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        return execute(store, job_id, do_job)
    finally:
        store.close()


def do_job(store: Store, running: Running) -> Outcome:
    """The work of a claimed job, by its kind; its final status, result and error."""
    from schemas.jobs import CompareModelsJobParams, DraftGapJobParams, EstimateJobParams, EvaluateJobParams, TrainJobParams
    from training.jobs import PARAMS

    job = running.job
    params = PARAMS[job.kind].model_validate(job.params)
    if isinstance(params, TrainJobParams):
        return _train_job(store, running, params)
    if isinstance(params, EvaluateJobParams):
        return _evaluate_job(store, running, params)
    if isinstance(params, EstimateJobParams):
        return _estimate_job(store, running, params)
    if isinstance(params, CompareModelsJobParams):
        return _compare_models_job(store, running, params)
    assert isinstance(params, DraftGapJobParams)
    return _draft_gap_job(store, running, params)


def _evaluate_job(store: Store, running: Running, params: EvaluateJobParams) -> Outcome:
    from training.evaluate import evaluate_run

    report = evaluate_run(
        store,
        running.job.created_by,
        params.run_id,
        max_new_tokens=params.max_new_tokens,
        limit=params.limit,
        seed=params.seed,
        force=params.force,
        judge_model=params.judge_model,
        judge_url=params.judge_url,
        canary=params.canary,
        canary_threshold=params.canary_threshold,
    )
    print(f"run {report.run_id}: {report.comparisons} blind comparisons written", flush=True)
    return "completed", report.model_dump(mode="json"), None


def _estimate_job(store: Store, running: Running, params: EstimateJobParams) -> Outcome:
    from training.evaluation.estimate import estimate_run

    estimate = estimate_run(store, running.job.created_by, params.snapshot_id, params.config, probe_steps=params.probe_steps)
    print(f"estimate: {estimate.steps} steps, about {estimate.estimated_seconds:.0f} s on {estimate.device}", flush=True)
    return "completed", estimate.model_dump(mode="json"), None


def _compare_models_job(store: Store, running: Running, params: CompareModelsJobParams) -> Outcome:
    from training.evaluation.selection import compare_models

    comparison = compare_models(
        store,
        running.job.created_by,
        params.snapshot_id,
        params.base_models,
        limit=params.limit,
        samples=params.samples,
        max_new_tokens=params.max_new_tokens,
        max_seq_length=params.max_seq_length,
    )
    print(f"compared {len(comparison.candidates)} base models on {comparison.examples} eval examples", flush=True)
    return "completed", comparison.model_dump(mode="json"), None


def _draft_gap_job(store: Store, running: Running, params: DraftGapJobParams) -> Outcome:
    """Draft the gap topic, recording each saved draft's id as the job's result as it goes."""
    from schemas import Example
    from training.drafts import draft_gap_topic
    from training.jobs import set_result

    progress: dict[str, Any] = {"gap_topic_id": params.gap_topic_id, "assignee": params.assignee, "example_ids": []}
    set_result(store, running.job.id, progress)

    def saved(example: Example) -> None:
        progress["example_ids"].append(example.id)
        set_result(store, running.job.id, progress)
        print(f"drafted example {example.id}", flush=True)

    draft_gap_topic(
        store,
        running.job.created_by,
        params.gap_topic_id,
        params.model,
        params.assignee,
        limit=params.limit,
        max_new_tokens=params.max_new_tokens,
        temperature=params.temperature,
        on_drafted=saved,
    )
    return "completed", progress, None


def _train_job(store: Store, running: Running, params: TrainJobParams) -> Outcome:
    """Train the run: in this process (one), or torchrun as a child (several); the job follows how the run ended."""
    from training import runs
    from training.jobs import JobStopped

    run = runs.get_run(store, params.run_id)
    print(f"Run {run.id}: {run.base_model} on snapshot {run.snapshot_id}, config {run.config_hash}", flush=True)
    relay = _CancelRelay(store, running, run.id)
    relay.start()
    try:
        if params.processes == 1:
            from training.trainer import train

            train(str(store.path), run.id)
        else:
            _torchrun(store, run.id, params.processes)
    except JobStopped:
        if runs.get_run(store, run.id).status == "queued":  # stopped before the trainer claimed the run
            runs.finish(store, run.id, "cancelled")
        raise
    finally:
        relay.stop()
    run = runs.get_run(store, run.id)
    print(f"run {run.id}: {run.status}", flush=True)
    result = {"run_id": run.id, "status": run.status, "step": run.step, "total_steps": run.total_steps}
    if run.status == "completed":
        return "completed", result, None
    if run.status in ("cancelled", "interrupted"):  # stopped with a checkpoint: the run resumes from it
        return (
            "cancelled",
            result,
            f"the run was {run.status} at step {run.step}; resume it with `goldsmith runs resume {run.id}`",
        )
    return "failed", result, run.error or f"the run ended {run.status}; see its log"


class _CancelRelay(threading.Thread):
    """Turns a cancel of the train job into a cancel of its run (runs.cancel_run: flag, SIGTERM, checkpoint, cancelled)."""

    def __init__(self, store: Store, running: Running, run_id: str):
        super().__init__(daemon=True, name="goldsmith-cancel-relay")
        self.db, self.running, self.run_id = str(store.path), running, run_id
        self.done = threading.Event()

    def run(self) -> None:
        from curation.errors import GoldsmithError
        from curation.store import Store
        from training import jobs, runs

        while not self.done.is_set():
            if self.running.cancel.wait(0.2):
                store = Store(self.db)
                try:
                    with suppress(GoldsmithError):  # the run may have ended meanwhile
                        asked = jobs.get_job(store, self.running.job.id)
                        runs.cancel_run(store, asked.cancelled_by or asked.created_by, self.run_id)
                finally:
                    store.close()
                return

    def stop(self) -> None:
        self.done.set()
        self.join()


def _torchrun(store: Store, run_id: str, processes: int) -> None:
    """torchrun as a child (it inherits this worker's output); SIGTERM is passed on, Ctrl+C reaches it directly."""
    from training.jobs import ROOT
    from training.runs import worker_command

    child = subprocess.Popen(worker_command(str(store.path), run_id, processes=processes), cwd=ROOT, stdin=subprocess.DEVNULL)

    def forward(signum: int, frame: FrameType | None) -> None:
        with suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)  # torchrun passes it to every rank; each saves a checkpoint

    previous = {sig: signal.signal(sig, handler) for sig, handler in ((signal.SIGTERM, forward), (signal.SIGINT, signal.SIG_IGN))}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code != 0:
        print(f"torchrun exited with code {code}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
