"""Reports of production monitoring: what the deployed model was asked, how well the approved data
covers it, and which answers customers rated badly."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.example import Message
from schemas.reports import Rejection

Period = Literal["day", "week", "month"]
Thumbs = Literal["up", "down"]
BAD_RATING = 2  # a 1-5 rating at or below this is bad (as is a thumbs down)


class LogImportReport(BaseModel):
    """What `goldsmith logs import` did. Every record is imported, a duplicate, or rejected with its reason."""

    model_config = ConfigDict(frozen=True)

    file: str
    format: str
    imported: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = Field(default_factory=list)


class PeriodTrend(BaseModel):
    """One day, week (from Monday) or month of production traffic."""

    model_config = ConfigDict(frozen=True)

    start: date
    questions: int
    covered: int
    coverage: float | None  # covered / questions; None for a period without traffic
    rated: int  # conversations with a rating or a thumbs
    bad: int  # rated 1-2 or thumbs down


class BadAnswer(BaseModel):
    """A production answer the customer rated badly."""

    model_config = ConfigDict(frozen=True)

    log_id: int
    received_at: datetime | None
    question: str
    answer: str
    messages: list[Message]
    rating: int | None
    thumbs: Thumbs | None
    comment: str | None = None  # the customer's words, when the log has them
    similarity: float  # to the nearest approved example
    covered: bool
    task_id: int | None = None  # the authoring task made from it, if any

    @property
    def verdict(self) -> str:
        """The customer's verdict in words: "2/5", "thumbs down", or both."""
        parts = ([f"{self.rating}/5"] if self.rating is not None else []) + (["thumbs down"] if self.thumbs == "down" else [])
        return " and ".join(parts)


class ProductionGap(BaseModel):
    """A topic among the latest period's uncovered questions."""

    model_config = ConfigDict(frozen=True)

    label: str
    log_ids: list[int]
    representatives: list[str]
    similarity: float  # mean similarity of its questions to their nearest approved example
    earlier: int  # uncovered questions of earlier periods on the same topic (0: the topic is new)


class MonitorReport(BaseModel):
    """Production traffic per period against the approved data, the latest period's gaps and the bad answers."""

    model_config = ConfigDict(frozen=True)

    period: Period
    threshold: float
    logs: int
    trend: list[PeriodTrend] = Field(default_factory=list)
    latest: date | None = None  # the start of the period the gap topics come from
    gap_topics: list[ProductionGap] = Field(default_factory=list)
    bad_answers: list[BadAnswer] = Field(default_factory=list)  # newest first
