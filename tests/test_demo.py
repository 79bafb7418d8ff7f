"""The bundled sample team loads through the real workflow."""

import json

import pytest

from conftest import SAMPLE_DATA
from curation.demo import load_demo
from curation.errors import InvalidInput
from curation.examples.taxonomy import get_guidelines, get_taxonomy
from curation.people import users
from schemas import ExampleFilter


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from curation.store import Store

    store = Store(tmp_path_factory.mktemp("demo") / "demo.db")
    return store, load_demo(store, SAMPLE_DATA, password="demo password")


def test_demo_loads_every_sample_example_with_reviews(demo):
    store, summary = demo
    assert summary.problems == []
    assert summary.examples >= 150
    assert summary.examples == store.db["examples"].count
    assert {"approved", "submitted", "draft", "changes_requested", "rejected"} <= set(summary.by_status)
    assert store.db["reviews"].count == sum(summary.by_status.get(s, 0) for s in ("approved", "rejected", "changes_requested"))
    multi_turn = [e for e in store.list_examples(ExampleFilter(page_size=500)).items if len(e.messages) > 3]
    assert len(multi_turn) >= 10
    for review in store.db["reviews"].rows:  # nobody reviewed their own example
        assert store.get_example(review["example_id"]).author != review["reviewer"]


def test_demo_users_taxonomy_and_guidelines(demo):
    store, summary = demo
    roles = {u["role"] for u in summary.users}
    assert roles == {"admin", "lead", "reviewer", "author"}
    assert users.authenticate(store, "dana", "demo password").role == "lead"
    taxonomy, version = get_taxonomy(store)
    assert version == 1 and "claims" in taxonomy.categories and taxonomy.targets
    assert "compliance" in get_guidelines(store)[0].lower()


def test_planted_guideline_violations_wait_in_the_review_queue(demo):
    store, _ = demo
    planted = [
        i
        for f in sorted((SAMPLE_DATA / "planted").glob("*.json"))
        for item in json.loads(f.read_text())
        if item["kind"] == "guideline_violation"
        for i in item["ids"]
    ]
    assert len(planted) >= 4
    statuses = {r["source_id"]: r["status"] for r in store.db["examples"].rows_where(select="source_id, status")}
    assert {statuses[i] for i in planted} == {"submitted"}


def test_question_log_is_big_enough_for_coverage():
    lines = (SAMPLE_DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 300 and all(json.loads(line)["question"].strip() for line in lines)


def test_demo_refuses_a_store_that_already_has_users(demo):
    store, _ = demo
    with pytest.raises(InvalidInput, match="empty store"):
        load_demo(store, SAMPLE_DATA)
