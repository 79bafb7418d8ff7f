"""The example lifecycle: write, submit, review, archive.

    draft ──submit──► submitted ──review──► approved | rejected | changes_requested
      ▲                  ▲                     │          │             │
      └──edit────────────┼─────edit (approved)─┘          │        edit, submit
                         └─────────────────────────────────┼─────────────┘
                                  approved / rejected ──archive──► archived

Every function takes the acting username, checks the role and ownership rules in
curation.people.permissions inside the write transaction, and changes nothing when refused.

An exact duplicate of an approved or waiting example, or a conversation over the model's token
limit, goes to review only with a reason from its author (curation.examples.submissions), and every
submission keeps what the checks found for the reviewer to read.

A model may draft, only a person approves: an example whose metadata carries `drafted_by` (see
curation.examples.drafts) cannot be submitted until its author has edited the model's text or
accepted it as is (`drafts.accept_draft`), and then it is reviewed like any other example.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from curation.errors import InvalidInput
from curation.examples.review_queue import needs_another_review
from curation.examples.submissions import problems_in, quick_check, reason_needed, record_submission
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
    reason: str | None = None,
) -> Example:
    """Write a new example as `actor` (its author), as a draft or straight to review.

    `author` gives it to someone else to own (a lead handing out work, such as a model's draft of
    a gap topic's question); they must be able to write examples. `reason` is the author's word to
    the reviewer, needed to send an exact duplicate or an over-limit example to review.
    """
    with store.write():
        user = acting_user(store, actor)
        require(user, "create_example")
        owner = user
        if author is not None and author.strip().lower() != user.username:
            require(user, "manage_coverage")  # only a lead assigns work to another author
            owner = assignable_author(store, author)
        check_tags(store, content.tags)
        found = reason_needed(store, content, None, reason) if submit else None
        example = store.insert_example(
            messages=content.messages,
            tags=content.tags,
            author=owner.username,
            status="submitted" if submit else "draft",
            actor=user.username,
            source=source,
            source_id=source_id,
            metadata=metadata,
        )
        if found is not None:
            record_submission(store, example, user.username, reason, *found)
        return example


def edit_example(
    store: Store,
    actor: str,
    example_id: int,
    expected_version: int | None,
    content: ExampleContent,
    *,
    reason: str | None = None,
) -> Example:
    """Replace an example's conversation and tags.

    Drafts and changes_requested examples keep their status; editing an approved example
    sends it back to review (with a reason, when it needs one: see submit_example). An edit that
    changes nothing saves nothing. `expected_version` is the version the author read (None:
    whatever is current, for scripts that read nothing first).
    """
    with store.write():
        user = acting_user(store, actor)
        example = store.get_example(example_id)
        require(user, "edit_example", example)
        if example.status not in EDITABLE:
            raise state_error(example, "edited", EDITABLE)
        check_tags(store, content.tags)
        changes: dict[str, Any] = {"messages": content.messages, "tags": content.tags}
        found = None
        if example.status == "approved" and (content.messages, content.tags) != (example.messages, example.tags):
            changes["status"] = "submitted"
            found = reason_needed(store, content, example_id, reason)
        saved = store.update_example(example_id, _version(example, expected_version), user.username, "edit", changes)
        if found is not None:
            record_submission(store, saved, user.username, reason, *found)
        return saved


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
    reason: str | None = None,
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
        reason: the author's word to the reviewer, needed to send an exact duplicate or an
            over-limit example to review.
    """
    with store.write():
        if example_id is None:
            return create_example(store, actor, content, submit=submit, reason=reason)
        saved = edit_example(store, actor, example_id, expected_version, content, reason=reason)
        if submit and saved.status in SUBMITTABLE:
            saved = submit_example(store, actor, saved.id, saved.version, reason=reason)
        return saved


def _move(
    store: Store,
    actor: str,
    example_id: int,
    expected_version: int | None,
    action: str,
    allowed: set[str],
    target: str,
    *,
    permission: str | None = None,
    done: str | None = None,
    note: dict[str, Any] | None = None,
) -> Example:
    """One status move: check role, ownership and current status, then save with history.

    `permission` is the action the role needs (default `{action}_example`), `done` the past tense
    an error uses (default `{action}ed`), `note` what the history row keeps besides the change.
    """
    with store.write():
        user = acting_user(store, actor)
        example = store.get_example(example_id)
        require(user, permission or f"{action}_example", example)
        if example.status not in allowed:
            raise state_error(example, done or f"{action}ed", allowed)
        version = _version(example, expected_version)
        return store.update_example(example_id, version, user.username, action, {"status": target}, note=note)


def _untouched_error(example: Example) -> InvalidInput:
    model = (example.drafted_by or {}).get("model", "a model")
    return InvalidInput(
        f"example {example.id}'s response is still {model}'s draft, unchanged; edit it, or accept it as is "
        f"(the Write page's Accept the draft as is, or `goldsmith accept-draft {example.id}`), then submit it"
    )


def submit_example(
    store: Store, actor: str, example_id: int, expected_version: int | None = None, *, reason: str | None = None
) -> Example:
    """Send a draft (or a reworked changes_requested example) to the review queue.

    An exact duplicate of an approved or waiting example, or a conversation over the model's
    token limit, needs `reason`: the author's word to the reviewer, who reads it with the checks.

    Raises:
        InvalidInput: the example is a model draft its author has neither edited nor accepted, or it
            needs a reason and has none.
    """
    with store.write():
        example = store.get_example(example_id)
        found = None
        if example.status in SUBMITTABLE:
            require(acting_user(store, actor), "submit_example", example)  # a stranger learns nothing about it
            if example.draft_untouched:
                raise _untouched_error(example)
            found = reason_needed(store, example, example.id, reason)
        note = {"reason": reason.strip()} if reason and reason.strip() else None
        moved = _move(store, actor, example_id, expected_version, "submit", SUBMITTABLE, "submitted", done="submitted", note=note)
        if found is not None:
            record_submission(store, moved, acting_user(store, actor).username, reason, *found)
        return moved


def withdraw_example(store: Store, actor: str, example_id: int, expected_version: int | None = None) -> Example:
    """Take an example waiting for review back to draft (its author or a lead), to change it before anyone judges it.

    A review already recorded for it (the first of two) stays in its history.
    """
    return _move(
        store,
        actor,
        example_id,
        expected_version,
        "withdraw",
        {"submitted"},
        "draft",
        permission="submit_example",
        done="withdrawn",
    )


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
        ).model_copy(update={"rubric": review.rubric})  # the scores given, even when accuracy is not among them
        note = {"review_id": stored.id, "rubric": review.rubric and review.rubric.scores, "comment": review.comment}
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
    return _move(store, actor, example_id, expected_version, "archive", ARCHIVABLE, "archived", done="archived")


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
        checked = {e.id: quick_check(store, e, exclude_id=e.id) for e in examples} if status == "submitted" else {}
        needing = [f"{i} ({'; '.join(problems)})" for i, c in checked.items() if (problems := problems_in(c))]
        if needing and not comment.strip():
            raise InvalidInput(
                f"{', '.join(needing)} cannot go to review without a comment that tells the reviewers why. Nothing was changed"
            )
        note = {"comment": comment} if comment else None
        moved = [
            store.update_example(e.id, e.version, user.username, "bulk_set_status", {"status": status}, note) for e in examples
        ]
        for example in moved:
            if example.id in checked:
                record_submission(store, example, user.username, comment, problems_in(checked[example.id]), checked[example.id])
        return moved
