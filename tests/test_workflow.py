"""The example lifecycle, and the history invariant: one history row per change, none without."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import GOOD_RUBRIC, content, dump, make_example
from curation.errors import Conflict, GoldsmithError, InvalidInput, PermissionDenied
from curation.examples import taxonomy, workflow
from curation.examples.submissions import latest_submission
from curation.people import users
from schemas import ReviewInput


def test_the_whole_lifecycle_keeps_reviews_and_history(team):
    ex = workflow.create_example(team, "amy", content())
    assert (ex.status, ex.version, ex.author) == ("draft", 1, "amy")
    ex = workflow.submit_example(team, "amy", ex.id, ex.version)
    review = workflow.review_example(
        team, "rita", ex.id, ex.version, ReviewInput(decision="request_changes", comment="cite the portal")
    )
    assert (review.example_version, team.get_example(ex.id).status) == (2, "changes_requested")
    ex = workflow.edit_example(team, "amy", ex.id, 3, content(response="Use the portal at lakeshoremutual.example."))
    assert ex.status == "changes_requested"
    ex = workflow.submit_example(team, "amy", ex.id, ex.version)
    workflow.review_example(team, "rob", ex.id, ex.version, ReviewInput(decision="approve", rubric=GOOD_RUBRIC))
    ex = team.get_example(ex.id)
    assert ex.status == "approved"
    assert [r.decision for r in team.reviews_for(ex.id)] == ["request_changes", "approve"]
    assert [h.action for h in team.history("example", ex.id)] == [
        "create",
        "submit",
        "request_changes",
        "edit",
        "submit",
        "approve",
    ]
    approve = team.history("example", ex.id)[-1]
    assert approve.before == {"status": "submitted"} and approve.after["rubric"]["accuracy"] == 5


def test_editing_an_approved_example_sends_it_back_to_review(team):
    ex = make_example(team, "approved")
    edited = workflow.edit_example(team, "amy", ex.id, ex.version, content(response="Better answer."))
    assert edited.status == "submitted"
    draft = make_example(team)
    rows = team.db["history"].count
    assert workflow.edit_example(team, "amy", draft.id, draft.version, content()) == draft  # nothing changed: nothing saved
    assert team.db["history"].count == rows


@pytest.mark.parametrize("status", ["submitted", "rejected", "archived"])
def test_only_editable_states_can_be_edited(team, status):
    ex = make_example(team, status)
    before = dump(team)
    with pytest.raises(InvalidInput, match=f"example {ex.id} is {status}"):
        workflow.edit_example(team, "amy", ex.id, ex.version, content("x", "y"))
    assert dump(team) == before


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("submitted", "submit"),
        ("approved", "submit"),
        ("draft", "review"),
        ("approved", "review"),
        ("draft", "archive"),
        ("submitted", "archive"),
        ("archived", "archive"),
    ],
)
def test_illegal_transitions_are_refused_and_change_nothing(team, status, action):
    ex = make_example(team, status)
    calls = {
        "submit": lambda: workflow.submit_example(team, "amy", ex.id, ex.version),
        "review": lambda: workflow.review_example(team, "rita", ex.id, ex.version, ReviewInput(decision="approve")),
        "archive": lambda: workflow.archive_example(team, "lee", ex.id, ex.version),
    }
    before = dump(team)
    with pytest.raises(InvalidInput, match=f"is {status}; only"):
        calls[action]()
    assert dump(team) == before


def test_a_review_of_a_stale_version_is_a_conflict(team):
    ex = make_example(team, "submitted")
    # the reviewer opened version 2; meanwhile a lead sends it to changes_requested via bulk
    workflow.bulk_set_status(team, "lee", [ex.id], "changes_requested", comment="hold on")
    before = dump(team)
    with pytest.raises(GoldsmithError):
        workflow.review_example(team, "rita", ex.id, ex.version, ReviewInput(decision="approve"))
    assert dump(team) == before


def test_review_conflict_leaves_no_review_row(team):
    ex = make_example(team, "submitted")
    with pytest.raises(Conflict):
        workflow.review_example(team, "rita", ex.id, ex.version - 1, ReviewInput(decision="approve"))
    assert team.reviews_for(ex.id) == []


def test_bulk_moves_are_all_or_nothing(team):
    ok = [make_example(team, "approved") for _ in range(3)]
    draft = make_example(team)
    before = dump(team)
    with pytest.raises(InvalidInput, match=rf"{draft.id} \(draft\).*Nothing was changed"):
        workflow.bulk_set_status(team, "lee", [e.id for e in ok] + [draft.id], "archived")
    assert dump(team) == before
    moved = workflow.bulk_set_status(team, "lee", [e.id for e in ok], "archived")
    assert {e.status for e in moved} == {"archived"}
    with pytest.raises(InvalidInput, match="needs a comment"):
        workflow.bulk_set_status(team, "lee", [draft.id], "changes_requested")
    with pytest.raises(InvalidInput, match="not a status"):
        workflow.bulk_set_status(team, "lee", [draft.id], "published")


def test_leads_cannot_bulk_approve_their_own_examples(team):
    own = make_example(team, "submitted", author="lee", reviewer="rita")
    with pytest.raises(InvalidInput, match="another reviewer must decide"):
        workflow.bulk_set_status(team, "lee", [own.id], "approved")


def test_tags_are_checked_against_the_taxonomy(team):
    taxonomy.set_taxonomy(team, "ada", {"categories": ["claims", "billing"], "knowledge_areas": ["auto"]}, 0)
    with pytest.raises(InvalidInput, match="category 'claim' is not in the taxonomy; choose one of: claims, billing"):
        workflow.create_example(team, "amy", content(category="claim"))
    assert workflow.create_example(team, "amy", content(category="claims", response_type="free")).tags.category == "claims"


# ---------------------------------------------------------------- history invariant under random operations

OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "create",
                "edit",
                "noop_edit",
                "submit",
                "approve",
                "changes",
                "archive",
                "bulk_submit",
                "role",
                "taxonomy",
                "forbidden",
            ]
        ),
        st.integers(0, 5),
        st.sampled_from(["amy", "al", "lee", "rita", "ada"]),
    ),
    max_size=40,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(OPS)
def test_every_change_has_one_history_row_and_no_row_without_a_change(team, ops):
    for op, pick, actor in ops:
        ids = [r["id"] for r in team.db["examples"].rows]
        ex = team.get_example(ids[pick % len(ids)]) if ids else None
        before_rows, before = team.db["history"].count, dump(team)
        try:
            if op == "create" or ex is None:
                workflow.create_example(team, actor, content(f"q{pick}", "a"))
            elif op == "edit":
                workflow.edit_example(team, actor, ex.id, ex.version, content(f"edited {pick} {ex.version}", "a"))
            elif op == "noop_edit":
                workflow.edit_example(team, actor, ex.id, ex.version, ex)
            elif op == "submit":
                workflow.submit_example(team, actor, ex.id, ex.version)
            elif op in ("approve", "changes"):
                decision = (
                    ReviewInput(decision="approve") if op == "approve" else ReviewInput(decision="request_changes", comment="x")
                )
                workflow.review_example(team, actor, ex.id, ex.version, decision)
            elif op == "archive":
                workflow.archive_example(team, actor, ex.id, ex.version)
            elif op == "bulk_submit":
                workflow.bulk_set_status(team, actor, [ex.id], "submitted")
            elif op == "role":
                users.set_role(team, actor, "rob", ["reviewer", "lead"][pick % 2], team.get_user("rob").version)
            elif op == "taxonomy":
                taxonomy.set_taxonomy(team, actor, {"categories": [f"c{pick}"]}, taxonomy.get_taxonomy(team)[1])
            elif op == "forbidden":
                workflow.review_example(team, "amy", ex.id, ex.version, ReviewInput(decision="approve"))
        except GoldsmithError:
            assert dump(team) == before, f"{op} by {actor} failed but changed the store"
            continue
        changed = dump(team) != before
        assert team.db["history"].count == before_rows + (1 if changed else 0), f"{op} by {actor}"
    # Each example's version counts its changes; each has exactly that many history rows.
    for row in team.db["examples"].rows:
        assert len(team.history("example", row["id"])) == row["version"]
    for user in team.list_users():
        assert len(team.history("user", user.username)) == user.version


def test_save_and_submit_is_one_change(team):
    """The Write page used to run this transaction itself; save_example is the one service both doors call."""
    from curation.examples.drafts import create_drafted_example
    from curation.store import now

    new = workflow.save_example(team, "amy", content(), submit=True)
    assert (new.status, new.version) == ("submitted", 1)
    draft = make_example(team, "draft", prompt="Second question?")
    saved = workflow.save_example(team, "amy", content("Second question?", "Better."), example_id=draft.id, expected_version=1)
    assert (saved.status, saved.version, saved.response) == ("draft", 2, "Better.")
    submitted = workflow.save_example(
        team, "amy", content("Second question?", "Best."), example_id=draft.id, expected_version=2, submit=True
    )
    assert (submitted.status, submitted.version) == ("submitted", 4)

    generation = {"max_new_tokens": 8, "temperature": 0.0, "do_sample": False}
    mark = {"model": "tiny", "generation": generation, "draft": "Call us.", "drafted_at": now()}
    drafted = create_drafted_example(team, "amy", [{"role": "user", "content": "Third?"}], mark)
    before = dump(team)
    with pytest.raises(InvalidInput, match="still tiny's draft"):  # the edit saves, the submit is refused: neither happens
        workflow.save_example(
            team, "amy", content("Third?", " Call us. "), example_id=drafted.id, expected_version=drafted.version, submit=True
        )
    assert dump(team) == before


# ------------------------------------------------------------------------------------------ what needs a reason


def test_an_exact_duplicate_goes_to_review_only_with_a_reason(team):
    first = make_example(team, "approved", prompt="Is hail covered?", response="Usually, under comprehensive.")
    copy = workflow.create_example(team, "al", content(prompt="IS HAIL COVERED", response="usually under comprehensive"))
    before = dump(team)
    with pytest.raises(InvalidInput, match=rf"repeats example {first.id} \(approved\) word for word.*submit {copy.id} --reason"):
        workflow.submit_example(team, "al", copy.id)
    assert dump(team) == before  # refused: nothing changed
    sent = workflow.submit_example(team, "al", copy.id, reason="  Different audience.  ")
    assert sent.status == "submitted"
    kept = latest_submission(team, sent)
    assert (kept.reason, kept.problems) == ("Different audience.", [f"it repeats example {first.id} (approved) word for word"])
    assert team.history("example", copy.id)[-1].after["reason"] == "Different audience."
    with pytest.raises(InvalidInput, match="cannot go to review"):  # a new example straight to review, too
        workflow.create_example(
            team, "amy", content(prompt="Is hail covered?", response="Usually, under comprehensive."), submit=True
        )


def test_an_over_limit_example_goes_to_review_only_with_a_reason(team):
    long = content(response="word " * 2000)
    with pytest.raises(InvalidInput, match="over the model's limit of 2,048"):
        workflow.save_example(team, "amy", long, submit=True)
    assert team.db["examples"].count == 0  # saving and submitting are one change
    saved = workflow.save_example(team, "amy", long, submit=True, reason="A policy summary that cannot be split.")
    assert saved.status == "submitted"
    approved = make_example(team, "approved", prompt="Short?", response="Short.")
    with pytest.raises(InvalidInput, match="over the model's limit"):  # an approved example edited past the limit
        workflow.edit_example(team, "amy", approved.id, approved.version, content(prompt="Short?", response="word " * 2000))


def test_a_draft_of_a_draft_or_a_rejected_copy_needs_no_reason(team):
    make_example(team, "rejected", prompt="Same?", response="Same.")
    make_example(team, "draft", prompt="Same?", response="Same.")
    assert make_example(team, "submitted", prompt="Same?", response="Same.", reason=None).status == "submitted"


def test_withdraw_takes_an_example_back_to_draft(team):
    ex = make_example(team, "submitted")
    with pytest.raises(PermissionDenied, match="belongs to amy"):
        workflow.withdraw_example(team, "al", ex.id)
    back = workflow.withdraw_example(team, "amy", ex.id, ex.version)
    assert (back.status, back.version) == ("draft", ex.version + 1)
    assert team.history("example", ex.id)[-1].action == "withdraw"
    with pytest.raises(InvalidInput, match="is draft; only submitted examples can be withdrawn"):
        workflow.withdraw_example(team, "amy", ex.id)
    lead = workflow.submit_example(team, "amy", ex.id)
    assert workflow.withdraw_example(team, "lee", lead.id).status == "draft"  # a lead may too


def test_a_bulk_move_to_review_needs_a_comment_for_duplicates(team):
    make_example(team, "approved", prompt="Same?", response="Same.")
    copy = make_example(team, "rejected", prompt="same", response="same")
    with pytest.raises(InvalidInput, match=f"{copy.id} \\(it repeats example 1 .*without a comment"):
        workflow.bulk_set_status(team, "lee", [copy.id], "submitted")
    [moved] = workflow.bulk_set_status(team, "lee", [copy.id], "submitted", comment="checked: keep both")
    assert latest_submission(team, moved).reason == "checked: keep both"


def test_the_cli_twins_submit_with_a_reason_withdraw_and_read_the_queue(team, db_path):
    from typer.testing import CliRunner

    from app.cli import app as cli

    def run(*args: str):
        return CliRunner().invoke(cli, [*args, "--db", str(db_path)])

    make_example(team, "approved", prompt="Same?", response="Same.")
    copy = workflow.create_example(team, "al", content(prompt="same", response="same"))
    refused = run("submit", str(copy.id), "--as", "al")
    assert refused.exit_code == 2 and f"goldsmith submit {copy.id} --reason TEXT" in refused.stderr
    assert run("submit", str(copy.id), "--as", "al", "--reason", "on purpose").exit_code == 0
    listed = run("queue", "--as", "rita", "--flag", "exact_duplicate", "--flag", "has_reason", "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout)["next"]["id"] == copy.id
    assert "1 waiting for you; 0 match the filters." in run("queue", "--as", "rita", "--category", "billing").stdout
    done = run("withdraw", str(copy.id), "--as", "al")
    assert done.exit_code == 0 and team.get_example(copy.id).status == "draft"
    scored = run("review", "1", "--as", "rob", "--approve", "--tone", "4")  # a decided example: refused, but parsed
    assert scored.exit_code != 0 and "only submitted examples can be reviewed" in scored.stderr
