"""The review queue: which example a reviewer sees next, double reviews (overlap), agreement, diffs.

Overlap: a deterministic share of examples (chosen by a hash of the example id, so the same
examples are picked every time and by every process) gets two independent reviews. The first
review is recorded but leaves the example submitted, awaiting a second reviewer; the second
review decides. Agreement is the share of double-reviewed examples where both decisions match.
"""

from __future__ import annotations

import difflib
import hashlib
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from curation.errors import InvalidInput
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store
from schemas import Example, Message, Review
from schemas.review import AgreementReport, ReviewerStats

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
    return [r for r in store.reviews_for(example.id) if r.example_version == example.version]


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


def next_for_review(store: Store, reviewer: str, *, skip: tuple[int, ...] = ()) -> Example | None:
    """The submitted example that has waited longest, not written by the reviewer and not yet
    reviewed by them at its current version; None when the queue is empty for them.

    Args:
        store: the store.
        reviewer: who is reviewing (a reviewer or a lead).
        skip: ids the reviewer chose to pass over for now.
    """
    user = acting_user(store, reviewer)
    require(user, "review_example")
    marks = ",".join("?" * len(skip))
    row = store.conn.execute(
        "SELECT id FROM examples WHERE status = 'submitted' AND author != ? "
        + (f"AND id NOT IN ({marks}) " if skip else "")
        + "AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.example_id = examples.id "
        "AND r.reviewer = ? AND r.example_version = examples.version) ORDER BY updated_at, id LIMIT 1",
        [user.username, *skip, user.username],
    ).fetchone()
    return store.get_example(row[0]) if row else None


def queue_size(store: Store, reviewer: str) -> int:
    """How many submitted examples are waiting for this reviewer."""
    return store.conn.execute(
        "SELECT count(*) FROM examples WHERE status = 'submitted' AND author != ? AND NOT EXISTS (SELECT 1 FROM reviews r "
        "WHERE r.example_id = examples.id AND r.reviewer = ? AND r.example_version = examples.version)",
        [reviewer, reviewer],
    ).fetchone()[0]


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


def _render(messages: list[dict] | tuple[Message, ...], tags: dict | None) -> list[str]:
    lines = []
    for m in messages:
        role, text = (m.role, m.content) if isinstance(m, Message) else (m["role"], m["content"])
        lines.append(f"[{role}]")
        lines.extend(text.splitlines() or [""])
        lines.append("")
    if tags:
        lines.append("[tags] " + ", ".join(f"{k}={v}" for k, v in sorted(tags.items()) if v))
    return lines


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


def diff_since_last_review(store: Store, example: Example) -> list[str] | None:
    """A unified diff of the example against the text its last review judged; None when it was never
    reviewed at an earlier version. An empty list means the text did not change."""
    earlier = [r for r in store.reviews_for(example.id) if r.example_version < example.version]
    if not earlier:
        return None
    last = earlier[-1]
    then = text_at(store, example.id, last.created_at)
    if then is None:
        return None
    now_tags = example.tags.model_dump(mode="json")
    return list(
        difflib.unified_diff(
            _render(*then),
            _render(example.messages, now_tags),
            fromfile=f"version {last.example_version} (reviewed by {last.reviewer}: {last.decision})",
            tofile=f"version {example.version} (now)",
            lineterm="",
        )
    )
