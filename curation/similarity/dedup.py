"""Duplicates: exact (normalised hash), near (MinHash + LSH) and semantic (embeddings), batch and live.

Duplicates are flagged for a person, never deleted: `resolve_duplicates` records what a lead
decided (keep one, merge, intended variation) and archives only what the lead chose to drop.
Signatures and embeddings are cached in the store by the hash of the text they describe and
the parameters or model that made them, so unchanged examples are never sketched or embedded twice.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from curation.errors import InvalidInput
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.similarity.groups import connected_components
from curation.store import Store, now
from schemas import DedupReport, DuplicateCluster, ExampleContent, LiveMatch, Message, normalised_hash

METHODS = ("exact", "near", "semantic")
DEFAULT_SEMANTIC_THRESHOLD = 0.9
RESOLUTIONS = ("keep_one", "merge", "intended_variation")


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Examples:
    """The examples that are not archived, by id, a column per field (20,000 rows read in ~50 ms)."""

    ids: list[int]
    source_ids: list[str | None]
    norm_hashes: list[str]
    content_hashes: list[str]
    texts: list[str]  # prompt and response, a newline between: what is shingled and embedded

    @classmethod
    def read(cls, store: Store, *, ignore_punctuation: bool = True) -> _Examples:
        """`norm_hashes` fold case, spacing and punctuation (the stored hash), or only case and spacing."""
        exact = "norm_hash" if ignore_punctuation else "messages"
        rows = store.conn.execute(
            f"SELECT id, source_id, {exact}, content_hash, prompt_text || char(10) || response_text "
            "FROM examples WHERE status != 'archived' ORDER BY id"
        ).fetchall()
        columns = [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(5)]
        if not ignore_punctuation:
            columns[2] = [
                normalised_hash([Message.model_validate(m) for m in json.loads(messages)], punctuation=False)
                for messages in columns[2]
            ]
        return cls(*columns)

    def cluster(self, kind: str, members: Sequence[int], similarity: float) -> DuplicateCluster:
        """A cluster of the examples at these positions."""
        return DuplicateCluster(
            kind=kind,
            ids=[self.ids[i] for i in members],
            source_ids=[self.source_ids[i] for i in members],
            similarity=round(float(similarity), 4),
        )


# ------------------------------------------------------------------------------------------ caches


def signatures(
    store: Store, texts: Sequence[str], params: Any = None, keys: Sequence[str] | None = None
) -> tuple[np.ndarray, int]:
    """MinHash signatures for texts, from the store's cache where present. Returns (matrix, newly computed).

    `keys` name each text in the cache (default: the sha256 of the text).
    """
    matrix, computed, saved = _signatures(store, texts, params, keys)
    saved()
    return matrix, computed


def _signatures(
    store: Store, texts: Sequence[str], params: Any, keys: Sequence[str] | None
) -> tuple[np.ndarray, int, Callable[[], None]]:
    """`signatures`, with the new ones still being cached: call the returned function to wait for that."""
    from curation.similarity import minhash

    params = params or minhash.SketchParams()
    keys = list(keys) if keys is not None else [text_key(t) for t in texts]
    cached = _load(store, "signatures", "params", params.key(), keys, np.uint32, params.num_perm)  # 32-bit values
    first = {k: t for k, t in zip(keys, texts, strict=True) if k not in cached}  # each missing key once
    if not first:
        matrix = np.stack([cached[k] for k in keys]) if keys else np.zeros((0, params.num_perm), np.uint32)
        return matrix.astype(np.uint64), 0, lambda: None
    missing = list(first)
    fresh = minhash.sketch(list(first.values()), params)
    saved = _save_in_background(store, "signatures", "params", params.key(), missing, fresh.astype(np.uint32))
    if len(missing) == len(keys):  # every text new and different: the rows are in order already
        return fresh, len(missing), saved
    cached.update(zip(missing, fresh, strict=True))
    return np.stack([cached[k] for k in keys]).astype(np.uint64), len(missing), saved


def embeddings(store: Store, texts: Sequence[str], model: str | None = None) -> tuple[np.ndarray, int]:
    """Normalised embeddings for texts, from the store's cache where present. Returns (matrix, newly computed)."""
    from curation.similarity.embeddings import get_embedder

    embedder = get_embedder(model)
    keys = [text_key(t) for t in texts]
    cached = _load(store, "embeddings", "model", embedder.model_key, keys, np.float32, embedder.dim)
    missing = sorted({k for k in keys if k not in cached})
    if missing:
        first = {k: t for k, t in zip(keys, texts, strict=True)}
        fresh = embedder.embed([first[k] for k in missing]).astype(np.float32)
        _save(store, "embeddings", "model", embedder.model_key, missing, fresh)
        cached.update(zip(missing, fresh, strict=True))
    matrix = np.stack([cached[k] for k in keys]) if keys else np.zeros((0, embedder.dim), np.float32)
    return matrix, len(missing)


def _load(
    store: Store, table: str, column: str, value: str, keys: Sequence[str], dtype: type, width: int
) -> dict[str, np.ndarray]:
    blob = "signature" if table == "signatures" else "vector"
    rows = store.conn.execute(f"SELECT content_hash, {blob} FROM {table} WHERE {column} = ?", [value]).fetchall()
    wanted = set(keys)
    rows = [r for r in rows if r[0] in wanted]
    if not rows:
        return {}
    matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=dtype).reshape(len(rows), width)
    return {r[0]: matrix[i] for i, r in enumerate(rows)}


def _save(store: Store, table: str, column: str, value: str, keys: Sequence[str], matrix: np.ndarray) -> None:
    blob = "signature" if table == "signatures" else "vector"
    order = sorted(range(len(keys)), key=keys.__getitem__)  # in key order the primary key's index only appends (1.4x)
    with store.write():
        store.conn.executemany(
            f"INSERT OR REPLACE INTO {table} (content_hash, {column}, {blob}) VALUES (?, ?, ?)",
            [(keys[i], value, np.ascontiguousarray(matrix[i]).tobytes()) for i in order],
        )


def _save_in_background(
    store: Store, table: str, column: str, value: str, keys: Sequence[str], matrix: np.ndarray
) -> Callable[[], None]:
    """`_save` on a second connection in a thread, so the caller goes on while SQLite writes and syncs.

    Returns the function that waits for the write and raises what it raised. A store in memory
    has no second connection, and a second connection would wait for a transaction the caller
    holds open: then it is written at once, on the caller's connection.
    """
    if store.path is None or store.conn.in_transaction:
        _save(store, table, column, value, keys, matrix)
        return lambda: None
    failed: list[BaseException] = []

    def write() -> None:
        try:
            other = Store(store.path)
            try:
                _save(other, table, column, value, keys, matrix)
            finally:
                other.close()
        except BaseException as error:  # handed to the waiting caller
            failed.append(error)

    thread = threading.Thread(target=write, name=f"goldsmith-cache-{table}")
    thread.start()

    def wait() -> None:
        thread.join()
        if failed:
            raise failed[0]

    return wait


# ------------------------------------------------------------------------------------------ batch


def exact_clusters(examples: _Examples) -> list[DuplicateCluster]:
    """Examples whose conversations match once case, whitespace and punctuation are folded."""
    by_hash: dict[str, list[int]] = defaultdict(list)
    for position, norm_hash in enumerate(examples.norm_hashes):
        by_hash[norm_hash].append(position)
    return [examples.cluster("exact", group, 1.0) for group in by_hash.values() if len(group) > 1]


def semantic_pairs(matrix: np.ndarray, threshold: float, block: int = 512) -> list[tuple[int, int, float]]:
    """(i, j, cosine) for i < j above threshold, computed block by block to keep memory small."""
    pairs = []
    for start in range(0, len(matrix), block):
        sims = matrix[start : start + block] @ matrix.T
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            i = start + r
            if i < c:
                pairs.append((i, c, float(sims[r, c])))
    return pairs


def _clusters_from_pairs(kind: str, examples: _Examples, pairs: list[tuple[int, int, float]]) -> list[DuplicateCluster]:
    groups = [g for g in connected_components(list(range(len(examples.ids))), [(i, j) for i, j, _ in pairs]) if len(g) > 1]
    weakest: dict[int, float] = {}
    member = {i: n for n, g in enumerate(groups) for i in g}
    for i, _, sim in pairs:
        n = member[i]
        weakest[n] = min(weakest.get(n, 1.0), sim)
    return [examples.cluster(kind, g, weakest[n]) for n, g in enumerate(groups)]


def find_duplicates(
    store: Store,
    methods: Sequence[str] = METHODS,
    *,
    near_threshold: float | None = None,
    semantic_threshold: float = DEFAULT_SEMANTIC_THRESHOLD,
    model: str | None = None,
    ignore_punctuation: bool = True,
) -> DedupReport:
    """Every duplicate cluster among the examples that are not archived.

    Exact duplicates match once case and spacing are folded, and punctuation too unless
    `ignore_punctuation` is False. A cluster a lead resolved as intended variation is not reported
    again, and a near or semantic cluster that repeats an exact (or near) one is reported once, as
    the stronger kind.
    """
    from curation.similarity import minhash

    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InvalidInput(f"unknown method {', '.join(unknown) or '(none)'}; use exact, near, semantic or all")
    near_threshold = minhash.DEFAULT_THRESHOLD if near_threshold is None else near_threshold
    for name, value in (("near threshold", near_threshold), ("semantic threshold", semantic_threshold)):
        if not 0 < value <= 1:
            raise InvalidInput(f"{name} must be in (0, 1], got {value}")
    examples = _Examples.read(store, ignore_punctuation=ignore_punctuation or "exact" not in methods)
    clusters: list[DuplicateCluster] = []
    computed: dict[str, int] = {}
    if "exact" in methods:
        clusters += exact_clusters(examples)
    if "near" in methods and examples.ids:
        # the new signatures are written to the cache while the clusters are found
        matrix, computed["signatures"], saved = _signatures(store, examples.texts, None, examples.content_hashes)
        try:
            found = minhash.near_duplicate_clusters(
                list(range(len(examples.ids))), examples.texts, signatures=matrix, threshold=near_threshold
            )
        finally:
            saved()
        clusters += [examples.cluster("near", members, similarity) for members, similarity in found]
    if "semantic" in methods and examples.ids:
        matrix, computed["embeddings"] = embeddings(store, examples.texts, model)
        clusters += _clusters_from_pairs("semantic", examples, semantic_pairs(matrix, semantic_threshold))
    return DedupReport(
        clusters=_without_repeats_and_resolved(store, clusters),
        examples=len(examples.ids),
        methods=list(methods),
        thresholds={"near": near_threshold, "semantic": semantic_threshold},
        computed=computed,
    )


def _without_repeats_and_resolved(store: Store, clusters: list[DuplicateCluster]) -> list[DuplicateCluster]:
    covering: dict[int, list[set[int]]] = defaultdict(list)  # example id -> the sets (resolved or reported) holding it
    for row in store.db["duplicate_resolutions"].rows_where("resolution = ?", ["intended_variation"]):
        ids = set(json.loads(row["example_ids"]))
        for i in ids:
            covering[i].append(ids)
    kept = []
    for cluster in sorted(clusters, key=lambda c: (METHODS.index(c.kind), c.ids)):
        ids = set(cluster.ids)
        if any(ids <= other for other in covering[cluster.ids[0]]):
            continue
        for i in ids:
            covering[i].append(ids)
        kept.append(cluster)
    return kept


def cross_split_pairs(train_texts: list[str], eval_texts: list[str]) -> set[tuple[int, int]]:
    """(train index, eval index) of near-duplicates across a split, for the leakage expectation."""
    from curation.similarity import minhash

    if not train_texts or not eval_texts:
        return set()
    params = minhash.SketchParams()
    train_sigs = minhash.sketch(train_texts, params)
    eval_sigs = minhash.sketch(eval_texts, params)
    index = minhash.build_index(list(range(len(train_texts))), train_sigs, minhash.DEFAULT_THRESHOLD, params)
    return {
        (t, e)
        for e, sig in enumerate(eval_sigs)
        for t in minhash.query(index, sig, params)
        if minhash.jaccard_estimate(sig, train_sigs[t]) >= minhash.DEFAULT_THRESHOLD
    }


def duplicate_groups(store: Store, *, model: str | None = None, methods: Sequence[str] = ("near", "semantic")) -> list[list[int]]:
    """Near and semantic clusters as groups for a leakage-safe snapshot split."""
    return [c.ids for c in find_duplicates(store, methods, model=model).clusters]


# ------------------------------------------------------------------------------------------ resolving


def resolve_duplicates(
    store: Store, actor: str, example_ids: Sequence[int], resolution: str, *, keep_id: int | None = None, note: str = ""
) -> dict[str, Any]:
    """Record a lead's decision on a duplicate cluster (leads), in the history of every example involved.

    keep_one: archive every example but `keep_id`. merge: like keep_one, and the kept example
    gains the others' labels. intended_variation: change nothing; stop reporting this cluster.
    """
    ids = sorted(set(example_ids))
    if resolution not in RESOLUTIONS:
        raise InvalidInput(f"resolution must be one of {', '.join(RESOLUTIONS)}; got {resolution!r}")
    if len(ids) < 2:
        raise InvalidInput("a duplicate cluster has at least two examples; name them all")
    if resolution != "intended_variation" and keep_id not in ids:
        raise InvalidInput(f"{resolution} needs --keep ID, one of {', '.join(map(str, ids))}")
    with store.write():
        user = acting_user(store, actor)
        require(user, "bulk_set_status")
        examples = [store.get_example(i) for i in ids]
        row_id = (
            store.db["duplicate_resolutions"]
            .insert(
                {
                    "kind": "duplicate",
                    "example_ids": json.dumps(ids),
                    "resolution": resolution,
                    "kept_id": keep_id,
                    "note": note,
                    "resolved_by": user.username,
                    "resolved_at": now(),
                }
            )
            .last_pk
        )
        note_fields = {"resolution": resolution, "cluster": ids, "kept_id": keep_id, "note": note, "resolution_id": row_id}
        for example in examples:
            changes: dict[str, Any] = {}
            if resolution in ("keep_one", "merge") and example.id != keep_id and example.status != "archived":
                changes["status"] = "archived"
            if resolution == "merge" and example.id == keep_id:
                labels = dict.fromkeys(example.tags.labels)
                for other in examples:
                    labels.update(dict.fromkeys(other.tags.labels))
                changes["tags"] = example.tags.model_copy(update={"labels": tuple(labels)})
            if changes:
                store.update_example(example.id, example.version, user.username, "resolve_duplicate", changes, note_fields)
            else:  # nothing about the example changes, but the decision about it is still part of its history
                store.add_history("example", example.id, "resolve_duplicate", user.username, None, note_fields)
    return {"resolution_id": row_id, "resolution": resolution, "example_ids": ids, "kept_id": keep_id}


# ------------------------------------------------------------------------------------------ live check


def check_draft(
    store: Store, content: ExampleContent, *, exclude_id: int | None = None, model: str | None = None, semantic: bool = True
) -> list[LiveMatch]:
    """Existing examples a draft repeats: exact, near and (optionally) semantic, strongest first.

    Fast enough to run on every save: exact matches come from indexed hashes, near and semantic
    ones from an in-process index that is brought up to date incrementally (see LiveIndex).
    """
    from curation.similarity.live import live_index

    return live_index(store, model=model, semantic=semantic).check(store, content, exclude_id=exclude_id)
