"""Jobs: long work (training, evaluation, batch drafting) run in its own process and recorded in the store.

A job is one row in `jobs`: what to do (`kind` and its `params`), on what (`target`: a run id or
a gap topic id), who asked, and how it went (status, pid, heartbeat, result or error). Each kind
takes its own params model, checked before anything starts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.training import TrainConfig

JobKind = Literal["train", "evaluate", "draft_gap", "estimate", "compare_models"]
JobStatus = Literal["queued", "running", "completed", "failed", "cancelled", "died"]
JOB_KINDS: tuple[JobKind, ...] = ("train", "evaluate", "draft_gap", "estimate", "compare_models")
ACTIVE_JOB_STATUSES: tuple[JobStatus, ...] = ("queued", "running")


class TrainJobParams(BaseModel):
    """Train (or resume) a run: in one process, or in `processes` under torchrun."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(min_length=1)
    processes: int = Field(1, ge=1, le=4096, description="processes (GPUs, or CPU workers with gloo) to train with")

    @property
    def target(self) -> str:
        return self.run_id


class EvaluateJobParams(BaseModel):
    """Evaluate a completed run: eval loss for base and tuned, and the blind comparisons."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(min_length=1)
    max_new_tokens: int = Field(256, ge=1, le=8192, description="the longest generated answer")
    limit: int | None = Field(None, ge=1, description="only the first N eval prompts")
    force: bool = Field(False, description="regenerate even if reviewers already voted (deletes the votes)")
    seed: int = 0
    judge_model: str | None = Field(
        None, description="an LLM judge: a model name at judge_url, or (without a URL) base:NAME / a run id loaded here"
    )
    judge_url: str | None = Field(None, description="an OpenAI-compatible endpoint (http://host:port/v1) for the LLM judge")
    canary: str | None = Field(None, description="the canary file (chat JSONL); None: the bundled general-text set")
    canary_threshold: float = Field(0.05, ge=0, description="a canary loss rise beyond this share is flagged on the run")

    @property
    def target(self) -> str:
        return self.run_id


class DraftGapJobParams(BaseModel):
    """Draft an answer to each question of a gap topic, as draft examples of one author."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gap_topic_id: int = Field(ge=1)
    model: str = Field(min_length=1, description="base:NAME or a completed run's id")
    assignee: str = Field(min_length=1, description="the author whose drafts queue receives the examples")
    limit: int | None = Field(None, ge=1, description="draft at most this many of the topic's questions")
    max_new_tokens: int = Field(256, ge=1, le=2048)
    temperature: float = Field(0.0, ge=0.0, le=2.0)

    @property
    def target(self) -> str:
        return str(self.gap_topic_id)


class EstimateJobParams(BaseModel):
    """Work out what a run would do (data, steps, time, memory) from a short measured probe, without training."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    snapshot_id: str = Field(min_length=1)
    config: TrainConfig
    probe_steps: int = Field(2, ge=1, le=20, description="micro-batches timed after one warm-up")

    @property
    def target(self) -> str:
        return f"{self.snapshot_id}:{self.config.config_hash()}"


class CompareModelsJobParams(BaseModel):
    """Score candidate base models on a snapshot's eval split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    snapshot_id: str = Field(min_length=1)
    base_models: list[str] = Field(min_length=1, max_length=8)
    limit: int | None = Field(None, ge=1, description="only the first N eval examples")
    samples: int = Field(3, ge=0, le=20, description="answers shown per model")
    max_new_tokens: int = Field(96, ge=1, le=2048)
    max_seq_length: int = Field(1024, ge=16)

    @property
    def target(self) -> str:
        return self.snapshot_id


JobParams = TrainJobParams | EvaluateJobParams | DraftGapJobParams | EstimateJobParams | CompareModelsJobParams


class Job(BaseModel):
    """A job's record: what it does, who started it, whether its process lives, and how it ended.

    `result` is the JSON form of what the work returned (a train job: the run's final status and
    step; an evaluation: its report; a drafting batch: the ids of the drafts it saved, kept up to
    date while it runs). `error` is one line when it failed or died. The row is the job's record:
    `created_by` started it, `cancelled_by` asked it to stop.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    kind: JobKind
    target: str
    params: dict[str, Any] = Field(default_factory=dict)
    status: JobStatus
    created_by: str
    created_at: datetime
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    finished_at: datetime | None = None
    pid: int | None = None
    log_path: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    cancel_requested: bool = False
    cancelled_by: str | None = None
    version: int = 1

    @property
    def active(self) -> bool:
        """Queued or running: its process has work left."""
        return self.status in ACTIVE_JOB_STATUSES
