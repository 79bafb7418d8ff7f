"""The review queue: next example, filters and their counts, overlap (two reviewers), agreement, readable diffs, the brief."""

from datetime import UTC, datetime, timedelta

import pytest

from conftest import GOOD_RUBRIC, content, make_example
from curation.errors import Conflict, InvalidInput, PermissionDenied
from curation.examples import review_queue, workflow
from curation.examples.review_brief import review_brief
from curation.examples.submissions import quick_check
from schemas import DEFAULT_MAX_TOKENS, ExampleContent, ReviewInput, ReviewQueueFilter, Rubric

APPROVE = ReviewInput(decision="approve", rubric=GOOD_RUBRIC)
CHANGES = ReviewInput(decision="request_changes", comment="cite the portal")


def test_next_is_the_oldest_submitted_not_written_by_the_reviewer(team):
    first = make_example(team, "submitted", author="amy")
    make_example(team, "submitted", author="al")
    make_example(team, "draft")
    assert review_queue.next_for_review(team, "rita").id == first.id
    assert review_queue.next_for_review(team, "rita", skip=(first.id,)).id == first.id + 1
    make_example(team, "submitted", author="lee")  # a lead never gets their own example
    assert review_queue.next_for_review(team, "lee", skip=(first.id, first.id + 1)) is None
    assert review_queue.queue_size(team, "rita") == 3
    with pytest.raises(PermissionDenied):
        review_queue.next_for_review(team, "amy")


def test_the_overlap_share_is_deterministic_and_roughly_the_share():
    picked = [i for i in range(1, 2001) if review_queue.is_double_reviewed(i, 0.2)]
    assert 0.17 < len(picked) / 2000 < 0.23
    assert picked == [i for i in range(1, 2001) if review_queue.is_double_reviewed(i, 0.2)]
    assert not any(review_queue.is_double_reviewed(i, 0) for i in range(100))
    assert all(review_queue.is_double_reviewed(i, 1) for i in range(100))


def test_overlap_examples_need_two_reviewers_and_the_second_decides(team):
    review_queue.set_overlap_share(team, "ada", 1.0)
    ex = make_example(team, "submitted")
    workflow.review_example(team, "rita", ex.id, ex.version, CHANGES)
    waiting = team.get_example(ex.id)
    assert (waiting.status, waiting.version) == ("submitted", ex.version)
    assert team.history("example", ex.id)[-1].action == "first_review"
    assert review_queue.next_for_review(team, "rita") is None  # rita already gave her review
    assert review_queue.next_for_review(team, "rob").id == ex.id
    with pytest.raises(InvalidInput, match="already reviewed"):
        workflow.review_example(team, "rita", ex.id, ex.version, APPROVE)
    workflow.review_example(team, "rob", ex.id, ex.version, APPROVE)
    assert team.get_example(ex.id).status == "approved"
    report = review_queue.agreement_report(team)
    assert (report.double_reviewed, report.agreed, report.agreement) == (1, 0, 0.0)
    assert {r.reviewer: r.reviews for r in report.reviewers} == {"rita": 1, "rob": 1}


def test_agreement_counts_matching_decisions(team):
    review_queue.set_overlap_share(team, "ada", 1.0)
    for _ in range(3):
        ex = make_example(team, "submitted")
        workflow.review_example(team, "rita", ex.id, ex.version, APPROVE)
        workflow.review_example(team, "rob", ex.id, ex.version, APPROVE)
    report = review_queue.agreement_report(team)
    assert (report.double_reviewed, report.agreed, report.agreement) == (3, 3, 1.0)
    assert all(r.last_7_days == 3 and r.decisions == {"approve": 3} for r in report.reviewers)


def test_first_review_of_a_stale_version_is_refused(team):
    review_queue.set_overlap_share(team, "ada", 1.0)
    ex = make_example(team, "submitted")
    with pytest.raises(Conflict):
        workflow.review_example(team, "rita", ex.id, ex.version - 1, APPROVE)
    assert team.reviews_for(ex.id) == []


def test_overlap_setting_is_checked_and_admin_only(team):
    with pytest.raises(InvalidInput, match=r"\[0, 1\]"):
        review_queue.set_overlap_share(team, "ada", 1.5)
    with pytest.raises(PermissionDenied):
        review_queue.set_overlap_share(team, "lee", 0.2)
    review_queue.set_overlap_share(team, "ada", 0.2)
    assert review_queue.overlap_share(team) == 0.2


def test_diff_shows_what_changed_since_the_last_review_word_by_word(team):
    ex = make_example(team, "changes_requested")
    assert review_queue.diff_since_last_review(team, make_example(team, "submitted")) is None
    ex = workflow.edit_example(team, "amy", ex.id, ex.version, content(response="Here is how: 1. Use the portal instead."))
    ex = workflow.submit_example(team, "amy", ex.id, ex.version)
    diff = review_queue.diff_since_last_review(team, ex)
    assert (diff.before, diff.after) == ("version 2, reviewed by rita: changes requested", f"version {ex.version} (now)")
    assert [t.label for t in diff.turns] == ["User, turn 1", "Assistant, turn 1", "Tags"]
    answer = diff.turns[1]
    assert [(s.op, s.text) for s in answer.segments] == [
        ("same", "Here is how: 1. "),
        ("removed", "Call us"),
        ("added", "Use the portal instead"),
        ("same", "."),
    ]
    assert not diff.turns[0].changed and not diff.turns[2].changed


# ------------------------------------------------------------------------------------------ the queue, filtered


def _submit(store, author="amy", reason=None, **kw):
    return make_example(store, "submitted", author=author, reason=reason, **kw)


def test_the_queue_filters_and_its_counts_agree(team):
    a = _submit(team, prompt="Claim one?", response="One.", category="claims")
    b = _submit(team, author="al", prompt="Claim two?", response="Two.", category="claims")
    c = _submit(team, prompt="Bill?", response="Pay.", category="billing")
    q = review_queue.review_queue(team, "rita")
    assert (q.waiting, q.matching, q.skipped, q.left, q.next.id) == (3, 3, 0, 3, a.id)
    claims = ReviewQueueFilter(category="claims")
    q = review_queue.review_queue(team, "rita", claims, skip=(a.id, c.id))
    assert (q.waiting, q.matching, q.skipped, q.left, q.next.id) == (3, 2, 1, 1, b.id)  # c is skipped but not a claim
    q = review_queue.review_queue(team, "rita", claims, skip=(a.id, b.id))
    assert (q.matching, q.skipped, q.left, q.next) == (2, 2, 0, None)
    assert review_queue.review_queue(team, "rita", ReviewQueueFilter(author="AL")).next.id == b.id
    assert review_queue.review_queue(team, "rob", ReviewQueueFilter(flags=("missing_tags",))).matching == 3


def test_the_queue_filters_by_time_waiting(team):
    old = _submit(team, prompt="Old?", response="Old.")
    _submit(team, prompt="New?", response="New.")
    later = datetime.now(UTC) + timedelta(days=3)
    team.conn.execute("UPDATE examples SET updated_at = ? WHERE id = ?", [(later - timedelta(days=5)).isoformat(), old.id])
    q = review_queue.review_queue(team, "rita", ReviewQueueFilter(waiting_days=4), clock=later)
    assert (q.matching, q.next.id) == (1, old.id)


def test_the_queue_flags_duplicates_reasons_drafts_and_second_reviews(team):
    first = make_example(team, "approved", prompt="Same?", response="Same.")
    copy = _submit(team, author="al", reason="kept on purpose", prompt="same", response="same")
    plain_one = _submit(team, prompt="Different?", response="Different.")
    flags = lambda *f: [e.id for e in _all(team, "rob", ReviewQueueFilter(flags=f))]  # noqa: E731
    assert flags("exact_duplicate") == [copy.id] and flags("has_reason") == [copy.id]
    assert first.id not in flags() and plain_one.id in flags()
    review_queue.set_overlap_share(team, "ada", 1.0)
    workflow.review_example(team, "rita", plain_one.id, plain_one.version, APPROVE)
    assert flags("second_review") == [plain_one.id]
    team.conn.execute("""UPDATE examples SET metadata = '{"drafted_by": {"model": "m", "draft": "x"}}' WHERE id = ?""", [copy.id])
    assert flags("model_draft") == [copy.id]


def _all(store, reviewer, flt):
    seen, out = (), []
    while (q := review_queue.review_queue(store, reviewer, flt, skip=seen)).next is not None:
        out.append(q.next)
        seen = (*seen, q.next.id)
    return out


@pytest.mark.parametrize("context", [None, "Policy text: " + "x" * 300])
def test_the_over_limit_flag_is_the_checks_token_count_in_sql(team, context):
    """The queue's SQL and the checks (estimate_tokens over every turn's text) agree to the token."""
    limit_chars = 3 * DEFAULT_MAX_TOKENS
    for extra in (-1, 0, 1):
        user_turn = {"role": "user", "content": "Turn one?", **({"context": context} if context else {})}
        messages = [
            {"role": "system", "content": "Be brief."},
            user_turn,
            {"role": "assistant", "content": "A."},
            {"role": "user", "content": "And two?"},
            {"role": "assistant", "content": ""},
        ]
        base = ExampleContent.model_validate({"messages": [*messages[:-1], {"role": "assistant", "content": "y"}]})
        filler = limit_chars - (len("\n".join(m.text for m in base.messages)) - 1) + extra
        messages[-1]["content"] = "z" * filler
        ex = workflow.create_example(team, "amy", ExampleContent.model_validate({"messages": messages}))
        over = quick_check(team, ex).over_limit
        assert over == (extra > 0)
        workflow.submit_example(team, "amy", ex.id, reason="long on purpose" if over else None)
    flagged = _all(team, "rita", ReviewQueueFilter(flags=("over_limit",)))
    assert len(flagged) == 1 and quick_check(team, flagged[0]).over_limit


def test_opening_an_example_by_id_says_why_it_cannot_be_reviewed(team):
    waiting = _submit(team)
    assert review_queue.open_for_review(team, "rita", waiting.id).id == waiting.id
    draft = make_example(team, "draft", prompt="Draft?", response="Draft.")
    with pytest.raises(InvalidInput, match="is draft; only examples waiting for review"):
        review_queue.open_for_review(team, "rita", draft.id)
    own = _submit(team, author="lee", prompt="Lead's own?", response="Own.")
    with pytest.raises(PermissionDenied, match="you wrote"):
        review_queue.open_for_review(team, "lee", own.id)
    review_queue.set_overlap_share(team, "ada", 1.0)
    workflow.review_example(team, "rita", waiting.id, waiting.version, APPROVE)
    with pytest.raises(InvalidInput, match="already reviewed"):
        review_queue.open_for_review(team, "rita", waiting.id)


def test_reviews_keep_exactly_the_scores_given(team):
    ex = _submit(team)
    partial = ReviewInput(decision="approve", rubric=Rubric(tone=4, completeness=2))
    stored = workflow.review_example(team, "rita", ex.id, ex.version, partial)
    assert stored.rubric.scores == {"tone": 4, "completeness": 2}
    assert review_queue.reviews_of(team, ex.id)[0].rubric.scores == {"tone": 4, "completeness": 2}
    assert team.history("example", ex.id)[-1].after["rubric"] == {"tone": 4, "completeness": 2}


def test_a_review_needs_a_chosen_decision():
    with pytest.raises(ValueError, match="choose a decision"):
        ReviewInput.model_validate({"decision": None, "rubric": {"accuracy": 5}})
    assert ReviewInput.model_validate({"decision": "approve", "rubric": {"accuracy": None}}).rubric is None


def test_the_brief_shows_the_checks_the_author_saw_and_the_reason(team):
    first = make_example(team, "approved", prompt="Same?", response="Same.")
    copy = workflow.create_example(team, "al", content(prompt="same", response="same"))
    workflow.submit_example(team, "al", copy.id, reason="kept on purpose")
    brief = review_brief(team, "rita", copy.id)
    assert brief.reason == "kept on purpose"
    assert brief.problems == [f"it repeats example {first.id} (approved) word for word"]
    assert [m.example_id for m in brief.exact_duplicates] == [first.id] and brief.exact_duplicates[0].prompt == "Same?"
    assert brief.checks.missing_tags == ["category", "response_type", "knowledge_area"]
    assert brief.review_diff is None and brief.draft_diff is None and not brief.double_reviewed
