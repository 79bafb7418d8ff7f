"""MinHash near-duplicates: datasketch's semantics, planted near-copies found, distinct texts not."""

import json
import random
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SAMPLE_DATA
from curation.similarity import minhash
from curation.similarity.minhash import SketchParams


def sample_sentences() -> list[list[str]]:
    texts = []
    for name in ("claims_billing.jsonl", "complaints.jsonl"):
        for line in (SAMPLE_DATA / "examples" / name).read_text(encoding="utf-8").splitlines():
            texts += [m["content"] for m in json.loads(line)["messages"]]
    return [s.split() for t in texts for s in re.split(r"(?<=[.!?])\s+|\n+", t) if len(s.split()) >= 4]


SENTENCES = sample_sentences()
VOCABULARY = [w for s in SENTENCES for w in s]


def document(rng: random.Random) -> list[str]:
    """70-90 words stitched from spans of the sample data's sentences."""
    target, words = rng.randint(70, 90), []
    while len(words) < target:
        sentence = rng.choice(SENTENCES)
        start = rng.randrange(max(1, len(sentence) - 3))
        words += sentence[start : start + rng.randint(4, 12)]
    return words[:target]


def edited(words: list[str], rate: float, rng: random.Random) -> list[str]:
    words = list(words)
    for _ in range(max(1, round(rate * len(words)))):
        at, kind = rng.randrange(len(words)), rng.randrange(3)
        if kind == 0:
            words[at] = rng.choice(VOCABULARY)
        elif kind == 1:
            words.insert(at, rng.choice(VOCABULARY))
        else:
            del words[at]
    return words


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], set[tuple[int, int]]]:
    """500 texts: 450 originals and 50 copies of one of them with 5-15% of the words edited."""
    rng = random.Random(7)
    originals = [document(rng) for _ in range(450)]
    sources = rng.sample(range(450), 50)
    texts = [" ".join(d) for d in originals] + [" ".join(edited(originals[s], rng.uniform(0.05, 0.15), rng)) for s in sources]
    return texts, {(s, 450 + k) for k, s in enumerate(sources)}


def exact_jaccard(a: str, b: str) -> float:
    x, y = set(minhash.shingle_hashes(a).tolist()), set(minhash.shingle_hashes(b).tolist())
    return len(x & y) / len(x | y)


def f1(clusters: list[tuple[list, float]], planted: set[tuple[int, int]]) -> float:
    found = {(a, b) for keys, _ in clusters for n, a in enumerate(keys) for b in keys[n + 1 :]}
    hits = len(found & planted)
    return 2 * hits / (len(found) + len(planted))


def test_a_signature_is_datasketchs_minhash_of_the_shingle_hashes():
    from datasketch import MinHash

    texts = ["I was rear-ended at a red light on Harlan Ave.", "", "Thanks!", "why   AM I paying\ta $500 deductible"]
    for params in (SketchParams(), SketchParams(num_perm=64, seed=9, shingle_size=3)):
        signatures = minhash.sketch(texts, params)
        assert signatures.shape == (4, params.num_perm) and signatures.dtype == np.uint64
        for text, signature in zip(texts, signatures, strict=True):
            expected = MinHash(num_perm=params.num_perm, seed=params.seed, hashfunc=int)
            expected.update_batch(minhash.shingle_hashes(text, params).tolist())
            assert expected.hashvalues.tolist() == signature.tolist()


def test_identical_texts_get_identical_signatures_and_the_estimate_tracks_the_exact_jaccard(corpus):
    texts, _ = corpus
    rng = random.Random(3)
    pairs = [(t, " ".join(edited(t.split(), rng.uniform(0, 0.6), rng))) for t in rng.sample(texts, 150)]
    pairs += [tuple(rng.sample(texts, 2)) for _ in range(150)]  # unrelated: near 0
    signatures = minhash.sketch([t for pair in pairs for t in pair])
    twice = minhash.sketch([texts[0], texts[0]])
    assert (twice[0] == twice[1]).all()
    errors = np.array(
        [
            minhash.jaccard_estimate(signatures[2 * n], signatures[2 * n + 1]) - exact_jaccard(a, b)
            for n, (a, b) in enumerate(pairs)
        ]
    )
    # 128 hash functions: standard error at most 0.044, so nearly every estimate is within 0.1 and there is no bias
    assert np.mean(np.abs(errors) <= 0.1) >= 0.97
    assert abs(errors.mean()) < 0.01 and np.abs(errors).mean() < 0.04


@pytest.mark.parametrize("with_texts", [True, False])
def test_planted_near_duplicates_are_found_and_distinct_texts_are_not(corpus, with_texts):
    texts, planted = corpus
    keys = list(range(len(texts)))
    if with_texts:
        clusters = minhash.near_duplicate_clusters(keys, texts)
    else:  # signatures only: pairs are checked with the signature estimate
        clusters = minhash.near_duplicate_clusters(keys, signatures=minhash.sketch(texts))
    assert f1(clusters, planted) >= 0.95
    assert all(similarity >= minhash.DEFAULT_THRESHOLD for _, similarity in clusters)


def test_a_large_batch_sketched_on_every_core_equals_its_pieces_sketched_alone(corpus):
    """Batches of _PARALLEL_TEXTS texts or more are split across threads; each row is still its own text's signature."""
    originals, _ = corpus
    texts = [f"{i} {originals[i % len(originals)]}" for i in range(minhash._PARALLEL_TEXTS + 37)]
    alone = np.concatenate([minhash.sketch(texts[i : i + 1000]) for i in range(0, len(texts), 1000)])
    assert (minhash.sketch(texts) == alone).all()


def test_same_seed_same_signatures_other_seed_other_signatures(corpus):
    texts = corpus[0][:50]
    first = minhash.sketch(texts, SketchParams(seed=1))
    assert (first == minhash.sketch(texts, SketchParams(seed=1))).all()
    assert (first == minhash.sketch(list(reversed(texts)), SketchParams(seed=1))[::-1]).all()  # batch order does not matter
    other = minhash.sketch(texts, SketchParams(seed=2))
    assert np.mean(first == other) < 0.05
    assert SketchParams(seed=1).key() != SketchParams(seed=2).key()
    assert "datasketch=" in SketchParams().key() and minhash.SCHEME_VERSION in SketchParams().key()


def test_clusters_are_transitive_groups_with_sorted_keys():
    rng = random.Random(11)
    a = document(rng)[:80]
    b = a[:55] + document(rng)[:25]  # shares a's first 55 words
    c = b[24:] + document(rng)[:24]  # shares b's last 56 words, so only 31 of a's
    texts = {"k-c": " ".join(c), "k-a": " ".join(a), "z-lone": " ".join(document(rng)), "k-b": " ".join(b)}
    texts |= {f"copy-{n}": " ".join(document(random.Random(5))) for n in (2, 1)}
    ab, bc, ac = (exact_jaccard(texts[x], texts[y]) for x, y in (("k-a", "k-b"), ("k-b", "k-c"), ("k-a", "k-c")))
    assert ac < 0.45 <= min(ab, bc)
    clusters = minhash.near_duplicate_clusters(list(texts), list(texts.values()), threshold=0.45)
    assert [keys for keys, _ in clusters] == [["copy-1", "copy-2"], ["k-a", "k-b", "k-c"]]
    assert clusters[0][1] == 1.0 and clusters[1][1] == pytest.approx(min(ab, bc))  # the weakest pair that joined


def test_query_of_a_planted_near_duplicate_returns_its_original(corpus):
    texts, planted = corpus
    originals = sorted({a for a, _ in planted})
    signatures = minhash.sketch(texts)
    index = minhash.build_index([f"ex-{i}" for i in originals], signatures[originals], minhash.DEFAULT_THRESHOLD)
    for original, copy in sorted(planted):
        assert f"ex-{original}" in minhash.query(index, signatures[copy])
    index.insert("late", minhash.to_minhash(signatures[0]))
    assert "late" in minhash.query(index, signatures[0])


def test_batch_candidates_are_the_pairs_minhashlsh_returns(corpus):
    texts, _ = corpus
    signatures = minhash.sketch(texts)
    index = minhash.build_index(range(len(texts)), signatures, 0.5)
    assert (index.b, index.r) == minhash.lsh_bands(0.5, 128) == (42, 3)
    from_index = {(i, j) for i in range(len(texts)) for j in minhash.query(index, signatures[i]) if i < j}
    i, j = minhash._candidates(signatures.astype(np.uint32), 0.5, 128)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == from_index


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_rows_sharing_a_band_key_are_what_minhashlsh_query_returns(corpus, threshold):
    texts, _ = corpus
    texts = [*texts, "", "too short"]  # a text without words is in no band
    signatures = minhash.sketch(texts)
    index = minhash.build_index(range(len(texts)), signatures, threshold)
    keys, words = minhash.band_keys(signatures, threshold), ~minhash.is_empty(signatures)
    assert keys.shape == (len(texts), minhash.lsh_bands(threshold)[0]) and not words[-2]
    for i in range(len(texts)):
        shared = np.flatnonzero((keys == keys[i]).any(axis=1) & words) if words[i] else []
        assert set(map(int, shared)) == set(minhash.query(index, signatures[i])), i


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_cross_pairs_are_what_minhashlsh_over_the_left_finds_for_the_right(corpus, threshold):
    texts, planted = corpus
    texts = [*texts, texts[3], "", "too short"]  # an exact copy across the sides, and texts without shingles
    left, right = texts[:300], texts[300:]
    signatures = minhash.sketch(texts)
    index = minhash.build_index(range(300), signatures[:300], threshold)
    candidates = [(a, b) for b in range(len(right)) for a in minhash.query(index, signatures[300 + b])]
    expected = {(a, b) for a, b in candidates if exact_jaccard(left[a], right[b]) >= threshold}
    found = minhash.cross_pairs(left, right, threshold=threshold)
    assert found == expected and (3, len(right) - 3) in found
    similar = {(a, b) for a, b in planted if a < 300 <= b and exact_jaccard(texts[a], texts[b]) >= threshold}
    assert similar and {(a, 300 + b) for a, b in found} >= similar


@pytest.mark.parametrize("threshold", [0.05, 0.2, 0.4, 0.5, 0.55, 0.7, 0.8, 0.9, 0.95, 1.0])
@pytest.mark.parametrize("num_perm", [64, 128, 256])
def test_lsh_bands_favour_recall(threshold, num_perm):
    bands, rows = minhash.lsh_bands(threshold, num_perm)
    assert bands >= 2 and bands * rows <= num_perm

    def candidate(similarity: float) -> float:
        return 1 - (1 - min(similarity, 1) ** rows) ** bands

    assert candidate(threshold) >= minhash.RECALL_AT_THRESHOLD and candidate(threshold + 0.1) >= 0.99


def test_empty_and_short_texts_work():
    texts = ["", "   ", "Thanks", "thanks", "ok then", "ok then", "\ud800 !"]
    signatures = minhash.sketch(texts)
    assert (signatures[:2] == 2**32 - 1).all() and len(minhash.shingle_hashes("")) == 0
    assert minhash.shingle_hashes("Thanks").tolist() == minhash.shingle_hashes("thanks").tolist()
    clusters = minhash.near_duplicate_clusters(list(range(7)), texts)
    assert [keys for keys, _ in clusters] == [[2, 3], [4, 5]]  # texts without words match nothing
    assert minhash.near_duplicate_clusters([], []) == []
    index = minhash.build_index(range(7), signatures)
    assert minhash.query(index, signatures[0]) == [] and sorted(minhash.query(index, signatures[2])) == [2, 3]


TRICKY = list("ab ÉΣσİ.\t\n\r\x0b\x1c\x1f\x00\x07\x85\xa0\u1680\u2003\u2028\u202f\u3000—")  # spaces str.split knows, and not


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.text(st.characters(codec="utf-8"), max_size=40) | st.text(st.sampled_from(TRICKY), max_size=40),
        min_size=1,
        max_size=6,
    )
)
def test_words_are_those_of_str_split_whatever_the_whitespace(texts):
    batch = minhash.sketch(texts)
    for text, signature in zip(texts, batch, strict=True):
        words = text.lower().split()
        shingles = {tuple(words[n : n + 2]) for n in range(len(words) - 1)} if len(words) > 1 else set(words)
        assert len(minhash.shingle_hashes(text)) == len(shingles)
        assert minhash.shingle_hashes(text).tolist() == minhash.shingle_hashes(minhash.normalise(text)).tolist()
        assert (signature == minhash.sketch([text])[0]).all()  # a text's signature does not depend on its batch


SMALL = SketchParams(num_perm=64)
NO_SIGNATURES = np.zeros((0, 64), np.uint64)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: minhash.near_duplicate_clusters([1], ["a"], threshold=1.5), "threshold must be in (0, 1], got 1.5"),
        (lambda: minhash.near_duplicate_clusters([1, 1], ["a", "b"]), "keys must be unique, got 1"),
        (lambda: minhash.near_duplicate_clusters([1, 2], ["a"]), "one length, got 1 texts and 2 keys"),
        (lambda: minhash.near_duplicate_clusters([1]), "needs texts or signatures"),
        (lambda: minhash.near_duplicate_clusters([1], signatures=np.zeros((1, 64))), "got (1, 64)"),
        (lambda: minhash.sketch("one text"), "wrap it in a list"),
        (lambda: minhash.sketch(["a", None]), "got NoneType at position 1"),
        (lambda: SketchParams(num_perm=1), "num_perm must be an integer in [2, 4096], got 1"),
        (lambda: minhash.jaccard_estimate(np.zeros(3), np.zeros(4)), "got shapes (3,) and (4,)"),
        (lambda: minhash.build_index([1], np.full((1, 128), 2**40)), f"32-bit values from sketch(), got values up to {2**40}"),
        (lambda: minhash.build_index([1], np.ones((1, 128))), "unsigned integers from sketch(), got dtype float64"),
        (lambda: minhash.query(minhash.build_index([], NO_SIGNATURES, params=SMALL), np.zeros(128, np.uint64)), "index's params"),
    ],
)
def test_bad_input_says_what_and_how_to_fix_it(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value)
