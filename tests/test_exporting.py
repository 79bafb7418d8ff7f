"""Exports: byte-stable, round-trip through import, loadable by `datasets`, safe in spreadsheets."""

import csv
import json

import pytest

from conftest import SAMPLE_DATA, make_example
from curation.datasets.exporting import export_examples
from curation.datasets.importing import import_file
from curation.datasets.spreadsheet import neutralise as neutralise_formula
from curation.errors import InvalidInput
from curation.people import users
from curation.store import Store
from schemas import ExampleContent, ExampleFilter

ALL = ExampleFilter(status="draft")


def new_store(path):
    store = Store(path)
    users.add_user(store, None, "ada", "admin", password="x" * 12)
    users.add_user(store, "ada", "amy", "author", password="x" * 12)
    return store


def contents(store):
    return sorted(repr((e.messages, e.tags, e.source_id)) for e in store.list_examples(ExampleFilter(page_size=500)).items)


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    store = new_store(tmp_path_factory.mktemp("export") / "g.db")
    for path in sorted((SAMPLE_DATA / "examples").glob("*")):
        import_file(store, "amy", path)
    return store


@pytest.mark.parametrize("fmt", ["openai", "alpaca", "sharegpt", "csv"])
def test_import_export_import_is_identity_and_exports_are_byte_stable(sample_store, tmp_path, fmt):
    first = tmp_path / f"first.{fmt}"
    count = export_examples(sample_store, fmt, first, ALL)
    assert count == sample_store.db["examples"].count >= 150
    again = new_store(tmp_path / "again.db")
    report = import_file(again, "amy", first)
    assert (report.imported, report.rejected) == (count, [])
    assert contents(again) == contents(sample_store)
    second = tmp_path / f"second.{fmt}"
    export_examples(again, fmt, second, ALL)
    assert first.read_bytes() == second.read_bytes()
    assert import_file(again, "amy", second).imported == 0  # and re-importing adds nothing


def test_openai_export_keeps_ids_tags_metadata_and_per_turn_fields(team, tmp_path):
    source = tmp_path / "in.jsonl"
    record = {
        "id": "x1",
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 1}],
        "tags": {"category": "claims"},
        "rating": 5,
    }
    source.write_text(json.dumps(record) + "\n")
    import_file(team, "amy", source)
    out = tmp_path / "out.jsonl"
    export_examples(team, "openai", out, ALL)
    assert json.loads(out.read_text()) == record


def test_hf_export_loads_with_datasets(sample_store, tmp_path):
    from datasets import load_from_disk

    count = export_examples(sample_store, "hf", tmp_path / "ds", ALL)
    dataset = load_from_disk(str(tmp_path / "ds"))
    assert len(dataset) == count and "messages" in dataset.column_names
    assert dataset[0]["messages"][-1]["role"] == "assistant"
    with pytest.raises(InvalidInput, match="not empty"):
        export_examples(sample_store, "hf", tmp_path / "ds", ALL)


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_neutralises_formulas_and_only_csv_does(team, tmp_path, start):
    evil = f'{start}HYPERLINK("http://evil.example")'
    make_example(team, prompt=evil, response="fine")
    out = tmp_path / "x.csv"
    export_examples(team, "csv", out, ALL)
    row = next(csv.DictReader(out.open(newline="", encoding="utf-8")))
    assert row["prompt"] == "'" + evil
    jsonl = tmp_path / "x.jsonl"
    export_examples(team, "openai", jsonl, ALL)
    assert json.loads(jsonl.read_text())["messages"][0]["content"] == evil
    assert neutralise_formula("plain text") == "plain text"


def test_export_filters_by_status_and_writes_nothing_on_error(team, tmp_path):
    make_example(team, "approved", prompt="approved one")
    make_example(team, prompt="draft one")
    out = tmp_path / "approved.jsonl"
    assert export_examples(team, "openai", out) == 1
    assert "approved one" in out.read_text() and "draft one" not in out.read_text()
    with pytest.raises(InvalidInput, match="unknown export format"):
        export_examples(team, "parquet", tmp_path / "x.parquet")
    with pytest.raises(InvalidInput, match="is a folder"):
        export_examples(team, "openai", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "approved.jsonl",
        "goldsmith.db",
        "goldsmith.db-shm",
        "goldsmith.db-wal",
    ]


def test_multi_turn_examples_survive_csv(team, tmp_path):
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "a2"},
    ]
    from curation.examples import workflow

    workflow.create_example(team, "amy", ExampleContent.model_validate({"messages": messages}))
    out = tmp_path / "x.csv"
    export_examples(team, "csv", out, ALL)
    other = new_store(tmp_path / "o.db")
    import_file(other, "amy", out)
    assert [m.model_dump() for m in other.get_example(1).messages] == messages


def test_csv_and_hf_exports_carry_the_fields_goldsmith_does_not_use(team, tmp_path):
    from datasets import load_from_disk

    record = {
        "messages": [{"role": "user", "content": "Weather in Oslo?"}, {"role": "assistant", "content": "Cold."}],
        "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        "label": "needs-review",
        "source_url": "https://example.com/thread/1",
    }
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(record) + "\n")
    import_file(team, "amy", source)
    extra = {k: v for k, v in record.items() if k != "messages"}
    assert team.get_example(1).metadata == extra

    out = tmp_path / "x.csv"
    export_examples(team, "csv", out, ALL)
    assert json.loads(next(csv.DictReader(out.open(newline="", encoding="utf-8")))["metadata"]) == extra
    other = new_store(tmp_path / "o.db")
    import_file(other, "amy", out)
    assert other.get_example(1).metadata == extra

    export_examples(team, "hf", tmp_path / "ds", ALL)
    row = load_from_disk(str(tmp_path / "ds"))[0]
    assert json.loads(row["metadata"]) == extra
