"""Drafts from a model: a model may draft, only a person approves.

The model is a tiny Llama (hidden 64, 2 layers, random weights) with tests/tiny_lm.py's BPE
tokenizer trained here and its ChatML template, saved to a tmp folder and passed as a base model
folder (`base:/path`). Its output embeddings are not tied to the input ones: a tied random model
greedily repeats the prompt's last token (a newline), an empty draft. Tests that only need a
draft's provenance write it by hand, so they need no model at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app as cli
from app_helpers import app, one
from conftest import GOOD_RUBRIC, content, dump, make_example
from curation.datasets.snapshots import create_snapshot
from curation.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from curation.examples import workflow
from curation.examples.drafts import (
    accept_draft,
    create_drafted_example,
    draft_diff,
    drafted_share,
    edit_distance,
    redraft_example,
)
from curation.store import now
from schemas import ReviewInput, Tags
from tiny_lm import build_tiny_lm
from training.drafts import draft_gap_topic, draft_response
from training.playground import base_ref

PROMPT = [{"role": "user", "content": "How do I file a claim?"}]
DRAFT = "Call us and we will file it for you."


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    """A tiny untied Llama chat model in a folder (seed 0: its greedy drafts are not blank)."""
    return build_tiny_lm(tmp_path_factory.mktemp("draft-lm") / "tiny-llama", tied=False)


def provenance(text: str = DRAFT, model: str = "tiny-llama", run_id: str | None = None) -> dict:
    """What draft_response records, written by hand (no model needed)."""
    generation = {"max_new_tokens": 8, "temperature": 0.0, "do_sample": False, "top_p": None}
    adapter = f"/runs/{run_id}/adapter" if run_id else None
    return {"model": model, "adapter": adapter, "run_id": run_id, "generation": generation, "draft": text, "drafted_at": now()}


def drafted(store, author: str = "amy", text: str = DRAFT, prompt: str = "How do I file a claim?", **kw):
    return create_drafted_example(store, author, [{"role": "user", "content": prompt}], provenance(text, **kw))


def approve(store, example_id: int, reviewer: str = "rita"):
    ex = store.get_example(example_id)
    workflow.review_example(store, reviewer, ex.id, ex.version, ReviewInput(decision="approve", rubric=GOOD_RUBRIC))
    return store.get_example(example_id)


def manifest(snapshot) -> dict:
    return json.loads((Path(snapshot.path) / "manifest.json").read_text())


# ------------------------------------------------------------------------------------------ the loop


def test_draft_edit_submit_review_snapshot_keeps_the_mark(team, tiny_lm, tmp_path):
    draft = draft_response(team, "amy", base_ref(str(tiny_lm)), PROMPT, max_new_tokens=8)
    mark = draft.provenance
    assert draft.text and mark.draft == draft.text
    assert (mark.model, mark.adapter, mark.run_id) == (str(tiny_lm), None, None)
    assert mark.generation.model_dump() == {"max_new_tokens": 8, "temperature": 0.0, "do_sample": False, "top_p": None}
    assert mark.drafted_at
    ex = create_drafted_example(team, "amy", PROMPT, mark)
    stored = ex.metadata["drafted_by"]
    assert (ex.status, ex.author, ex.response, stored) == ("draft", "amy", draft.text, mark.model_dump(mode="json"))

    ex = workflow.edit_example(team, "amy", ex.id, ex.version, content(response="File it in the Lakeshore app."))
    ex = workflow.submit_example(team, "amy", ex.id, ex.version)
    ex = approve(team, ex.id)
    make_example(team, "approved", prompt="When is my bill due?", response="On the first.")
    assert ex.status == "approved" and ex.metadata["drafted_by"] == stored  # the mark survives review

    snap = create_snapshot(team, "lee", "v1", eval_fraction=0.0, validate=False, root=tmp_path / "snaps")
    assert snap.train == 2 and manifest(snap)["counts"]["model_drafted"] == 1
    history = team.history("example", ex.id)
    assert [(h.action, h.actor) for h in history] == [("create", "amy"), ("edit", "amy"), ("submit", "amy"), ("approve", "rita")]
    edit = history[1]
    assert edit.before["messages"][-1]["content"] == draft.text  # the model's text ...
    assert edit.after["messages"][-1]["content"] == "File it in the Lakeshore app."  # ... and the person's change


def test_an_unedited_unaccepted_draft_cannot_be_submitted_nor_reach_a_snapshot(team, tmp_path):
    ex = drafted(team)
    before = dump(team)
    with pytest.raises(InvalidInput, match=f"example {ex.id}'s response is still tiny-llama's draft, unchanged; edit it"):
        workflow.submit_example(team, "amy", ex.id, ex.version)
    with pytest.raises(InvalidInput, match="still hold a model's draft unchanged"):
        workflow.bulk_set_status(team, "lee", [ex.id], "submitted")
    with pytest.raises(PermissionDenied, match="belongs to amy"):  # a stranger is refused before learning anything
        workflow.submit_example(team, "al", ex.id, ex.version)
    assert dump(team) == before
    # a whitespace-only "edit" is still the model's text
    ex = workflow.edit_example(team, "amy", ex.id, ex.version, content(response=f"  {DRAFT}\n"))
    with pytest.raises(InvalidInput, match="still tiny-llama's draft"):
        workflow.submit_example(team, "amy", ex.id, ex.version)
    make_example(team, "approved")
    snap = create_snapshot(team, "lee", "v1", eval_fraction=0.0, validate=False, root=tmp_path / "snaps")
    lines = (Path(snap.path) / "train.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [2] and manifest(snap)["counts"]["model_drafted"] == 0


def test_accept_draft_records_who_and_allows_submit(team, tmp_path):
    ex = drafted(team)
    with pytest.raises(PermissionDenied, match="belongs to amy"):
        accept_draft(team, "al", ex.id, ex.version)
    accepted = accept_draft(team, "amy", ex.id, ex.version)
    assert accepted.metadata["draft_accepted"]["by"] == "amy" and accepted.metadata["drafted_by"]["draft"] == DRAFT
    assert accept_draft(team, "amy", ex.id, accepted.version) == accepted  # accepting twice changes nothing
    last = team.history("example", ex.id)[-1]
    assert (last.action, last.actor, set(last.after)) == ("accept_draft", "amy", {"metadata"})
    ex = workflow.submit_example(team, "amy", ex.id, accepted.version)
    ex = approve(team, ex.id)
    snap = create_snapshot(team, "lee", "v1", eval_fraction=0.0, validate=False, root=tmp_path / "snaps")
    assert manifest(snap)["counts"]["model_drafted"] == 1


def test_accept_draft_refuses_what_is_not_an_untouched_draft(team):
    plain = make_example(team)
    with pytest.raises(InvalidInput, match="written by a person"):
        accept_draft(team, "amy", plain.id, plain.version)
    ex = drafted(team)
    ex = workflow.edit_example(team, "amy", ex.id, ex.version, content(response="My own answer."))
    with pytest.raises(InvalidInput, match="already differs from the model's draft; submit it"):
        accept_draft(team, "amy", ex.id, ex.version)
    ex = workflow.submit_example(team, "amy", ex.id, ex.version)
    with pytest.raises(InvalidInput, match="is submitted; only changes_requested or draft examples can be accepted"):
        accept_draft(team, "amy", ex.id, ex.version)


def test_a_snapshot_refuses_a_model_draft_no_reviewer_approved(team, tmp_path):
    ex = drafted(team)
    ex = accept_draft(team, "amy", ex.id, ex.version)
    ex = workflow.submit_example(team, "amy", ex.id, ex.version)
    workflow.bulk_set_status(team, "lee", [ex.id], "approved")  # a lead's bulk move is not a review
    with pytest.raises(InvalidInput, match=rf"examples {ex.id} started as model drafts and no reviewer approved"):
        create_snapshot(team, "lee", "v1", validate=False, root=tmp_path / "snaps")
    workflow.bulk_set_status(team, "lee", [ex.id], "submitted")
    approve(team, ex.id)
    snap = create_snapshot(team, "lee", "v1", eval_fraction=0.0, validate=False, root=tmp_path / "snaps")
    assert manifest(snap)["counts"]["model_drafted"] == 1


def test_redraft_replaces_the_response_and_forgets_an_acceptance(team):
    ex = drafted(team)
    ex = accept_draft(team, "amy", ex.id, ex.version)
    ex = redraft_example(team, "amy", ex.id, ex.version, PROMPT, provenance("A second draft."), tags=Tags(labels="drafted"))
    assert ex.response == "A second draft." and "draft_accepted" not in ex.metadata and ex.tags.labels == ("drafted",)
    assert team.history("example", ex.id)[-1].action == "draft_with_model"
    assert ex.draft_untouched
    approved = make_example(team, "approved")
    with pytest.raises(InvalidInput, match="only draft or changes_requested examples can take a model's draft"):
        redraft_example(team, "amy", approved.id, approved.version, PROMPT, provenance())


def test_drafts_need_an_author_and_a_real_model(team, tmp_path):
    with pytest.raises(PermissionDenied, match="cannot create example"):
        draft_response(team, "rita", base_ref(str(tmp_path)), PROMPT)
    with pytest.raises(InvalidInput, match="does not exist"):
        draft_response(team, "amy", base_ref(str(tmp_path / "nope")), PROMPT)
    with pytest.raises(NotFound, match="no run matches 'smollm2'"):
        draft_response(team, "amy", "smollm2", PROMPT)
    with pytest.raises(InvalidInput, match="no draft text"):
        create_drafted_example(team, "amy", PROMPT, {"model": "x"})
    with pytest.raises(PermissionDenied, match="manage coverage"):  # only a lead drafts for another author
        create_drafted_example(team, "amy", PROMPT, provenance(), author="al")


def test_a_runs_adapter_drafts_and_is_named_in_the_provenance(team, tiny_lm, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from schemas.training import TrainConfig
    from training import runs

    make_example(team, "approved")
    snap = create_snapshot(team, "lee", "v1", eval_fraction=0.0, validate=False, root=tmp_path / "snaps")
    run = runs.create_run(team, "lee", snap.id, TrainConfig(base_model=str(tiny_lm), max_steps=1))
    adapter = Path(run.run_dir) / "adapter"
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_lm), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    lora.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(tiny_lm).save_pretrained(adapter)
    runs.finish(team, run.id, "completed", result={})
    mark = draft_response(team, "lee", run.id, PROMPT, max_new_tokens=4, temperature=0.7).provenance
    assert (mark.model, mark.adapter, mark.run_id) == (str(tiny_lm), str(adapter), run.id)
    assert mark.generation.do_sample and mark.generation.top_p == 0.95


# ------------------------------------------------------------------------------------------ gap topics


def gap_topic(store, questions: list[str]) -> int:
    ids = [
        store.db["questions"].insert({"text": q, "content_hash": f"h{n}", "source": "log", "imported_at": now()}).last_pk
        for n, q in enumerate(questions)
    ]
    row = {"label": "claims photos", "question_ids": json.dumps(ids), "representatives": "[]", "similarity": 0.2}
    return store.db["gap_topics"].insert(row | {"created_at": now()}).last_pk


def test_a_lead_drafts_a_gap_topic_for_an_author(team, tiny_lm):
    topic = gap_topic(team, ["Where do I send photos?", "Can I send a video?", "Do you need receipts?"])
    ref = base_ref(str(tiny_lm))
    with pytest.raises(PermissionDenied, match="manage coverage"):
        draft_gap_topic(team, "amy", topic, ref, "amy")
    with pytest.raises(PermissionDenied, match="cannot create example"):
        draft_gap_topic(team, "lee", topic, ref, "rita")
    with pytest.raises(NotFound, match="no gap topic 99"):
        draft_gap_topic(team, "lee", 99, ref, "amy")
    made = draft_gap_topic(team, "lee", topic, ref, "amy", limit=2, max_new_tokens=4)
    assert [(e.author, e.status, e.prompt) for e in made] == [
        ("amy", "draft", "Where do I send photos?"),
        ("amy", "draft", "Can I send a video?"),
    ]
    assert all(e.metadata["drafted_by"]["model"] == str(tiny_lm) and e.metadata["gap_topic_id"] == topic for e in made)
    assert team.history("example", made[0].id)[0].actor == "lee"  # the lead drafted it, the author owns it
    again = draft_gap_topic(team, "lee", topic, ref, "amy", max_new_tokens=4)  # drafted questions are skipped
    assert [e.prompt for e in again] == ["Do you need receipts?"]
    with pytest.raises(InvalidInput, match="still tiny-llama|still .*'s draft"):
        workflow.submit_example(team, "amy", made[0].id, made[0].version)


# ------------------------------------------------------------------------------------------ dashboard stats


def test_drafted_share_on_known_data(team):
    assert drafted_share(team).model_dump() == {
        "approved": 0,
        "drafted": 0,
        "share": None,
        "accepted_unchanged": 0,
        "unchanged_share": None,
        "mean_edit_distance": None,
        "by_model": {},
    }
    make_example(team, "approved")
    make_example(team, "approved", prompt="Is hail covered?", response="Yes.")
    kept = drafted(team, prompt="Q1?")
    workflow.submit_example(team, "amy", kept.id, accept_draft(team, "amy", kept.id, kept.version).version)
    approve(team, kept.id)
    changed = drafted(team, prompt="Q2?", text="Call us today.", run_id="run-1")
    changed = workflow.edit_example(team, "amy", changed.id, changed.version, content("Q2?", "Call us tomorrow, please."))
    workflow.submit_example(team, "amy", changed.id, changed.version)
    approve(team, changed.id)
    drafted(team, prompt="Q3?")  # not approved: not counted
    stats = drafted_share(team).model_dump()
    distance = edit_distance("Call us today.", "Call us tomorrow, please.")
    assert 0 < distance < 1 and edit_distance("same", "same") == 0
    assert stats == {
        "approved": 4,
        "drafted": 2,
        "share": 0.5,
        "accepted_unchanged": 1,
        "unchanged_share": 0.5,
        "mean_edit_distance": pytest.approx(distance / 2),
        "by_model": {"tiny-llama": 1, "tiny-llama + run run-1": 1},
    }
    diff = draft_diff(team.get_example(changed.id))
    assert [(s.op, s.text) for s in diff.turns[0].segments] == [
        ("same", "Call us "),
        ("removed", "today"),
        ("added", "tomorrow, please"),
        ("same", "."),
    ]
    assert draft_diff(team.get_example(1)) is None


# ------------------------------------------------------------------------------------------ CLI

runner = CliRunner()


def run_cli(*args):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_cli_draft_save_accept_submit_and_draft_gap(team, db_path, tiny_lm):
    ref = base_ref(str(tiny_lm))
    draft = ("draft", "--prompt", "How do I file a claim?", "--max-new-tokens", 4, "--db", db_path, "--as", "amy")
    result = run_cli(*draft, "--model", ref)
    assert result.exit_code == 0 and result.stdout.strip() and team.db["examples"].count == 0
    result = run_cli(*draft, "--model", "smollm2-135m")
    assert result.exit_code == 2 and result.stderr.startswith("Error: no run matches 'smollm2-135m'")  # one line, no traceback
    result = run_cli("draft", "--prompt", "Q?", "--model", ref, "--max-new-tokens", 4, "--save", "--db", db_path, "--as", "amy")
    assert result.exit_code == 0 and "Saved as draft example 1" in result.stderr
    result = run_cli("submit", 1, "--db", db_path, "--as", "amy")
    assert result.exit_code == 2 and result.stderr.startswith("Error: example 1's response is still")
    assert len(result.stderr.strip().splitlines()) == 1
    assert run_cli("accept-draft", 1, "--db", db_path, "--as", "amy").exit_code == 0
    assert run_cli("submit", 1, "--db", db_path, "--as", "amy").exit_code == 0
    topic = gap_topic(team, ["Where do I send photos?"])
    args = ("draft-gap", topic, "--model", ref, "--assignee", "al", "--max-new-tokens", 4, "--db", db_path)
    result = run_cli(*args, "--as", "amy")
    assert result.exit_code == 1 and "cannot manage coverage" in result.stderr
    args = (*args, "--as", "lee")
    result = run_cli(*args, "--json")
    assert result.exit_code == 0 and [e["author"] for e in json.loads(result.stdout)] == ["al"]
    assert "0 drafts created for al" in run_cli(*args).stdout


# ------------------------------------------------------------------------------------------ pages


@pytest.fixture
def app_store(team, db_path, monkeypatch):
    monkeypatch.setenv("GOLDSMITH_DB", str(db_path))
    return team


def page(store, username: str, name: str, open_gap: int | None = None):
    """The page as `username` sees it; `open_gap` opens that gap topic's expander on the Dashboard (a closed one
    draws nothing)."""
    at = app(store, username, f"pages/{name}.py")
    if open_gap is not None:
        at.session_state[f"dash-gap-open-{open_gap}"] = True
        at.run()
    return at


def test_write_page_drafts_with_a_model_then_accepts(app_store, tiny_lm):
    at = page(app_store, "amy", "write")
    one(at.text_input, "Base model").input(str(tiny_lm))
    one(at.slider, "Longest draft (new tokens)").set_value(16)
    one(at.button, "Draft the response").click().run()
    assert "Write the last user message first" in at.error[0].value and app_store.db["examples"].count == 0
    one(at.text_area, "User message").input("How do I file a claim?")
    one(at.button, "Draft the response").click().run()
    assert not at.exception, [e.value for e in at.exception]
    ex = app_store.get_example(1)
    mark = ex.metadata["drafted_by"]
    assert (ex.status, mark["model"], mark["generation"]["max_new_tokens"]) == ("draft", str(tiny_lm), 16)
    assert "Example 1 drafted by" in at.success[0].value
    assert one(at.text_area, "Ideal response").value == mark["draft"]  # the editor holds the draft
    assert "Started as a model draft" in at.info[0].value
    one(at.button, "Submit for review").click().run()
    assert "still" in at.error[0].value and app_store.get_example(1).status == "draft"
    one(at.button, "Accept the draft as is").click().run()
    assert app_store.get_example(1).metadata["draft_accepted"]["by"] == "amy"
    assert "Accepted as is by amy" in at.info[0].value and not [b for b in at.button if b.label == "Accept the draft as is"]
    one(at.button, "Submit for review").click().run()
    assert app_store.get_example(1).status == "submitted"


def test_write_page_shows_a_model_error_as_a_sentence(app_store, tmp_path):
    at = page(app_store, "amy", "write")
    one(at.text_input, "Base model").input(str(tmp_path / "nope"))
    one(at.text_area, "User message").input("Hello?")
    one(at.button, "Draft the response").click().run()
    assert not at.exception and "does not exist" in at.error[0].value and app_store.db["examples"].count == 0


def test_review_page_shows_the_draft_badge_and_diff(app_store):
    ex = drafted(app_store, run_id="run-7")
    ex = workflow.edit_example(app_store, "amy", ex.id, ex.version, content(response="Open the app and tap Claims."))
    workflow.submit_example(app_store, "amy", ex.id, ex.version)
    at = page(app_store, "rita", "review")
    assert not at.exception
    assert "Started as a model draft (tiny-llama + run run-7)" in at.info[0].value
    [diff] = [h.value for h in at.html if "gs-diff" in h.value]
    assert "From the model&#x27;s draft to the response now" in diff
    assert "<del>Call us </del><ins>Open the app </ins>and <del>we will file it for you</del><ins>tap Claims</ins>." in diff


def completed_run_with_adapter(store, model_folder: Path, folder: Path):
    """A completed run (no training: an untrained LoRA adapter on `model_folder`), as the Model picker lists it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from schemas.training import TrainConfig
    from training import runs

    make_example(store, "approved", prompt="Is hail covered?", response="Under comprehensive cover.")
    snap = create_snapshot(store, "lee", "v1", eval_fraction=0.0, validate=False, root=folder / "snaps")
    run = runs.create_run(store, "lee", snap.id, TrainConfig(base_model=str(model_folder), max_steps=1))
    adapter = Path(run.run_dir) / "adapter"
    lora = get_peft_model(
        AutoModelForCausalLM.from_pretrained(model_folder), LoraConfig(r=2, target_modules=["q_proj", "v_proj"])
    )
    lora.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(model_folder).save_pretrained(adapter)
    runs.finish(store, run.id, "completed", result={})
    return run


def wait_job(store, job_id: str, timeout: float = 300):
    """Poll the job service (as the Dashboard does) until the job's worker process has ended."""
    import time

    from training.jobs import get_job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get_job(store, job_id)
        if not job.active:
            return job
        time.sleep(0.1)
    pytest.fail(f"job {job_id} still {job.status} after {timeout} s\n{Path(job.log_path).read_text()[-3000:]}")


def test_the_dashboards_draft_form_starts_a_drafting_job_any_session_sees(app_store, tiny_lm, tmp_path):
    from training.drafts import start_gap_drafting
    from training.jobs import latest_job

    run = completed_run_with_adapter(app_store, tiny_lm, tmp_path)
    topic = gap_topic(app_store, ["Where do I send photos?", "Can I send a video?"])
    at = page(app_store, "lee", "dashboard")
    assert not [s for s in at.selectbox if s.label == "Drafts for"]  # drawn only when the topic is opened
    at = page(app_store, "lee", "dashboard", open_gap=topic)
    one(at.selectbox, "Drafts for").select("al")
    one(at.selectbox, "Model").select(run.id)
    one(at.number_input, "How many questions").set_value(2)
    one(at.button, "Draft answers").click().run()
    assert not at.exception, [e.value for e in at.exception]
    job = latest_job(app_store, "draft_gap", topic)
    assert (job.created_by, job.params["model"], job.params["assignee"], job.params["limit"]) == ("lee", run.id, "al", 2)
    assert f"in the background (job {job.id})" in at.success[0].value
    with pytest.raises(Conflict, match=f"gap topic {topic} is already being drafted"):  # nor from another door
        start_gap_drafting(app_store, "lee", topic, run.id, "amy")
    done = wait_job(app_store, job.id)
    assert done.status == "completed", done.error
    made = [app_store.get_example(i) for i in done.result["example_ids"]]
    assert [(e.author, e.prompt, e.metadata["drafted_by"]["run_id"]) for e in made] == [
        ("al", "Where do I send photos?", run.id),
        ("al", "Can I send a video?", run.id),
    ]
    at = page(app_store, "lee", "dashboard", open_gap=topic)  # a fresh session reads the outcome from the store
    assert not at.exception, [e.value for e in at.exception]
    assert f"Last batch: 2 drafts for al (job {job.id})" in "\n".join(c.value for c in at.caption)


def test_a_drafting_job_refused_before_it_starts_and_one_that_fails(team, tmp_path):
    from training.drafts import start_gap_drafting

    topic = gap_topic(team, ["Where do I send photos?"])
    with pytest.raises(PermissionDenied, match="manage coverage"):
        start_gap_drafting(team, "amy", topic, "base:x", "amy")
    with pytest.raises(NotFound, match="no run matches 'smollm2'"):
        start_gap_drafting(team, "lee", topic, "smollm2", "amy")
    with pytest.raises(InvalidInput, match="name the base model"):
        start_gap_drafting(team, "lee", topic, "base: ", "amy")
    assert team.db.table("jobs").count == 0
    job = start_gap_drafting(team, "lee", topic, base_ref(str(tmp_path / "nope")), "amy")
    done = wait_job(team, job.id)
    assert done.status == "failed" and "does not exist" in done.error and done.result["example_ids"] == []


def test_dashboard_shows_the_drafted_share_and_a_leads_draft_form(app_store):
    make_example(app_store, "approved")
    ex = drafted(app_store)
    workflow.submit_example(app_store, "amy", ex.id, accept_draft(app_store, "amy", ex.id, ex.version).version)
    approve(app_store, ex.id)
    topic = gap_topic(app_store, ["Where do I send photos?"])
    at = page(app_store, "lee", "dashboard", open_gap=topic)
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Approved that started as drafts"] == "50%" and metrics["Accepted unchanged"] == "100%"
    assert metrics["Mean change by the experts"] == "0%"
    assert {"amy", "al"} <= set(one(at.selectbox, "Drafts for").options)
    at = page(app_store, "amy", "dashboard", open_gap=topic)  # an author sees the figures, not the lead's form
    assert not [s for s in at.selectbox if s.label == "Drafts for"]
