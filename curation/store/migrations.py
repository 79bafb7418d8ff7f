"""The store's schema, created and evolved with sqlite-utils Migrations.

Add a new function at the end to change the schema; never edit one that has shipped.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from schemas import Message, normalised_hash

migrations = Migrations("goldsmith")


@migrations()
def m001_core(db: Database) -> None:
    db.table("users").create(
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
    db.table("examples").create(
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
        db.table("examples").create_index(columns)
    db.table("examples").enable_fts(["prompt_text", "response_text"], create_triggers=True, tokenize="porter")

    db.table("reviews").create(
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
    db.table("reviews").create_index(["example_id"])
    db.table("reviews").create_index(["reviewer"])

    db.table("history").create(
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
    db.table("history").create_index(["entity", "entity_id", "id"])

    db.table("settings").create(
        {"key": str, "value": str, "version": int, "updated_at": str, "updated_by": str},
        pk="key",
        not_null={"value", "version"},
    )


@migrations()
def m002_snapshots(db: Database) -> None:
    db.table("snapshots").create(
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


@migrations()
def m003_curation(db: Database) -> None:
    # A text-only hash (case, whitespace and punctuation folded) for exact-duplicate lookups.
    db.table("examples").add_column("norm_hash", str)
    db.table("examples").create_index(["norm_hash"])
    db.table("examples").create_index(["updated_at"])
    db.table("signatures").create(
        {"content_hash": str, "params": str, "signature": bytes}, pk=("content_hash", "params"), not_null={"signature"}
    )
    db.table("embeddings").create(
        {"content_hash": str, "model": str, "vector": bytes}, pk=("content_hash", "model"), not_null={"vector"}
    )
    db.table("duplicate_resolutions").create(
        {
            "id": int,
            "kind": str,
            "example_ids": str,
            "resolution": str,
            "kept_id": int,
            "note": str,
            "resolved_by": str,
            "resolved_at": str,
        },
        pk="id",
        not_null={"kind", "example_ids", "resolution", "resolved_by", "resolved_at"},
    )
    db.table("questions").create(
        {"id": int, "text": str, "content_hash": str, "source": str, "source_id": str, "received_at": str, "imported_at": str},
        pk="id",
        not_null={"text", "content_hash", "imported_at"},
    )
    db.table("questions").create_index(["content_hash"], unique=True)
    db.table("gap_topics").create(
        {"id": int, "label": str, "question_ids": str, "representatives": str, "similarity": float, "created_at": str},
        pk="id",
        not_null={"label", "question_ids", "created_at"},
    )
    db.table("tasks").create(
        {
            "id": int,
            "question_id": int,
            "gap_topic_id": int,
            "assignee": str,
            "status": str,
            "example_id": int,
            "created_by": str,
            "created_at": str,
            "version": int,
        },
        pk="id",
        not_null={"question_id", "assignee", "status", "created_by", "created_at", "version"},
        foreign_keys=[("question_id", "questions", "id"), ("assignee", "users", "username")],
    )
    db.table("tasks").create_index(["assignee", "status"])
    for row in list(db.query("SELECT id, messages FROM examples")):
        messages = [Message.model_validate(m) for m in json.loads(row["messages"])]
        db.execute("UPDATE examples SET norm_hash = ? WHERE id = ?", [normalised_hash(messages), row["id"]])


@migrations()
def m004_sessions(db: Database) -> None:
    # Sign-in sessions for the app: only the sha256 of each token is stored, so a copy of the
    # database does not let anyone in.
    db.table("sessions").create(
        {"token_hash": str, "username": str, "created_at": str, "last_seen": str, "ended_at": str},
        pk="token_hash",
        not_null={"username", "created_at", "last_seen"},
        foreign_keys=[("username", "users", "username")],
    )
    db.table("sessions").create_index(["username"])
    # Failed sign-ins per typed name (known or not, so a lockout does not reveal who exists).
    db.table("login_failures").create(
        {"username": str, "failures": int, "locked_until": str, "updated_at": str},
        pk="username",
        not_null={"failures", "updated_at"},
    )
    # The app's pages at 100k examples: an author's queue (author + status), review pairs and the
    # coverage heat map (approved counts per tag cell, read from the index alone).
    db.table("examples").create_index(["author", "status", "id"])
    db.table("reviews").create_index(["example_id", "example_version", "id"])
    db.table("reviews").create_index(["reviewer", "decision", "created_at"])
    db.table("examples").create_index(["status", "category", "response_type", "knowledge_area"])


@migrations()
def m005_training(db: Database) -> None:
    # LoRA runs (one row each, with lineage), their live metrics and events, and the blind
    # side-by-side comparisons reviewers vote on. A task can now carry a note (why it exists:
    # "the tuned model lost this comparison").
    db.table("runs").create(
        {
            "id": str,
            "name": str,
            "snapshot_id": str,
            "base_model": str,
            "config": str,
            "config_hash": str,
            "code_version": str,
            "status": str,
            "created_by": str,
            "created_at": str,
            "started_at": str,
            "finished_at": str,
            "heartbeat_at": str,
            "pid": int,
            "world_size": int,
            "run_dir": str,
            "step": int,
            "total_steps": int,
            "cancel_requested": int,
            "error": str,
            "result": str,
            "version": int,
        },
        pk="id",
        not_null={"snapshot_id", "base_model", "config", "status", "created_by", "created_at", "run_dir", "version"},
    )
    db.table("runs").create_index(["status"])
    db.table("run_metrics").create(
        {
            "run_id": str,
            "step": int,
            "kind": str,
            "epoch": float,
            "loss": float,
            "eval_loss": float,
            "learning_rate": float,
            "tokens_per_s": float,
            "memory_mb": float,
            "at": str,
        },
        not_null={"run_id", "step", "kind", "at"},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db.table("run_metrics").create_index(["run_id", "kind", "step"])
    db.table("run_events").create(
        {"run_id": str, "at": str, "kind": str, "message": str},
        not_null={"run_id", "at", "kind"},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db.table("run_events").create_index(["run_id", "at"])
    db.table("evaluations").create(
        {"run_id": str, "created_at": str, "created_by": str, "report": str},
        pk="run_id",
        not_null={"created_at", "report"},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db.table("comparisons").create(
        {
            "id": int,
            "run_id": str,
            "example_id": int,
            "messages": str,
            "reference": str,
            "answer_a": str,
            "answer_b": str,
            "tuned_is": str,
            "created_at": str,
        },
        pk="id",
        not_null={"run_id", "messages", "answer_a", "answer_b", "tuned_is", "created_at"},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db.table("comparisons").create_index(["run_id"])
    db.table("votes").create(
        {
            "id": int,
            "comparison_id": int,
            "reviewer": str,
            "choice": str,
            "rubric": str,
            "comment": str,
            "task_id": int,
            "created_at": str,
        },
        pk="id",
        not_null={"comparison_id", "reviewer", "choice", "created_at"},
        foreign_keys=[("comparison_id", "comparisons", "id"), ("reviewer", "users", "username")],
    )
    db.table("votes").create_index(["comparison_id", "reviewer"], unique=True)
    db.table("tasks").add_column("note", str)


@migrations()
def m006_production(db: Database) -> None:
    # Production conversation logs, kept apart from the examples: they are what the deployed
    # model was asked and answered (with the customer's rating), never training data. A log's
    # question can become an authoring task; task_id records the last one made from it.
    db.table("prod_logs").create(
        {
            "id": int,
            "conversation": str,
            "question": str,
            "answer": str,
            "rating": int,
            "thumbs": str,
            "received_at": str,
            "imported_at": str,
            "source": str,
            "source_id": str,
            "metadata": str,
            "content_hash": str,
            "task_id": int,
        },
        pk="id",
        not_null={"conversation", "question", "answer", "imported_at", "source", "content_hash"},
        foreign_keys=[("task_id", "tasks", "id")],
    )
    db.table("prod_logs").create_index(["content_hash"], unique=True)
    db.table("prod_logs").create_index(["received_at"])


@migrations()
def m007_jobs(db: Database) -> None:
    # Long work (training, evaluation, batch drafting) runs in its own process as a job: this row
    # is how a page or a command started elsewhere sees it, and how its worker reports back.
    # training.jobs owns the rows; params and result are JSON.
    jobs = db.table("jobs")
    jobs.create(
        {
            "id": str,
            "kind": str,
            "target": str,
            "params": str,
            "status": str,
            "created_by": str,
            "created_at": str,
            "started_at": str,
            "heartbeat_at": str,
            "finished_at": str,
            "pid": int,
            "log_path": str,
            "result": str,
            "error": str,
            "cancel_requested": int,
            "cancelled_by": str,
            "version": int,
        },
        pk="id",
        not_null={"kind", "target", "params", "status", "created_by", "created_at", "cancel_requested", "version"},
        defaults={"params": "{}", "cancel_requested": 0, "version": 1},
        foreign_keys=[("created_by", "users", "username"), ("cancelled_by", "users", "username")],
    )
    jobs.create_index(["kind", "target", "created_at"])  # a page polls the latest job of a kind on one target
    jobs.create_index(["status"])  # the active ones


@migrations()
def m008_evaluation(db: Database) -> None:
    # Evaluation that decides: each blind comparison keeps its example's category and response
    # type (results per scenario) and the automatic judge's verdict with its scores (so its
    # agreement with people's votes can be reported); a promotion marks a run as the team's
    # current model, with the gate's figures at the time (the newest promotion is the current one).
    comparisons = db.table("comparisons")
    for column in ("category", "response_type", "judge_winner", "judge_detail"):
        comparisons.add_column(column, str)
    db.table("promotions").create(
        {"id": int, "run_id": str, "promoted_by": str, "promoted_at": str, "gate": str},
        pk="id",
        not_null={"run_id", "promoted_by", "promoted_at", "gate"},
        foreign_keys=[("run_id", "runs", "id"), ("promoted_by", "users", "username")],
    )


@migrations()
def m009_workbench(db: Database) -> None:
    # What the checks found when an example went to review, and the reason its author gave for
    # sending an exact duplicate or an over-limit example anyway: the reviewer reads both.
    db.table("submissions").create(
        {
            "example_id": int,
            "version": int,
            "submitted_by": str,
            "submitted_at": str,
            "reason": str,
            "problems": str,
            "checks": str,
        },
        pk=("example_id", "version"),
        not_null={"submitted_by", "submitted_at", "checks"},
        foreign_keys=[("example_id", "examples", "id")],
    )
    # The sign-in cookie: a new session hands the page a one-time ticket (only its sha256 is kept,
    # with a deadline), which the browser trades for the HttpOnly cookie holding a second token of
    # the same session (its sha256 in cookie_hash); the key signs cookies.
    for column in ("ticket_hash", "ticket_expires", "cookie_hash"):
        db.table("sessions").add_column(column, str)
    db.table("sessions").create_index(["ticket_hash"])
    db.table("sessions").create_index(["cookie_hash"])
    db.table("session_keys").create({"name": str, "secret": str, "created_at": str}, pk="name", not_null={"secret"})
    db.table("session_keys").insert(
        {"name": "cookie", "secret": secrets.token_hex(32), "created_at": datetime.now(UTC).isoformat()}
    )
    # The review queue: the submitted example that has waited longest, read from the index.
    db.table("examples").create_index(["status", "updated_at", "id"])
