"""Shared fixtures: a real SQLite file per test and a small team with every role."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from curation.examples import workflow
from curation.people import users
from curation.store import Store
from schemas import Example, ExampleContent, ReviewInput, Rubric, Tags

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = ROOT / "sample_data"
SHARED_DATA = ROOT.parent / "shared" / "data"  # LLaMA-Factory's files; CI lays shared/ beside the clone
needs_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "alpaca_en_demo.json").exists(), reason=f"the public sample files are not at {SHARED_DATA}"
)
PASSWORD = "correct horse battery"
TEAM = {"ada": "admin", "lee": "lead", "rita": "reviewer", "rob": "reviewer", "amy": "author", "al": "author"}
GOOD_RUBRIC = Rubric(accuracy=5, tone=4, compliance=5, completeness=4)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "goldsmith.db"


@pytest.fixture
def store(db_path: Path) -> Store:
    s = Store(db_path)
    yield s
    s.close()


@pytest.fixture
def team(store: Store) -> Store:
    """The store with one admin, one lead, two reviewers and two authors (password PASSWORD)."""
    for name, role in TEAM.items():
        users.add_user(store, None if role == "admin" else "ada", name, role, password=PASSWORD)
    return store


def content(prompt: str = "How do I file a claim?", response: str = "Here is how: 1. Call us.", **tags: str) -> ExampleContent:
    return ExampleContent.from_pair(prompt, response, tags=Tags(**tags))


def make_example(
    store: Store, status: str = "draft", author: str = "amy", reviewer: str = "rita", reason: str | None = "a test", **kw: str
) -> Example:
    """Create an example and walk it to `status` through the real workflow.

    `reason` goes with the submission (tests often submit the same conversation twice, which needs one).
    """
    example = workflow.create_example(store, author, content(**kw))
    if status == "draft":
        return example
    example = workflow.submit_example(store, author, example.id, example.version, reason=reason)
    if status == "submitted":
        return example
    decision = {"approved": "approve", "rejected": "reject", "changes_requested": "request_changes", "archived": "approve"}[
        status
    ]
    workflow.review_example(
        store,
        reviewer,
        example.id,
        example.version,
        ReviewInput(decision=decision, rubric=GOOD_RUBRIC, comment="" if decision == "approve" else "fix it"),
    )
    example = store.get_example(example.id)
    if status == "archived":
        example = workflow.archive_example(store, "lee", example.id, example.version)
    return example


def dump(store: Store) -> dict[str, list[tuple]]:
    """Every row of every table, to prove that a refused action changed nothing."""
    return {
        t: sorted(map(tuple, store.conn.execute(f"SELECT * FROM [{t}]").fetchall()), key=repr) for t in store.db.table_names()
    }
