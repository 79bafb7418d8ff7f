import sqlite3
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import content, make_example
from curation.errors import Conflict, InvalidInput, NotFound
from curation.examples import workflow
from curation.store import Store
from curation.store.migrations import migrations
from schemas import ExampleContent, ExampleFilter, Tags

text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200).filter(lambda s: s.strip())
tag_value = st.one_of(st.none(), st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=12))


@st.composite
def example_contents(draw) -> ExampleContent:
    turns = draw(st.integers(1, 3))
    messages = [{"role": "system", "content": draw(text)}] if draw(st.booleans()) else []
    for _ in range(turns):
        messages += [{"role": "user", "content": draw(text)}, {"role": "assistant", "content": draw(text)}]
    tags = Tags(
        category=draw(tag_value),
        response_type=draw(tag_value),
        knowledge_area=draw(tag_value),
        labels=draw(st.lists(text, max_size=3)),
    )
    return ExampleContent.model_validate({"messages": messages, "tags": tags})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(example_contents())
def test_any_example_round_trips_through_the_store(team, value):
    stored = workflow.create_example(team, "amy", value)
    again = team.get_example(stored.id)
    assert again == stored
    assert (again.messages, again.tags) == (value.messages, value.tags)
    assert again.content_hash == value.content_hash


def test_store_uses_wal_busy_timeout_and_migrations(store, db_path):
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert migrations.pending(store.db) == [] and store.schema_version >= 1
    assert {"users", "examples", "reviews", "history", "settings", "examples_fts"} <= set(store.db.table_names())
    reopened = Store(db_path)  # applying migrations again is a no-op
    assert reopened.schema_version == store.schema_version


def test_a_file_that_is_not_a_database_is_refused_clearly(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("these are my notes, not a database " * 100)
    with pytest.raises(InvalidInput, match="not a Goldsmith database"):
        Store(bad)
    assert bad.read_text().startswith("these are my notes")  # nothing the user had is lost


def test_writes_take_the_lock_up_front(team, db_path):
    """BEGIN IMMEDIATE: a second writer waits for the first instead of failing mid-transaction."""
    other = Store(db_path)
    order = []

    def second_writer():
        with other.write():
            order.append("second")

    with team.write():
        thread = threading.Thread(target=second_writer)
        thread.start()
        thread.join(0.3)
        order.append("first")
    thread.join(5)
    assert order == ["first", "second"]


def test_mutations_outside_a_write_transaction_are_a_bug(team):
    with pytest.raises(RuntimeError, match="inside Store.write"):
        team.add_history("example", 1, "edit", "amy", None, {})


def test_stale_update_raises_conflict_and_overwrites_nothing(team):
    example = make_example(team)
    workflow.edit_example(team, "amy", example.id, 1, content("Edited by tab one", "A"))
    with pytest.raises(Conflict, match="you read version 1, it is now version 2") as caught:
        workflow.edit_example(team, "amy", example.id, 1, content("Edited by tab two", "A"))
    assert caught.value.current.prompt == "Edited by tab one"
    assert team.get_example(example.id).prompt == "Edited by tab one"
    assert len(team.history("example", example.id)) == 2


def test_unknown_ids_raise_not_found(team):
    with pytest.raises(NotFound, match="no example with id 42"):
        team.get_example(42)
    with pytest.raises(NotFound):
        team.get_user("nobody")


def test_full_text_search_with_filters_and_hostile_input(team):
    make_example(team, prompt="My windshield cracked on the highway", response="Glass claims are easy.", category="claims")
    make_example(team, status="submitted", prompt="Why did my premium go up?", response="Rates changed.", category="billing")
    make_example(team, author="al", prompt="Roadside tow for a flat", response="Call the roadside line.", category="roadside")

    def ids(**kw):
        return [e.tags.category for e in team.list_examples(ExampleFilter(**kw)).items]

    assert ids(query="windshield") == ["claims"]
    assert ids(query="premiums") == ["billing"]  # porter stemming
    assert ids(query="prem") == ["billing"]  # words match as prefixes, for search as you type
    assert ids(query="wind high") == ["claims"]
    assert ids(query="call", author="al") == ["roadside"]
    assert ids(query="windshield", status="submitted") == []
    for hostile in ['"', "AND OR NOT", "claim*)(", "NEAR(", "'; DROP TABLE examples; --", "col:val ^"]:
        team.list_examples(ExampleFilter(query=hostile))  # never a syntax error
    assert team.db["examples"].count == 3


def test_filters_by_tag_label_and_author_and_pages(team):
    for i in range(23):
        example = workflow.create_example(
            team,
            "amy" if i % 2 else "al",
            ExampleContent.from_pair(
                f"q{i}", "a", tags=Tags(category="claims" if i < 10 else "billing", labels=["hail"] if i % 5 == 0 else [])
            ),
        )
    assert example.id == 23
    assert team.list_examples(ExampleFilter(category="claims")).total == 10
    assert team.list_examples(ExampleFilter(label="hail")).total == 5
    assert team.list_examples(ExampleFilter(author="AL")).total == 12
    pages = [team.list_examples(ExampleFilter(page=p, page_size=10)) for p in (1, 2, 3)]
    assert [len(p.items) for p in pages] == [10, 10, 3] and pages[0].pages == 3
    seen = [e.id for p in pages for e in p.items]
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 23


def test_date_range_filter(team):
    old = make_example(team, prompt="written long ago")
    team.conn.execute("UPDATE examples SET created_at = '2026-01-15T10:00:00.000000+00:00' WHERE id = ?", [old.id])
    make_example(team, prompt="written today")
    today = team.get_example(2).created_at.date()

    def prompts(**kw):
        return [e.prompt for e in team.list_examples(ExampleFilter(**kw)).items]

    assert prompts(created_to="2026-01-15") == ["written long ago"]
    assert prompts(created_from="2026-01-16") == ["written today"]
    assert prompts(created_from="2026-01-15", created_to=today) == ["written today", "written long ago"]
    with pytest.raises(ValueError):
        ExampleFilter(created_from="last week")


def test_filtered_pages_use_indexes(team):
    plan = " ".join(
        r[3]
        for r in team.conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM examples WHERE status = ? ORDER BY id DESC LIMIT 50", ["approved"]
        )
    )
    assert "USING INDEX" in plan and "TEMP B-TREE" not in plan


def test_search_with_a_filter_runs_the_full_text_match_once(team):
    """Regression: with a plain JOIN SQLite chose the status index and re-ran the FTS match per row."""
    make_example(team, status="approved", prompt="hail on the roof")
    statements = []
    team.conn.set_trace_callback(statements.append)
    try:
        assert team.list_examples(ExampleFilter(query="hail", status="approved")).total == 1
    finally:
        team.conn.set_trace_callback(None)
    searches = [s for s in statements if "MATCH" in s]
    assert len(searches) == 2  # the count and the page
    for sql in searches:
        plan = [r[3] for r in team.conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
        assert plan[0].startswith("SCAN examples_fts VIRTUAL TABLE"), (sql, plan)


def test_stats_counts(team):
    make_example(team, status="approved", category="claims")
    make_example(team, status="rejected", category="claims")
    make_example(team, author="al")
    stats = team.stats()
    assert stats.examples == 3
    assert stats.by_status == {"approved": 1, "draft": 1, "rejected": 1}
    assert stats.by_category == {"claims": 2, "(untagged)": 1}
    assert stats.reviews_by_decision == {"approve": 1, "reject": 1}
    assert stats.users_by_role == {"admin": 1, "author": 2, "lead": 1, "reviewer": 2}


def test_sqlite_errors_from_a_locked_store_become_conflicts(team, db_path):
    import curation.store as store_module

    fast = Store(db_path)
    fast.conn.execute("PRAGMA busy_timeout = 50")
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Conflict, match="busy"):
            workflow.create_example(fast, "amy", content())
    finally:
        blocker.execute("ROLLBACK")
    assert store_module.BUSY_TIMEOUT_S >= 5
