"""The live duplicate check: which existing examples one draft repeats (exact, near, semantic).

Its index is kept in memory per process and brought up to date incrementally.

The first check in a process loads every example's signature and embedding (from the store's
cache; missing ones are computed and cached). Every later check only reads the examples changed
since the last one, so a check against 100,000 examples costs one sketch, one embedding, one LSH
query and one matrix-vector product.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from curation.similarity.cache import embeddings, signatures
from curation.similarity.dedup import DEFAULT_SEMANTIC_THRESHOLD, METHODS
from curation.store import Store
from schemas import ExampleContent, LiveMatch, normalised_hash, similarity_text

MAX_MATCHES = 10
_indexes: dict[tuple[str, str | None, bool], LiveIndex] = {}
_lock = threading.Lock()


def find_matches(
    store: Store, content: ExampleContent, *, exclude_id: int | None = None, model: str | None = None, semantic: bool = True
) -> list[LiveMatch]:
    """Existing examples a draft repeats: exact, near and (optionally) semantic, strongest first.

    Fast enough to run on every save: exact matches come from indexed hashes, near and semantic
    ones from an in-process index brought up to date incrementally (LiveIndex).
    """
    return live_index(store, model=model, semantic=semantic).check(store, content, exclude_id=exclude_id)


def live_index(store: Store, *, model: str | None = None, semantic: bool = True) -> LiveIndex:
    """The process-wide index for this store file (one per model and mode)."""
    key = (str(store.path or id(store)), model, semantic)
    with _lock:
        if key not in _indexes:
            _indexes[key] = LiveIndex(model=model, semantic=semantic)
        return _indexes[key]


def _text(prompt_text: str, response_text: str) -> str:
    return f"{prompt_text}\n{response_text}"


class LiveIndex:
    """MinHash LSH + an embedding matrix over the examples that are not archived."""

    def __init__(
        self,
        *,
        model: str | None = None,
        semantic: bool = True,
        near_threshold: float | None = None,
        semantic_threshold: float | None = None,
    ):
        from curation.similarity import minhash

        self.model = model
        self.semantic = semantic
        self.params = minhash.SketchParams()
        self.near_threshold = near_threshold or minhash.DEFAULT_THRESHOLD
        self.semantic_threshold = semantic_threshold or DEFAULT_SEMANTIC_THRESHOLD
        self.lsh = minhash.build_index([], np.zeros((0, self.params.num_perm), np.uint64), self.near_threshold, self.params)
        self.versions: dict[int, int] = {}
        self.signature: dict[int, np.ndarray] = {}
        self.ids: list[int] = []
        self.position: dict[int, int] = {}
        self._buffer = np.zeros((0, 0), np.float32)
        self.vectors = self._buffer
        self.alive = np.zeros(0, bool)
        self.seen = ""
        self._lock = threading.Lock()

    def refresh(self, store: Store) -> int:
        """Apply every example changed since the last refresh. Returns how many changed."""
        from curation.similarity import minhash

        rows = list(
            store.db.query(
                "SELECT id, version, status, prompt_text, response_text, content_hash, updated_at FROM examples "
                "WHERE updated_at >= ? ORDER BY updated_at",
                [self.seen],
            )
        )
        rows = [r for r in rows if self.versions.get(r["id"]) != r["version"]]
        if not rows:
            return 0
        live = [r for r in rows if r["status"] != "archived"]
        texts = [_text(r["prompt_text"], r["response_text"]) for r in live]
        sigs, _ = signatures(store, texts, self.params, keys=[r["content_hash"] for r in live])
        vecs = embeddings(store, texts, self.model)[0] if self.semantic else None
        for row in rows:
            key = row["id"]
            if key in self.signature:
                self.lsh.remove(key)
                del self.signature[key]
                self.alive[self.position[key]] = False
            self.versions[key] = row["version"]
        for row, sig in zip(live, sigs, strict=True):
            self.signature[row["id"]] = sig
            self.lsh.insert(row["id"], minhash.to_minhash(sig, self.params))
            self.position[row["id"]] = len(self.ids)
            self.ids.append(row["id"])
        self.alive = np.concatenate([self.alive, np.ones(len(live), bool)])
        if vecs is not None and len(vecs):
            self._append_vectors(vecs)
        self.seen = rows[-1]["updated_at"]
        return len(rows)

    def _append_vectors(self, vecs: np.ndarray) -> None:
        """Grow the embedding matrix with spare room, so one new example does not copy 100k rows."""
        used = len(self.ids) - len(vecs)
        if self._buffer.shape[0] < used + len(vecs):
            grown = np.zeros((max(2 * self._buffer.shape[0], used + len(vecs), 1024), vecs.shape[1]), np.float32)
            if used:
                grown[:used] = self._buffer[:used]
            self._buffer = grown
        self._buffer[used : used + len(vecs)] = vecs
        self.vectors = self._buffer[: used + len(vecs)]

    def check(self, store: Store, content: ExampleContent, *, exclude_id: int | None = None) -> list[LiveMatch]:
        from curation.similarity import minhash

        with self._lock:
            self.refresh(store)
            found: dict[int, tuple[str, float]] = {}
            for row in store.db.query(
                "SELECT id FROM examples WHERE (content_hash = ? OR norm_hash = ?) AND status != 'archived'",
                [content.content_hash, normalised_hash(content.messages)],
            ):
                found[row["id"]] = ("exact", 1.0)
            text = similarity_text(content.messages)
            signature = minhash.sketch([text], self.params)[0]
            for key in minhash.query(self.lsh, signature, self.params):
                similarity = minhash.jaccard_estimate(signature, self.signature[key])
                if key not in found and similarity >= self.near_threshold:
                    found[key] = ("near", similarity)
            if self.semantic and len(self.ids):
                from curation.similarity.embeddings import get_embedder

                query = get_embedder(self.model).embed([text])[0]
                sims = self.vectors @ query
                sims[~self.alive] = -1
                for pos in np.argsort(-sims)[: MAX_MATCHES * 2]:
                    if sims[pos] < self.semantic_threshold:
                        break
                    key = self.ids[pos]
                    if key not in found:
                        found[key] = ("semantic", float(sims[pos]))
        if exclude_id is not None:
            found.pop(exclude_id, None)
        return _matches(store, found)


def _matches(store: Store, found: dict[int, tuple[str, float]]) -> list[LiveMatch]:
    if not found:
        return []
    ids = list(found)
    rows: dict[int, Any] = {
        r["id"]: r
        for r in store.db.query(f"SELECT id, status, prompt_text FROM examples WHERE id IN ({','.join('?' * len(ids))})", ids)
    }
    matches = [
        LiveMatch(
            kind=kind, example_id=i, similarity=round(sim, 4), status=rows[i]["status"], prompt=rows[i]["prompt_text"][:200]
        )
        for i, (kind, sim) in found.items()
        if i in rows
    ]
    return sorted(matches, key=lambda m: (METHODS.index(m.kind), -m.similarity, m.example_id))[:MAX_MATCHES]
