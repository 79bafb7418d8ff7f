"""Authoring tasks: a real question (from the question log, a gap topic, an evaluation failure or a
production log) assigned to an author, who answers it as a new example that is reviewed like any other."""

from __future__ import annotations

import json
from typing import Any

from curation.errors import InvalidInput, NotFound, PermissionDenied
from curation.examples import workflow
from curation.examples.checks import check_draft
from curation.examples.submissions import attach_checks
from curation.people.permissions import require
from curation.people.users import acting_user, assignable_author
from curation.similarity.cache import text_key
from curation.store import Store, now
from schemas import ExampleContent, Task, normalise_text
from schemas.curation import SavedExample


def question_key(text: str) -> str:
    """The key that makes a question a repeat of one in the log: its text with case and spacing folded."""
    return text_key(normalise_text(text, punctuation=False))


def _task(store: Store, row: dict[str, Any]) -> Task:
    question = store.db.table("questions").get(row["question_id"])["text"]
    return Task.model_validate({**row, "question": question})


def _insert_task(
    store: Store, actor: str, question_id: int, assignee: str, *, gap_topic_id: int | None = None, note: str | None = None
) -> Task:
    row = {
        "question_id": question_id,
        "gap_topic_id": gap_topic_id,
        "assignee": assignee,
        "status": "open",
        "example_id": None,
        "created_by": actor,
        "created_at": now(),
        "version": 1,
        "note": note,
    }
    task_id = store.insert_row("tasks", row)
    details = {"assignee": assignee, "question_id": question_id, **({"note": note} if note else {})}
    store.add_history("task", task_id, "create_task", actor, None, details)
    return _task(store, store.db.table("tasks").get(task_id))


def gap_topic_work(store: Store, actor: str, gap_topic_id: int, assignee: str, limit: int | None = None) -> tuple[str, list[int]]:
    """Check a lead may hand out a gap topic's questions to `assignee`; their username and the question ids.

    Args:
        limit: at most this many questions, in the topic's order (None: all).

    Raises:
        PermissionDenied: the actor is not a lead, or the assignee may not write examples.
        NotFound: no such gap topic or user.
        InvalidInput: limit below 1.
    """
    if limit is not None and limit < 1:
        raise InvalidInput(f"limit must be at least 1, got {limit}")
    require(acting_user(store, actor), "manage_coverage")
    author = assignable_author(store, assignee)
    rows = list(store.db.table("gap_topics").rows_where("id = ?", [gap_topic_id]))
    if not rows:
        raise NotFound(f"no gap topic {gap_topic_id}; `goldsmith coverage` lists them")
    return author.username, json.loads(rows[0]["question_ids"])[:limit]


def create_tasks(store: Store, actor: str, gap_topic_id: int, assignee: str, *, limit: int | None = None) -> list[Task]:
    """Turn a gap topic's questions into authoring tasks for one author (leads). Questions already tasked are skipped."""
    with store.write():
        author, question_ids = gap_topic_work(store, actor, gap_topic_id, assignee, limit)
        created = []
        for qid in question_ids:
            if store.db.table("tasks").count_where("question_id = ? AND status = 'open'", [qid]):
                continue
            created.append(_insert_task(store, actor, qid, author, gap_topic_id=gap_topic_id))
        return created


def create_task(
    store: Store,
    actor: str,
    text: str,
    assignee: str,
    *,
    note: str,
    source: str,
    source_id: str | None = None,
    action: str = "manage_coverage",
) -> Task:
    """One authoring task for a question from anywhere (an evaluation failure, a production log).

    The question joins the question log with its source (e.g. `eval:run-1`), so coverage sees it
    too; a question already open as a task returns that task instead of a second one.
    """
    text = " ".join(text.split())
    if not text:
        raise InvalidInput("the task's question is empty")
    with store.write():
        require(acting_user(store, actor), action)
        author = assignable_author(store, assignee)
        digest = question_key(text)
        found = list(store.db.table("questions").rows_where("content_hash = ?", [digest]))
        if found:
            question_id = found[0]["id"]
        else:
            row = {"text": text, "content_hash": digest, "source": source, "source_id": source_id, "imported_at": now()}
            question_id = store.insert_row("questions", row)
        open_rows = list(store.db.table("tasks").rows_where("question_id = ? AND status = 'open'", [question_id]))
        if open_rows:
            return _task(store, open_rows[0])
        return _insert_task(store, actor, question_id, author.username, note=note)


def list_tasks(store: Store, *, assignee: str | None = None, status: str | None = "open") -> list[Task]:
    where, params = [], []
    if assignee:
        where.append("assignee = ?")
        params.append(assignee.strip().lower())
    if status:
        where.append("status = ?")
        params.append(status)
    return [_task(store, r) for r in store.db.table("tasks").rows_where(" AND ".join(where) or None, params, order_by="id")]


def complete_task(
    store: Store,
    actor: str,
    task_id: int,
    response: str | ExampleContent,
    *,
    submit: bool = True,
    tags: Any = None,
    reason: str | None = None,
) -> Task:
    """Answer a task's question as a new example (by its assignee); the task records the example.

    `response` is the answer to the task's question (a single-turn example), or the whole
    conversation the author wrote in the editor (its first user turn usually the question).
    """
    with store.write():
        rows = list(store.db.table("tasks").rows_where("id = ?", [task_id]))
        if not rows:
            raise NotFound(f"no task {task_id}; `goldsmith tasks` lists yours")
        task = _task(store, rows[0])
        user = acting_user(store, actor)
        if task.assignee != user.username:
            raise PermissionDenied(f"task {task_id} is assigned to {task.assignee}")
        if task.status != "open":
            raise InvalidInput(f"task {task_id} is already done (example {task.example_id})")
        content = response
        if not isinstance(content, ExampleContent):
            content = ExampleContent.from_pair(task.question, content, tags=tags)
        example = workflow.create_example(
            store,
            actor,
            content,
            submit=submit,
            reason=reason,
            source="task",
            source_id=str(task_id),
            metadata={"task_id": task_id, "question_id": task.question_id},
        )
        store.db.table("tasks").update(task_id, {"status": "done", "example_id": example.id, "version": task.version + 1})
        store.add_history(
            "task", task_id, "complete_task", actor, {"status": "open"}, {"status": "done", "example_id": example.id}
        )
        return _task(store, store.db.table("tasks").get(task_id))


def answer_task(
    store: Store, actor: str, task_id: int, content: ExampleContent, *, submit: bool = False, reason: str | None = None
) -> SavedExample:
    """The Write page's Save or Submit on a task opened in the editor: the example it becomes, and its checks."""
    task = complete_task(store, actor, task_id, content, submit=submit, reason=reason)
    example = store.get_example(task.example_id or 0)
    check = check_draft(store, example, exclude_id=example.id)
    if example.status == "submitted":
        attach_checks(store, example, check)
    return SavedExample(example=example, checks=check)


def get_task(store: Store, actor: str, task_id: int) -> Task:
    """One of the actor's tasks (to open it in the editor).

    Raises:
        NotFound: no such task. PermissionDenied: it is someone else's.
    """
    rows = list(store.db.table("tasks").rows_where("id = ?", [task_id]))
    if not rows:
        raise NotFound(f"no task {task_id}; `goldsmith tasks` lists yours")
    task = _task(store, rows[0])
    if task.assignee != acting_user(store, actor).username:
        raise PermissionDenied(f"task {task_id} is assigned to {task.assignee}")
    return task
