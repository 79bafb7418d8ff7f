"""Training and evaluation contracts: the run's config, its record, metrics and blind comparisons."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.evaluation import CanaryFigures, CategoryFigures, GateResult, JudgeSummary, ResponseTypeFigures

RunStatus = Literal["queued", "running", "completed", "failed", "cancelled", "interrupted", "died"]
ACTIVE_STATUSES = ("queued", "running")
RESUMABLE_STATUSES = ("interrupted", "died", "failed", "cancelled")
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Schedule = Literal["cosine", "linear", "constant"]
Choice = Literal["a", "b", "tie"]

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class TrainConfig(BaseModel):
    """Everything that decides what a LoRA run does. Saved beside the run as config.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_model: str = Field("smollm2-135m", description="Hugging Face id, local folder, or a short name (smollm2-135m)")
    lora_r: int = Field(16, ge=1, le=1024)
    lora_alpha: float = Field(32, gt=0)
    lora_dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="0 by default: any dropout copies each adapted layer's input, which cost 1.6x the time and "
        "1.4x the memory of the demo run on a CPU for the same held-out loss",
    )
    target_modules: tuple[str, ...] | Literal["all-linear"] = DEFAULT_TARGET_MODULES
    learning_rate: float = Field(2e-4, gt=0, le=1)
    schedule: Schedule = "cosine"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    epochs: float = Field(3.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (overrides epochs)")
    batch_size: int = Field(8, ge=1, description="examples per micro-batch (per process)")
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_seq_length: int = Field(1024, ge=16)
    packing: bool = Field(True, description="padding-free batches: examples share rows, attention kept apart")
    pack_row_tokens: int = Field(512, ge=16, description="packed row length (attention cost grows with its square)")
    eval_every: int = Field(20, ge=1, description="evaluate on the eval split every N optimizer steps")
    save_every: int = Field(20, ge=1, description="write a checkpoint every N optimizer steps")
    keep_checkpoints: int = Field(2, ge=1)
    early_stopping_patience: int | None = Field(None, ge=1, description="stop after N evaluations without improvement")
    seed: int = 42
    precision: Precision = Field("auto", description="auto: bf16 on GPUs and CPUs with bf16 units, else fp32")
    gradient_checkpointing: bool = False
    sharding: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="with several processes: ddp keeps a whole model in each; fsdp shards the model across them "
        "(FSDP2), for models that do not fit one GPU",
    )
    compile: Literal["auto", "on", "off"] = Field(
        "auto", description="torch.compile each decoder layer (auto: on GPUs, where it cuts kernel launches; off on CPUs)"
    )
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    merge: bool = Field(False, description="also write the adapter merged into a full model folder")

    @field_validator("target_modules", mode="before")
    @classmethod
    def _modules(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "all-linear":
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)) and not value:
            raise ValueError("name at least one module, e.g. q_proj,v_proj, or all-linear")
        return value

    def config_hash(self) -> str:
        """A short digest of the settings (lineage: two runs with one hash trained alike)."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]


class Run(BaseModel):
    """A training run's record in the store."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    snapshot_id: str
    base_model: str
    config: TrainConfig
    config_hash: str
    code_version: str
    status: RunStatus
    created_by: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    pid: int | None = None
    world_size: int = 1
    run_dir: str
    step: int = 0
    total_steps: int | None = None
    cancel_requested: bool = False
    error: str | None = None
    result: dict[str, Any] = Field(default_factory=dict)


class MetricPoint(BaseModel):
    """One logged point: a training step (loss, lr, speed, memory) or an evaluation (eval_loss)."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    step: int
    kind: Literal["train", "eval"]
    epoch: float
    loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None
    tokens_per_s: float | None = None
    memory_mb: float | None = None
    at: datetime


class RunEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    at: datetime
    kind: str
    message: str


class Comparison(BaseModel):
    """One blind side-by-side item: an eval prompt with two answers in a random order."""

    model_config = ConfigDict(frozen=True)

    id: int
    run_id: str
    example_id: int | None
    messages: tuple[dict[str, str], ...]
    reference: str
    answer_a: str
    answer_b: str
    tuned_is: Literal["a", "b"]
    category: str | None = None
    response_type: str | None = None
    judge_winner: Literal["tuned", "base", "tie"] | None = Field(None, description="the automatic judge's verdict")
    judge_detail: dict[str, Any] | None = Field(None, description="its scores and checks")

    # What a reviewer must not see before voting.
    HIDDEN: ClassVar[set[str]] = {"tuned_is", "judge_winner", "judge_detail"}


class VoteInput(BaseModel):
    """A reviewer's judgement of one comparison."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    choice: Choice
    rubric: dict[str, int] = Field(default_factory=dict)
    comment: str = ""

    @field_validator("rubric")
    @classmethod
    def _scores(cls, value: dict[str, int]) -> dict[str, int]:
        for key, score in value.items():
            if not 1 <= score <= 5:
                raise ValueError(f"rubric score {key}={score} must be between 1 and 5")
        return value


class WinRate(BaseModel):
    """The tuned model against the base over reviewers' votes (ties count half)."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    votes: int
    tuned_wins: int
    base_wins: int
    ties: int
    win_rate: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float = 0.95


class LossFigures(BaseModel):
    """One model's loss on the eval split: mean loss per assistant token, and its exponential."""

    model_config = ConfigDict(frozen=True)

    eval_loss: float | None
    perplexity: float | None


class GenerationSettings(BaseModel):
    """How the compared answers were generated."""

    model_config = ConfigDict(frozen=True)

    max_new_tokens: int
    decoding: str = "greedy"
    engine: str | None = Field(None, description="transformers (batched, KV cache) or vllm")
    answers_per_s: float | None = None


class EvaluationReport(BaseModel):
    """What evaluating a completed run found: base against tuned on the eval split, and the blind comparisons written."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    snapshot_id: str
    examples: int
    base: LossFigures
    tuned: LossFigures
    generation: GenerationSettings
    eval_loss_drop: float | None = Field(None, description="(base - tuned) / base eval loss")
    comparisons: int
    by_category: list[CategoryFigures] = Field(default_factory=list, description="worst category first")
    by_response_type: list[ResponseTypeFigures] = Field(default_factory=list, description="worst response type first")
    judge: JudgeSummary | None = None
    canary: CanaryFigures | None = None


Winner = Literal["tuned", "base", "tie"]


class VoteResult(BaseModel):
    """A recorded blind vote, and which model won it (revealed once the vote is cast)."""

    model_config = ConfigDict(frozen=True)

    id: int
    comparison_id: int
    reviewer: str
    choice: Choice
    rubric: dict[str, int] = Field(default_factory=dict)
    comment: str = ""
    created_at: datetime
    winner: Winner


class ModelCard(BaseModel):
    """A tuned run's card: lineage, config, training metrics, its evaluation and the blind win rate.

    Served as JSON by `goldsmith serve-model`; `evaluation` is None until the run is evaluated.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    kind: Literal["adapter"] = "adapter"
    name: str
    status: RunStatus
    snapshot: dict[str, str | None]
    base_model: str
    base_model_path: str | None
    config_hash: str
    code_version: str
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    config: TrainConfig
    lineage: dict[str, Any]
    metrics: dict[str, Any]
    evaluation: EvaluationReport | None
    win_rate: WinRate
    adapter: str
    merged: str | None
    gate: GateResult | None = Field(None, description="the promotion gate's figures for this run (once evaluated)")
    promoted: bool = Field(False, description="this run is the team's current model")


class BaseModelCard(BaseModel):
    """The card of a base model served as it is (no run, no adapter)."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: Literal["base"] = "base"
    base_model: str
    base_model_path: str
