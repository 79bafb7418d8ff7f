"""The store's schema, created and evolved with sqlite-utils Migrations.

Add a new function at the end to change the schema; never edit one that has shipped.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("goldsmith")


@migrations()
def m001_core(db: Database) -> None:
    db["users"].create(
        {
            "username": str,
            "display_name": str,
            "role": str,
            "active": int,
            "password_hash": str,
            "version": int,
            "created_at": str,
            "updated_at": str,
        },
        pk="username",
        not_null={"role", "password_hash", "version", "created_at"},
    )
    db["examples"].create(
        {
            "id": int,
            "messages": str,
            "prompt_text": str,
            "response_text": str,
            "category": str,
            "response_type": str,
            "knowledge_area": str,
            "labels": str,
            "source": str,
            "source_id": str,
            "metadata": str,
            "status": str,
            "author": str,
            "version": int,
            "content_hash": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"messages", "status", "author", "version", "content_hash", "created_at"},
        foreign_keys=[("author", "users", "username")],
    )
    # Composite indexes keep filtered, newest-first pages fast at 100k+ examples.
    for columns in (["status", "id"], ["author", "id"], ["category", "id"], ["content_hash"], ["source", "source_id"]):
        db["examples"].create_index(columns)
    db["examples"].enable_fts(["prompt_text", "response_text"], create_triggers=True, tokenize="porter")

    db["reviews"].create(
        {
            "id": int,
            "example_id": int,
            "example_version": int,
            "reviewer": str,
            "decision": str,
            "accuracy": int,
            "tone": int,
            "compliance": int,
            "completeness": int,
            "comment": str,
            "created_at": str,
        },
        pk="id",
        not_null={"example_id", "example_version", "reviewer", "decision", "created_at"},
        foreign_keys=[("example_id", "examples", "id"), ("reviewer", "users", "username")],
    )
    db["reviews"].create_index(["example_id"])
    db["reviews"].create_index(["reviewer"])

    db["history"].create(
        {
            "id": int,
            "entity": str,
            "entity_id": str,
            "action": str,
            "actor": str,
            "at": str,
            "before": str,
            "after": str,
        },
        pk="id",
        not_null={"entity", "entity_id", "action", "actor", "at"},
    )
    db["history"].create_index(["entity", "entity_id", "id"])

    db["settings"].create(
        {"key": str, "value": str, "version": int, "updated_at": str, "updated_by": str},
        pk="key",
        not_null={"value", "version"},
    )


@migrations()
def m002_snapshots(db: Database) -> None:
    db["snapshots"].create(
        {
            "id": str,
            "name": str,
            "path": str,
            "created_by": str,
            "created_at": str,
            "seed": int,
            "eval_fraction": float,
            "filter": str,
            "train": int,
            "eval": int,
            "schema_version": int,
            "manifest_sha256": str,
        },
        pk="id",
        not_null={"name", "path", "created_by", "created_at", "train", "eval"},
    )
