"""Reviews: a reviewer's decision on one version of an example, with rubric scores."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Decision = Literal["approve", "reject", "request_changes"]
DECISIONS: tuple[str, ...] = get_args(Decision)
RUBRIC = ("accuracy", "tone", "compliance", "completeness")

Score = Field(ge=1, le=5, description="1 (poor) to 5 (excellent)")


class Rubric(BaseModel):
    """Scores 1-5 for the four rubric criteria."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accuracy: int = Score
    tone: int = Score
    compliance: int = Score
    completeness: int = Score


class ReviewInput(BaseModel):
    """What a reviewer submits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Decision
    rubric: Rubric | None = None
    comment: str = ""

    @model_validator(mode="after")
    def _explain_refusals(self) -> ReviewInput:
        if self.decision != "approve" and not self.comment.strip():
            raise ValueError(f"a '{self.decision}' decision needs a comment that tells the author what is wrong")
        return self


class Review(ReviewInput):
    """A stored review."""

    id: int
    example_id: int
    example_version: int
    reviewer: str
    created_at: datetime


class ReviewerStats(BaseModel):
    """One reviewer's throughput and agreement."""

    model_config = ConfigDict(frozen=True)

    reviewer: str
    reviews: int
    last_7_days: int
    decisions: dict[str, int]
    double_reviewed: int  # examples this reviewer reviewed together with someone else
    agreed: int


class AgreementReport(BaseModel):
    """Agreement over double-reviewed examples, and each reviewer's throughput."""

    model_config = ConfigDict(frozen=True)

    double_reviewed: int
    agreed: int
    reviewers: list[ReviewerStats] = Field(default_factory=list)

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.double_reviewed if self.double_reviewed else None
