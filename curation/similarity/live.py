"""The live duplicate check: which existing examples one draft repeats (exact, near, semantic).

Its index is kept in memory per process and brought up to date incrementally.

The first check in a process loads every example's signature and embedding (from the store's
cache; missing ones are computed and cached). Every later check only reads the examples changed
since the last one, so a check against 100,000 examples costs one sketch, one embedding, one LSH
query and one matrix-vector product.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from curation.similarity.cache import embeddings, signatures
from curation.similarity.dedup import DEFAULT_SEMANTIC_THRESHOLD, METHODS
from curation.store import Store
from schemas import ExampleContent, LiveMatch, normalised_hash, similarity_text

MAX_MATCHES = 10
_log = logging.getLogger(__name__)
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


def warm_up(path: Path, *, model: str | None = None) -> threading.Thread:
    """Load the live indexes of the store at `path` in a background thread, on a connection of its own.

    A server calls this as it starts, so the first check after a start does not wait for every
    example's signature and embedding (about 4 s at 100,000 examples): the near-only index first
    (the checks as an author types), then the one with embeddings (the check on save). A failure is
    logged; the first check then loads the index itself and reports what is wrong.
    """

    def load() -> None:
        try:
            store = Store(path)
        except Exception as error:
            _log.warning("the live duplicate index was not loaded at start: %s", error)
            return
        try:
            for semantic in (False, True):
                changed = live_index(store, model=model, semantic=semantic).load(store)
                _log.info("live duplicate index (semantic=%s) loaded: %d examples", semantic, changed)
        except Exception as error:
            _log.warning("the live duplicate index was not loaded at start: %s", error)
        finally:
            store.close()

    thread = threading.Thread(target=load, name="goldsmith-live-index", daemon=True)
    thread.start()
    return thread


def _text(prompt_text: str, response_text: str) -> str:
    return f"{prompt_text}\n{response_text}"


class _Rows:
    """A matrix that grows with spare room, so appending one row does not copy 100,000."""

    def __init__(self, dtype: type) -> None:
        self._buffer: np.ndarray = np.zeros((0, 0), dtype)
        self.used = 0

    @property
    def view(self) -> np.ndarray:
        return self._buffer[: self.used]

    def append(self, rows: np.ndarray) -> None:
        if self._buffer.shape[0] < self.used + len(rows):
            size = max(2 * self._buffer.shape[0], self.used + len(rows), 1024)
            grown = np.zeros((size, rows.shape[1]), self._buffer.dtype)
            if self.used:
                grown[: self.used] = self.view
            self._buffer = grown
        self._buffer[self.used : self.used + len(rows)] = rows
        self.used += len(rows)


class LiveIndex:
    """LSH band keys, signatures and an embedding matrix over the examples, one row per version.

    A changed or archived example's old row is marked dead (`alive`); numpy arrays only, so a
    100,000-example index loads in a second and adds nothing for the garbage collector to walk.
    """

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
        self.versions: dict[int, int] = {}
        self.ids: list[int] = []
        self.position: dict[int, int] = {}
        self.signatures = _Rows(np.uint32)
        self.band_keys = _Rows(np.uint64)
        self.vectors = _Rows(np.float32)
        self.alive = np.zeros(0, bool)
        self.has_words = np.zeros(0, bool)
        self.seen = ""
        self._lock = threading.Lock()

    def refresh(self, store: Store) -> int:
        """Apply every example changed since the last refresh. Returns how many changed."""
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
        dead = [self.position[r["id"]] for r in rows if r["id"] in self.position]
        live = [r for r in rows if r["status"] != "archived"]
        if live:
            self._append(store, live)
        self.alive[dead] = False
        self.versions.update((r["id"], r["version"]) for r in rows)
        self.seen = rows[-1]["updated_at"]
        return len(rows)

    def _append(self, store: Store, live: list[dict[str, Any]]) -> None:
        """Add rows for these examples; everything that can fail runs before the index changes."""
        from curation.similarity import minhash

        texts = [_text(r["prompt_text"], r["response_text"]) for r in live]
        sigs = signatures(store, texts, self.params, keys=[r["content_hash"] for r in live])[0].astype(np.uint32)
        keys = minhash.band_keys(sigs, self.near_threshold, self.params)
        vecs = embeddings(store, texts, self.model)[0] if self.semantic else None
        for row in live:
            self.position[row["id"]] = len(self.ids)
            self.ids.append(row["id"])
        self.signatures.append(sigs)
        self.band_keys.append(keys)
        self.alive = np.concatenate([self.alive, np.ones(len(live), bool)])
        self.has_words = np.concatenate([self.has_words, ~minhash.is_empty(sigs)])
        if vecs is not None:
            self.vectors.append(vecs)

    def load(self, store: Store) -> int:
        """Bring the index up to date now (what the next check would do first). Returns how many changed."""
        with self._lock:
            return self.refresh(store)

    def _near(self, signature: np.ndarray) -> list[tuple[int, float]]:
        """(example id, estimated Jaccard) of the rows sharing an LSH band with the signature, above the threshold."""
        from curation.similarity import minhash

        if not self.ids or minhash.is_empty(signature[None])[0]:
            return []
        query = minhash.band_keys(signature[None], self.near_threshold, self.params)[0]
        candidates = np.flatnonzero((self.band_keys.view == query).any(axis=1) & self.alive & self.has_words)
        found = [(self.ids[pos], minhash.jaccard_estimate(signature, self.signatures.view[pos])) for pos in candidates]
        return [(key, similarity) for key, similarity in found if similarity >= self.near_threshold]

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
            for key, similarity in self._near(minhash.sketch([text], self.params)[0]):
                found.setdefault(key, ("near", similarity))
            if self.semantic and len(self.ids):
                from curation.similarity.embeddings import get_embedder

                query = get_embedder(self.model).embed([text])[0]
                sims = self.vectors.view @ query
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
