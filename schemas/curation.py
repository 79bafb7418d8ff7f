"""Reports of the curation engine: duplicates, coverage, gap topics and authoring tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from schemas.example import Example
from schemas.reports import Rejection

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


class DuplicateResolution(BaseModel):
    """What a lead decided about a duplicate cluster, and what it archived."""

    model_config = ConfigDict(frozen=True)

    resolution_id: int
    resolution: Resolution
    example_ids: list[int]
    kept_id: int | None
    archived: list[int] = Field(default_factory=list)


class LiveMatch(BaseModel):
    """One existing example a draft resembles."""

    model_config = ConfigDict(frozen=True)

    kind: DuplicateKind
    example_id: int
    similarity: float
    status: str
    prompt: str


class DraftCheck(BaseModel):
    """What the checks found in a draft: the same for the Write page and `goldsmith check`."""

    model_config = ConfigDict(frozen=True)

    matches: list[LiveMatch]  # existing examples it repeats, strongest first
    personal_data: list[str] = Field(default_factory=list)  # one sentence each, with the fix
    guideline_warnings: list[str] = Field(default_factory=list)
    missing_tags: list[str] = Field(default_factory=list)  # tag keys left empty
    tokens: int  # estimated (one token per 3 characters)
    max_tokens: int
    note: str = ""  # a check that could not run, and why

    @computed_field  # type: ignore[prop-decorator]
    @property
    def over_limit(self) -> bool:
        return self.tokens > self.max_tokens

    @computed_field  # type: ignore[prop-decorator]
    @property
    def warnings(self) -> list[str]:
        """Every finding but the duplicates, as sentences (personal data, guidelines, missing tags, length)."""
        found = [*self.personal_data, *self.guideline_warnings]
        if self.missing_tags:
            found.append(
                f"Tag the example with its {', '.join(k.replace('_', ' ') for k in self.missing_tags)} so coverage counts it."
            )
        if self.over_limit:
            found.append(f"The conversation is about {self.tokens} tokens; shorten it below {self.max_tokens}.")
        return found


class SavedExample(BaseModel):
    """An example just saved (or submitted) and what the checks found in it."""

    model_config = ConfigDict(frozen=True)

    example: Example
    checks: DraftCheck


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


class QuestionImportReport(BaseModel):
    """What importing a log of real questions did: every record added, known already, or rejected."""

    model_config = ConfigDict(frozen=True)

    file: str
    imported: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = Field(default_factory=list)


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
