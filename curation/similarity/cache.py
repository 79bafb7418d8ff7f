"""The store's cache of MinHash signatures and embeddings, keyed by the hash of the text they describe.

A text's signature is cached with the sketch parameters that made it, its embedding with the
model that made it, so unchanged examples are never sketched or embedded twice. Batch dedup, the
live check and coverage all read through here; the algorithms (minhash, embeddings) know nothing
of the store.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from curation.store import Store

_LOOKUP_AT_MOST = 500  # keys looked up one by one below this; above it one scan of the model's rows


def text_key(text: str) -> str:
    """The cache key of a text: its sha256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def signatures(
    store: Store, texts: Sequence[str], params: Any = None, keys: Sequence[str] | None = None
) -> tuple[np.ndarray, int]:
    """MinHash signatures for texts, from the store's cache where present. Returns (matrix, newly computed).

    `keys` name each text in the cache (default: the sha256 of the text).
    """
    matrix, computed, saved = signatures_with_pending_save(store, texts, params, keys)
    saved()
    return matrix, computed


def signatures_with_pending_save(
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
    wanted = set(keys)
    if len(wanted) <= _LOOKUP_AT_MOST:  # a few (a check's new example): by primary key, not all 100,000 rows
        marks = ",".join("?" * len(wanted))
        sql = f"SELECT content_hash, {blob} FROM {table} WHERE {column} = ? AND content_hash IN ({marks})"
        rows = store.conn.execute(sql, [value, *wanted]).fetchall()
    else:
        rows = store.conn.execute(f"SELECT content_hash, {blob} FROM {table} WHERE {column} = ?", [value]).fetchall()
        rows = [r for r in rows if r[0] in wanted]
    if not rows:
        return {}
    matrix: np.ndarray = np.frombuffer(b"".join(r[1] for r in rows), dtype=dtype).reshape(len(rows), width)
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
