"""Model drafts in the store: a model may draft, only a person approves.

A drafted example carries its provenance (schemas.DraftProvenance) in `metadata["drafted_by"]`.
It cannot be submitted while its response is still the model's text (curation.examples.workflow
refuses), until its author edits it or accepts it as is (`accept_draft`); then it is reviewed
like any example. This module saves drafts as examples and measures how much of the approved
data started as drafts and how much people changed it. Generating a draft needs a model and
lives in training.drafts.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from typing import Any

from pydantic import ValidationError

from curation.errors import InvalidInput, invalid
from curation.examples.diffs import word_segments
from curation.examples.taxonomy import check_tags
from curation.examples.workflow import SUBMITTABLE, create_example, state_error
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store, now
from schemas import DiffTurn, Example, ExampleContent, Tags, TextDiff
from schemas.drafts import DraftedShare, DraftProvenance


def provenance_of(value: DraftProvenance | dict[str, Any]) -> DraftProvenance:
    """A draft's provenance as the model (InvalidInput when it lacks the model's text or settings)."""
    if isinstance(value, DraftProvenance):
        return value
    try:
        return DraftProvenance.model_validate(value)
    except ValidationError as error:
        if not isinstance(value, dict) or not str(value.get("draft") or "").strip():
            raise InvalidInput("the provenance holds no draft text; get one from draft_response first") from None
        raise invalid(error, "draft provenance") from None


def _with_draft(prompt: list[dict[str, str]], provenance: DraftProvenance, tags: Tags | None) -> ExampleContent:
    turns = [{"role": m["role"], "content": m["content"]} for m in prompt]
    return ExampleContent.model_validate(
        {"messages": [*turns, {"role": "assistant", "content": provenance.draft}], "tags": tags or Tags()}
    )


def create_drafted_example(
    store: Store,
    actor: str,
    messages_with_prompt: list[dict[str, str]],
    provenance: DraftProvenance | dict[str, Any],
    *,
    tags: Tags | None = None,
    author: str | None = None,
    source: str = "manual",
    source_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Example:
    """Save a model's draft as a new draft example, marked as model-drafted.

    Args:
        store: the store.
        actor: who saves it (its author, unless `author` names another).
        messages_with_prompt: the conversation up to the user's turn the draft answers.
        provenance: `draft_response(...).provenance`; its `draft` becomes the final assistant turn.
        tags: the example's tags.
        author: the author the example is assigned to (a lead drafting for an author).
        source, source_id, metadata: where it came from (metadata gains `drafted_by`).
    """
    mark = provenance_of(provenance)
    return create_example(
        store,
        actor,
        _with_draft(messages_with_prompt, mark, tags),
        author=author,
        source=source,
        source_id=source_id,
        metadata={**(metadata or {}), "drafted_by": mark.model_dump(mode="json")},
    )


def redraft_example(
    store: Store,
    actor: str,
    example_id: int,
    expected_version: int | None,
    messages_with_prompt: list[dict[str, str]],
    provenance: DraftProvenance | dict[str, Any],
    *,
    tags: Tags | None = None,
) -> Example:
    """Replace an editable draft's conversation with `messages_with_prompt` plus the model's draft.

    The example becomes model-drafted (a previous acceptance no longer counts). Only drafts and
    changes_requested examples take a draft: an approved one would go straight back to review.
    """
    mark = provenance_of(provenance)
    with store.write():
        user = acting_user(store, actor)
        example = store.get_example(example_id)
        require(user, "edit_example", example)
        if example.status not in SUBMITTABLE:
            raise InvalidInput(
                f"example {example.id} is {example.status}; only draft or changes_requested examples can take a model's draft"
            )
        content = _with_draft(messages_with_prompt, mark, tags or example.tags)
        check_tags(store, content.tags)
        metadata = {k: v for k, v in example.metadata.items() if k != "draft_accepted"}
        changes = {
            "messages": content.messages,
            "tags": content.tags,
            "metadata": metadata | {"drafted_by": mark.model_dump(mode="json")},
        }
        version = example.version if expected_version is None else expected_version
        return store.update_example(example_id, version, user.username, "draft_with_model", changes)


def accept_draft(store: Store, actor: str, example_id: int, expected_version: int | None = None) -> Example:
    """Accept a model's draft response as is, so the example can be submitted (its author or a lead).

    Records `draft_accepted: {"by", "at"}` in the example's metadata, with a history row.

    Args:
        expected_version: the version the author read (None: the current one).

    Raises:
        InvalidInput: the example is not a model draft, is not a draft or changes_requested
            example, or its response already differs from the draft (submit it instead).
    """
    with store.write():
        user = acting_user(store, actor)
        example = store.get_example(example_id)
        require(user, "submit_example", example)
        if example.drafted_by is None:
            raise InvalidInput(f"example {example.id} was written by a person, not drafted by a model; no draft to accept")
        if example.status not in SUBMITTABLE:
            raise state_error(example, "accepted as drafted", SUBMITTABLE)
        if example.metadata.get("draft_accepted"):
            return example
        if not example.draft_untouched:
            raise InvalidInput(f"example {example.id}'s response already differs from the model's draft; submit it as it is")
        metadata = {**example.metadata, "draft_accepted": {"by": user.username, "at": now()}}
        version = example.version if expected_version is None else expected_version
        return store.update_example(example_id, version, user.username, "accept_draft", {"metadata": metadata})


# ------------------------------------------------------------------------------------------ measuring drafts


def edit_distance(draft: str, final: str) -> float:
    """Normalised edit distance in [0, 1]: 1 - difflib's similarity ratio (0: unchanged, 1: rewritten)."""
    return 1.0 - difflib.SequenceMatcher(None, draft, final, autojunk=False).ratio()


def draft_diff(example: Example) -> TextDiff | None:
    """The current response against the model's draft, word by word (None: not model-drafted)."""
    mark = example.drafted_by
    if mark is None:
        return None
    draft = str(mark.get("draft", ""))
    turn = DiffTurn(label="The last response", segments=word_segments(draft, example.response))
    return TextDiff(before="the model's draft", after="the response now", turns=[turn])


def draft_label(mark: dict[str, Any]) -> str:
    """`smollm2-135m` or `smollm2-135m + run abc123`: which model wrote a draft."""
    model = str(mark.get("model") or "a model")
    return f"{model} + run {mark['run_id']}" if mark.get("run_id") else model


def drafted_share(store: Store) -> DraftedShare:
    """Approved examples that started as a model's draft, and how much people changed them."""
    approved = store.conn.execute("SELECT count(*) FROM examples WHERE status = 'approved'").fetchone()[0]
    rows = store.conn.execute(
        "SELECT messages, json_extract(metadata, '$.drafted_by') FROM examples "
        "WHERE status = 'approved' AND json_extract(metadata, '$.drafted_by') IS NOT NULL"
    ).fetchall()
    distances: list[float] = []
    unchanged = 0
    models: Counter[str] = Counter()
    for messages, mark_json in rows:
        mark = json.loads(mark_json)
        if not isinstance(mark, dict):
            continue
        draft, final = str(mark.get("draft", "")), json.loads(messages)[-1]["content"]
        distances.append(edit_distance(draft, final))
        unchanged += " ".join(draft.split()) == " ".join(final.split())
        models[draft_label(mark)] += 1
    drafted = len(distances)
    return DraftedShare(
        approved=approved,
        drafted=drafted,
        share=drafted / approved if approved else None,
        accepted_unchanged=unchanged,
        unchanged_share=unchanged / drafted if drafted else None,
        mean_edit_distance=sum(distances) / drafted if drafted else None,
        by_model=dict(models.most_common()),
    )
