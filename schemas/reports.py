"""Query inputs and report outputs shared by the store, the CLI and the app."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.example import Status
from schemas.user import normalise_username

T = TypeVar("T")


class ExampleFilter(BaseModel):
    """Which examples to list: every field narrows the result; None means any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query: str | None = None
    status: Status | None = None
    author: str | None = None
    category: str | None = None
    response_type: str | None = None
    knowledge_area: str | None = None
    label: str | None = None
    created_from: date | None = None  # written on or after this day (UTC)
    created_to: date | None = None  # written on or before this day (UTC)
    page: int = Field(default=1, ge=1)
    page_size: int = Field(default=50, ge=1, le=500)

    @field_validator("author", mode="before")
    @classmethod
    def _author(cls, value: object) -> object:
        return normalise_username(value)

    @field_validator("query")
    @classmethod
    def _query(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


def created_bounds(flt: ExampleFilter) -> list[tuple[str, str]]:
    """SQL comparisons on created_at (ISO text) for the filter's date range: [(operator, value)]."""
    bounds = []
    if flt.created_from is not None:
        bounds.append((">=", flt.created_from.isoformat()))
    if flt.created_to is not None:
        bounds.append(("<", (flt.created_to + timedelta(days=1)).isoformat()))
    return bounds


class Page(BaseModel, Generic[T]):
    """One page of a result, with the total so a UI can draw a pager."""

    model_config = ConfigDict(frozen=True)

    items: list[T]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


class Stats(BaseModel):
    """Counts for the dashboard and `goldsmith stats`."""

    model_config = ConfigDict(frozen=True)

    examples: int
    by_status: dict[str, int]
    by_category: dict[str, int]
    by_author: dict[str, int]
    reviews: int
    reviews_by_decision: dict[str, int]
    users_by_role: dict[str, int]


class DemoSummary(BaseModel):
    """What `goldsmith demo` loaded."""

    model_config = ConfigDict(frozen=True)

    users: list[dict[str, str]]
    examples: int
    by_status: dict[str, int]
    production_logs: int = 0
    problems: list[str]


class Rejection(BaseModel):
    """A record an import could not take, or a warning about the file: where, and why.

    `line` is the file's line (1-based: a JSONL line, a CSV row's first line, or where a JSON
    array's element starts); `index` is the position in a JSON array (0-based), None elsewhere.
    """

    model_config = ConfigDict(frozen=True)

    line: int | None = None
    index: int | None = Field(default=None, exclude_if=lambda v: v is None)
    reason: str

    @property
    def place(self) -> str:
        """`line 12`, `record [3] (line 40)`: where a person finds it (an array's index counts from 0)."""
        if self.index is None:
            return f"line {self.line}" if self.line is not None else "the file"
        return f"record [{self.index}]" + (f" (line {self.line})" if self.line is not None else "")


class DuplicateOf(BaseModel):
    """A record that was already in the store (or earlier in the file), and the example it repeats."""

    model_config = ConfigDict(frozen=True)

    line: int | None = None
    index: int | None = Field(default=None, exclude_if=lambda v: v is None)
    example_id: int


class ImportReport(BaseModel):
    """What `goldsmith import` did. Nothing is dropped without being counted here."""

    model_config = ConfigDict(frozen=True)

    file: str
    format: str
    status: str
    imported: int = 0
    imported_as_rejected: int = 0  # of `imported`: KTO records labelled bad, stored as rejected examples
    duplicates: int = 0
    duplicate_of: list[DuplicateOf] = Field(default_factory=list)
    rejected: list[Rejection] = Field(default_factory=list)
    warnings: list[Rejection] = Field(default_factory=list)  # odd but harmless (nothing was lost)
