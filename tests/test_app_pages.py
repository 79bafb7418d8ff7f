"""Every page of the Streamlit app through AppTest, against a real SQLite store (no mocks)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_helpers import MAIN, app, assert_no_exception, one, texts
from conftest import PASSWORD, ROOT, content, make_example
from curation.examples import review_queue, taxonomy, workflow
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


def test_lockout_is_shown_as_a_sentence(app_store):
    at = app(app_store, None)
    for _ in range(5):
        one(at.text_input, "Username").input("amy")
        one(at.text_input, "Password").input("wrong password")
        at.button[0].click().run()
    assert "locked for 15 minutes" in at.error[0].value
    one(at.text_input, "Password").input(PASSWORD)
    at.button[0].click().run()
    assert "locked for" in at.error[0].value and [t.value for t in at.title] == ["Goldsmith"]


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


def test_write_queue_lists_changes_requested_and_tasks(app_store):
    make_example(app_store, "changes_requested")
    make_example(app_store, "draft")
    at = app(app_store, "amy", "pages/write.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Changes requested"] == "1" and metrics["Drafts"] == "1" and metrics["Tasks assigned"] == "0"
    [b for b in at.button if b.label == "Open"][0].click().run()
    assert "Editing example 1" in texts(at) and "fix it" in texts(at)  # the reviewer's comment


# ------------------------------------------------------------------------------------------ review


def test_review_approves_the_next_example(app_store):
    ex = make_example(app_store, "submitted")
    at = app(app_store, "rita", "pages/review.py")
    assert f"Example {ex.id}" in [s.value for s in at.subheader]
    one(at.slider, "Accuracy").set_value(5)
    at.button(key="FormSubmitter:review-1-2-Record review").click().run()
    assert_no_exception(at)
    assert app_store.get_example(ex.id).status == "approved"
    assert app_store.reviews_for(ex.id)[0].rubric.accuracy == 5
    assert "Nothing left to review" in at.info[0].value


def test_review_refusal_without_comment_is_explained(app_store):
    ex = make_example(app_store, "submitted")
    at = app(app_store, "rita", "pages/review.py")
    one(at.radio, "Decision").set_value("reject")
    at.button(key="FormSubmitter:review-1-2-Record review").click().run()
    assert "needs a comment" in at.error[0].value
    assert app_store.get_example(ex.id).status == "submitted" and not app_store.reviews_for(ex.id)


def test_review_overlap_waits_for_a_second_reviewer_and_shows_agreement(app_store):
    review_queue.set_overlap_share(app_store, "ada", 1.0)
    ex = make_example(app_store, "submitted")
    at = app(app_store, "rita", "pages/review.py")
    assert "gets two independent reviews" in texts(at)
    at.button(key="FormSubmitter:review-1-2-Record review").click().run()
    assert "waits for a second reviewer" in at.success[0].value
    assert app_store.get_example(ex.id).status == "submitted"
    at = app(app_store, "rob", "pages/review.py")
    at.button(key="FormSubmitter:review-1-2-Record review").click().run()
    assert app_store.get_example(ex.id).status == "approved"
    assert {m.label: m.value for m in at.metric}["Team agreement"] == "100%"


def test_review_shows_the_diff_since_the_last_review(app_store):
    ex = make_example(app_store, "changes_requested")
    ex = workflow.edit_example(app_store, "amy", ex.id, ex.version, content(response="Use the portal."))
    workflow.submit_example(app_store, "amy", ex.id, ex.version)
    at = app(app_store, "rob", "pages/review.py")
    diff = at.code[0].value
    assert "-Here is how: 1. Call us." in diff and "+Use the portal." in diff


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


def test_dashboard_lead_finds_and_resolves_duplicates(app_store):
    a = make_example(app_store, "approved", prompt="Same question?", response="Same answer.")
    b = make_example(app_store, "approved", prompt="same question", response="same answer")
    at = app(app_store, "lee", "pages/dashboard.py")
    one(at.button, "Find duplicate clusters").click().run()
    assert_no_exception(at)
    assert f"examples {a.id}, {b.id}" in at.expander[0].label
    one(at.radio, "Resolution").set_value("keep_one")
    one(at.selectbox, "Keep").select(a.id)
    [b_ for b_ in at.button if b_.label == "Resolve"][0].click().run()
    assert_no_exception(at)
    assert app_store.get_example(b.id).status == "archived"
    assert "resolved" in at.success[0].value


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
    assert [link.label for link in at.get("page_link")] == ["Train a LoRA run on a snapshot"]
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
    assert "not written" in at.error[0].value and "content_unique" in at.error[0].value
    assert app_store.list_snapshots() == []
    one(at.button, "Create anyway").click().run()
    assert "Give a reason" in at.error[-1].value
    one(at.text_area, "Reason to publish anyway (recorded in the manifest and the history)").input("checked by legal")
    one(at.button, "Create anyway").click().run()
    assert_no_exception(at)
    assert [s.name for s in app_store.list_snapshots()] == ["v1"]


# ------------------------------------------------------------------------------------------ admin


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
    one(at.text_area, "Categories").input("claims\nclaims")
    one(at.button, "Save taxonomy").click().run()
    assert "more than once" in at.error[0].value
    one(at.text_area, "Guidelines (Markdown)").input("# New rules")
    one(at.button, "Save guidelines").click().run()
    assert taxonomy.get_guidelines(app_store) == ("# New rules", 2)
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
    assert argv[1:5] == ["-m", "streamlit", "run", str(ROOT / "app" / "main.py")]
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
