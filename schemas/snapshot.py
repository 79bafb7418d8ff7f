"""Snapshots: immutable, content-addressed training sets cut from approved examples."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Snapshot(BaseModel):
    """A snapshot as recorded in the store; its files live in `path`."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    path: str
    created_by: str
    created_at: datetime
    seed: int
    eval_fraction: float
    filter: dict[str, Any]
    train: int
    eval: int
    schema_version: int
    manifest_sha256: str


class FailingExample(BaseModel):
    """One example an expectation failed on: its id, its split and the value that failed."""

    model_config = ConfigDict(frozen=True)

    id: int
    split: Literal["train", "eval"]
    value: Any = None


class ExpectationResult(BaseModel):
    """One expectation of the snapshot suite: whether it held, and where it did not."""

    model_config = ConfigDict(frozen=True)

    name: str
    severity: Literal["critical", "warning"]
    success: bool
    column: str
    unexpected_count: int = 0  # always complete
    unexpected_examples: list[FailingExample] = Field(default_factory=list)  # the first few, by id and split
    description: str  # what it means and how to fix a failure, in a lead's words


class ValidationReport(BaseModel):
    """The expectation suite's verdict on a snapshot (saved as validation.json beside its files)."""

    model_config = ConfigDict(frozen=True)

    success: bool  # no critical expectation failed
    critical_failures: list[str]
    warnings: list[str]
    expectations: list[ExpectationResult]
    counts: dict[str, int]
    great_expectations_version: str
    options: dict[str, Any]

    def failed(self, severity: str = "critical") -> list[ExpectationResult]:
        return [e for e in self.expectations if e.severity == severity and not e.success]


class SnapshotFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    sha256: str
    examples: int


class SnapshotCounts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    train: int
    eval: int
    groups_kept_together: int = 0
    model_drafted: int = 0
    train_tags: dict[str, dict[str, int]] = Field(default_factory=dict)
    eval_tags: dict[str, dict[str, int]] = Field(default_factory=dict)


class ValidationOverride(BaseModel):
    model_config = ConfigDict(frozen=True)

    by: str
    reason: str


class ManifestValidation(BaseModel):
    model_config = ConfigDict(frozen=True)

    success: bool
    critical_failures: list[str]
    warnings: list[str]
    override: ValidationOverride | None = None


class SnapshotManifest(BaseModel):
    """manifest.json: what a snapshot folder holds, checked against its files."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str
    name: str
    created_by: str
    created_at: str
    seed: int
    eval_fraction: float
    filter: dict[str, Any]
    schema_version: int
    files: dict[str, SnapshotFile]
    counts: SnapshotCounts
    validation: ManifestValidation | None = None
