"""Goldsmith's data contracts: pydantic models shared by the store, CLI, app and training."""

from schemas.example import (
    STATUSES,
    TAG_KEYS,
    Example,
    ExampleContent,
    Message,
    Role,
    Status,
    Tags,
    check_conversation,
    content_hash,
)
from schemas.history import HistoryEntry
from schemas.reports import DemoSummary, ExampleFilter, ImportReport, Page, Rejection, Stats
from schemas.review import DECISIONS, RUBRIC, Decision, Review, ReviewInput, Rubric
from schemas.snapshot import Snapshot
from schemas.taxonomy import Target, Taxonomy
from schemas.user import ROLES, User, UserRole, normalise_username

__all__ = [
    "DECISIONS",
    "ROLES",
    "RUBRIC",
    "STATUSES",
    "TAG_KEYS",
    "Decision",
    "DemoSummary",
    "Example",
    "ExampleContent",
    "ExampleFilter",
    "HistoryEntry",
    "ImportReport",
    "Rejection",
    "Message",
    "Page",
    "Review",
    "Snapshot",
    "ReviewInput",
    "Role",
    "Rubric",
    "Stats",
    "Status",
    "Tags",
    "Target",
    "Taxonomy",
    "User",
    "UserRole",
    "check_conversation",
    "content_hash",
    "normalise_username",
]
