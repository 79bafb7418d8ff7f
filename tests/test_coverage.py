"""Coverage against taxonomy targets and real questions, gap topics, the map, and authoring tasks."""

import json

import pytest

from conftest import make_example
from curation.errors import InvalidInput, PermissionDenied
from curation.examples import taxonomy
from curation.insight import coverage
from curation.insight import tasks as authoring

COVERED = ["how do i file a claim after my car accident?", "my car got hit in a parking lot, how do i file a claim"]
FLOOD = [
    "does my home policy cover flood water in the basement",
    "is flooding from the river covered?",
    "our basement flooded after heavy rain, am I covered for flood damage",
]
TEEN = [
    "how much to add my 16 year old son to my car insurance",
    "adding a teenage driver who just got her license",
    "my teen is learning to drive, do I need to add him to the policy",
]


@pytest.fixture
def tagged(team):
    taxonomy.set_taxonomy(
        team,
        "ada",
        {
            "categories": ["claims", "billing"],
            "response_types": ["step_by_step", "explanation"],
            "knowledge_areas": ["auto", "home"],
            "targets": [
                {"category": "claims", "response_type": "step_by_step", "target": 4},
                {"category": "billing", "response_type": "explanation", "target": 2},
            ],
        },
        0,
    )
    for i, area in enumerate(["auto", "auto", "home"]):
        make_example(
            team,
            "approved",
            prompt=f"How do I file a claim after an accident? ({i})",
            response=f"Step {i}: call us.",
            category="claims",
            response_type="step_by_step",
            knowledge_area=area,
        )
    make_example(
        team,
        "approved",
        prompt="Why did my bill go up?",
        response="Rates changed.",
        category="billing",
        response_type="explanation",
        knowledge_area="auto",
    )
    make_example(
        team, "draft", prompt="Draft about billing", response="Not approved yet.", category="billing", response_type="explanation"
    )
    return team


def test_taxonomy_cells_count_approved_examples_thinnest_first(tagged):
    cells = coverage.taxonomy_coverage(tagged)
    by_cell = {(c.category, c.response_type): c for c in cells}
    claims = by_cell[("claims", "step_by_step")]
    assert (claims.approved, claims.target, claims.gap, claims.by_knowledge_area) == (3, 4, 1, {"auto": 2, "home": 1})
    assert (by_cell[("billing", "explanation")].approved, by_cell[("billing", "explanation")].gap) == (1, 1)
    assert by_cell[("claims", "explanation")].approved == 0 and by_cell[("claims", "explanation")].target is None
    assert [(c.category, c.response_type) for c in cells[:2]] == [("billing", "explanation"), ("claims", "step_by_step")]


def test_question_coverage_gap_topics_and_map(tagged, tmp_path):
    log = tmp_path / "questions.jsonl"
    log.write_text(
        "".join(json.dumps({"id": f"q{i}", "question": q}) + "\n" for i, q in enumerate(COVERED + FLOOD + TEEN))
        + "not json\n"
        + json.dumps({"question": COVERED[0]})
        + "\n"
    )
    result = coverage.import_questions(tagged, "lee", log)
    assert (result.imported, result.duplicates, len(result.rejected)) == (8, 1, 1)
    report = coverage.coverage_report(tagged)
    covered = {m.text for m in report.question_matches if m.covered}
    assert covered == set(COVERED)
    assert report.questions == 8 and report.covered_questions == 2
    topics = [{tagged.db["questions"].get(i)["text"] for i in t.question_ids} for t in report.gap_topics]
    assert set(FLOOD) in topics and set(TEEN) in topics
    assert all(t.id and len(t.representatives) <= 3 for t in report.gap_topics)
    assert {p.kind for p in report.map} == {"example", "question"} and len(report.map) == 4 + 8
    assert coverage.latest_gap_topics(tagged) == report.gap_topics


def test_gap_topics_become_tasks_that_authors_complete(tagged, tmp_path):
    log = tmp_path / "q.txt"
    log.write_text("\n".join(FLOOD + TEEN) + "\n")
    coverage.import_questions(tagged, "lee", log)
    topic = coverage.coverage_report(tagged).gap_topics[0]
    with pytest.raises(PermissionDenied):
        authoring.create_tasks(tagged, "amy", topic.id, "amy")
    with pytest.raises(PermissionDenied):
        authoring.create_tasks(tagged, "lee", topic.id, "rita")  # reviewers do not author
    tasks = authoring.create_tasks(tagged, "lee", topic.id, "amy")
    assert len(tasks) == 3 and {t.status for t in tasks} == {"open"}
    assert authoring.create_tasks(tagged, "lee", topic.id, "al") == []  # open questions are not tasked twice
    assert [t.id for t in authoring.list_tasks(tagged, assignee="amy")] == [t.id for t in tasks]
    with pytest.raises(PermissionDenied, match="assigned to amy"):
        authoring.complete_task(tagged, "al", tasks[0].id, "An answer.")
    done = authoring.complete_task(tagged, "amy", tasks[0].id, "Flood needs separate flood insurance; let me check your policy.")
    example = tagged.get_example(done.example_id)
    assert done.status == "done" and example.status == "submitted" and example.author == "amy"
    assert example.prompt == tasks[0].question and example.metadata["task_id"] == tasks[0].id
    with pytest.raises(InvalidInput, match="already done"):
        authoring.complete_task(tagged, "amy", tasks[0].id, "again")
    assert [h.action for h in tagged.history("task", tasks[0].id)] == ["create_task", "complete_task"]


def test_only_leads_import_questions_and_bad_files_are_clear(team, tmp_path):
    log = tmp_path / "q.txt"
    log.write_text("one question\n")
    with pytest.raises(PermissionDenied):
        coverage.import_questions(team, "amy", log)
    with pytest.raises(InvalidInput, match="no file"):
        coverage.import_questions(team, "lee", tmp_path / "missing.jsonl")
    report = coverage.coverage_report(team)
    assert report.questions == 0 and report.gap_topics == []


def test_a_gap_topic_is_named_by_its_most_central_question(tagged, tmp_path):
    log = tmp_path / "q.txt"
    log.write_text("\n".join(FLOOD + TEEN) + "\n")
    coverage.import_questions(tagged, "lee", log)
    for topic in coverage.coverage_report(tagged).gap_topics:
        first = tagged.db["questions"].get(topic.question_ids[0])["text"]  # members are ordered by centrality
        assert topic.label == first and topic.label in FLOOD + TEEN and topic.representatives[0] == first


def test_the_coverage_map_counts_the_production_logs_questions(tagged, tmp_path):
    from curation.insight import monitoring

    logs = tmp_path / "prod.jsonl"
    conversations = [[{"role": "user", "content": q}, {"role": "assistant", "content": "We can help."}] for q in FLOOD + TEEN]
    logs.write_text("".join(json.dumps({"messages": m}) + "\n" for m in conversations))
    monitoring.import_logs(tagged, "lee", logs)
    seen = coverage.coverage_report(tagged, save_gaps=False)  # anyone may look: nothing is written
    assert seen.questions == 6 and tagged.db["questions"].count == 0
    assert all(m.question_id < 0 for m in seen.question_matches)
    report = coverage.coverage_report(tagged)  # a lead's run adopts them into the question log, for tasks
    assert report.questions == 6 and tagged.db["questions"].count == 6
    assert {r["source"] for r in tagged.db["questions"].rows} == {"production"}
    assert {t.label for t in report.gap_topics} <= set(FLOOD + TEEN) and len(report.gap_topics) == 2
    assert coverage.coverage_report(tagged).questions == 6  # adopted once, not twice
