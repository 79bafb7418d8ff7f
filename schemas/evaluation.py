"""Evaluation contracts beyond the eval loss: per-scenario figures, the automatic judge, the canary,
the promotion gate, the cost estimate, and the comparisons of base models and of runs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Winner = Literal["tuned", "base", "tie"]


class Agreement(BaseModel):
    """How often the automatic judge picked what people picked, over the comparisons both judged."""

    model_config = ConfigDict(frozen=True)

    votes: int = Field(description="people's votes on comparisons the judge also judged")
    agreed: int
    share: float | None = Field(description="agreed / votes")
    kappa: float | None = Field(description="Cohen's kappa over tuned / base / tie (agreement beyond chance)")


class JudgeSummary(BaseModel):
    """The automatic judge's verdicts over the eval prompts: the tuned model against the base (ties count half)."""

    model_config = ConfigDict(frozen=True)

    method: str = Field(description="offline:MODEL (reference similarity) or llm:MODEL (a language model judge)")
    wins: int
    losses: int
    ties: int
    win_rate: float | None
    interval: tuple[float, float] | None = Field(description="95% Wilson interval of the win rate")
    agreement: Agreement | None = Field(None, description="against people's blind votes, when there are any")
    failed_sanity: dict[str, int] = Field(
        default_factory=dict, description="answers that failed the length/refusal/repetition check, per model"
    )


class GroupFigures(BaseModel):
    """One scenario of the eval split: base against tuned on its examples."""

    model_config = ConfigDict(frozen=True)

    examples: int
    base_loss: float | None
    tuned_loss: float | None
    judge_win_rate: float | None = None
    judge_interval: tuple[float, float] | None = None

    @property
    def loss_change(self) -> float | None:
        """(tuned - base) / base: negative is better."""
        if self.base_loss is None or self.tuned_loss is None or not self.base_loss:
            return None
        return (self.tuned_loss - self.base_loss) / self.base_loss


class CategoryFigures(GroupFigures):
    category: str


class ResponseTypeFigures(GroupFigures):
    response_type: str


class CanaryFigures(BaseModel):
    """The forgetting check: loss on general text outside the team's domain, base against tuned."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(description="the canary file")
    examples: int
    base_loss: float | None
    tuned_loss: float | None
    change: float | None = Field(description="(tuned - base) / base: a rise means the tuned model lost general ability")
    threshold: float
    flagged: bool = Field(description="the rise is beyond the threshold")


# ------------------------------------------------------------------------------------------ promotion


class PromotionGate(BaseModel):
    """What a run must show to become the team's current model (each part can be loosened or tightened)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    require_lower_eval_loss: bool = Field(True, description="the tuned eval loss must be below the base model's")
    min_judge_lower_bound: float | None = Field(
        0.5, ge=0, le=1, description="the judge win rate's interval must start above this (None: no judge needed)"
    )
    max_canary_rise: float | None = Field(0.05, ge=0, description="the canary loss may rise by at most this share")
    category_margin: float | None = Field(
        0.0, ge=0, description="no category's tuned eval loss may exceed the base's by more than this share"
    )


class GateCheck(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    passed: bool
    detail: str


class GateResult(BaseModel):
    """The gate applied to one run's evaluation."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    passed: bool
    checks: list[GateCheck]
    gate: PromotionGate

    @property
    def failed(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]


class Promotion(BaseModel):
    """A run marked as the team's current model."""

    model_config = ConfigDict(frozen=True)

    id: int
    run_id: str
    promoted_by: str
    promoted_at: datetime
    gate: GateResult


# ------------------------------------------------------------------------------------------ before training


class CostEstimate(BaseModel):
    """What a run would do, worked out without training it: its data, steps, time and memory here."""

    model_config = ConfigDict(frozen=True)

    snapshot_id: str
    base_model: str
    config_hash: str
    examples: int = Field(description="training examples that fit (the skipped ones are counted apart)")
    skipped: int
    truncated: int
    tokens: int = Field(description="training tokens after the chat template, one epoch")
    label_tokens: int = Field(description="of which carry loss (assistant tokens)")
    rows: int = Field(description="rows after packing, over the whole run")
    steps: int = Field(description="optimizer steps")
    epochs: float
    trained_tokens: int = Field(description="tokens over all steps")
    device: str
    precision: str
    probe_tokens: int = Field(description="tokens of the measured probe steps")
    probe_seconds: float
    tokens_per_s: float = Field(description="training speed measured by the probe on this machine")
    estimated_seconds: float = Field(description="training steps plus the evaluations, from the probe's speed")
    peak_memory_mb: float = Field(description="peak memory of the probe (its largest micro-batch)")
    notes: list[str] = Field(default_factory=list)


class SampleAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt: str
    reference: str
    answer: str


class CandidateModel(BaseModel):
    """One base model scored on a snapshot's eval split."""

    model_config = ConfigDict(frozen=True)

    base_model: str
    path: str | None = None
    parameters: int | None = None
    load_memory_mb: float | None = Field(None, description="resident memory the loaded model added")
    load_seconds: float | None = None
    eval_loss: float | None = None
    tokens_per_s: float | None = Field(None, description="generated tokens per second on this machine")
    samples: list[SampleAnswer] = Field(default_factory=list)
    error: str | None = Field(None, description="why it could not be scored")


class ModelComparison(BaseModel):
    model_config = ConfigDict(frozen=True)

    snapshot_id: str
    examples: int
    device: str
    candidates: list[CandidateModel]


class LeaderboardRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    name: str
    base_model: str
    evaluated: bool
    base_eval_loss: float | None
    eval_loss: float | None
    eval_loss_drop: float | None
    judge_method: str | None = None
    judge_win_rate: float | None = None
    judge_interval: tuple[float, float] | None = None
    canary_change: float | None = None
    best_categories: list[str] = Field(default_factory=list)
    promoted: bool = False


class Leaderboard(BaseModel):
    """Finished runs on one snapshot, best first (judge win rate, then eval loss)."""

    model_config = ConfigDict(frozen=True)

    snapshot_id: str
    rows: list[LeaderboardRow]
    best_by_category: dict[str, str] = Field(default_factory=dict, description="category -> the run best at it")
