"""Reports of the curation engine: duplicates, coverage, gap topics and authoring tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DuplicateKind = Literal["exact", "near", "semantic"]
Resolution = Literal["keep_one", "merge", "intended_variation"]


class DuplicateCluster(BaseModel):
    """Examples that repeat each other; `similarity` is the weakest link inside the cluster."""

    model_config = ConfigDict(frozen=True)

    kind: DuplicateKind
    ids: list[int]
    source_ids: list[str | None]
    similarity: float


class DedupReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    clusters: list[DuplicateCluster]
    examples: int
    methods: list[str]
    thresholds: dict[str, float]
    computed: dict[str, int] = Field(default_factory=dict)  # new signatures / embeddings made this run (the rest came from cache)


class LiveMatch(BaseModel):
    """One existing example a draft resembles."""

    model_config = ConfigDict(frozen=True)

    kind: DuplicateKind
    example_id: int
    similarity: float
    status: str
    prompt: str


class CoverageCell(BaseModel):
    model_config = ConfigDict(frozen=True)

    category: str
    response_type: str
    target: int | None
    approved: int
    by_knowledge_area: dict[str, int]

    @property
    def gap(self) -> int:
        return max(0, (self.target or 0) - self.approved)


class QuestionMatch(BaseModel):
    model_config = ConfigDict(frozen=True)

    question_id: int
    text: str
    nearest_example_id: int | None
    similarity: float
    covered: bool


class GapTopic(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int | None = None
    label: str
    question_ids: list[int]
    representatives: list[str]
    similarity: float  # mean nearest-example similarity of its questions: how far the data is from them


class MapPoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["example", "question"]
    id: int
    x: float
    y: float
    label: str
    covered: bool | None = None


class CoverageReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    cells: list[CoverageCell]
    questions: int = 0
    covered_questions: int = 0
    threshold: float | None = None
    question_matches: list[QuestionMatch] = Field(default_factory=list)
    gap_topics: list[GapTopic] = Field(default_factory=list)
    map: list[MapPoint] = Field(default_factory=list)


class Task(BaseModel):
    """An authoring task: a real question an author should answer with a new example."""

    model_config = ConfigDict(frozen=True)

    id: int
    question_id: int
    question: str
    gap_topic_id: int | None
    assignee: str
    status: Literal["open", "done"]
    example_id: int | None
    created_by: str
    created_at: datetime
    version: int
    note: str | None = None
