"""The review queue: which example a reviewer sees next (with filters), double reviews (overlap),
agreement, and what changed since the last review.

Overlap: a deterministic share of examples (chosen by a hash of the example id, so the same
examples are picked every time and by every process) gets two independent reviews. The first
review is recorded but leaves the example submitted, awaiting a second reviewer; the second
review decides. Agreement is the share of double-reviewed examples where both decisions match.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from curation.errors import InvalidInput
from curation.examples.diffs import conversation_diff
from curation.examples.submissions import LIVE
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store
from schemas import DEFAULT_MAX_TOKENS, RUBRIC, Example, Review, ReviewQueue, ReviewQueueFilter, TextDiff, plain
from schemas.review import DECIDED, AgreementReport, ReviewerStats

OVERLAP_KEY = "review_overlap"
DEFAULT_OVERLAP = 0.0  # off until a lead or admin sets a share (0.2 is a good start)


def overlap_share(store: Store) -> float:
    """The share of examples that get two reviews (the `review_overlap` setting; 0 when never set)."""
    value, _ = store.get_setting(OVERLAP_KEY)
    return DEFAULT_OVERLAP if value is None else float(value)


def set_overlap_share(store: Store, actor: str, share: float, expected_version: int | None = None) -> float:
    """Set the overlap share (admins, who own the review rules with the guidelines)."""
    if not 0 <= share <= 1:
        raise InvalidInput(f"overlap share must be in [0, 1], got {share}; 0.2 sends one example in five to two reviewers")
    with store.write():
        require(acting_user(store, actor), "manage_guidelines")
        _, version = store.get_setting(OVERLAP_KEY)
        store.set_setting(OVERLAP_KEY, round(float(share), 4), version if expected_version is None else expected_version, actor)
    return share


def is_double_reviewed(example_id: int, share: float) -> bool:
    """Whether an example belongs to the overlap share: a stable hash of its id, not a random draw."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"goldsmith-overlap:{example_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def pending_first_review(store: Store, example: Example, share: float | None = None) -> list[Review]:
    """The reviews already given to this version of an overlap example (empty when it needs none)."""
    share = overlap_share(store) if share is None else share
    if not is_double_reviewed(example.id, share):
        return []
    return [r for r in reviews_of(store, example.id) if r.example_version == example.version]


def needs_another_review(store: Store, example: Example, reviewer: str) -> bool:
    """True when `reviewer` would give the first of two reviews, so their review must not decide.

    Raises:
        InvalidInput: the reviewer already reviewed this version (a second reviewer must decide).
    """
    given = pending_first_review(store, example)
    if any(r.reviewer == reviewer for r in given):
        raise InvalidInput(
            f"you already reviewed example {example.id} at version {example.version}; "
            "it needs a second reviewer's decision, so pick another example"
        )
    return not given and is_double_reviewed(example.id, overlap_share(store))


# Each filter flag as a condition on the example row `e` (parameters in order, after the fixed ones).
_FLAG_SQL = {
    "exact_duplicate": "EXISTS (SELECT 1 FROM examples o WHERE o.norm_hash = e.norm_hash AND o.id != e.id "
    f"AND o.status IN ({', '.join(repr(s) for s in LIVE)}))",
    # the token estimate of checks.py in SQL: every turn's text joined by newlines, a third of its length
    # (prompt_text and response_text join their turns with a blank line: 2 characters each instead of 1)
    "over_limit": "(length(e.prompt_text) + length(e.response_text) - json_array_length(e.messages) + 3) > 3 * ?",
    "missing_tags": "(e.category IS NULL OR e.response_type IS NULL OR e.knowledge_area IS NULL)",
    "has_reason": "EXISTS (SELECT 1 FROM submissions s WHERE s.example_id = e.id AND s.version = e.version AND s.reason != '')",
    "model_draft": "json_extract(e.metadata, '$.drafted_by') IS NOT NULL",
    "second_review": "EXISTS (SELECT 1 FROM reviews f WHERE f.example_id = e.id AND f.example_version = e.version)",
}


def _waiting_sql(reviewer: str, flt: ReviewQueueFilter | None, clock: datetime | None) -> tuple[str, list[Any]]:
    """The examples waiting for `reviewer` (submitted, not theirs, not reviewed by them at this version) that `flt` keeps."""
    where = [
        "e.status = 'submitted'",
        "e.author != ?",
        "NOT EXISTS (SELECT 1 FROM reviews r WHERE r.example_id = e.id AND r.reviewer = ? AND r.example_version = e.version)",
    ]
    params: list[Any] = [reviewer, reviewer]
    if flt is not None:
        if flt.category:
            where.append("e.category = ?")
            params.append(flt.category)
        if flt.author:
            where.append("e.author = ?")
            params.append(flt.author.strip().lower())
        if flt.waiting_days:
            where.append("e.updated_at <= ?")
            params.append(((clock or datetime.now(UTC)) - timedelta(days=flt.waiting_days)).isoformat())
        for flag in flt.flags:
            where.append(_FLAG_SQL[flag])
            if flag == "over_limit":
                params.append(DEFAULT_MAX_TOKENS)
    return "FROM examples e WHERE " + " AND ".join(where), params


def review_queue(
    store: Store,
    reviewer: str,
    flt: ReviewQueueFilter | None = None,
    *,
    skip: tuple[int, ...] = (),
    clock: datetime | None = None,
) -> ReviewQueue:
    """Where `reviewer`'s queue stands and which example comes next.

    Args:
        store: the store.
        reviewer: who is reviewing (a reviewer or a lead).
        flt: which waiting examples to consider (category, author, time waiting, flags); None: all.
        skip: ids the reviewer passed over in this sitting (counted, never shown next).
        clock: "now", for the time waiting (tests).

    Returns:
        The waiting count, how many the filter keeps, how many of those were skipped, and the one
        that has waited longest among the rest (None when none is left). The counts come from the
        same query as the example, so "3 waiting" never stands beside "nothing left".
    """
    user = acting_user(store, reviewer)
    require(user, "review_example")
    everything, base = _waiting_sql(user.username, None, clock)
    (waiting,) = store.conn.execute(f"SELECT count(*) {everything}", base).fetchone()
    matching_sql, params = _waiting_sql(user.username, flt, clock) if flt is not None and flt.active else (everything, base)
    marks = ",".join("?" * len(skip))
    skipped_sum = f"sum(e.id IN ({marks}))" if skip else "0"
    matching, skipped = store.conn.execute(
        f"SELECT count(*), coalesce({skipped_sum}, 0) {matching_sql}", [*skip, *params]
    ).fetchone()
    rest = f" AND e.id NOT IN ({marks})" if skip else ""
    row = store.conn.execute(f"SELECT e.id {matching_sql}{rest} ORDER BY e.updated_at, e.id LIMIT 1", [*params, *skip]).fetchone()
    return ReviewQueue(waiting=waiting, matching=matching, skipped=skipped, next=store.get_example(row[0]) if row else None)


def next_for_review(store: Store, reviewer: str, *, skip: tuple[int, ...] = ()) -> Example | None:
    """The submitted example that has waited longest, not written by the reviewer and not yet
    reviewed by them at its current version; None when the queue is empty for them."""
    return review_queue(store, reviewer, skip=skip).next


def queue_size(store: Store, reviewer: str) -> int:
    """How many submitted examples are waiting for this reviewer."""
    everything, params = _waiting_sql(reviewer, None, None)
    return store.conn.execute(f"SELECT count(*) {everything}", params).fetchone()[0]


def open_for_review(store: Store, reviewer: str, example_id: int) -> Example:
    """The example a reviewer asked for by id, when they may review it now.

    Raises:
        NotFound: no such example.
        InvalidInput: it is not waiting for review, or this reviewer already reviewed this version.
        PermissionDenied: the reviewer wrote it, or cannot review.
    """
    user = acting_user(store, reviewer)
    example = store.get_example(example_id)
    require(user, "review_example", example)
    if example.status != "submitted":
        raise InvalidInput(
            f"example {example_id} is {plain(example.status)}; only examples waiting for review can be reviewed "
            "(Browse shows it with its reviews)"
        )
    if any(r.reviewer == user.username and r.example_version == example.version for r in reviews_of(store, example_id)):
        raise InvalidInput(f"you already reviewed example {example_id} at version {example.version}; another reviewer decides it")
    return example


def reviews_of(store: Store, example_id: int) -> list[Review]:
    """An example's reviews, oldest first, each with exactly the scores its reviewer gave."""
    rows = store.db.table("reviews").rows_where("example_id = ?", [example_id], order_by="id")
    reviews = []
    for row in rows:
        scores = {k: row.pop(k) for k in RUBRIC}
        given = any(v is not None for v in scores.values())
        reviews.append(Review.model_validate({**row, "rubric": scores if given else None}))
    return reviews


# ------------------------------------------------------------------------------------------ stats


def agreement_report(store: Store, *, clock: datetime | None = None) -> AgreementReport:
    """Share of double-reviewed examples where the two decisions matched, and per-reviewer counts.

    A pair is the first review of a version of an example and the next review of that version by
    someone else. Counted in SQL, so it stays fast with many reviews.
    """
    since = ((clock or datetime.now(UTC)) - timedelta(days=7)).isoformat()
    totals: Counter = Counter()
    recent: Counter = Counter()
    decisions: dict[str, Counter] = defaultdict(Counter)
    for reviewer, decision, n, new in store.conn.execute(
        "SELECT reviewer, decision, count(*), sum(created_at >= ?) FROM reviews GROUP BY reviewer, decision", [since]
    ):
        totals[reviewer] += n
        recent[reviewer] += new
        decisions[reviewer][decision] = n
    pairs = store.conn.execute(
        "WITH firsts AS (SELECT min(id) AS id FROM reviews GROUP BY example_id, example_version HAVING count(*) > 1), "
        "paired AS (SELECT a.reviewer AS r1, a.decision AS d1, (SELECT b.id FROM reviews b WHERE b.example_id = a.example_id "
        "AND b.example_version = a.example_version AND b.reviewer != a.reviewer ORDER BY b.id LIMIT 1) AS second "
        "FROM firsts JOIN reviews a ON a.id = firsts.id) "
        "SELECT r1, d1, b.reviewer, b.decision FROM paired JOIN reviews b ON b.id = paired.second"
    ).fetchall()
    paired: Counter = Counter()
    agreeing: Counter = Counter()
    for first, first_decision, second, second_decision in pairs:
        same = first_decision == second_decision
        for name in (first, second):
            paired[name] += 1
            agreeing[name] += same
    agreed = sum(1 for p in pairs if p[1] == p[3])
    return AgreementReport(
        double_reviewed=len(pairs),
        agreed=agreed,
        reviewers=[
            ReviewerStats(
                reviewer=name,
                reviews=totals[name],
                last_7_days=recent[name],
                decisions=dict(decisions[name]),
                double_reviewed=paired[name],
                agreed=agreeing[name],
            )
            for name in sorted(totals, key=lambda n: (-totals[n], n))
        ],
    )


# ------------------------------------------------------------------------------------------ diff


def text_at(store: Store, example_id: int, moment: datetime) -> tuple[list[dict], dict] | None:
    """An example's messages and tags as they stood at `moment`, rebuilt from its history."""
    messages: list[dict] | None = None
    tags: dict = {}
    for h in store.history("example", example_id):
        if h.at > moment:
            break
        after = h.after or {}
        if "messages" in after:
            messages = after["messages"]
        if "tags" in after:
            tags = after["tags"]
    return (messages, tags) if messages is not None else None


def diff_since_last_review(store: Store, example: Example) -> TextDiff | None:
    """The example against the text its last review judged, turn by turn and word by word; None when it
    was never reviewed at an earlier version."""
    earlier = [r for r in reviews_of(store, example.id) if r.example_version < example.version]
    if not earlier:
        return None
    last = earlier[-1]
    then = text_at(store, example.id, last.created_at)
    if then is None:
        return None
    return conversation_diff(
        then[0],
        example.messages,
        before_title=f"version {last.example_version}, reviewed by {last.reviewer}: {DECIDED[last.decision]}",
        after_title=f"version {example.version} (now)",
        before_tags=then[1],
        after_tags=example.tags.model_dump(mode="json"),
    )
