"""import -> export -> import is an identity for every export format and every text the store accepts.

Hypothesis writes the conversations: formula characters, quotes, long fields (past Python's CSV
field limit), unicode, whitespace, contexts and turn weights. Each example is created in a store,
exported, imported into a fresh store, and must come back with the same turns, tags and metadata;
exporting the copy must give the same bytes.
"""

import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SHARED_DATA, needs_shared_data
from curation.datasets.exporting import export_examples
from curation.datasets.importing import import_file
from curation.examples import workflow
from curation.people import users
from curation.store import Store
from schemas import ExampleContent, ExampleFilter, Tags

ALL = ExampleFilter(status="draft", page_size=500)
SPECIAL = ["=", "+", "-", "@", "\t", "\r", "'", "''=", '"', ",", ";", "[", "\n", "\r\n", " ", "\u2028", "\x00", "é", "😀"]

# every text the store accepts: any code point but lone surrogates, not blank
plain = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)
texts = st.one_of(
    plain,
    st.builds(lambda head, tail: head + tail, st.sampled_from(SPECIAL), plain),  # formula starts, quotes, separators
    st.builds(lambda t: f"  {t}\n\t", plain),  # whitespace around the text
    st.builds(lambda t: (t * (140_000 // len(t) + 1))[:140_000], plain),  # past Python's 131,072-character CSV field
).filter(lambda s: s.strip())
tag_values = st.one_of(st.none(), st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=8))


@st.composite
def conversations(draw, *, context_on_last_only: bool = False) -> ExampleContent:
    """A conversation with optional system prompt, contexts on user turns and weights on assistant turns."""
    turns = draw(st.integers(1, 3))
    messages: list[dict] = [{"role": "system", "content": draw(texts)}] if draw(st.booleans()) else []
    for n in range(turns):
        user = {"role": "user", "content": draw(texts)}
        if (n == turns - 1 or not context_on_last_only) and draw(st.booleans()):
            user["context"] = draw(texts)
        answer = {"role": "assistant", "content": draw(texts)}
        weight = draw(st.sampled_from([None, None, 0, 1]))
        if weight is not None:
            answer["weight"] = weight
        messages += [user, answer]
    tags = Tags(
        category=draw(tag_values),
        response_type=draw(tag_values),
        knowledge_area=draw(tag_values),
        labels=draw(st.lists(texts.filter(lambda s: len(s) < 100), max_size=3)),
    )
    return ExampleContent.model_validate({"messages": messages, "tags": tags})


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory):
    """A store with an author, copied for every Hypothesis example (creating users hashes passwords)."""
    path = tmp_path_factory.mktemp("roundtrip") / "empty.db"
    store = Store(path)
    users.add_user(store, None, "ada", "admin", password="x" * 12)
    users.add_user(store, "ada", "amy", "author", password="x" * 12)
    store.close()
    return path


def fresh(empty_db, path):
    shutil.copy(empty_db, path)
    return Store(path)


def kept(store):
    return [(e.messages, e.tags, e.metadata) for e in store.list_examples(ALL).items]


def round_trip(empty_db, tmp_path, fmt, values):
    work = tmp_path / f"{fmt}-{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    source = fresh(empty_db, work / "a.db")
    for value in values:
        workflow.create_example(source, "amy", value)
    first = work / f"first.{fmt}"
    export_examples(source, fmt, first, ALL)
    copy = fresh(empty_db, work / "b.db")
    report = import_file(copy, "amy", first)
    assert (report.rejected, report.warnings) == ([], [])
    assert sorted(map(repr, kept(copy))) == sorted(map(repr, kept(source)))
    second = work / f"second.{fmt}"
    export_examples(copy, fmt, second, ALL)
    assert first.read_bytes() == second.read_bytes()
    source.close()
    copy.close()
    shutil.rmtree(work)


unique = {"unique_by": lambda c: c.content_hash}
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("fmt", ["openai", "sharegpt", "csv"])
@SETTINGS
@given(values=st.lists(conversations(), min_size=1, max_size=4, **unique))
def test_chat_formats_round_trip_every_text(empty_db, tmp_path, fmt, values):
    round_trip(empty_db, tmp_path, fmt, values)


@SETTINGS
@given(values=st.lists(conversations(context_on_last_only=True), min_size=1, max_size=4, **unique))
def test_alpaca_round_trips_every_text(empty_db, tmp_path, values):
    """Alpaca has one input (context) per record: the last question's; earlier turns are history pairs."""
    round_trip(empty_db, tmp_path, "alpaca", values)


@needs_shared_data
def test_the_llama_factory_alpaca_demo_exports_with_the_fields_it_came_with(team, tmp_path):
    """Every record of a public Alpaca file comes back with instruction, input and output unchanged."""
    original = json.loads((SHARED_DATA / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    import_file(team, "amy", SHARED_DATA / "alpaca_en_demo.json")
    out = tmp_path / "out.json"
    export_examples(team, "alpaca", out, ALL)
    fields = ("instruction", "input", "output")
    exported = {tuple(r[k] for k in fields) for r in json.loads(out.read_text(encoding="utf-8"))}
    assert exported == {tuple(r[k] for k in fields) for r in original}
    assert sum(1 for r in original if r["input"]) >= 400  # the records whose input used to be merged away
