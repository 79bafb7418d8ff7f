"""Load the bundled sample team into a fresh store: users, taxonomy, guidelines, reviewed examples.

The examples go through the real workflow (create, submit, review by a different person), so the
demo store's history and reviews look like a team's first weeks, not like a bulk insert.
"""

from __future__ import annotations

import json
import random
import secrets
from pathlib import Path

from curation.datasets.formats import Parsed, read_records
from curation.errors import GoldsmithError, InvalidInput
from curation.examples import taxonomy, workflow
from curation.insight import monitoring
from curation.people import users
from curation.store import Store
from schemas import DemoSummary, Rejection, ReviewInput, Rubric

DEMO_SEED = 7
_CHANGES = "Please soften the opening and point to the declarations page instead of confirming coverage."
_REJECT = "This answer breaks the compliance rules in the guidelines; rewrite it from scratch."


def _records(sample_dir: Path) -> list[tuple[str, Parsed]]:
    """(file name, parsed record) for every example in the sample files."""
    return [
        (path.name, parsed)
        for path in sorted((sample_dir / "examples").glob("*"))
        if path.suffix in (".jsonl", ".json", ".csv")
        for parsed in read_records(path)
    ]


_PLANTED_REASON = "Kept from the team's old FAQ sheet for the dedup walkthrough; the lead resolves the copies."


def _planted_violations(sample_dir: Path, kind: str = "guideline_violation") -> set[str]:
    ids: set[str] = set()
    for path in sorted((sample_dir / "planted").glob("*.json")):
        ids |= {i for item in json.loads(path.read_text(encoding="utf-8")) if item["kind"] == kind for i in item["ids"]}
    return ids


def bundled_sample_dir() -> Path:
    """The bundled sample data: sample_data/ in a checkout, the goldsmith_sample_data package when installed."""
    import goldsmith_sample_data

    return goldsmith_sample_data.ROOT


def load_demo(store: Store, sample_dir: Path | None = None, *, password: str | None = None) -> DemoSummary:
    """Fill an empty store with the sample team and its examples.

    Args:
        store: a store with no users yet.
        sample_dir: a folder shaped like sample_data/ (default: the bundled one).
        password: one password for every demo user; each gets a generated one when None.
    """
    sample_dir = sample_dir or bundled_sample_dir()
    if store.count_users():
        raise InvalidInput("the demo loads into an empty store; this one already has users")
    people = json.loads((sample_dir / "users.json").read_text(encoding="utf-8"))
    admin = next(p["username"] for p in people if p["role"] == "admin")
    created = []
    for person in sorted(people, key=lambda p: p["role"] != "admin"):  # the admin first: it adds the rest
        secret = password or secrets.token_urlsafe(9)
        users.add_user(
            store,
            None if person["username"] == admin else admin,
            person["username"],
            person["role"],
            display_name=person.get("display_name", ""),
            password=secret,
        )
        created.append({"username": person["username"], "role": person["role"], "password": secret})
    taxonomy.set_taxonomy(store, admin, json.loads((sample_dir / "taxonomy.json").read_text(encoding="utf-8")), 0)
    taxonomy.set_guidelines(store, admin, (sample_dir / "guidelines.md").read_text(encoding="utf-8"), 0)

    authors = [p["username"] for p in people if p["role"] == "author"]
    reviewers = [p["username"] for p in people if p["role"] == "reviewer"]
    violations = _planted_violations(sample_dir)
    copies = _planted_violations(sample_dir, "exact_duplicate")  # sent to review with their author's reason
    rng = random.Random(DEMO_SEED)
    problems: list[str] = []
    count = 0
    for n, (file_name, parsed) in enumerate(_records(sample_dir)):
        try:
            if parsed.content is None:
                raise InvalidInput(parsed.error or "unreadable")
            author, reviewer = authors[n % len(authors)], reviewers[n % len(reviewers)]
            example = workflow.create_example(
                store, author, parsed.content, source=f"sample:{file_name}", source_id=parsed.source_id, metadata=parsed.metadata
            )
            count += 1
            reason = _PLANTED_REASON if parsed.source_id in copies else None
            _walk(store, example.id, author, reviewer, rng.random(), parsed.source_id in violations, reason)
        except GoldsmithError as error:
            problems.append(f"{file_name} {Rejection(line=parsed.line, index=parsed.index, reason='').place}: {error}")
    logs = sample_dir / "production_logs.jsonl"  # the deployed assistant's conversations, for the Production page
    production = 0
    if logs.exists():
        lead = next(p["username"] for p in people if p["role"] == "lead")
        report = monitoring.import_logs(store, lead, logs)
        production = report.imported
        problems += [f"{logs.name} line {r.line}: {r.reason}" for r in report.rejected]
    stats = store.stats()
    return DemoSummary(users=created, examples=count, by_status=stats.by_status, production_logs=production, problems=problems)


def _walk(
    store: Store, example_id: int, author: str, reviewer: str, draw: float, violation: bool, reason: str | None = None
) -> None:
    """Move one example through a plausible review history, decided by `draw` in [0, 1)."""
    if draw >= 0.92 and not violation:
        return  # still a draft
    version = workflow.submit_example(store, author, example_id, 1, reason=reason).version
    if violation or draw >= 0.80:
        return  # waiting in the review queue: the planted violations are there for reviewers to catch
    if draw < 0.66:
        rubric = Rubric(accuracy=5, tone=4 + (draw < 0.4), compliance=5, completeness=4 + (draw < 0.2))
        workflow.review_example(store, reviewer, example_id, version, ReviewInput(decision="approve", rubric=rubric))
    elif draw < 0.74:
        rubric = Rubric(accuracy=4, tone=3, compliance=3, completeness=3)
        workflow.review_example(
            store, reviewer, example_id, version, ReviewInput(decision="request_changes", rubric=rubric, comment=_CHANGES)
        )
    else:
        rubric = Rubric(accuracy=2, tone=3, compliance=1, completeness=2)
        workflow.review_example(
            store, reviewer, example_id, version, ReviewInput(decision="reject", rubric=rubric, comment=_REJECT)
        )
