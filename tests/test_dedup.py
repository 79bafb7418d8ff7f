"""Duplicates with the real engines: planted exact / near / semantic duplicates found, distinct texts not."""

import json
from pathlib import Path

import pytest

from conftest import SAMPLE_DATA, make_example
from curation.datasets.snapshots import create_snapshot
from curation.demo import load_demo
from curation.errors import InvalidInput, PermissionDenied
from curation.examples import duplicates, workflow
from curation.similarity import cache, dedup, live
from curation.store import Store
from schemas import ExampleContent, similarity_text

PARAPHRASE_A = (
    "How do I add my wife to my auto policy?",
    "You can add a spouse in the Lakeshore app: open Policy, tap Drivers, choose Add driver and enter her license details. "
    "The change starts today.",
)
PARAPHRASE_B = (
    "How can I add my wife to my car policy?",
    "Adding your spouse is quick in the Lakeshore app: go to Policy, select Drivers, pick Add driver, then type in her license "
    "details. It takes effect today.",
)


def planted(kinds: set[str]) -> list[set[str]]:
    return [
        set(item["ids"])
        for f in sorted((SAMPLE_DATA / "planted").glob("*.json"))
        for item in json.loads(f.read_text())
        if item["kind"] in kinds
    ]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("dedup") / "demo.db")
    load_demo(store, SAMPLE_DATA, password="demo password")
    return store


@pytest.fixture(scope="module")
def report(demo):
    return dedup.find_duplicates(demo)


def by_source(store: Store, cluster) -> set[str]:
    return {store.get_example(i).source_id for i in cluster.ids}


def test_planted_exact_duplicates_are_found(demo, report):
    exact = [by_source(demo, c) for c in report.clusters if c.kind == "exact"]
    for pair in planted({"exact_duplicate"}):
        assert any(pair <= cluster for cluster in exact), pair


def test_planted_near_duplicates_are_found_and_distinct_texts_are_not(demo, report):
    near = [by_source(demo, c) for c in report.clusters if c.kind == "near"]
    found = [by_source(demo, c) for c in report.clusters if c.kind in ("near", "semantic")]
    for pair in planted({"near_duplicate"}):
        assert any(pair <= cluster for cluster in found), pair
    allowed = planted({"near_duplicate", "exact_duplicate"})
    for cluster in near:  # every near cluster is a planted one: distinct examples are never flagged
        assert any(cluster <= p for p in allowed), cluster


def test_semantic_catches_paraphrases_that_near_misses(team):
    a = workflow.create_example(team, "amy", ExampleContent.from_pair(*PARAPHRASE_A))
    b = workflow.create_example(team, "al", ExampleContent.from_pair(*PARAPHRASE_B))
    workflow.create_example(
        team,
        "amy",
        ExampleContent.from_pair(
            "My car was towed after a crash, is the tow covered?", "Towing after a covered accident is usually part of the claim."
        ),
    )
    found = dedup.find_duplicates(team)
    assert [(c.kind, c.ids) for c in found.clusters] == [("semantic", [a.id, b.id])]
    assert 0.9 <= found.clusters[0].similarity < 1


def test_signatures_and_embeddings_are_cached_and_cache_hits_do_not_call_the_model(team, monkeypatch):
    for i in range(3):
        make_example(team, prompt=f"Question number {i} about my deductible", response=f"Answer {i}.")
    first = dedup.find_duplicates(team)
    assert first.computed == {"signatures": 3, "embeddings": 3}
    from curation.similarity import embeddings, minhash

    def refuse(*args, **kwargs):
        raise AssertionError("the model was called for a cached text")

    monkeypatch.setattr(embeddings.Embedder, "embed", refuse)
    monkeypatch.setattr(minhash, "sketch", refuse)
    again = dedup.find_duplicates(team)
    assert again.computed == {"signatures": 0, "embeddings": 0}
    assert team.db["embeddings"].count == 3 and team.db["signatures"].count == 3


@pytest.mark.parametrize("lookup_at_most", [500, 0], ids=["by-key", "one-scan"])
def test_cached_new_and_repeated_texts_get_the_signatures_sketch_gives_them(team, monkeypatch, lookup_at_most):
    from curation.similarity import minhash

    monkeypatch.setattr(cache, "_LOOKUP_AT_MOST", lookup_at_most)  # both ways of reading the cache

    texts = [f"Question {i} about hail on my roof\nAnswer {i}: check the declarations page." for i in range(6)]
    first, computed = cache.signatures(team, texts[:3])
    assert computed == 3 and (first == minhash.sketch(texts[:3])).all()
    # three cached, two new, and one text twice: the rows follow the texts' order all the same
    mixed = [texts[4], texts[0], texts[3], texts[2], texts[4], texts[1]]
    again, computed = cache.signatures(team, mixed)
    assert computed == 2 and (again == minhash.sketch(mixed)).all()
    assert team.db["signatures"].count == 5


def test_a_cache_write_that_cannot_get_the_store_fails_cleanly_and_writes_nothing(team, monkeypatch):
    """New signatures are written on a second connection while clusters are found; if that write
    cannot start, the caller gets the store's busy error, not a lost write or a traceback."""
    import sqlite3

    from curation.errors import Conflict
    from curation.store import database as store_module

    for i in range(3):
        make_example(team, prompt=f"Question number {i} about my deductible", response=f"Answer {i}.")
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    other = sqlite3.connect(team.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        with pytest.raises(Conflict, match="busy with another write"):
            dedup.find_duplicates(team, ["near"])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert team.db["signatures"].count == 0
    assert dedup.find_duplicates(team, ["near"]).computed == {"signatures": 3}
    assert team.db["signatures"].count == 3


def test_signatures_asked_for_inside_a_write_are_cached_in_that_write(team):
    """A second connection would wait on the caller's own transaction; the cache joins it instead."""
    texts = ["Is hail covered?\nYes, under comprehensive.", "Who do I call after a crash?\nCall claims."]
    with team.write():
        assert cache.signatures(team, texts)[1] == 2
    assert team.db["signatures"].count == 2


def test_resolutions_are_recorded_and_never_delete(team):
    a = make_example(team, "approved", prompt="Same text", response="Same answer", labels=["x"])
    b = make_example(team, "approved", author="al", prompt="same text!", response="Same answer.", labels=["y"])
    with pytest.raises(PermissionDenied):
        duplicates.resolve_duplicates(team, "amy", [a.id, b.id], "keep_one", keep_id=a.id)
    with pytest.raises(InvalidInput, match="needs --keep"):
        duplicates.resolve_duplicates(team, "lee", [a.id, b.id], "merge")
    duplicates.resolve_duplicates(team, "lee", [a.id, b.id], "merge", keep_id=a.id, note="same question")
    assert team.get_example(b.id).status == "archived" and team.db["examples"].count == 2
    assert team.get_example(a.id).tags.labels == ("x", "y")
    assert team.history("example", b.id)[-1].after["resolution"] == "merge"
    assert dedup.find_duplicates(team, ["exact"]).clusters == []  # archived examples are not reported


def test_exact_duplicates_ignore_punctuation_unless_asked_to_keep_it(team):
    a = make_example(team, prompt="Is hail covered?", response="Yes, under comprehensive.")
    b = make_example(team, author="al", prompt="IS  hail covered", response="Yes under comprehensive")
    c = make_example(team, author="al", prompt="is hail COVERED?", response="yes, under   comprehensive.")
    assert [cl.ids for cl in dedup.find_duplicates(team, ["exact"]).clusters] == [[a.id, b.id, c.id]]
    kept = dedup.find_duplicates(team, ["exact"], ignore_punctuation=False)
    assert [cl.ids for cl in kept.clusters] == [[a.id, c.id]]  # case and spacing still folded


def test_intended_variation_stops_the_cluster_being_reported(team):
    a = make_example(team, prompt="Is hail covered?", response="Check your comprehensive coverage.")
    b = make_example(team, author="al", prompt="is HAIL covered", response="Check your comprehensive coverage")
    assert len(dedup.find_duplicates(team, ["exact"]).clusters) == 1
    duplicates.resolve_duplicates(team, "lee", [a.id, b.id], "intended_variation", note="auto vs home")
    assert dedup.find_duplicates(team, ["exact"]).clusters == []
    assert {team.get_example(i).status for i in (a.id, b.id)} == {"draft"}
    assert team.history("example", a.id)[-1].action == "resolve_duplicate"


def test_live_check_finds_exact_near_and_semantic_matches_and_follows_edits(team):
    base = workflow.create_example(team, "amy", ExampleContent.from_pair(*PARAPHRASE_A))
    exact = live.find_matches(team, ExampleContent.from_pair(PARAPHRASE_A[0].upper(), PARAPHRASE_A[1]))
    assert [(m.kind, m.example_id) for m in exact][:1] == [("exact", base.id)]
    near_text = PARAPHRASE_A[1].replace("You can add", "You may add")
    assert [(m.kind, m.example_id) for m in live.find_matches(team, ExampleContent.from_pair(PARAPHRASE_A[0], near_text))][
        :1
    ] == [("near", base.id)]
    assert [(m.kind, m.example_id) for m in live.find_matches(team, ExampleContent.from_pair(*PARAPHRASE_B))] == [
        ("semantic", base.id)
    ]
    assert live.find_matches(team, ExampleContent.from_pair("Where is the nearest tow yard?", "We can send a truck.")) == []
    workflow.edit_example(
        team, "amy", base.id, base.version, ExampleContent.from_pair("Totally new question about roadside", "New.")
    )
    assert live.find_matches(team, ExampleContent.from_pair(*PARAPHRASE_A)) == []  # the index followed the edit
    assert (
        live.find_matches(team, ExampleContent.from_pair("Totally new question about roadside", "New."), exclude_id=base.id) == []
    )


def test_the_live_index_grows_past_its_first_rows_and_still_finds_the_newest(team):
    store = team
    words = ["policy", "claim", "cover", "deductible", "windshield", "storm", "towing", "rental", "theft", "flood"]
    for n in range(1030):  # past the index's first 1,024 rows
        text = " ".join(words[(n * k) % 10] + str(n % (k + 3)) for k in range(1, 30))
        newest = workflow.create_example(store, "amy", ExampleContent.from_pair(f"Question {n}: {text}", f"Answer {n}."))
    index = live.LiveIndex(semantic=False)
    draft = ExampleContent.from_pair(f"Question 1029: {text} please", "Answer 1029.")
    assert [(m.kind, m.example_id) for m in index.check(store, draft)][:1] == [("near", newest.id)]
    assert index.band_keys.used == index.signatures.used == len(index.ids) == 1030
    workflow.edit_example(store, "amy", newest.id, newest.version, ExampleContent.from_pair("Where do I tow?", "Call us."))
    assert newest.id not in [m.example_id for m in index.check(store, draft)]
    assert index.signatures.used == 1031 and int(index.alive.sum()) == 1030  # the old row is dead, the new one alive


def test_warm_up_loads_both_live_indexes_of_a_store_file_in_the_background(team):
    made = [make_example(team, prompt=f"Can I add driver {n} to my policy?") for n in range(3)]
    live.warm_up(team.path).join(timeout=300)
    near_only, with_embeddings = live.live_index(team, semantic=False), live.live_index(team)
    assert near_only.ids == with_embeddings.ids == [e.id for e in made]
    assert near_only.vectors.used == 0 and with_embeddings.vectors.used == 3
    assert near_only.load(team) == 0  # up to date: a check now reads nothing more


def test_snapshot_split_never_separates_a_cluster(demo):
    groups = dedup.duplicate_groups(demo)
    assert groups
    for seed in range(3):
        snap = create_snapshot(demo, "dana", f"grouped-{seed}", eval_fraction=0.3, seed=seed, validate=False)
        evaluation = {json.loads(line)["id"] for line in (Path(snap.path) / "eval.jsonl").read_text().splitlines()}
        train = {json.loads(line)["id"] for line in (Path(snap.path) / "train.jsonl").read_text().splitlines()}
        for group in groups:
            members = set(group) & (train | evaluation)  # drafts in a cluster are not in the snapshot at all
            assert members <= evaluation or members <= train


def test_bad_options_are_refused(team):
    with pytest.raises(InvalidInput, match="unknown method"):
        dedup.find_duplicates(team, ["fuzzy"])
    with pytest.raises(InvalidInput, match=r"\(0, 1\]"):
        dedup.find_duplicates(team, ["near"], near_threshold=1.5)


# ------------------------------------------------------------------------------------------ one rule for every door


def test_exact_dedup_the_live_check_and_the_leak_check_share_one_normaliser(team):
    """Dedup folded "e-mail" into "e mail" but the leak check read it as "email": they disagreed on a match."""
    from curation.datasets.validation import exact_normalised_pairs
    from schemas import normalise_text

    for a, b in [("Send the e-mail today!", "send the e mail today"), ("It costs $5.", "it costs 5"), ("Didn't it?", "didnt it")]:
        assert normalise_text(a) == normalise_text(b)
        assert exact_normalised_pairs([a], [b]) == {(0, 0)}
        first = make_example(team, "approved", prompt=a, response="Yes.")
        assert [(m.kind, m.example_id) for m in live.find_matches(team, ExampleContent.from_pair(b, "yes"), semantic=False)] == [
            ("exact", first.id)
        ]


def test_the_leak_check_flags_exactly_the_pairs_dedup_clusters(demo):
    """Near duplicates across a split use the batch's rule (LSH candidates, exact Jaccard of the shingles)."""
    import random

    from curation.similarity import minhash

    texts = [r["prompt_text"] + "\n" + r["response_text"] for r in demo.db.query("SELECT * FROM examples ORDER BY id LIMIT 60")]
    rng = random.Random(7)
    edited = []
    for text in texts:  # from untouched to heavily rewritten: pairs on both sides of the threshold
        words = text.split()
        for k in rng.sample(range(len(words)), k=int(len(words) * rng.uniform(0, 0.5))):
            words[k] = f"w{rng.randrange(1000)}"
        edited.append(" ".join(words))
    across = dedup.cross_split_pairs(texts, edited)
    for i, (a, b) in enumerate(zip(texts, edited, strict=True)):
        clustered = bool(minhash.near_duplicate_clusters([0, 1], [a, b]))
        assert ((i, i) in across) == clustered, (i, a, b)
    assert 5 < sum((i, i) in across for i in range(len(texts))) < len(texts)  # both outcomes occur


def test_the_leak_check_compares_the_text_dedup_compares(team):
    """For a multi-turn example that is the prompt turns, then the responses (the store's columns), not the turns in order."""
    from curation.datasets.validation import ValidationOptions, validate_records
    from curation.similarity.dedup import _Examples

    messages = [
        {"role": "system", "content": "You are Lakeshore's assistant."},
        {"role": "user", "content": "My car will not start."},
        {"role": "assistant", "content": "Is the battery old?"},
        {"role": "user", "content": "Five years."},
        {"role": "assistant", "content": "Then roadside can replace it."},
    ]
    example = workflow.create_example(team, "amy", ExampleContent.model_validate({"messages": messages}))
    seen: list[str] = []

    def finder(train_texts: list[str], eval_texts: list[str]) -> set:
        seen.extend(train_texts + eval_texts)
        return set()

    record = {"id": example.id, "messages": messages, "tags": {}}
    validate_records([record], [], ValidationOptions(near_duplicate_pairs=finder))
    assert seen == _Examples.read(team).texts == [similarity_text(example.messages)]
