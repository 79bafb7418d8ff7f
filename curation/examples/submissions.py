"""Sending an example to review: what must not reach a reviewer without a word from its author.

An exact duplicate of an approved or waiting example, and a conversation over the model's token
limit, go to review only with a reason from their author. Each time an example goes to review,
what the checks found and that reason are kept with the version sent (the `submissions` table),
so the reviewer reads the same findings the author saw, and why the author sent it anyway.
"""

from __future__ import annotations

import json
from typing import Any

from curation.errors import InvalidInput
from curation.examples.guideline_rules import guideline_warnings
from curation.examples.personal_data import personal_data_warnings
from curation.store import Store, now
from schemas import (
    DEFAULT_MAX_TOKENS,
    TAG_KEYS,
    DraftCheck,
    Example,
    ExampleContent,
    LiveMatch,
    Submission,
    estimate_tokens,
    normalised_hash,
    one_line,
)

LIVE = ("approved", "submitted")  # an exact copy of one of these would train (or be judged) twice


def conversation_tokens(content: ExampleContent) -> int:
    """The token estimate checks and the queue use: every turn's text as the model sees it."""
    return estimate_tokens([m.text for m in content.messages])


def question_of(store: Store, example_id: int) -> str:
    """An example's first user turn, on one line: what a person recognises it by (not its system prompt)."""
    return one_line(store.get_example(example_id).prompt, 200)


def exact_duplicates(store: Store, content: ExampleContent, *, exclude_id: int | None = None) -> list[LiveMatch]:
    """Approved or waiting examples with the same text (case, spacing and punctuation aside), oldest first."""
    rows = store.conn.execute(
        f"SELECT id, status FROM examples WHERE norm_hash = ? AND status IN ({', '.join('?' * len(LIVE))}) "
        "AND id != ? ORDER BY id LIMIT 10",
        [normalised_hash(content.messages), *LIVE, -1 if exclude_id is None else exclude_id],
    ).fetchall()
    return [
        LiveMatch(kind="exact", example_id=i, similarity=1.0, status=status, prompt=question_of(store, i)) for i, status in rows
    ]


def quick_check(store: Store, content: ExampleContent, *, exclude_id: int | None = None) -> DraftCheck:
    """The checks that need no index or model: exact duplicates, personal data, guideline rules, tags, tokens."""
    return DraftCheck(
        matches=exact_duplicates(store, content, exclude_id=exclude_id),
        personal_data=personal_data_warnings(content),
        guideline_warnings=guideline_warnings(content),
        missing_tags=[k for k in TAG_KEYS if not getattr(content.tags, k)],
        tokens=conversation_tokens(content),
        max_tokens=DEFAULT_MAX_TOKENS,
    )


def problems_in(check: DraftCheck) -> list[str]:
    """What keeps an example from review unless its author gives a reason, one phrase each."""
    problems = []
    exact = [m for m in check.matches if m.kind == "exact" and m.status in LIVE]
    if exact:
        names = ", ".join(f"{m.example_id} ({'approved' if m.status == 'approved' else 'waiting for review'})" for m in exact)
        problems.append(f"it repeats example{'s' if len(exact) > 1 else ''} {names} word for word")
    if check.over_limit:
        problems.append(f"it is about {check.tokens:,} tokens, over the model's limit of {check.max_tokens:,}")
    return problems


def reason_needed(
    store: Store, content: ExampleContent, example_id: int | None, reason: str | None
) -> tuple[list[str], DraftCheck]:
    """The problems that need a reason and the checks behind them.

    Raises:
        InvalidInput: there are problems and no reason; says what they are and how to send it anyway.
    """
    check = quick_check(store, content, exclude_id=example_id)
    problems = problems_in(check)
    if problems and not (reason or "").strip():
        what = f"example {example_id}" if example_id is not None else "this example"
        where = (
            f"`goldsmith submit {example_id} --reason TEXT`" if example_id is not None else "`goldsmith submit ID --reason TEXT`"
        )
        raise InvalidInput(
            f"{what} cannot go to review as it is: {'; '.join(problems)}. Change it, or send it with a reason the "
            f"reviewer will read (the reason box under Submit on the Write page, or {where})"
        )
    return problems, check


def record_submission(
    store: Store, example: Example, actor: str, reason: str | None, problems: list[str], check: DraftCheck
) -> Submission:
    """Keep what the checks found when `example` (the version now in review) was sent, with the author's reason."""
    row: dict[str, Any] = {
        "example_id": example.id,
        "version": example.version,
        "submitted_by": actor,
        "submitted_at": now(),
        "reason": (reason or "").strip(),
        "problems": json.dumps(problems),
        "checks": check.model_dump_json(exclude={"over_limit", "warnings"}),
    }
    store.db.table("submissions").upsert(row, pk=("example_id", "version"))
    return _submission(row)


def attach_checks(store: Store, example: Example, check: DraftCheck) -> None:
    """Keep the full checks the author saw on submitting (near and semantic duplicates too) with the submission."""
    with store.write():
        store.db.table("submissions").update(
            (example.id, example.version), {"checks": check.model_dump_json(exclude={"over_limit", "warnings"})}
        )


def latest_submission(store: Store, example: Example) -> Submission | None:
    """What was recorded when this version of the example went to review (None: it got there another way)."""
    rows = list(store.db.table("submissions").rows_where("example_id = ? AND version = ?", [example.id, example.version]))
    return _submission(rows[0]) if rows else None


def _submission(row: dict[str, Any]) -> Submission:
    return Submission.model_validate(
        {**row, "problems": json.loads(row["problems"] or "[]"), "checks": DraftCheck.model_validate_json(row["checks"])}
    )
