"""Watching production: what the deployed model is asked, how well the approved data covers it,
and which answers customers rated badly.

Production conversation logs live in their own table (`prod_logs`), never among the examples:
they are what the model said, not what it should say, so no snapshot or export ever sees them.
A log's question reaches the authors only as an authoring task (tasks.create_task), answered
as a new example that goes through review like any other.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from curation.datasets.formats import DEFAULT_MAX_CHARS, FORMATS, detect_format, read_records
from curation.errors import InvalidInput, NotFound
from curation.insight.coverage import DEFAULT_GAP_DISTANCE, DEFAULT_THRESHOLD, Nearest, gap_topics, nearest_approved
from curation.insight.tasks import create_task
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store, now
from schemas import Rejection, Task, content_hash
from schemas.monitoring import (
    BAD_RATING,
    BadAnswer,
    LogImportReport,
    MonitorReport,
    PeriodTrend,
    ProductionGap,
)

PERIODS = ("day", "week", "month")
TIME_KEYS = ("timestamp", "created_at", "received_at")  # the first one a record has is when it was received
COMMENT_KEYS = ("comment", "feedback")
_UP = {"up", "thumbs_up", "thumbsup", "+1", "1", "true", "yes", "👍"}
_DOWN = {"down", "thumbs_down", "thumbsdown", "-1", "0", "false", "no", "👎"}


class _LogError(ValueError):
    """A reason to reject one log record."""


# ------------------------------------------------------------------------------------------ import


def _rating(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float) or not float(number).is_integer():
        raise _LogError(f"rating must be a whole number from 1 to 5, got {value!r}")
    if not 1 <= number <= 5:
        raise _LogError(f"rating must be from 1 to 5, got {value!r}")
    return int(number)


def _thumbs(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    word = str(value).strip().lower()
    if word in _UP:
        return "up"
    if word in _DOWN:
        return "down"
    raise _LogError(f'thumbs must be "up", "down", true or false, got {value!r}')


def _timestamp(key: str, value: Any) -> str:
    """A record's time as stored: ISO 8601 in UTC. Naive times are taken as UTC; numbers as Unix seconds (or ms)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value.strip())
        else:
            raise ValueError
    except (ValueError, OverflowError, OSError):
        raise _LogError(f"{key} {value!r} is not a date and time; use ISO 8601 like 2026-07-14T09:30:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _feedback(metadata: dict[str, Any]) -> dict[str, Any]:
    """Take the rating, thumbs and time out of a record's extra fields; the rest stays as metadata."""
    rest = dict(metadata)
    received = next(((k, rest.pop(k)) for k in TIME_KEYS if k in rest), None)  # other time keys stay as metadata
    return {
        "rating": _rating(rest.pop("rating", None)),
        "thumbs": _thumbs(rest.pop("thumbs", None)),
        "received_at": _timestamp(*received) if received else None,
        "metadata": rest,
    }


def import_logs(
    store: Store, actor: str, path: Path, *, fmt: str = "auto", max_chars: int = DEFAULT_MAX_CHARS
) -> LogImportReport:
    """Import production conversations into the log store (leads); never into the examples.

    Any import format works (OpenAI chat JSONL, ShareGPT, Alpaca, CSV, prompt/response), with
    optional fields per record: `rating` (1-5), `thumbs` ("up"/"down", true/false) and a time
    (`timestamp`, `created_at` or `received_at`). The question is the first user turn, the answer
    the last assistant turn. Re-importing adds nothing (a conversation at the same time is a
    duplicate); a bad record is reported with its line (or index) and the reason.

    Raises:
        InvalidInput: the file cannot be read at all, or the format is unknown.
        PermissionDenied: the actor is not a lead.
    """
    if fmt != "auto" and fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; use auto or one of {', '.join(FORMATS)}")
    resolved = (detect_format(path) if fmt == "auto" else fmt) or "auto"
    report: dict[str, Any] = {"imported": 0, "duplicates": 0, "rejected": []}
    with store.write():
        require(acting_user(store, actor), "manage_coverage")
        stamp = now()
        for parsed in read_records(path, resolved, max_chars=max_chars):
            where = {"line": parsed.line, "index": parsed.index}
            if parsed.warning:
                continue
            if parsed.content is None:
                report["rejected"].append(Rejection(**where, reason=parsed.error or "unreadable"))
                continue
            try:
                fields = _feedback(parsed.metadata)
            except _LogError as error:
                report["rejected"].append(Rejection(**where, reason=str(error)))
                continue
            messages = parsed.content.messages
            digest = hashlib.sha256(f"{content_hash(messages)}|{fields['received_at'] or ''}".encode()).hexdigest()
            if store.db.table("prod_logs").count_where("content_hash = ?", [digest]):
                report["duplicates"] += 1
                continue
            store.db.table("prod_logs").insert(
                {
                    "conversation": json.dumps([m.model_dump() for m in messages], ensure_ascii=False),
                    "question": next(m.text for m in messages if m.role == "user"),
                    "answer": next(m.content for m in reversed(messages) if m.role == "assistant"),
                    "rating": fields["rating"],
                    "thumbs": fields["thumbs"],
                    "received_at": fields["received_at"],
                    "imported_at": stamp,
                    "source": path.name,
                    "source_id": parsed.source_id,
                    "metadata": json.dumps(fields["metadata"], ensure_ascii=False, sort_keys=True, default=str),
                    "content_hash": digest,
                }
            )
            report["imported"] += 1
        store.add_history("prod_logs", path.name, "import_logs", actor, None, {"file": path.name, "imported": report["imported"]})
    return LogImportReport(file=str(path), format=resolved, **report)


# ------------------------------------------------------------------------------------------ monitor


def _start(moment: datetime, period: str) -> date:
    day = moment.astimezone(UTC).date()
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next(start: date, period: str) -> date:
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def _is_bad(row: dict[str, Any]) -> bool:
    return (row["rating"] is not None and row["rating"] <= BAD_RATING) or row["thumbs"] == "down"


def report_version(store: Store) -> tuple:
    """What monitor()'s report depends on, cheaply: the logs, their tasks and the approved examples.

    Equal versions give equal reports (for one period, threshold and model), so a caller may reuse one.
    """
    logs = store.db.execute("SELECT count(*), max(id), count(task_id), max(task_id) FROM prod_logs").fetchone()
    approved = store.db.execute("SELECT count(*), max(updated_at) FROM examples WHERE status = 'approved'").fetchone()
    return (*logs, *approved)


def monitor(
    store: Store,
    *,
    period: str = "week",
    threshold: float = DEFAULT_THRESHOLD,
    gap_distance: float = DEFAULT_GAP_DISTANCE,
    model: str | None = None,
) -> MonitorReport:
    """Production traffic per period: live questions, the share covered by approved data, bad ratings.

    A question is covered when its nearest approved example is at least `threshold` similar (the
    same embedder, cache and rule as coverage.coverage_report). The latest period's uncovered
    questions are clustered into gap topics (coverage's clustering); each says how many uncovered
    questions of earlier periods belong to it (0: new this period). Nothing is written but the
    embedding cache.

    Args:
        store: the store.
        period: day, week (from Monday, UTC) or month.
        threshold: the coverage threshold, in (0, 1).
        gap_distance: the average cosine distance at which gap clusters stop merging.
        model: the embedding model (default: the offline all-MiniLM-L6-v2).
    """
    if period not in PERIODS:
        raise InvalidInput(f"period must be day, week or month; got {period!r}")
    if not 0 < threshold < 1:
        raise InvalidInput(f"threshold must be in (0, 1), got {threshold}")
    rows = list(
        store.db.query(
            "SELECT id, question, answer, conversation, rating, thumbs, received_at, metadata, task_id, "
            "coalesce(received_at, imported_at) AS at FROM prod_logs ORDER BY at, id"
        )
    )
    if not rows:
        return MonitorReport(period=period, threshold=threshold, logs=0)
    found = nearest_approved(store, [r["question"] for r in rows], model)
    covered = found.similarity >= threshold
    starts = [_start(datetime.fromisoformat(r["at"]), period) for r in rows]
    by_start: dict[date, list[int]] = {}
    for i, s in enumerate(starts):
        by_start.setdefault(s, []).append(i)
    latest = max(by_start)
    return MonitorReport(
        period=period,
        threshold=threshold,
        logs=len(rows),
        trend=_trend(rows, by_start, covered, period),
        latest=latest,
        gap_topics=_latest_gaps(rows, found, starts, latest, threshold, gap_distance),
        bad_answers=_bad_answers(rows, found.similarity, covered)[::-1],
    )


def _trend(rows: list[dict[str, Any]], by_start: dict[date, list[int]], covered: np.ndarray, period: str) -> list[PeriodTrend]:
    """One point per period from the first to the last, empty periods included."""
    trend, start = [], min(by_start)
    while start <= max(by_start):
        members = by_start.get(start, [])
        n_covered = int(covered[members].sum()) if members else 0
        trend.append(
            PeriodTrend(
                start=start,
                questions=len(members),
                covered=n_covered,
                coverage=round(n_covered / len(members), 4) if members else None,
                rated=sum(rows[i]["rating"] is not None or rows[i]["thumbs"] is not None for i in members),
                bad=sum(_is_bad(rows[i]) for i in members),
            )
        )
        start = _next(start, period)
    return trend


def _latest_gaps(
    rows: list[dict[str, Any]], found: Nearest, starts: list[date], latest: date, threshold: float, gap_distance: float
) -> list[ProductionGap]:
    """The latest period's gap topics, each with how many uncovered questions of earlier periods belong to it."""
    best = found.similarity
    now_idx = np.array([i for i, s in enumerate(starts) if s == latest])
    position = {rows[i]["id"]: i for i in now_idx}
    before = np.array([i for i, s in enumerate(starts) if s < latest and best[i] < threshold], dtype=int)
    topics = []
    questions = [{"id": rows[i]["id"], "text": rows[i]["question"]} for i in now_idx]
    for topic in gap_topics(questions, found.vectors[now_idx], best[now_idx], threshold, gap_distance):
        members = found.vectors[[position[log_id] for log_id in topic.question_ids]]
        # An earlier question belongs to the topic by the rule that grew the cluster (average linkage).
        earlier = int(((found.vectors[before] @ members.T).mean(axis=1) >= 1 - gap_distance).sum()) if len(before) else 0
        topics.append(
            ProductionGap(
                label=topic.label,
                log_ids=topic.question_ids,
                representatives=topic.representatives,
                similarity=topic.similarity,
                earlier=earlier,
            )
        )
    return topics


def _bad_answers(rows: list[dict[str, Any]], best: np.ndarray, covered: np.ndarray) -> list[BadAnswer]:
    return [
        BadAnswer(
            log_id=r["id"],
            received_at=r["received_at"],
            question=r["question"],
            answer=r["answer"],
            messages=json.loads(r["conversation"]),
            rating=r["rating"],
            thumbs=r["thumbs"],
            comment=_comment(r),
            similarity=round(float(best[i]), 4),
            covered=bool(covered[i]),
            task_id=r["task_id"],
        )
        for i, r in enumerate(rows)
        if _is_bad(r)
    ]


def _comment(row: dict[str, Any]) -> str | None:
    metadata = json.loads(row["metadata"] or "{}")
    return next((str(metadata[k]) for k in COMMENT_KEYS if metadata.get(k) not in (None, "")), None)


# ------------------------------------------------------------------------------------------ tasks


def _excerpt(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _note(row: dict[str, Any], label: str | None) -> str:
    day = (row["received_at"] or row["imported_at"])[:10]
    parts = [f"production log {row['id']} ({day})"]
    if label:
        parts.append(f"gap topic: {label}")
    verdicts = ([f"rated {row['rating']}/5"] if row["rating"] is not None else []) + (
        [f"thumbs {row['thumbs']}"] if row["thumbs"] else []
    )
    if verdicts:
        parts.append("the answer was " + " and ".join(verdicts))
    comment = _comment(row)
    if comment:
        parts.append(f'the customer said: "{_excerpt(comment, 160)}"')
    if _is_bad(row):
        parts.append(f'the answer given: "{_excerpt(row["answer"], 200)}"')
    return "; ".join(parts)


def create_log_tasks(store: Store, actor: str, log_ids: list[int], assignee: str, *, label: str | None = None) -> list[Task]:
    """Turn production logs' questions into authoring tasks for one author (leads).

    Each task's note names the log, its rating or thumbs, the customer's comment and, for a badly
    rated answer, the answer given; `label` adds the gap topic the logs came from. A question
    already open as a task keeps that task (tasks.create_task).

    Raises:
        InvalidInput: no log ids.
        NotFound: a log id that does not exist.
        PermissionDenied: the actor is not a lead, or the assignee cannot write examples.
    """
    ids = list(dict.fromkeys(int(i) for i in log_ids))
    if not ids:
        raise InvalidInput("name at least one production log; `goldsmith monitor --json` lists them")
    with store.write():
        require(acting_user(store, actor), "manage_coverage")
        rows = {r["id"]: r for r in store.db.table("prod_logs").rows_where(f"id IN ({', '.join('?' * len(ids))})", ids)}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise NotFound(f"no production log {missing[0]}; `goldsmith monitor --json` lists the logs behind each finding")
        tasks: dict[int, Task] = {}
        for log_id in ids:
            row = rows[log_id]
            task = create_task(
                store, actor, row["question"], assignee, note=_note(row, label), source="production", source_id=str(log_id)
            )
            store.db.table("prod_logs").update(log_id, {"task_id": task.id})
            tasks.setdefault(task.id, task)
    return list(tasks.values())
