"""The example lifecycle: write, submit, review, archive.

    draft ──submit──► submitted ──review──► approved | rejected | changes_requested
      ▲                  ▲                     │          │             │
      └──edit────────────┼─────edit (approved)─┘          │        edit, submit
                         └─────────────────────────────────┼─────────────┘
                                  approved / rejected ──archive──► archived

Every function takes the acting username, checks the role and ownership rules in
curation.people.permissions inside the write transaction, and changes nothing when refused.

A model may draft, only a person approves: an example whose metadata carries `drafted_by` (see
curation.examples.drafts) cannot be submitted until its author has edited the model's text or
accepted it as is (`drafts.accept_draft`), and then it is reviewed like any other example.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from curation.errors import InvalidInput
from curation.examples.review_queue import needs_another_review
from curation.examples.taxonomy import check_tags
from curation.people.permissions import require
from curation.people.users import acting_user, assignable_author
from curation.store import Store
from schemas import STATUSES, Example, ExampleContent, Review, ReviewInput

EDITABLE = {"draft", "changes_requested", "approved"}
SUBMITTABLE = {"draft", "changes_requested"}
ARCHIVABLE = {"approved", "rejected"}
DECISION_STATUS = {"approve": "approved", "reject": "rejected", "request_changes": "changes_requested"}
# Bulk moves a lead may make: target status -> the statuses it may come from.
BULK_FROM = {
    "submitted": {"draft", "changes_requested", "approved", "rejected"},
    "approved": {"submitted"},
    "rejected": {"submitted"},
    "changes_requested": {"submitted"},
    "archived": ARCHIVABLE,
}


def _either(values: Iterable[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    items = sorted(values)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def state_error(example: Example, doing: str, allowed: Iterable[str]) -> InvalidInput:
    return InvalidInput(f"example {example.id} is {example.status}; only {_either(allowed)} examples can be {doing}")


def create_example(
    store: Store,
    actor: str,
    content: ExampleContent,
    *,
    submit: bool = False,
    source: str = "manual",
    source_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    author: str | None = None,
) -> Example:
    """Write a new example as `actor` (its author), as a draft or straight to review.

    `author` gives it to someone else to own (a lead handing out work, such as a model's draft of
    a gap topic's question); they must be able to write examples.
    """
    with store.write():
        user = acting_user(store, actor)
        require(user, "create_example")
        owner = user
        if author is not None and author.strip().lower() != user.username:
            require(user, "manage_coverage")  # only a lead assigns work to another author
            owner = assignable_author(store, author)
        check_tags(store, content.tags)
        return store.insert_example(
            messages=content.messages,
            tags=content.tags,
            author=owner.username,
            status="submitted" if submit else "draft",
            actor=user.username,
            source=source,
            source_id=source_id,
            metadata=metadata,
        )


def edit_example(store: Store, actor: str, example_id: int, expected_version: int | None, content: ExampleContent) -> Example:
    """Replace an example's conversation and tags.

    Drafts and changes_requested examples keep their status; editing an approved example
    sends it back to review. An edit that changes nothing saves nothing. `expected_version` is
    the version the author read (None: whatever is current, for scripts that read nothing first).
    """
    with store.write():
        user = acting_user(store, actor)
        example = store.get_example(example_id)
        require(user, "edit_example", example)
        if example.status not in EDITABLE:
            raise state_error(example, "edited", EDITABLE)
        check_tags(store, content.tags)
        changes: dict[str, Any] = {"messages": content.messages, "tags": content.tags}
        if example.status == "approved" and (content.messages, content.tags) != (example.messages, example.tags):
            changes["status"] = "submitted"
        return store.update_example(example_id, _version(example, expected_version), user.username, "edit", changes)


def _version(example: Example, expected_version: int | None) -> int:
    """The version a change is checked against: the one the caller read, or the current one."""
    return example.version if expected_version is None else expected_version


def save_example(
    store: Store,
    actor: str,
    content: ExampleContent,
    *,
    example_id: int | None = None,
    expected_version: int | None = None,
    submit: bool = False,
) -> Example:
    """Save what an author wrote and, with `submit`, send it to review: one change, all or nothing.

    Args:
        store: the store.
        actor: the author (or a lead).
        content: the conversation and tags.
        example_id: the example being edited; None writes a new one.
        expected_version: the version the author opened (a change in between is a Conflict).
        submit: also submit it (a draft or changes_requested example; an edited approved example
            goes back to review by itself).
    """
    with store.write():
        if example_id is None:
            return create_example(store, actor, content, submit=submit)
        saved = edit_example(store, actor, example_id, expected_version, content)
        if submit and saved.status in SUBMITTABLE:
            saved = submit_example(store, actor, saved.id, saved.version)
        return saved


def _move(
    store: Store, actor: str, example_id: int, expected_version: int | None, action: str, allowed: set[str], target: str
) -> Example:
    """One status move: check role, ownership and current status, then save with history."""
    with store.write():
        user = acting_user(store, actor)
        example = store.get_example(example_id)
        require(user, f"{action}_example", example)
        if example.status not in allowed:
            raise state_error(example, f"{action}{'t' if action == 'submit' else ''}ed", allowed)
        return store.update_example(example_id, _version(example, expected_version), user.username, action, {"status": target})


def _untouched_error(example: Example) -> InvalidInput:
    model = (example.drafted_by or {}).get("model", "a model")
    return InvalidInput(
        f"example {example.id}'s response is still {model}'s draft, unchanged; edit it, or accept it as is "
        f"(the Write page's Accept the draft as is, or `goldsmith accept-draft {example.id}`), then submit it"
    )


def submit_example(store: Store, actor: str, example_id: int, expected_version: int | None = None) -> Example:
    """Send a draft (or a reworked changes_requested example) to the review queue.

    Raises:
        InvalidInput: the example is a model draft its author has neither edited nor accepted.
    """
    with store.write():
        example = store.get_example(example_id)
        if example.status in SUBMITTABLE and example.draft_untouched:
            require(acting_user(store, actor), "submit_example", example)  # a stranger learns nothing about it
            raise _untouched_error(example)
        return _move(store, actor, example_id, expected_version, "submit", SUBMITTABLE, "submitted")


def review_example(store: Store, actor: str, example_id: int, expected_version: int | None, review: ReviewInput) -> Review:
    """Record a reviewer's decision on the version they read and move the example on.

    An example in the overlap share (curation.examples.review_queue) needs two reviewers: the first review
    is recorded and leaves it submitted; the second decides.

    Raises:
        Conflict: the example changed after the reviewer read it (they judged an old text).
    """
    with store.write():
        user = acting_user(store, actor)
        example = store.get_example(example_id)
        require(user, "review_example", example)
        if example.status != "submitted":
            raise state_error(example, "reviewed", {"submitted"})
        expected_version = _version(example, expected_version)
        first_of_two = needs_another_review(store, example, user.username)
        if first_of_two:  # refuse a stale read before recording anything (nothing about the example changes)
            store.update_example(example_id, expected_version, user.username, "review", {})
        stored = store.insert_review(
            {
                "example_id": example_id,
                "example_version": expected_version,
                "reviewer": user.username,
                "decision": review.decision,
                "rubric": review.rubric.model_dump() if review.rubric else None,
                "comment": review.comment,
            }
        )
        note = {"review_id": stored.id, "rubric": review.rubric and review.rubric.model_dump(), "comment": review.comment}
        if first_of_two:  # overlap: recorded, but the example waits for a second, independent review
            store.add_history("example", example_id, "first_review", user.username, None, note | {"decision": review.decision})
            return stored
        store.update_example(
            example_id,
            expected_version,
            user.username,
            review.decision,
            {"status": DECISION_STATUS[review.decision]},
            note=note,
        )
        return stored


def archive_example(store: Store, actor: str, example_id: int, expected_version: int | None = None) -> Example:
    """Retire an approved or rejected example (leads); it stays in the store and its history."""
    return _move(store, actor, example_id, expected_version, "archive", ARCHIVABLE, "archived")


def bulk_set_status(store: Store, actor: str, example_ids: Iterable[int], status: str, *, comment: str = "") -> list[Example]:
    """Move many examples to one status at once (leads). All or nothing.

    Raises:
        InvalidInput: an example cannot make that move; lists which and why, and changes none.
    """
    if status not in BULK_FROM:
        valid = ", ".join(BULK_FROM)
        known = status in STATUSES
        raise InvalidInput(f"bulk moves go to {valid}; {status!r} {'is not one of them' if known else 'is not a status'}")
    if status in ("rejected", "changes_requested") and not comment.strip():
        raise InvalidInput(f"moving examples to {status} needs a comment that tells the authors why")
    ids = list(dict.fromkeys(example_ids))
    if not ids:
        raise InvalidInput("no examples named; give at least one id")
    with store.write():
        user = acting_user(store, actor)
        require(user, "bulk_set_status")
        examples = [store.get_example(i) for i in ids]
        blocked = [f"{e.id} ({e.status})" for e in examples if e.status not in BULK_FROM[status]]
        untouched = [str(e.id) for e in examples if status == "submitted" and e.status in SUBMITTABLE and e.draft_untouched]
        if untouched and not blocked:  # a model's draft goes to review only after a person has edited or accepted it
            raise InvalidInput(
                f"{', '.join(untouched)} still hold a model's draft unchanged; their authors must edit or accept "
                "the drafts first. Nothing was changed"
            )
        if blocked:
            raise InvalidInput(
                f"cannot move to {status}: {', '.join(blocked)}; only {_either(BULK_FROM[status])} "
                "examples can. Nothing was changed"
            )
        if status in ("approved", "rejected", "changes_requested"):
            own = [str(e.id) for e in examples if e.author == user.username]
            if own:
                raise InvalidInput(f"you wrote {', '.join(own)}; another reviewer must decide on them. Nothing was changed")
        note = {"comment": comment} if comment else None
        return [
            store.update_example(e.id, e.version, user.username, "bulk_set_status", {"status": status}, note) for e in examples
        ]
