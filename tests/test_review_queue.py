"""The review queue: next example, overlap (two reviewers), agreement, diff against the last review."""

import pytest

from conftest import GOOD_RUBRIC, content, make_example
from curation.errors import Conflict, InvalidInput, PermissionDenied
from curation.examples import review_queue, workflow
from schemas import ReviewInput

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


def test_diff_shows_what_changed_since_the_last_review(team):
    ex = make_example(team, "changes_requested")
    assert review_queue.diff_since_last_review(team, make_example(team, "submitted")) is None
    ex = workflow.edit_example(team, "amy", ex.id, ex.version, content(response="Use the portal instead."))
    ex = workflow.submit_example(team, "amy", ex.id, ex.version)
    diff = review_queue.diff_since_last_review(team, ex)
    assert "-Here is how: 1. Call us." in diff and "+Use the portal instead." in diff
    assert diff[0].startswith("--- version 2 (reviewed by rita: request_changes)")
