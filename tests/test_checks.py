"""The checks a draft gets: one service (curation.examples.checks) behind the Write page and `goldsmith check`.

The Write page used to add personal-data, missing-tag and token checks that `goldsmith check` never ran;
both doors now show the same findings for the same draft.
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from app.cli import app as cli
from app_helpers import app, assert_no_exception, one
from conftest import make_example
from curation.examples import workflow
from curation.examples.checks import check_draft, save_and_check
from curation.examples.submissions import latest_submission
from schemas import ExampleContent, Tags

PROMPT = "How do I reach you about my claim?"
RESPONSE = "Write to jane.doe@example.com or call 555-123-4567. Your claim will definitely be covered."


def test_a_draft_gets_every_check(team):
    twin = make_example(team, "approved", prompt=PROMPT, response=RESPONSE)
    found = check_draft(team, ExampleContent.from_pair(PROMPT.upper(), RESPONSE, tags=Tags(category="claims")), semantic=False)
    assert [(m.kind, m.example_id) for m in found.matches] == [("exact", twin.id)]
    assert [w.split(";")[0] for w in found.personal_data] == [
        "The assistant turn contains an email address",
        "The assistant turn contains a personal phone number",
    ]
    assert len(found.guideline_warnings) == 1 and "promises an outcome" in found.guideline_warnings[0]
    assert found.missing_tags == ["response_type", "knowledge_area"]
    assert found.tokens == -(-len(f"{PROMPT}\n{RESPONSE}") // 3) and not found.over_limit
    assert found.warnings[-1] == "Tag the example with its response type, knowledge area so coverage counts it."


def test_an_over_long_draft_is_flagged_against_the_limit(team):
    long = ExampleContent.from_pair("q", "word " * 3000)
    found = check_draft(team, long, semantic=False, max_tokens=2048)
    assert found.over_limit and found.tokens > 2048
    assert f"about {found.tokens} tokens; shorten it below 2048" in found.warnings[-1]


def test_the_cli_and_the_write_page_report_the_same_findings(team, db_path, monkeypatch):
    make_example(team, "approved", prompt=PROMPT, response=RESPONSE)
    args = ["check", "--prompt", PROMPT, "--response", RESPONSE, "--tag", "category=claims", "--no-semantic"]
    done = CliRunner().invoke(cli, [*args, "--db", str(db_path), "--json"])
    assert done.exit_code == 0, done.output
    by_cli = json.loads(done.stdout)
    assert (
        by_cli["warnings"] == check_draft(team, ExampleContent.from_pair(PROMPT, RESPONSE, tags=Tags(category="claims"))).warnings
    )

    monkeypatch.setenv("GOLDSMITH_DB", str(db_path))
    at = app(team, "amy", "pages/write.py")
    one(at.text_area, "User message").input(PROMPT)
    one(at.text_area, "Ideal response").input(RESPONSE)
    one(at.text_input, "Category").input("claims")  # no taxonomy in this store: tags are free text
    one(at.button, "Save draft").click().run()
    assert_no_exception(at)
    shown = [w.value for w in at.warning]
    assert all(w in shown for w in by_cli["warnings"]), (shown, by_cli["warnings"])
    assert [m["example_id"] for m in by_cli["matches"]] == [1]
    assert any("1 existing example looks like this one" in w for w in shown)


def test_a_match_shows_the_question_it_repeats_not_its_system_prompt(team):
    system = "You are Lakeshore's assistant. " * 10
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": PROMPT},
        {"role": "assistant", "content": RESPONSE},
    ]
    twin = workflow.create_example(team, "al", ExampleContent.model_validate({"messages": messages}))
    [match] = check_draft(team, ExampleContent.model_validate({"messages": messages}), semantic=False).matches
    assert (match.example_id, match.prompt) == (twin.id, PROMPT)


def test_a_submission_keeps_the_checks_its_author_saw(team):
    saved = save_and_check(team, "amy", ExampleContent.from_pair(PROMPT, RESPONSE), submit=True, semantic=False)
    assert saved.example.status == "submitted" and saved.checks.personal_data
    kept = latest_submission(team, saved.example)
    assert kept.checks == saved.checks and kept.submitted_by == "amy" and kept.reason == "" and kept.problems == []
