"""Every page of the Streamlit app through AppTest, against a real SQLite store (no mocks)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_helpers import MAIN, app, assert_no_exception, one, texts
from conftest import PASSWORD, ROOT, content, make_example
from curation.errors import InvalidInput
from curation.examples import review_queue, taxonomy, workflow
from curation.examples.review_brief import review_brief
from curation.insight.tasks import create_task, list_tasks
from curation.people import sessions
from schemas import ExampleContent

TAXONOMY = {
    "categories": ["claims", "billing"],
    "response_types": ["how_to", "explanation"],
    "knowledge_areas": ["auto", "home"],
    "targets": [{"category": "claims", "response_type": "how_to", "target": 5}],
}
HOSTILE = [
    "<script>window.__xss = 1</script>",
    '<img src=x onerror="window.__xss = 1">',
    "[click me](javascript:window.__xss=1)",
    "[obfuscated](JaVaScRiPt&#58;window.__xss=1)",
    '<a href="javascript:window.__xss=1">link</a>',
]


@pytest.fixture
def app_store(team, db_path, monkeypatch):
    monkeypatch.setenv("GOLDSMITH_DB", str(db_path))
    taxonomy.set_taxonomy(team, "ada", TAXONOMY, 0)
    taxonomy.set_guidelines(team, "ada", "# Tone\nBe **kind**. <script>window.__xss = 1</script>", 0)
    return team


# ------------------------------------------------------------------------------------------ login and router


def test_login_page_signs_in_and_lands_on_the_roles_first_page(app_store):
    at = app(app_store, None)
    assert [t.value for t in at.title] == ["Goldsmith"]
    one(at.text_input, "Username").input("rita")
    one(at.text_input, "Password").input("wrong password")
    at.button[0].click().run()
    assert "Wrong username or password." in [e.value for e in at.error]
    one(at.text_input, "Password").input(PASSWORD)
    at.button[0].click().run()
    assert_no_exception(at)
    assert [t.value for t in at.title] == ["Review"]  # a reviewer's first page


def sign_in_as(at: AppTest, username: str, password: str = "wrong password") -> AppTest:
    one(at.text_input, "Username").input(username)
    one(at.text_input, "Password").input(password)
    return at.button[0].click().run()


def test_lockout_is_shown_as_a_sentence(app_store):
    at = app(app_store, None)
    for _ in range(5):
        sign_in_as(at, "amy")
    assert "locked for 15 minutes" in at.error[0].value
    one(at.text_input, "Password").input(PASSWORD)
    at.button[0].click().run()
    assert "locked for" in at.error[0].value and [t.value for t in at.title] == ["Goldsmith"]


def test_the_attempt_before_a_lockout_warns(app_store):
    at = app(app_store, None)
    for n in range(4):
        sign_in_as(at, "amy")
        warned = "One more wrong password locks 'amy' for 15 minutes" in at.error[0].value
        assert warned == (n == 3), (n, at.error[0].value)


def test_a_link_survives_signing_in(app_store):
    ex = make_example(app_store, "approved")
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.context = {"url": f"http://127.0.0.1:8501/browse?id={ex.id}"}  # what the browser asked for
    at.query_params["id"] = str(ex.id)
    at.switch_page("pages/browse.py").run()
    assert [t.value for t in at.title] == ["Goldsmith"]  # signed out: the sign-in page
    at.switch_page("pages/login.py").run()  # the browser now shows /login
    one(at.text_input, "Username").input("rita")
    one(at.text_input, "Password").input(PASSWORD)
    at.button[0].click().run()
    assert_no_exception(at)
    assert [t.value for t in at.title] == ["Browse"] and f"Example {ex.id}" in [s.value for s in at.subheader]


def test_a_user_changes_their_own_password(app_store):
    other = sessions.login(app_store, "amy", PASSWORD)  # amy in another browser
    at = app(app_store, "amy", "pages/account.py")
    assert [t.value for t in at.title] == ["Your account"]
    one(at.text_input, "Current password").input("not it at all")
    one(at.text_input, "New password (at least 10 characters)").input("a new long password")
    one(at.text_input, "New password again").input("a new long password")
    one(at.button, "Change password").click().run()
    assert "current password is not right" in at.error[0].value
    one(at.text_input, "Current password").input(PASSWORD)
    one(at.text_input, "New password again").input("a different one")
    one(at.button, "Change password").click().run()
    assert "the two new passwords differ" in at.error[0].value.lower()
    one(at.text_input, "Current password").input(PASSWORD)
    one(at.text_input, "New password (at least 10 characters)").input("a new long password")
    one(at.text_input, "New password again").input("a new long password")
    one(at.button, "Change password").click().run()
    assert "Password changed" in at.success[0].value
    assert sessions.login(app_store, "amy", "a new long password").user.username == "amy"
    with pytest.raises(Exception, match="session has ended"):
        sessions.check_session(app_store, other.token)  # the other browser is signed out
    assert sessions.check_session(app_store, at.session_state["token"]).username == "amy"  # this one stays


def test_an_idle_session_is_ended_on_the_server(app_store):
    at = app(app_store, "amy")
    assert [t.value for t in at.title] == ["Write"]
    stale = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    app_store.conn.execute("UPDATE sessions SET last_seen = ?", [stale])
    at.run()
    assert [t.value for t in at.title] == ["Goldsmith"]
    assert "idle for more than 30 minutes" in at.info[0].value


@pytest.mark.parametrize(
    ("user", "allowed", "refused"),
    [
        ("amy", ["write", "browse", "dashboard", "playground"], ["review", "snapshots", "training", "compare", "admin"]),
        ("rita", ["review", "browse", "dashboard", "compare", "playground"], ["write", "snapshots", "training", "admin"]),
        ("lee", ["write", "review", "browse", "dashboard", "snapshots", "training", "compare", "playground"], ["admin"]),
        ("ada", ["browse", "dashboard", "admin"], ["write", "review", "snapshots", "training", "compare", "playground"]),
    ],
)
def test_each_role_gets_its_pages_and_is_refused_the_others(app_store, user, allowed, refused):
    at = app(app_store, user)
    for name in allowed:
        at.switch_page(f"pages/{name}.py").run()
        assert_no_exception(at)
        assert [t.value for t in at.title] == [name.capitalize()], name
    for name in refused:
        at.switch_page(f"pages/{name}.py").run()
        assert "this page is not for that role" in at.error[0].value, name


def test_sign_out_ends_the_session(app_store):
    at = app(app_store, "amy")
    token = at.session_state["token"]
    one(at.sidebar.button, "Sign out").click().run()
    assert [t.value for t in at.title] == ["Goldsmith"]
    with pytest.raises(Exception, match="session has ended"):
        sessions.check_session(app_store, token)


# ------------------------------------------------------------------------------------------ write


def _fill(at: AppTest, prompt: str, response: str) -> None:
    one(at.text_area, "User message").input(prompt)
    one(at.text_area, "Ideal response").input(response)


def test_write_saves_a_draft_once_and_shows_checks(app_store):
    at = app(app_store, "amy", "pages/write.py")
    assert "Be **kind**." in texts(at)  # guidelines beside the editor
    _fill(at, "How do I reach you?", "Write to jane.doe@example.com and we will answer. Your claim will definitely be covered.")
    one(at.selectbox, "Category").select("claims")
    save = one(at.button, "Save draft")
    save.click().run()
    assert_no_exception(at)
    rows = list(app_store.db.query("SELECT id, status, category FROM examples"))
    assert rows == [{"id": 1, "status": "draft", "category": "claims"}]
    assert "Example 1 saved (draft), version 1." in [s.value for s in at.success]
    assert any("email address" in w.value for w in at.warning)
    assert any("response type" in w.value for w in at.warning)  # missing tags are named
    assert any("promises an outcome" in w.value for w in at.warning)  # guideline rules on save
    assert one(at.button, "Save draft").key != save.key  # the old button is gone: a second click is dropped
    at.run()
    assert app_store.db["examples"].count == 1


def test_write_multi_turn_and_submit(app_store):
    at = app(app_store, "amy", "pages/write.py")
    one(at.text_area, "System prompt (optional)").input("You are Lakeshore's assistant.")
    _fill(at, "Is hail covered?", "Usually, under comprehensive.")
    one(at.button, "Add a turn").click().run()
    areas = [a for a in at.text_area if a.label == "User message"]
    assert len(areas) == 2
    areas[1].input("And my roof?")
    [a for a in at.text_area if a.label == "Ideal response"][1].input("Check your home policy's declarations page.")
    one(at.button, "Submit for review").click().run()
    assert_no_exception(at)
    example = app_store.get_example(1)
    assert example.status == "submitted"
    assert [m.role for m in example.messages] == ["system", "user", "assistant", "user", "assistant"]


def test_write_shows_a_validation_error_as_a_sentence(app_store):
    at = app(app_store, "amy", "pages/write.py")
    one(at.text_area, "User message").input("Only a question")
    one(at.button, "Save draft").click().run()
    assert at.error and "message content is empty" in at.error[0].value
    assert app_store.db["examples"].count == 0


def test_write_surfaces_a_conflict_and_overwrites_nothing(app_store):
    draft = make_example(app_store, "draft")
    at = app(app_store, "lee", "pages/browse.py")
    at.session_state["write_id"] = draft.id
    at.switch_page("pages/write.py").run()
    assert f"Editing example {draft.id}" in texts(at)
    workflow.edit_example(app_store, "amy", draft.id, draft.version, content(response="Amy's newer answer."))
    one(at.text_area, "Ideal response").input("Lee's answer")
    one(at.button, "Save draft").click().run()
    assert "was changed by someone else" in at.error[0].value and "edit by amy" in at.error[0].value
    assert app_store.get_example(draft.id).response == "Amy's newer answer."


def test_write_checks_what_is_written_before_it_is_saved(app_store):
    system = "You are Lakeshore's assistant. Be brief."
    taken = workflow.create_example(
        app_store,
        "al",
        ExampleContent.model_validate(
            {
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": "Does renters insurance cover a stolen bike?"},
                    {"role": "assistant", "content": "Usually yes, minus your deductible; check your declarations page."},
                ]
            }
        ),
    )
    at = app(app_store, "amy", "pages/write.py")
    one(at.text_area, "System prompt (optional)").input(system)
    _fill(at, "Does renters insurance cover a stolen bike?", "Usually yes, minus your deductible; check your declarations page.")
    at.run()  # typing: no save
    assert app_store.db["examples"].count == 1
    assert "Checks as you write" in [s.value for s in at.subheader]
    assert any(w.value.startswith("1 existing example looks like this one") for w in at.warning)
    assert any(label.startswith(f"Example {taken.id} · word for word") for label in [p.label for p in at.get("page_link")])
    shown = texts(at)
    assert "Does renters insurance cover a stolen bike?" in shown and system not in shown  # the question, not the system prompt


def test_write_submitting_an_exact_duplicate_needs_a_reason_the_reviewer_reads(app_store):
    make_example(app_store, "approved", prompt="Is hail covered?", response="Usually, under comprehensive.")
    at = app(app_store, "amy", "pages/write.py")
    _fill(at, "Is hail covered?", "Usually, under comprehensive.")
    one(at.button, "Submit for review").click().run()
    assert "cannot go to review as it is: it repeats example 1 (approved) word for word" in at.error[0].value
    assert app_store.db["examples"].count == 1  # nothing saved: save and submit are one change
    one(at.text_input, "Note for the reviewer").input("The FAQ bot needs this exact wording twice.")
    one(at.button, "Submit for review").click().run()
    assert_no_exception(at)
    saved = app_store.get_example(2)
    assert saved.status == "submitted"
    brief = review_brief(app_store, "rita", saved.id)
    assert brief.reason == "The FAQ bot needs this exact wording twice." and brief.problems


def test_write_a_submitted_example_is_read_only_and_can_be_withdrawn(app_store):
    ex = make_example(app_store, "submitted")
    at = app(app_store, "amy", "pages/browse.py")
    at.session_state["write_id"] = ex.id
    at.switch_page("pages/write.py").run()
    assert not at.text_area and not [b for b in at.button if b.label in ("Save draft", "Submit for review")]
    assert "waiting for review, so it cannot be edited" in at.info[0].value
    assert "Here is how: 1. Call us." in texts(at)  # shown as the conversation
    one(at.button, "Withdraw to draft").click().run()
    assert_no_exception(at)
    assert app_store.get_example(ex.id).status == "draft"
    assert f"Example {ex.id} is a draft again" in at.success[0].value
    assert one(at.text_area, "Ideal response").value == "Here is how: 1. Call us."  # editable again


IMPORTED = {
    "messages": [
        {"role": "user", "content": "Summarise the clause.", "context": "Clause 7: water damage from a burst pipe is covered."},
        {"role": "assistant", "content": "An old answer we keep as context only.", "weight": 0},
        {"role": "user", "content": "And a slow leak?"},
        {"role": "assistant", "content": "A slow leak is wear and tear, so it is not covered.", "weight": 1},
    ],
    "tags": {"category": "claims"},
}


def test_write_keeps_an_imported_examples_context_and_weights_when_it_is_edited(app_store):
    ex = workflow.create_example(app_store, "amy", ExampleContent.model_validate(IMPORTED))
    at = app(app_store, "amy", "pages/browse.py")
    at.query_params["id"] = str(ex.id)
    at.run()
    shown = texts(at)  # Browse shows the context apart and the unlearned answer marked
    assert "Context passage (given with the question)" in shown and "Clause 7: water damage" in shown
    assert "not learned (weight 0)" in shown
    at.session_state["write_id"] = ex.id
    at.switch_page("pages/write.py").run()
    contexts = [a for a in at.text_area if a.label.startswith("The passage the question needs")]
    assert [a.value for a in contexts] == ["Clause 7: water damage from a burst pipe is covered.", ""]
    assert [t.value for t in at.toggle] == [False, True]
    [*_, last] = [a for a in at.text_area if a.label == "Ideal response"]
    last.input("A slow leak is wear and tear, so the policy does not cover it.")
    contexts[1].input("Clause 9: wear and tear is excluded.")
    one(at.button, "Save draft").click().run()
    assert_no_exception(at)
    saved = app_store.get_example(ex.id)
    assert [(m.context, m.weight) for m in saved.messages] == [
        ("Clause 7: water damage from a burst pipe is covered.", None),
        (None, 0),
        ("Clause 9: wear and tear is excluded.", None),
        (None, 1),
    ]
    assert saved.messages[3].content.endswith("does not cover it.")
    at.toggle[0].set_value(True).run()  # the author decides the first answer is learned after all
    one(at.button, "Save draft").click().run()
    assert [m.weight for m in app_store.get_example(ex.id).messages] == [None, None, None, 1]


def test_write_a_gap_topic_task_opens_in_the_full_editor_prefilled(app_store):
    task = create_task(app_store, "lee", "Does my policy cover flood damage?", "amy", note="from a gap topic", source="test")
    at = app(app_store, "amy", "pages/write.py")
    at.session_state["write_tab"] = "My queue"
    at.run()
    one(at.button, "Answer").click().run()
    assert at.session_state["write_tab"] == "Editor"
    assert f"Answering task {task.id}" in at.info[0].value
    assert one(at.text_area, "User message").value == "Does my policy cover flood damage?"
    one(at.text_area, "Ideal response").input("Flood needs separate flood insurance; your agent can add it.")
    one(at.selectbox, "Category").select("claims")
    one(at.button, "Submit for review").click().run()
    assert_no_exception(at)
    example = app_store.get_example(1)
    assert example.status == "submitted" and example.tags.category == "claims" and example.metadata["task_id"] == task.id
    assert list_tasks(app_store, assignee="amy") == []  # done
    assert "Checks on what you submitted" in [s.value for s in at.subheader]  # the same checks as any example


def test_write_queue_open_switches_to_the_editor(app_store):
    make_example(app_store, "changes_requested")
    make_example(app_store, "draft")
    at = app(app_store, "amy", "pages/write.py")
    assert not at.metric  # only the open tab runs: the editor
    at.session_state["write_tab"] = "My queue"
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Changes requested"] == "1" and metrics["Drafts"] == "1" and metrics["Tasks assigned"] == "0"
    [b for b in at.button if b.label == "Open"][0].click().run()
    assert at.session_state["write_tab"] == "Editor" and not at.metric  # the author lands in the editor
    assert "Editing example 1" in texts(at) and "fix it" in texts(at)  # the reviewer's comment


# ------------------------------------------------------------------------------------------ review


RECORD = "FormSubmitter:review-1-2-Record review"


def test_review_starts_unset_and_records_only_the_scores_given(app_store):
    ex = make_example(app_store, "submitted", reason=None)
    at = app(app_store, "rita", "pages/review.py")
    assert f"Example {ex.id}" in [s.value for s in at.subheader]
    assert [c.value for c in at.segmented_control] == [None, None, None, None]  # no score is given for the reviewer
    assert one(at.radio, "Decision").value is None  # and no decision: one click records nothing
    at.button(key=RECORD).click().run()
    assert "choose a decision" in at.error[0].value.lower()
    assert app_store.get_example(ex.id).status == "submitted" and not app_store.db["reviews"].count
    one(at.segmented_control, "Accuracy").set_value(5)
    one(at.segmented_control, "Tone").set_value(3)
    one(at.radio, "Decision").set_value("approve")
    at.button(key=RECORD).click().run()
    assert_no_exception(at)
    assert app_store.get_example(ex.id).status == "approved"
    [review] = review_queue.reviews_of(app_store, ex.id)
    assert review.rubric.scores == {"accuracy": 5, "tone": 3}  # compliance and completeness were not scored
    row = app_store.db["reviews"].get(review.id)
    assert (row["compliance"], row["completeness"]) == (None, None)
    assert f"Example {ex.id}: approved." in [s.value for s in at.success]
    assert "Nothing is waiting for you" in at.info[0].value


def test_review_with_no_scores_records_no_rubric(app_store):
    ex = make_example(app_store, "submitted")
    at = app(app_store, "rita", "pages/review.py")
    one(at.radio, "Decision").set_value("approve")
    at.button(key=RECORD).click().run()
    assert review_queue.reviews_of(app_store, ex.id)[0].rubric is None


def test_review_refusal_without_comment_is_explained(app_store):
    ex = make_example(app_store, "submitted")
    at = app(app_store, "rita", "pages/review.py")
    one(at.radio, "Decision").set_value("reject")
    at.button(key=RECORD).click().run()
    assert "needs a comment" in at.error[0].value
    assert app_store.get_example(ex.id).status == "submitted" and not app_store.reviews_for(ex.id)


def test_review_overlap_waits_for_a_second_reviewer_and_shows_agreement(app_store):
    review_queue.set_overlap_share(app_store, "ada", 1.0)
    ex = make_example(app_store, "submitted")
    at = app(app_store, "rita", "pages/review.py")
    assert "gets two independent reviews" in texts(at)
    one(at.radio, "Decision").set_value("approve")
    at.button(key=RECORD).click().run()
    assert "waits for a second reviewer" in at.success[0].value
    assert app_store.get_example(ex.id).status == "submitted"
    at = app(app_store, "rob", "pages/review.py")
    assert "the first review is in; yours decides" in texts(at)
    one(at.radio, "Decision").set_value("approve")
    at.button(key=RECORD).click().run()
    assert app_store.get_example(ex.id).status == "approved"
    assert {m.label: m.value for m in at.metric}["Team agreement"] == "100%"


def test_review_shows_a_readable_word_diff_since_the_last_review(app_store):
    ex = make_example(app_store, "changes_requested")
    hostile = "Use the <b>portal</b> now."
    ex = workflow.edit_example(app_store, "amy", ex.id, ex.version, content(response=f"Here is how: 1. {hostile}"))
    ex = workflow.submit_example(app_store, "amy", ex.id, ex.version)
    at = app(app_store, "rob", "pages/review.py")
    [diff] = [h.value for h in at.html if "gs-diff" in h.value]
    assert f"From version 2, reviewed by rita: changes requested to version {ex.version} (now)" in diff  # plain words
    assert "<del>Call us</del>" in diff and "<ins>Use the &lt;b&gt;portal&lt;/b&gt; now</ins>" in diff  # words, escaped
    assert "Here is how: 1. " in diff and "@@" not in diff and "request_changes" not in diff
    assert "Unchanged: User, turn 1, Tags." in diff
    assert "position:sticky" in " ".join(h.value for h in at.html)  # the rubric column is pinned


def test_review_shows_the_authors_checks_and_reason_at_the_top(app_store):
    first = make_example(app_store, "approved", prompt="Is hail covered?", response="Usually, under comprehensive.")
    copy = workflow.create_example(app_store, "al", content(prompt="is hail covered", response="usually under comprehensive"))
    with pytest.raises(InvalidInput, match=f"repeats example {first.id} \\(approved\\) word for word"):
        workflow.submit_example(app_store, "al", copy.id)
    workflow.submit_example(app_store, "al", copy.id, reason="The wording differs on purpose for the FAQ bot.")
    at = app(app_store, "rita", "pages/review.py")
    assert f"Example {copy.id}" in [s.value for s in at.subheader]
    assert f"repeats example {first.id} (approved) word for word" in at.error[0].value
    assert "The author's reason: The wording differs on purpose for the FAQ bot." in at.info[0].value
    assert "Tag the example with its category, response type, knowledge area" in texts(at)
    links = [link.label for link in at.get("page_link")]
    assert any(label.startswith(f"Example {first.id} · word for word · approved") for label in links)
    assert "Is hail covered?" in texts(at)  # the matched example's question


def test_review_queue_filters_and_id_box_keep_counts_consistent(app_store):
    claims = [
        make_example(app_store, "submitted", prompt=f"Claim {n}?", response=f"Answer {n}.", category="claims") for n in range(3)
    ]
    billing = make_example(app_store, "submitted", author="al", prompt="Bill?", response="Pay it.", category="billing")
    at = app(app_store, "rita", "pages/review.py")
    metrics = lambda: {m.label.split(" (")[0]: m.value for m in at.metric}  # noqa: E731
    assert metrics()["Waiting for you"] == "4" and metrics()["Left to review"] == "4"
    one(at.selectbox, "Category").select("billing").run()
    assert f"Example {billing.id}" in [s.value for s in at.subheader] and metrics()["Left to review"] == "1"
    one(at.button, "Skip for now").click().run()
    assert metrics()["Waiting for you"] == "4" and metrics()["Left to review"] == "0"
    assert "You skipped all 1 examples left here" in at.info[0].value  # never "nothing left" beside a waiting count
    one(at.selectbox, "Category").select("(any)")
    one(at.selectbox, "Author").select("al").run()
    assert "You skipped all 1" in at.info[0].value
    one(at.button, "Show the skipped examples again").click().run()
    assert f"Example {billing.id}" in [s.value for s in at.subheader]
    one(at.selectbox, "Author").select("(any)")
    one(at.multiselect, "Flags").select("missing_tags").run()
    assert metrics()["Left to review"] == "4"  # none has a response type
    one(at.number_input, "Open example by id").set_value(claims[2].id).run()
    assert f"Example {claims[2].id}" in [s.value for s in at.subheader]
    one(at.number_input, "Open example by id").set_value(999).run()
    assert "no example with id 999" in at.error[0].value.lower()


# ------------------------------------------------------------------------------------------ browse


def test_browse_searches_filters_and_pages(app_store):
    for n in range(30):
        make_example(app_store, "approved" if n % 2 else "draft", prompt=f"Question {n} about hail", response=f"Answer {n}.")
    make_example(app_store, "draft", prompt="Billing dates", response="On the first.")
    at = app(app_store, "amy", "pages/browse.py")
    assert "31 examples · page 1 of 1" in texts(at)
    one(at.text_input, "Search prompts and responses").input("hail").run()
    one(at.selectbox, "Status").select("approved").run()
    assert "15 examples" in texts(at)
    one(at.selectbox, "Per page").select(25).run()
    one(at.text_input, "Search prompts and responses").input("").run()
    one(at.selectbox, "Status").select("(any)").run()
    one(at.number_input, "Page").set_value(2).run()
    assert "31 examples · page 2 of 2" in texts(at)
    assert len(at.dataframe[0].value) == 6


def test_browse_opens_an_example_with_history_and_renders_hostile_text_inert(app_store):
    hostile = "\n\n".join(HOSTILE)
    ex = workflow.create_example(app_store, "amy", ExampleContent.from_pair(hostile, hostile))
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.session_state["token"] = sessions.login(app_store, "amy", PASSWORD).token
    at.query_params["id"] = str(ex.id)
    at.switch_page("pages/browse.py").run()
    assert_no_exception(at)
    assert f"Example {ex.id}" in [s.value for s in at.subheader]
    rendered = [m.value for m in at.markdown if "xss" in m.value]
    assert rendered, "the hostile text is shown"
    for body in rendered:
        assert "<script" not in body and "<img" not in body and "<a " not in body
        assert "javascript:" not in body.lower() and "&#58;" not in body
    history = at.dataframe[-1].value
    assert list(history["action"]) == ["create"]


# ------------------------------------------------------------------------------------------ dashboard


def test_dashboard_counts_and_charts(app_store):
    make_example(app_store, "approved", category="claims", response_type="how_to")
    make_example(app_store, "submitted")
    at = app(app_store, "amy", "pages/dashboard.py")
    assert_no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Examples"] == "2" and metrics["Approved"] == "1" and metrics["Submitted"] == "1"
    assert len(at.get("vega_lite_chart")) >= 3  # status, category, coverage heat map
    assert "Thinnest cells: claims / how_to (1 of 5)" in texts(at)


def test_dashboard_heat_map_labels_read_on_every_cell_and_are_never_cut(app_store):
    make_example(app_store, "approved", category="claims", response_type="how_to")
    at = app(app_store, "lee", "pages/dashboard.py")
    [heat] = [c for c in at.get("vega_lite_chart") if "layer" in json.loads(c.proto.spec)]
    spec = json.loads(heat.proto.spec)
    rect, text = spec["layer"]
    assert rect["encoding"]["x"]["axis"]["labelLimit"] == 0 and rect["encoding"]["y"]["axis"]["labelLimit"] == 0
    color = text["encoding"]["color"]  # white numbers on the dark ends of the scale, near-black on the light middle
    assert color["value"] == "#1f1f1f" and color["condition"]["value"] == "white"
    assert "datum.filled < 0.3" in color["condition"]["test"]


def test_dashboard_computes_the_coverage_map_from_the_production_logs(app_store, tmp_path):
    from curation.insight import monitoring

    make_example(app_store, "approved", prompt="How do I file a claim for hail damage?", response="Open the app.")
    logs = tmp_path / "prod.jsonl"
    asked = ["does my home policy cover flood water in the basement", "is flooding from the river covered?"]
    chats = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "We can help."}]} for q in asked]
    logs.write_text("".join(json.dumps(c) + "\n" for c in chats))
    monitoring.import_logs(app_store, "lee", logs)
    at = app(app_store, "lee", "pages/dashboard.py")
    assert "goldsmith coverage" not in texts(at)  # no pointer to the CLI
    one(at.button, "Compute the coverage map").click().run()
    assert_no_exception(at)
    assert re.search(r"\d of 2 real questions are covered", texts(at))
    assert app_store.db["questions"].count == 2  # the lead's run adopted them for authoring tasks


def test_dashboard_resolving_a_cluster_keeps_the_others_and_says_what_was_archived(app_store):
    a = make_example(app_store, "approved", prompt="Same question?", response="Same answer.")
    b = make_example(app_store, "approved", prompt="same question", response="same answer")
    c = make_example(app_store, "approved", prompt="Other question?", response="Other answer.")
    d = make_example(app_store, "approved", prompt="other question", response="other answer")
    at = app(app_store, "lee", "pages/dashboard.py")
    one(at.button, "Find duplicate clusters").click().run()
    assert_no_exception(at)
    labels = [e.label for e in at.expander if e.label.startswith("exact")]
    assert any(f"examples {a.id}, {b.id}" in x for x in labels) and any(f"examples {c.id}, {d.id}" in x for x in labels)
    one(at.radio, "Resolution").set_value("keep_one")
    one(at.selectbox, "Keep").select(a.id)
    [b_ for b_ in at.button if b_.label == "Resolve"][0].click().run()
    assert_no_exception(at)
    assert app_store.get_example(b.id).status == "archived"
    assert at.success[0].value == f"Cluster {a.id}, {b.id}: kept example {a.id}, archived {b.id}."
    labels = [e.label for e in at.expander if e.label.startswith("exact")]
    assert labels and all(f"examples {c.id}, {d.id}" in x for x in labels)  # the other cluster is still listed


def test_dashboard_author_cannot_resolve(app_store):
    make_example(app_store, "approved", prompt="Same question?", response="Same answer.")
    make_example(app_store, "approved", prompt="same question", response="same answer")
    at = app(app_store, "amy", "pages/dashboard.py")
    one(at.button, "Find duplicate clusters").click().run()
    assert not [b for b in at.button if b.label == "Resolve"]
    assert len(at.expander) == 1  # "?" is folded away by default
    one(at.checkbox, "Exact duplicates must match in punctuation too").check().run()
    one(at.button, "Find duplicate clusters").click().run()
    assert_no_exception(at)
    assert not at.expander and "0 clusters among 2 examples." in texts(at)


# ------------------------------------------------------------------------------------------ snapshots


def test_snapshots_create_list_and_download(app_store, tmp_path):
    make_example(app_store, "approved", category="claims")
    make_example(app_store, "approved", prompt="Other question", response="Other answer", category="billing")
    at = app(app_store, "lee", "pages/snapshots.py")
    assert "Train a LoRA run on a snapshot" in [link.label for link in at.get("page_link")]
    one(at.text_input, "Name").input("v1")
    at.button[0].click().run()
    assert_no_exception(at)
    snaps = app_store.list_snapshots()
    assert [s.name for s in snaps] == ["v1"] and "Snapshot" in at.success[0].value
    assert Path(snaps[0].path, "train.jsonl").exists()
    assert any(b.label == "Download train.jsonl" for b in at.get("download_button"))


def test_snapshots_blocked_then_overridden_with_a_reason(app_store):
    make_example(app_store, "approved")
    make_example(app_store, "approved")  # the same conversation twice: content_unique is critical
    at = app(app_store, "lee", "pages/snapshots.py")
    one(at.text_input, "Name").input("v1")
    at.button[0].click().run()
    assert "not written" in at.error[0].value and "No conversation appears twice" in at.error[0].value
    page = texts(at) + " ".join(str(d.value.to_dict()) for d in at.dataframe)
    for jargon in ("content_unique", "create_snapshot", "--name", "e.g."):  # the developers' words stay out
        assert jargon not in page
    failing = at.dataframe[-1].value  # each failing example, as a link to it
    assert sorted(failing["example"]) == ["/browse?id=1", "/browse?id=2"]
    assert app_store.list_snapshots() == []
    one(at.button, "Create anyway").click().run()
    assert "Give a reason" in at.error[-1].value
    one(at.text_area, "Reason to publish anyway (recorded in the manifest and the history)").input("checked by legal")
    one(at.button, "Create anyway").click().run()
    assert_no_exception(at)
    assert [s.name for s in app_store.list_snapshots()] == ["v1"]


# ------------------------------------------------------------------------------------------ admin


def test_admin_says_what_is_wrong_with_a_username_once(app_store):
    at = app(app_store, "ada", "pages/admin.py")
    one(at.text_input, "Username").input("Jo Smith")
    one(at.button, "Add user").click().run()
    [error] = [e.value for e in at.error]
    assert error.startswith("Username 'Jo Smith' is not valid: use 1-32 letters")
    assert error.lower().count("username") == 1 and "invalid user" not in error.lower()


def test_admin_adds_a_user_and_changes_a_role(app_store):
    at = app(app_store, "ada", "pages/admin.py")
    one(at.text_input, "Username").input("jo")
    one(at.button, "Add user").click().run()
    assert_no_exception(at)
    assert app_store.get_user("jo").role == "author"
    assert "shown once" in at.warning[0].value
    one(at.selectbox, "User").select("jo").run()
    [s for s in at.selectbox if s.label == "Role"][-1].select("reviewer")
    one(at.button, "Change role").click().run()
    assert app_store.get_user("jo").role == "reviewer"


def test_admin_refuses_a_bad_taxonomy_and_saves_guidelines_and_overlap(app_store):
    at = app(app_store, "ada", "pages/admin.py")
    at.session_state["admin_tab"] = "Taxonomy and targets"
    at.run()
    one(at.text_area, "Categories").input("claims\nclaims")
    one(at.button, "Save taxonomy").click().run()
    assert "more than once" in at.error[0].value
    assert at.session_state["admin_tab"] == "Taxonomy and targets"  # the error shows where the admin is looking
    one(at.text_area, "Categories").input("claims\nbilling\nflood")
    one(at.button, "Save taxonomy").click().run()
    assert "Taxonomy saved (version 2)." in at.success[0].value and at.session_state["admin_tab"] == "Taxonomy and targets"
    at.session_state["admin_tab"] = "Guidelines and review"
    at.run()
    one(at.text_area, "Guidelines (Markdown)").input("# New rules\nBe *brief*.").run()
    preview = "\n".join(m.value for m in at.markdown)
    assert "#### New rules" in preview and "(not saved yet)" in preview  # the preview shows the edit, before saving
    assert taxonomy.get_guidelines(app_store)[1] == 1
    one(at.button, "Save guidelines").click().run()
    assert taxonomy.get_guidelines(app_store) == ("# New rules\nBe *brief*.", 2)
    one(at.slider, "Share of examples that get two independent reviews").set_value(0.2)
    one(at.button, "Save review overlap").click().run()
    assert review_queue.overlap_share(app_store) == 0.2


# ------------------------------------------------------------------------------------------ helpers and serve


@pytest.mark.parametrize(
    "text",
    [
        "[x](javascript:alert(1))",
        "[x]( JaVaScRiPt :alert(1))",
        "[x](javascript&#58;alert(1))",
        "[ref]: javascript:alert(1)",
        "![img](javascript:alert(1))",
        "[d](data:text/html;base64,PHNjcmlwdD4=)",
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
    ],
)
def test_safe_markdown_text_defuses_html_and_script_links(text):
    from app.ui import safe_markdown_text

    safe = safe_markdown_text(text)
    assert "<" not in safe
    assert not re.search(r"(?i)\]\(\s*<?\s*(javascript|data)", safe) and not re.search(r"(?i)\]:\s*javascript", safe)
    assert not re.search(r"(?i)javascript\s*:", safe)


def test_safe_markdown_text_keeps_ordinary_markdown():
    from app.ui import safe_markdown_text

    text = "**Bold**, a [portal](https://lakeshore.example/claims) and data: 5 rows"
    assert safe_markdown_text(text) == text


def test_serve_runs_streamlit_headless_on_localhost_with_xsrf(app_store, db_path, monkeypatch):
    from typer.testing import CliRunner

    from app import cli_serve
    from app.cli import app as cli

    calls = []

    def fake_execve(path, argv, env):
        calls.append((argv, env))
        raise SystemExit(0)

    monkeypatch.setattr(cli_serve.os, "execve", fake_execve)
    result = CliRunner().invoke(cli, ["serve", "--db", str(db_path), "--port", "8600"])
    assert result.exit_code == 0, result.output
    argv, env = calls[0]
    assert argv[1:5] == ["-m", "streamlit", "run", str(ROOT / "app" / "web" / "asgi.py")]  # st.App: the router + its route
    for flag in (
        "--server.address=127.0.0.1",
        "--server.port=8600",
        "--server.headless=true",
        "--server.enableXsrfProtection=true",
        "--browser.gatherUsageStats=false",
    ):
        assert flag in argv
    assert env["GOLDSMITH_DB"] == str(db_path.resolve())
    missing = CliRunner().invoke(cli, ["serve", "--db", str(db_path.with_name("nope.db"))])
    assert missing.exit_code == 2 and "no Goldsmith database" in missing.output


def test_review_overlap_command_shows_and_sets_the_share(app_store, db_path):
    from typer.testing import CliRunner

    from app.cli import app as cli

    shown = CliRunner().invoke(cli, ["review-overlap", "--db", str(db_path)])
    assert shown.exit_code == 0 and "0% of examples" in shown.output
    refused = CliRunner().invoke(cli, ["review-overlap", "0.2", "--db", str(db_path), "--as", "lee"])
    assert refused.exit_code == 1 and "admin role" in refused.output
    done = CliRunner().invoke(cli, ["review-overlap", "0.2", "--db", str(db_path), "--as", "ada"])
    assert done.exit_code == 0 and review_queue.overlap_share(app_store) == 0.2
