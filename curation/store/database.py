"""The store: one SQLite file behind sqlite-utils, holding all of Goldsmith's SQL.

Every write runs inside `Store.write()` (BEGIN IMMEDIATE), checks the version the caller
read, and writes its history row in the same transaction. Services in curation/ decide
*whether* a change is allowed; the store makes it atomic and recorded.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from curation.errors import Conflict, GoldsmithError, InvalidInput, NotFound
from curation.store.migrations import migrations
from schemas import Example, ExampleContent, ExampleFilter, HistoryEntry, Message, Page, Review, Snapshot, Stats, Tags, User
from schemas.reports import created_bounds

BUSY_TIMEOUT_S = 10.0


def now() -> str:
    """The current UTC time as stored: ISO 8601 with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


_ROW_COLUMNS = (
    "messages",
    "prompt_text",
    "response_text",
    "category",
    "response_type",
    "knowledge_area",
    "labels",
    "content_hash",
    "norm_hash",
)


@dataclass(frozen=True)
class NewExample:
    """One example for `Store.insert_examples`: its content, status and provenance, and notes for its history row."""

    content: ExampleContent
    status: str
    source: str = "manual"
    source_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    note: dict[str, Any] | None = None
    content_hash: str = ""  # content.content_hash, when the caller has it already


def _messages_json(messages: tuple[Message, ...]) -> str:
    """`_dumps` of the messages' model_dump, without the per-message pydantic round trip (an import writes 20,000 a second)."""
    turns = []
    for m in messages:
        turn: dict[str, Any] = {"content": m.content}
        if m.context is not None:
            turn["context"] = m.context
        turn["role"] = m.role
        if m.weight is not None:
            turn["weight"] = m.weight
        turns.append(turn)
    return json.dumps(turns, ensure_ascii=False)


def _example_to_row(messages: tuple[Message, ...], tags: Tags, digest: str = "") -> dict[str, Any]:
    """The content columns of an example row (the rest are workflow columns); `digest`: its content hash, if known."""
    from schemas import content_hash, normalised_hash, prompt_text, response_text

    return {
        "messages": _messages_json(messages),
        "prompt_text": prompt_text(messages),
        "response_text": response_text(messages),
        "category": tags.category,
        "response_type": tags.response_type,
        "knowledge_area": tags.knowledge_area,
        "labels": _dumps(list(tags.labels)) if tags.labels else "[]",
        "content_hash": digest or content_hash(messages),
        "norm_hash": normalised_hash(messages),
    }


def _example_from_row(row: dict[str, Any]) -> Example:
    return Example.model_validate(
        {
            "id": row["id"],
            "messages": json.loads(row["messages"]),
            "tags": {
                "category": row["category"],
                "response_type": row["response_type"],
                "knowledge_area": row["knowledge_area"],
                "labels": json.loads(row["labels"] or "[]"),
            },
            "source": row["source"],
            "source_id": row["source_id"],
            "metadata": json.loads(row["metadata"] or "{}"),
            "status": row["status"],
            "author": row["author"],
            "version": row["version"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }
    )


def _plain(value: Any) -> Any:
    """A schema value as it is written into history (JSON-friendly)."""
    if isinstance(value, tuple) and value and isinstance(value[0], Message):
        return [m.model_dump() for m in value]
    if isinstance(value, Tags):
        return value.model_dump(mode="json")
    return value


def _fts_query(text: str) -> str:
    """Quote each word so user input never breaks FTS5 syntax; every word also matches as a prefix."""
    return " ".join(f'"{w}"*' for w in (w.replace('"', '""') for w in text.split()))


class Store:
    """Goldsmith's single SQLite file.

    Args:
        path: the database file; created (with its schema) when missing.
        memory: use an in-memory database instead (tests, scratch work).
    """

    def __init__(self, path: str | Path | None = None, *, memory: bool = False):
        if (path is None) == (not memory):
            raise ValueError("give a path or memory=True")
        self.path = None if memory or path is None else Path(path)
        try:
            conn = sqlite3.connect(
                ":memory:" if memory else str(path),
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,  # we issue BEGIN IMMEDIATE ourselves
                check_same_thread=False,
            )
            self.db = Database(conn)
            if not memory:
                self.db.enable_wal()
            self.db.execute("PRAGMA foreign_keys=ON")
            self._depth = 0
            with self.write():
                migrations.apply(self.db)
        except sqlite3.DatabaseError as error:
            raise InvalidInput(f"{path} is not a Goldsmith database ({error}); point --db at another file") from error

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def close(self) -> None:
        self.db.close()

    @property
    def schema_version(self) -> int:
        """How many schema migrations this store has applied."""
        return len(migrations.applied(self.db))

    @contextmanager
    def write(self) -> Iterator[Store]:
        """One write transaction (BEGIN IMMEDIATE); nested calls join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise Conflict(f"the store is busy with another write ({error}); try again in a moment") from error
        self._depth = 1
        try:
            yield self
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._depth = 0

    @contextmanager
    def read(self) -> Iterator[Store]:
        """A consistent read of many rows (WAL snapshot isolation); does not block writers."""
        if self._depth:
            yield self
            return
        self.conn.execute("BEGIN")
        self._depth = 1
        try:
            yield self
        finally:
            self._depth = 0
            self.conn.execute("COMMIT")

    def insert_row(self, table: str, row: dict[str, Any]) -> int:
        """Insert one row (inside a write) and return its new integer id."""
        self._require_write()
        pk = self.db.table(table).insert(row).last_pk
        if not isinstance(pk, int):
            raise RuntimeError(f"the insert into {table} returned no row id ({pk!r})")
        return pk

    def _require_write(self) -> None:
        if not self._depth:
            raise RuntimeError("store mutations must run inside Store.write()")

    # ------------------------------------------------------------------ history

    def add_history(
        self,
        entity: str,
        entity_id: str | int,
        action: str,
        actor: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        self._require_write()
        self.db.table("history").insert(
            {
                "entity": entity,
                "entity_id": str(entity_id),
                "action": action,
                "actor": actor,
                "at": now(),
                "before": None if before is None else _dumps(before),
                "after": None if after is None else _dumps(after),
            }
        )

    def history(self, entity: str | None = None, entity_id: str | int | None = None) -> list[HistoryEntry]:
        """History rows, oldest first, optionally for one entity."""
        where, params = [], []
        if entity is not None:
            where.append("entity = ?")
            params.append(entity)
        if entity_id is not None:
            where.append("entity_id = ?")
            params.append(str(entity_id))
        rows = self.db.table("history").rows_where(" AND ".join(where) or None, params, order_by="id")
        return [
            HistoryEntry.model_validate(
                {**r, "before": r["before"] and json.loads(r["before"]), "after": r["after"] and json.loads(r["after"])}
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ users

    def insert_user(self, user: User, password_hash: str, actor: str) -> User:
        self._require_write()
        if self.db.table("users").count_where("username = ?", [user.username]):
            raise Conflict(f"user {user.username!r} already exists; pick another name or change their role")
        row = user.model_dump(mode="json")
        self.db.table("users").insert(
            {**row, "active": int(user.active), "password_hash": password_hash, "updated_at": row["created_at"]}
        )
        self.add_history("user", user.username, "user_add", actor, None, {"role": user.role, "display_name": user.display_name})
        return user

    def get_user(self, username: str) -> User:
        rows = list(self.db.table("users").rows_where("username = ?", [username]))
        if not rows:
            raise NotFound(f"no user named {username!r}; `goldsmith user list` shows who exists")
        row = rows[0]
        return User.model_validate({k: row[k] for k in User.model_fields} | {"active": bool(row["active"])})

    def list_users(self) -> list[User]:
        return [self.get_user(r["username"]) for r in self.db.table("users").rows_where(order_by="username", select="username")]

    def count_users(self) -> int:
        return self.db.table("users").count

    def password_hash(self, username: str) -> str:
        self.get_user(username)
        return self.db.table("users").get(username)["password_hash"]

    def update_user(self, username: str, expected_version: int, actor: str, action: str, changes: dict[str, Any]) -> User:
        """Change a user's columns (role, display_name, active, password_hash) if still at expected_version."""
        with self.write():
            current = self.get_user(username)
            self._check_version("user", username, current.version, expected_version, current)
            row = self.db.table("users").get(username)
            changed = {k: v for k, v in changes.items() if row[k] != (int(v) if isinstance(v, bool) else v)}
            if not changed:
                return current
            self.db.table("users").update(username, {**changed, "version": current.version + 1, "updated_at": now()})
            hide = {"password_hash": "(changed)"}
            self.add_history(
                "user",
                username,
                action,
                actor,
                {k: hide.get(k, row[k]) for k in changed},
                {k: hide.get(k, v) for k, v in changed.items()},
            )
            return self.get_user(username)

    # ------------------------------------------------------------------ examples

    def insert_example(
        self,
        *,
        messages: tuple[Message, ...],
        tags: Tags,
        author: str,
        status: str,
        actor: str,
        source: str = "manual",
        source_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        action: str = "create",
    ) -> Example:
        self._require_write()
        stamp = now()
        row = _example_to_row(messages, tags) | {
            "source": source,
            "source_id": source_id,
            "metadata": _dumps(metadata or {}),
            "status": status,
            "author": author,
            "version": 1,
            "created_at": stamp,
            "updated_at": stamp,
        }
        example_id = self.insert_row("examples", row)
        example = self.get_example(example_id)
        self.add_history(
            "example",
            example_id,
            action,
            actor,
            None,
            {"messages": _plain(messages), "tags": _plain(tags), "status": status, "author": author, "source": source},
        )
        return example

    def insert_examples(self, new: Sequence[NewExample], *, author: str, actor: str, action: str = "import") -> list[int]:
        """Insert many examples inside a write: one statement run over every row, one over their history rows.

        What `insert_example` writes for each, without reading anything back; returns the new ids in order.
        """
        self._require_write()
        if not new:
            return []
        stamp = now()
        first = self.conn.execute("SELECT coalesce(max(id), 0) + 1 FROM examples").fetchone()[0]
        rows, history = [], []
        dumped: dict[str, str] = {}  # the JSON of the few values every row repeats (author, source, status)

        def once(value: str) -> str:
            return dumped.get(value) or dumped.setdefault(value, _dumps(value))

        for n, item in enumerate(new):
            row = _example_to_row(item.content.messages, item.content.tags, item.content_hash)
            tags = _dumps(_plain(item.content.tags))
            values = [row[c] for c in _ROW_COLUMNS]
            metadata = _dumps(item.metadata) if item.metadata else "{}"
            rows.append((first + n, *values, item.source, item.source_id, metadata, item.status, author, stamp, stamp))
            after = {"author": once(author), "messages": row["messages"], "source": once(item.source)}
            after |= {"status": once(item.status), "tags": tags} | {k: _dumps(v) for k, v in (item.note or {}).items()}
            history.append(
                (
                    "example",
                    str(first + n),
                    action,
                    actor,
                    stamp,
                    "{" + ", ".join(f"{once(k)}: {after[k]}" for k in sorted(after)) + "}",
                )
            )
        columns = [*_ROW_COLUMNS, "source", "source_id", "metadata", "status", "author", "created_at", "updated_at"]
        marks = ", ".join("?" * (len(columns) + 1))
        self.conn.executemany(f"INSERT INTO examples (id, {', '.join(columns)}, version) VALUES ({marks}, 1)", rows)
        self.conn.executemany(
            "INSERT INTO history (entity, entity_id, action, actor, at, before, after) VALUES (?, ?, ?, ?, ?, NULL, ?)", history
        )
        return [first + n for n in range(len(new))]

    def ids_with_hashes(self, digests: Sequence[str]) -> dict[str, int]:
        """The oldest example id holding each of these content hashes (those that exist)."""
        found: dict[str, int] = {}
        for start in range(0, len(digests), 500):  # SQLite allows at most 32,766 parameters
            part = digests[start : start + 500]
            marks = ", ".join("?" * len(part))
            for digest, example_id in self.conn.execute(
                f"SELECT content_hash, min(id) FROM examples WHERE content_hash IN ({marks}) GROUP BY content_hash", part
            ):
                found[digest] = example_id
        return found

    def get_example(self, example_id: int) -> Example:
        rows = list(self.db.table("examples").rows_where("id = ?", [example_id]))
        if not rows:
            raise NotFound(f"no example with id {example_id}; `goldsmith list` shows the ids")
        return _example_from_row(rows[0])

    def update_example(
        self,
        example_id: int,
        expected_version: int,
        actor: str,
        action: str,
        changes: dict[str, Any],
        note: dict[str, Any] | None = None,
    ) -> Example:
        """Apply changes (messages, tags, status, metadata) if the example is still at expected_version.

        Writes one history row with the before/after of each changed field (plus `note`), bumps
        the version, and returns the new example. A change that changes nothing writes nothing.

        Raises:
            NotFound: no such example.
            Conflict: the example is no longer at expected_version; nothing was written.
        """
        with self.write():
            current = self.get_example(example_id)
            self._check_version("example", example_id, current.version, expected_version, current)
            changed = {k: v for k, v in changes.items() if getattr(current, k) != v}
            if not changed:
                return current
            row: dict[str, Any] = {}
            if "messages" in changed or "tags" in changed:
                row |= _example_to_row(changed.get("messages", current.messages), changed.get("tags", current.tags))
            if "status" in changed:
                row["status"] = changed["status"]
            if "metadata" in changed:
                row["metadata"] = _dumps(changed["metadata"])
            row |= {"version": current.version + 1, "updated_at": now()}
            cursor = self.conn.execute(
                f"UPDATE examples SET {', '.join(f'[{k}] = ?' for k in row)} WHERE id = ? AND version = ?",
                [*row.values(), example_id, expected_version],
            )
            if cursor.rowcount != 1:  # cannot happen under BEGIN IMMEDIATE; never overwrite silently
                raise Conflict(f"example {example_id} changed while saving; reload it and try again")
            self.add_history(
                "example",
                example_id,
                action,
                actor,
                {k: _plain(getattr(current, k)) for k in changed},
                {k: _plain(v) for k, v in changed.items()} | (note or {}),
            )
            return self.get_example(example_id)

    def _check_version(self, entity: str, key: Any, current: int, expected: int, obj: Any) -> None:
        if current == expected:
            return
        last = self.history(entity, key)
        who = f" (last change: {last[-1].action} by {last[-1].actor} at {last[-1].at:%Y-%m-%d %H:%M:%S} UTC)" if last else ""
        raise Conflict(
            f"{entity} {key} was changed by someone else: you read version {expected}, "
            f"it is now version {current}{who}. Nothing was saved; reload it and apply your change again.",
            current=obj,
        )

    def example_ids_with_hash(self, digest: str) -> list[int]:
        return [r["id"] for r in self.db.query("SELECT id FROM examples WHERE content_hash = ? ORDER BY id", [digest])]

    @staticmethod
    def filter_sql(flt: ExampleFilter) -> tuple[list[str], list[Any]]:
        """WHERE conditions (on `examples`) and their parameters for every field of the filter but the query."""
        where: list[str] = []
        params: list[Any] = []
        for column in ("status", "author", "category", "response_type", "knowledge_area"):
            value = getattr(flt, column)
            if value is not None:
                where.append(f"examples.{column} = ?")
                params.append(value)
        if flt.label is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(examples.labels) WHERE value = ?)")
            params.append(flt.label)
        for operator, value in created_bounds(flt):
            where.append(f"examples.created_at {operator} ?")
            params.append(value)
        return where, params

    def examples_after(self, flt: ExampleFilter, after_id: int, limit: int) -> list[Example]:
        """Up to `limit` examples matching the filter (its query aside) with ids above `after_id`, in id order."""
        where, params = self.filter_sql(flt)
        clause = " AND ".join(["examples.id > ?", *where])
        rows = self.db.query(f"SELECT * FROM examples WHERE {clause} ORDER BY examples.id LIMIT ?", [after_id, *params, limit])
        return [_example_from_row(r) for r in rows]

    def list_examples(self, flt: ExampleFilter) -> Page[Example]:
        """One page of examples matching the filter: best match first when searching, else newest first."""
        where, params = self.filter_sql(flt)
        source, order = "examples", "examples.id DESC"
        if flt.query:
            # CROSS JOIN pins the FTS index as the outer loop; otherwise SQLite may scan a filter's
            # index and run the full-text match once per row (seconds at 20k rows).
            source = "examples_fts CROSS JOIN examples ON examples.rowid = examples_fts.rowid"
            where.append("examples_fts MATCH ?")
            params.append(_fts_query(flt.query))
            order = "examples_fts.rank, examples.id DESC"
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        try:
            total = self.conn.execute(f"SELECT count(*) FROM {source}{clause}", params).fetchone()[0]
            rows = self.db.query(
                f"SELECT examples.* FROM {source}{clause} ORDER BY {order} LIMIT ? OFFSET ?",
                [*params, flt.page_size, (flt.page - 1) * flt.page_size],
            )
            items = [_example_from_row(r) for r in rows]
        except sqlite3.OperationalError as error:
            raise GoldsmithError(f"search failed for {flt.query!r} ({error}); simplify the query") from error
        return Page[Example](items=items, total=total, page=flt.page, page_size=flt.page_size)

    # ------------------------------------------------------------------ reviews

    def insert_review(self, review: dict[str, Any]) -> Review:
        self._require_write()
        rubric = review.pop("rubric") or {}
        review_id = self.insert_row("reviews", {**review, **rubric, "created_at": now()})
        return self.get_review(review_id)

    def get_review(self, review_id: int) -> Review:
        row = self.db.table("reviews").get(review_id)
        rubric = {k: row.pop(k) for k in ("accuracy", "tone", "compliance", "completeness")}
        return Review.model_validate({**row, "rubric": rubric if rubric["accuracy"] is not None else None})

    def reviews_for(self, example_id: int) -> list[Review]:
        rows = self.db.table("reviews").rows_where("example_id = ?", [example_id], order_by="id")
        return [self.get_review(r["id"]) for r in rows]

    # ------------------------------------------------------------------ settings (taxonomy, guidelines)

    def get_setting(self, key: str) -> tuple[Any, int]:
        """(value, version); (None, 0) when never set."""
        rows = list(self.db.table("settings").rows_where("key = ?", [key]))
        return (json.loads(rows[0]["value"]), rows[0]["version"]) if rows else (None, 0)

    def set_setting(self, key: str, value: Any, expected_version: int, actor: str) -> int:
        with self.write():
            before, version = self.get_setting(key)
            self._check_version("settings", key, version, expected_version, before)
            if before == value:
                return version
            self.db.table("settings").upsert(
                {"key": key, "value": _dumps(value), "version": version + 1, "updated_at": now(), "updated_by": actor},
                pk="key",
            )
            self.add_history("settings", key, f"set_{key}", actor, None if before is None else {key: before}, {key: value})
            return version + 1

    # ------------------------------------------------------------------ snapshots

    def insert_snapshot(self, snapshot: Snapshot) -> Snapshot:
        self._require_write()
        row = snapshot.model_dump(mode="json")
        self.db.table("snapshots").insert({**row, "filter": _dumps(row["filter"])})
        self.add_history(
            "snapshot",
            snapshot.id,
            "create_snapshot",
            snapshot.created_by,
            None,
            {"name": snapshot.name, "train": snapshot.train, "eval": snapshot.eval, "path": snapshot.path},
        )
        return snapshot

    def get_snapshot(self, key: str) -> Snapshot:
        """A snapshot by id, name (the newest of that name), or a unique id prefix."""
        rows = list(
            self.db.query(
                "SELECT * FROM snapshots WHERE id = ? OR name = ? OR id LIKE ? ORDER BY created_at DESC", [key, key, f"{key}%"]
            )
        )
        picked = [r for r in rows if r["id"] == key] or [r for r in rows if r["name"] == key] or rows
        if len(picked) != 1 and not (picked and picked[0]["name"] == key):
            found = "several snapshots match" if picked else "no snapshot matches"
            raise NotFound(f"{found} {key!r}; `goldsmith snapshot list` shows ids and names")
        return Snapshot.model_validate({**picked[0], "filter": json.loads(picked[0]["filter"])})

    def list_snapshots(self) -> list[Snapshot]:
        return [
            Snapshot.model_validate({**r, "filter": json.loads(r["filter"])})
            for r in self.db.query("SELECT * FROM snapshots ORDER BY created_at DESC")
        ]

    # ------------------------------------------------------------------ reports

    def stats(self) -> Stats:
        def counts(sql: str) -> dict[str, int]:
            return {str(k): v for k, v in self.conn.execute(sql).fetchall()}

        return Stats(
            examples=self.db.table("examples").count,
            by_status=counts("SELECT status, count(*) FROM examples GROUP BY status ORDER BY status"),
            by_category=counts("SELECT coalesce(category, '(untagged)'), count(*) FROM examples GROUP BY 1 ORDER BY 2 DESC, 1"),
            by_author=counts("SELECT author, count(*) FROM examples GROUP BY author ORDER BY 2 DESC, 1"),
            reviews=self.db.table("reviews").count,
            reviews_by_decision=counts("SELECT decision, count(*) FROM reviews GROUP BY decision ORDER BY decision"),
            users_by_role=counts("SELECT role, count(*) FROM users WHERE active GROUP BY role ORDER BY role"),
        )
