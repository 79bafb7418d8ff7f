"""Duplicate clusters in batch: exact (normalised hash), near (MinHash + LSH) and semantic (embeddings).

Duplicates are flagged for a person, never deleted: curation.examples.duplicates records what a
lead decided. Signatures and embeddings come through the store's cache (similarity.cache), so
unchanged examples are never sketched or embedded twice; the live check of one draft is
similarity.live.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curation.errors import InvalidInput
from curation.similarity.cache import embeddings, signatures_with_pending_save
from curation.similarity.groups import connected_components
from curation.store import Store
from schemas import DedupReport, DuplicateCluster, Message, normalised_hash

METHODS = ("exact", "near", "semantic")
DEFAULT_SEMANTIC_THRESHOLD = 0.9


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
        matrix, computed["signatures"], saved = signatures_with_pending_save(store, examples.texts, None, examples.content_hashes)
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
    for row in store.db.table("duplicate_resolutions").rows_where("resolution = ?", ["intended_variation"]):
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
    """(train index, eval index) of near-duplicates across a split, for the leakage expectation.

    The batch's rule (minhash.cross_pairs), so a pair the leak check flags is a pair dedup clusters.
    """
    from curation.similarity import minhash

    return minhash.cross_pairs(train_texts, eval_texts)


GROUPINGS: dict[str, tuple[str, ...]] = {"both": ("near", "semantic"), "near": ("near",), "semantic": ("semantic",), "none": ()}


def duplicate_groups(store: Store, groups: str = "both", *, model: str | None = None) -> list[list[int]]:
    """Near and/or semantic clusters (ids) that a leakage-safe split keeps on one side.

    Args:
        groups: both, near, semantic or none (GROUPINGS).
        model: the embedding model for semantic clusters (default: the offline MiniLM).
    """
    if groups not in GROUPINGS:
        raise InvalidInput(f"groups must be near, semantic, both or none; got {groups!r}")
    methods = GROUPINGS[groups]
    return [c.ids for c in find_duplicates(store, methods, model=model).clusters] if methods else []
