"""What a reviewer reads before deciding: one service call for the Review page (and `goldsmith review-brief`).

The same checks its author saw when submitting it (exact, near and semantic duplicates with their
questions, the token count against the limit, missing tags, the guideline rules, personal data;
exact duplicates checked again now), what keeps it from review without a reason and the reason
its author gave, readable word-level diffs (against the model's
draft, and against the version the last review judged), the earlier reviews, and whether the
example gets two independent reviews.
"""

from __future__ import annotations

from curation.examples import review_queue
from curation.examples.drafts import draft_diff
from curation.examples.submissions import latest_submission, problems_in, quick_check
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store
from schemas import ReviewBrief


def review_brief(store: Store, reviewer: str, example_id: int) -> ReviewBrief:
    """Everything the review page shows about one example.

    Args:
        store: the store.
        reviewer: who is reading it (a reviewer or a lead).
        example_id: the example.

    Raises:
        NotFound: no such example.
        PermissionDenied: the reader cannot review examples.
    """
    require(acting_user(store, reviewer), "review_example")
    example = store.get_example(example_id)
    now = quick_check(store, example, exclude_id=example.id)  # exact duplicates as of now, tokens, tags, rules
    submission = latest_submission(store, example)
    checks = now
    if submission is not None:  # what the author saw on submitting (near and semantic duplicates too), exact ones as of now
        seen = [m for m in submission.checks.matches if m.kind != "exact"]
        checks = submission.checks.model_copy(update={"matches": [*now.matches, *seen]})
    reviews = review_queue.reviews_of(store, example.id)
    share = review_queue.overlap_share(store)
    double = review_queue.is_double_reviewed(example.id, share)
    return ReviewBrief(
        example=example,
        checks=checks,
        problems=problems_in(now),
        reason=submission.reason if submission else "",
        exact_duplicates=now.matches,
        draft_diff=draft_diff(example),
        review_diff=review_queue.diff_since_last_review(store, example),
        earlier_reviews=[r for r in reviews if r.example_version < example.version],
        double_reviewed=double,
        first_review_given=double and any(r.example_version == example.version for r in reviews),
    )
