"""Production monitoring: the log store, trends against approved data, bad ratings, tasks, CLI and page.

Coverage uses the real offline MiniLM embedder, as tests/test_coverage.py does.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app_helpers import app
from conftest import PASSWORD, SAMPLE_DATA, dump, make_example
from curation.errors import InvalidInput, NotFound, PermissionDenied
from curation.insight import coverage, monitoring
from curation.insight.tasks import complete_task, list_tasks

APPROVED = [
    ("How do I file a claim after a car accident?", "Start a claim in the app under Claims."),
    ("Why did my bill go up this month?", "Your renewal changed the premium."),
    ("My car battery is dead. Can you send someone to jump start it?", "Request a jump start in the app under Roadside."),
    ("How do I reset my password for the app?", "Tap Forgot password on the login screen."),
]
WEEK1 = [  # paraphrases of the approved examples: covered
    ("I was in a car accident, how do I file a claim?", {"rating": 5}),
    ("why is my bill higher this month", {"thumbs": "up"}),
    ("my battery died, can someone come jump my car", {"rating": 3}),
    ("I forgot my app password, how do I reset it", {}),
]
WEEK2 = [  # a topic nobody has written about: not covered
    ("does pet insurance cover my dog's surgery", {"rating": 1, "feedback": "it said you don't sell pet insurance"}),
    ("can I get pet insurance for my cat", {"thumbs": "down"}),
    ("is pet insurance worth it for an old dog", {"thumbs": False}),
    ("what's a good recipe for banana bread", {"rating": 2}),
]


def chat(question: str, answer: str = "Sorry, I can't help with that.", **fields) -> str:
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return json.dumps({"messages": messages, **fields}) + "\n"


@pytest.fixture
def approved(team):
    for prompt, response in APPROVED:
        make_example(team, "approved", prompt=prompt, response=response, category="claims")
    return team


@pytest.fixture
def log_file(tmp_path) -> Path:
    path = tmp_path / "production.jsonl"
    lines = [chat(q, timestamp=f"2026-07-{7 + n:02d}T15:00:00Z", **f) for n, (q, f) in enumerate(WEEK1)]
    lines += [chat(q, created_at=f"2026-07-{14 + n:02d}T15:00:00+02:00", **f) for n, (q, f) in enumerate(WEEK2)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def log_ids(store, questions) -> list[int]:
    by_text = {r["question"]: r["id"] for r in store.db["prod_logs"].rows}
    return [by_text[q] for q, _ in questions]


# ------------------------------------------------------------------------------------------ import


def test_logs_never_reach_the_training_data(approved, log_file, tmp_path):
    from curation.datasets.exporting import export_bytes
    from curation.datasets.snapshots import create_snapshot

    exported = export_bytes(approved, "openai")
    snapshot = create_snapshot(approved, "lee", "v1", root=tmp_path / "snaps")
    before = dump(approved)
    report = monitoring.import_logs(approved, "lee", log_file)
    assert report.imported == 8
    bad = log_ids(approved, WEEK2)[0]
    monitoring.create_log_tasks(approved, "lee", [bad], "amy")  # a task is a question for an author, not an example
    after = dump(approved)
    for table in ("examples", "reviews", "snapshots"):
        assert after[table] == before[table], table
    assert approved.stats().examples == len(APPROVED)
    assert export_bytes(approved, "openai") == exported
    again = create_snapshot(approved, "lee", "v1", root=tmp_path / "snaps")
    assert again.id == snapshot.id and (again.train, again.eval) == (snapshot.train, snapshot.eval)


def test_reimport_adds_nothing_and_fields_are_kept(team, log_file):
    first = monitoring.import_logs(team, "lee", log_file)
    assert (first.imported, first.duplicates, first.rejected, first.format) == (8, 0, [], "openai")
    again = monitoring.import_logs(team, "lee", log_file)
    assert (again.imported, again.duplicates) == (0, 8)
    row = next(team.db["prod_logs"].rows_where("question = ?", [WEEK2[0][0]]))
    assert (row["rating"], row["thumbs"], row["received_at"]) == (1, None, "2026-07-14T13:00:00+00:00")
    assert json.loads(row["metadata"]) == {"feedback": "it said you don't sell pet insurance"}
    assert row["answer"] == "Sorry, I can't help with that." and row["source"] == "production.jsonl"
    thumbs = {r["question"]: r["thumbs"] for r in team.db["prod_logs"].rows}
    assert thumbs[WEEK1[1][0]] == "up" and thumbs[WEEK2[2][0]] == "down"  # thumbs: false is a thumbs down


def test_bad_records_are_reported_with_line_and_reason(team, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        chat("fine question", rating="4", timestamp=1_783_000_000)
        + "not json\n"
        + json.dumps({"messages": [{"role": "user", "content": "no answer"}]})
        + "\n"
        + chat("rated seven", rating=7)
        + chat("rated half", rating=2.5)
        + chat("meh thumbs", thumbs="meh")
        + chat("when?", timestamp="yesterday")
        + "\n"
        + chat("another fine one", received_at="2026-07-14 09:30:00"),
        encoding="utf-8",
    )
    report = monitoring.import_logs(team, "lee", path)
    assert report.imported == 2
    reasons = {r.line: r.reason for r in report.rejected}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7]
    assert "malformed JSON" in reasons[2]
    assert "assistant" in reasons[3]
    assert "from 1 to 5, got 7" in reasons[4] and "whole number" in reasons[5]
    assert 'thumbs must be "up", "down"' in reasons[6]
    assert "'yesterday' is not a date and time" in reasons[7]
    stored = {r["question"]: (r["rating"], r["received_at"]) for r in team.db["prod_logs"].rows}
    assert stored == {
        "fine question": (4, "2026-07-02T13:46:40+00:00"),
        "another fine one": (None, "2026-07-14T09:30:00+00:00"),
    }


def test_other_import_formats_and_who_may_import(team, tmp_path):
    csv = tmp_path / "logs.csv"
    csv.write_text(
        "prompt,response,rating,thumbs,created_at\n"
        "Is hail covered?,Usually under comprehensive.,2,,2026-07-06T10:00:00Z\n"
        "How do I pay?,In the app.,,up,2026-07-07T10:00:00Z\n",
        encoding="utf-8",
    )
    report = monitoring.import_logs(team, "lee", csv)
    assert (report.format, report.imported, report.rejected) == ("csv", 2, [])
    assert {r["question"]: (r["rating"], r["thumbs"]) for r in team.db["prod_logs"].rows} == {
        "Is hail covered?": (2, None),
        "How do I pay?": (None, "up"),
    }
    with pytest.raises(PermissionDenied):
        monitoring.import_logs(team, "amy", csv)
    with pytest.raises(InvalidInput, match="no file"):
        monitoring.import_logs(team, "lee", tmp_path / "missing.jsonl")


# ------------------------------------------------------------------------------------------ monitor


def test_coverage_trend_bad_ratings_and_gap_topics(approved, log_file):
    monitoring.import_logs(approved, "lee", log_file)
    report = monitoring.monitor(approved)
    assert report.period == "week" and report.logs == 8 and report.threshold == coverage.DEFAULT_THRESHOLD
    assert [t.start for t in report.trend] == [date(2026, 7, 6), date(2026, 7, 13)]
    week1, week2 = report.trend
    assert (week1.questions, week2.questions) == (4, 4)
    assert week1.coverage >= 0.75 and week2.coverage <= 0.25
    assert (week1.rated, week1.bad, week2.rated, week2.bad) == (3, 0, 4, 4)
    assert report.latest == date(2026, 7, 13)
    pets = log_ids(approved, WEEK2[:3])
    assert [sorted(g.log_ids) for g in report.gap_topics] == [sorted(pets)]
    assert "pet" in report.gap_topics[0].label and report.gap_topics[0].earlier == 0
    bad = report.bad_answers
    assert [b.log_id for b in bad] == log_ids(approved, WEEK2)[::-1]  # newest first
    first = next(b for b in bad if b.question == WEEK2[0][0])
    assert (first.rating, first.verdict, first.comment, first.covered) == (
        1,
        "1/5",
        "it said you don't sell pet insurance",
        False,
    )
    assert next(b for b in bad if b.question == WEEK2[1][0]).verdict == "thumbs down"


def test_periods_and_bad_options(approved, log_file):
    monitoring.import_logs(approved, "lee", log_file)
    days = monitoring.monitor(approved, period="day").trend
    assert days[0].start == date(2026, 7, 7) and days[-1].start == date(2026, 7, 17) and len(days) == 11
    assert [d.questions for d in days if d.questions == 0] and all(d.coverage is None for d in days if not d.questions)
    months = monitoring.monitor(approved, period="month").trend
    assert [(m.start, m.questions) for m in months] == [(date(2026, 7, 1), 8)]
    with pytest.raises(InvalidInput, match="period must be day, week or month"):
        monitoring.monitor(approved, period="year")
    with pytest.raises(InvalidInput, match="threshold"):
        monitoring.monitor(approved, threshold=1.5)
    assert monitoring.monitor(approved).model_dump() == monitoring.monitor(approved).model_dump()


def test_empty_log_store(team):
    report = monitoring.monitor(team)
    assert (report.logs, report.trend, report.gap_topics, report.bad_answers) == (0, [], [], [])


# ------------------------------------------------------------------------------------------ tasks


def test_bad_answers_and_gap_topics_become_tasks(approved, log_file):
    monitoring.import_logs(approved, "lee", log_file)
    report = monitoring.monitor(approved)
    dog = next(b for b in report.bad_answers if b.rating == 1)
    with pytest.raises(PermissionDenied):
        monitoring.create_log_tasks(approved, "amy", [dog.log_id], "amy")
    with pytest.raises(PermissionDenied):
        monitoring.create_log_tasks(approved, "lee", [dog.log_id], "rita")  # reviewers do not author
    with pytest.raises(NotFound, match="no production log 999"):
        monitoring.create_log_tasks(approved, "lee", [999], "amy")
    with pytest.raises(InvalidInput):
        monitoring.create_log_tasks(approved, "lee", [], "amy")
    [task] = monitoring.create_log_tasks(approved, "lee", [dog.log_id], "amy")
    assert task.question == dog.question and task.assignee == "amy" and task.status == "open"
    assert "rated 1/5" in task.note and "it said you don't sell pet insurance" in task.note
    assert "Sorry, I can't help with that." in task.note and f"production log {dog.log_id}" in task.note
    assert approved.db["questions"].get(task.question_id)["source"] == "production"
    assert monitoring.monitor(approved).bad_answers[-1].task_id == task.id

    gap = report.gap_topics[0]
    tasks = monitoring.create_log_tasks(approved, "lee", gap.log_ids, "al", label=gap.label)
    assert {t.question for t in tasks} == {q for q, _ in WEEK2[:3]}
    assert task.id in {t.id for t in tasks}  # the dog question was already open: its task is kept, not doubled
    assert all(f"gap topic: {gap.label}" in t.note for t in tasks if t.id != task.id)
    assert [t.id for t in list_tasks(approved, assignee="al")] == sorted(t.id for t in tasks if t.id != task.id)
    done = complete_task(approved, "amy", task.id, "Yes: Lakeshore Pet covers accidents and illness.")
    assert approved.get_example(done.example_id).status == "submitted"  # it goes through review like any example


# ------------------------------------------------------------------------------------------ CLI


def test_cli_imports_monitors_and_makes_tasks(approved, log_file, db_path):
    from app.cli import app as cli

    runner = CliRunner()
    base = ["--db", str(db_path)]
    imported = runner.invoke(cli, ["logs", "import", str(log_file), *base, "--as", "lee", "--json"])
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.output)["imported"] == 8
    again = runner.invoke(cli, ["logs", "import", str(log_file), *base, "--as", "lee"])
    assert again.exit_code == 0 and "0 production conversations" in again.output and "8 already known" in again.output

    shown = runner.invoke(cli, ["monitor", *base, "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    assert [t["start"] for t in report["trend"]] == ["2026-07-06", "2026-07-13"]
    assert report["trend"][1]["bad"] == 4 and len(report["bad_answers"]) == 4 and len(report["gap_topics"]) == 1
    text = runner.invoke(cli, ["monitor", *base, "--period", "day"])
    # one row per day; the latest day holds a single uncovered question, and a topic needs two or more
    assert text.exit_code == 0 and "2026-07-07" in text.output and "2026-07-17" in text.output
    assert "Gap topic" not in text.output and "4 badly rated answers" in text.output
    weekly = runner.invoke(cli, ["monitor", *base])
    assert weekly.exit_code == 0 and "Gap topic 1 of 2026-07-13" in weekly.output and "pet insurance" in weekly.output

    log_id = report["bad_answers"][0]["log_id"]
    made = runner.invoke(cli, ["monitor", "task", str(log_id), "--assignee", "amy", *base, "--as", "lee", "--json"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)[0]["assignee"] == "amy"

    refused = runner.invoke(cli, ["monitor", "task", str(log_id), "--assignee", "amy", *base, "--as", "amy"])
    assert refused.exit_code == 1 and refused.output.count("\n") == 1 and "lead" in refused.output
    wrong = runner.invoke(cli, ["monitor", *base, "--period", "year"])
    assert wrong.exit_code == 2 and "period must be day, week or month" in wrong.output and "Traceback" not in wrong.output
    bad_file = log_file.with_name("bad.jsonl")
    bad_file.write_text("not json\n" + chat("ok", timestamp="2026-07-01T00:00:00Z"))
    partial = runner.invoke(cli, ["logs", "import", str(bad_file), *base, "--as", "lee"])
    assert partial.exit_code == 1 and "line 1: malformed JSON" in partial.output


# ------------------------------------------------------------------------------------------ page


def test_production_page_shows_trends_and_makes_tasks(approved, log_file, db_path, monkeypatch):
    monkeypatch.setenv("GOLDSMITH_DB", str(db_path))
    at = app(approved, "lee", "pages/production.py", timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    assert "No production logs yet" in at.info[0].value

    monitoring.import_logs(approved, "lee", log_file)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("vega_lite_chart")) == 3  # live questions, coverage, bad ratings
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Conversations"] == "8" and metrics["Rated badly"] == "4"
    labels = [e.label for e in at.expander]
    assert any("pet" in label and "new this period" in label for label in labels)
    assert sum(label.startswith("Log ") for label in labels) == 4
    assert not [b for b in at.button if b.label in ("Make task", "Make tasks")]  # closed expanders draw nothing

    newest = next(label for label in labels if label.startswith("Log ")).split(" · ")[0].removeprefix("Log ")
    gap = next(label for label in labels if "pet" in label)
    at.session_state[f"prod-bad-open-{newest}"] = True  # what a click on the expander sets
    at.run()
    assert [b.label for b in at.button if b.label.startswith("Make task")] == ["Make task"]
    [b for b in at.button if b.label == "Make task"][0].click().run()  # the newest bad answer: banana bread
    assert not at.exception, [e.value for e in at.exception]
    assert "Task 1 for al: what's a good recipe for banana bread" in at.success[0].value  # al: the first author by name
    assert "Authoring task 1 was made from this conversation." in [c.value for c in at.caption]

    [topic] = monitoring.monitor(approved, period=list(monitoring.PERIODS)[1]).gap_topics  # the page's default period
    at.session_state[f"prod-gap-open-{topic.log_ids[0]}"] = True
    at.run()
    assert gap in [e.label for e in at.expander]
    [b for b in at.button if b.label == "Make tasks"][0].click().run()
    assert "3 tasks for al from gap topic" in at.success[0].value
    assert approved.db["tasks"].count == 4


def test_production_page_shows_bad_answers_ten_at_a_time(approved, db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("GOLDSMITH_DB", str(db_path))
    path = tmp_path / "bad.jsonl"
    days = range(1, 13)
    path.write_text("".join(chat(f"complaint number {d}", timestamp=f"2026-07-{d:02d}T15:00:00Z", rating=1) for d in days))
    monitoring.import_logs(approved, "lee", path)
    at = app(approved, "lee", "pages/production.py", timeout=120)
    logs = lambda: [e.label for e in at.expander if e.label.startswith("Log ")]  # noqa: E731
    assert len(logs()) == 10 and "complaint number 12" in logs()[0]  # newest first
    assert any(c.value.startswith("Newest first: 1-10 of 12;") for c in at.caption)
    [page] = [n for n in at.number_input if n.label == "Page (of 2)"]
    page.set_value(2).run()
    assert [label.split(" · ")[-1] for label in logs()] == ["complaint number 2", "complaint number 1"]


def test_production_page_is_for_leads(approved, db_path, monkeypatch):
    monkeypatch.setenv("GOLDSMITH_DB", str(db_path))
    at = app(approved, "amy", "pages/production.py")
    assert "this page is not for that role" in at.error[0].value


# ------------------------------------------------------------------------------------------ sample data


def test_sample_production_logs_show_a_new_topic_and_a_coverage_dip(store):
    from curation.demo import load_demo

    summary = load_demo(store, SAMPLE_DATA, password=PASSWORD)  # the demo imports the sample production logs
    assert summary.production_logs == 150 and not any("production_logs" in p for p in summary.problems)
    lead = next(u["username"] for u in summary.users if u["role"] == "lead")
    again = monitoring.import_logs(store, lead, SAMPLE_DATA / "production_logs.jsonl")
    assert (again.imported, again.duplicates, again.rejected) == (0, 150, [])
    report = monitoring.monitor(store)
    assert len(report.trend) == 6 and all(t.questions >= 20 for t in report.trend)
    early = sum(t.covered for t in report.trend[:3]) / sum(t.questions for t in report.trend[:3])
    late = sum(t.covered for t in report.trend[-2:]) / sum(t.questions for t in report.trend[-2:])
    assert early >= 0.75 and late <= early - 0.15
    assert sum(t.bad for t in report.trend[-2:]) > sum(t.bad for t in report.trend[:2])
    assert any("pet" in " ".join(g.representatives).lower() for g in report.gap_topics)
