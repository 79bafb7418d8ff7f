"""Reviews: a reviewer's decision on one version of an example, with rubric scores; what the review
page shows about an example (its checks, the author's reason, readable diffs) and the queue's filters."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from schemas.curation import DraftCheck, LiveMatch
from schemas.example import Example

Decision = Literal["approve", "reject", "request_changes"]
DECISIONS: tuple[str, ...] = get_args(Decision)
RUBRIC = ("accuracy", "tone", "compliance", "completeness")
# Words people use for decisions and statuses (the code's names stay in the store and the CLI's --json).
PLAIN_WORDS = {
    "approve": "approve",
    "reject": "reject",
    "request_changes": "request changes",
    "draft": "draft",
    "submitted": "waiting for review",
    "approved": "approved",
    "rejected": "rejected",
    "changes_requested": "changes requested",
    "archived": "archived",
}
DECIDED = {"approve": "approved", "reject": "rejected", "request_changes": "changes requested"}

Score = Field(default=None, ge=1, le=5, description="1 (poor) to 5 (excellent); None: not scored")


def plain(word: str) -> str:
    """A decision or status in the words a reviewer or author uses ('request_changes' -> 'request changes')."""
    return PLAIN_WORDS.get(word, word.replace("_", " "))


class Rubric(BaseModel):
    """Scores 1-5 for the four rubric criteria; a criterion the reviewer did not score stays None."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accuracy: int | None = Score
    tone: int | None = Score
    compliance: int | None = Score
    completeness: int | None = Score

    @property
    def scores(self) -> dict[str, int]:
        """Only the criteria the reviewer scored, in rubric order."""
        return {k: v for k in RUBRIC if (v := getattr(self, k)) is not None}


class ReviewInput(BaseModel):
    """What a reviewer submits: a decision they chose, the scores they gave, a comment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Decision
    rubric: Rubric | None = None
    comment: str = ""

    @model_validator(mode="before")
    @classmethod
    def _chosen(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if data.get("decision") in (None, ""):
                raise ValueError("choose a decision (approve, request changes or reject) before recording the review")
            rubric = data.get("rubric")
            scores = rubric.scores if isinstance(rubric, Rubric) else rubric if isinstance(rubric, dict) else None
            if scores is not None and all(v is None for v in scores.values()):
                data = {**data, "rubric": None}  # nothing scored: no rubric, not four made-up numbers
        return data

    @model_validator(mode="after")
    def _explain_refusals(self) -> ReviewInput:
        if self.decision != "approve" and not self.comment.strip():
            raise ValueError(f"'{plain(self.decision)}' needs a comment that tells the author what is wrong")
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


# ------------------------------------------------------------------------------------------ the queue

QueueFlag = Literal["exact_duplicate", "over_limit", "missing_tags", "has_reason", "model_draft", "second_review"]
QUEUE_FLAGS: tuple[str, ...] = get_args(QueueFlag)
FLAG_WORDS = {
    "exact_duplicate": "exact duplicate",
    "over_limit": "over the token limit",
    "missing_tags": "missing tags",
    "has_reason": "submitted with a reason",
    "model_draft": "started as a model draft",
    "second_review": "needs a second review",
}


class ReviewQueueFilter(BaseModel):
    """Which waiting examples a reviewer wants to see: every condition given must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str | None = None
    author: str | None = None
    waiting_days: int | None = Field(default=None, ge=0, description="waiting at least this many days")
    flags: tuple[QueueFlag, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.category or self.author or self.waiting_days or self.flags)


class ReviewQueue(BaseModel):
    """Where a reviewer's queue stands: every count comes from the same query, so they always agree."""

    model_config = ConfigDict(frozen=True)

    waiting: int  # waiting for this reviewer, no filter
    matching: int  # of those, the ones the filter keeps
    skipped: int  # of the matching ones, skipped in this sitting
    next: Example | None  # the one that has waited longest among the matching, unskipped ones

    @computed_field  # type: ignore[prop-decorator]
    @property
    def left(self) -> int:
        return self.matching - self.skipped


# ------------------------------------------------------------------------------------------ what the reviewer sees


class DiffSegment(BaseModel):
    """A run of words that stayed, was added or was removed."""

    model_config = ConfigDict(frozen=True)

    op: Literal["same", "added", "removed"]
    text: str


class DiffTurn(BaseModel):
    """One turn (or the tags) of two versions, word by word."""

    model_config = ConfigDict(frozen=True)

    label: str  # "User, turn 1", "Assistant, turn 1", "Tags"
    segments: list[DiffSegment]

    @property
    def changed(self) -> bool:
        return any(s.op != "same" for s in self.segments)


class TextDiff(BaseModel):
    """Two versions of an example side by side, as words a person reads (not unified-diff hunks)."""

    model_config = ConfigDict(frozen=True)

    before: str  # "version 2, reviewed by rita: changes requested"
    after: str  # "version 3 (now)"
    turns: list[DiffTurn]

    @property
    def changed(self) -> bool:
        return any(t.changed for t in self.turns)


class Submission(BaseModel):
    """What the checks found when an example went to review, and the reason its author gave."""

    model_config = ConfigDict(frozen=True)

    example_id: int
    version: int
    submitted_by: str
    submitted_at: datetime
    reason: str = ""
    problems: list[str] = Field(default_factory=list)  # what needed the reason (exact duplicate, over the limit)
    checks: DraftCheck


class ReviewBrief(BaseModel):
    """Everything the review page shows about one example, from one service call."""

    model_config = ConfigDict(frozen=True)

    example: Example
    checks: DraftCheck  # the same checks the author saw: duplicates, tokens, tags, guidelines, personal data
    problems: list[str]  # what makes it unsubmittable without a reason (now)
    reason: str  # the author's reason for sending it anyway ("" when none)
    exact_duplicates: list[LiveMatch]  # approved or waiting examples with the same text
    draft_diff: TextDiff | None  # the model's draft against the response, for a model-drafted example
    review_diff: TextDiff | None  # against the version the last review judged
    earlier_reviews: list[Review]
    double_reviewed: bool  # in the overlap share: two independent reviews
    first_review_given: bool  # the first of the two is in; this review decides
