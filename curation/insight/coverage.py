"""Coverage: approved examples against the taxonomy's targets, and against real user questions.

Real questions (a log of prompts) are matched to their nearest approved example by embedding
similarity; the ones below the threshold are clustered into gap topics, and a gap topic can be
turned into authoring tasks: each question assigned to an author, answered as a new example.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curation.datasets.formats import read_questions
from curation.errors import InvalidInput, NotFound, PermissionDenied
from curation.examples import workflow
from curation.examples.taxonomy import get_taxonomy
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store, now
from schemas import CoverageCell, CoverageReport, ExampleContent, GapTopic, MapPoint, QuestionMatch, Task

DEFAULT_THRESHOLD = 0.5  # measured on the sample question log: see the README
DEFAULT_GAP_DISTANCE = 0.65  # average cosine distance; on the sample log this recovers the planted gap topics
_STOP = frozenset(
    """a an and are as at be but by can do does for from get got has have how i if in is it its me my no not of on or our so
    that the their them then there they this to was we what when where which who why will with you your im ive dont cant
    just about would should could any been into also than too very much more some""".split()  # noqa: SIM905
)


def taxonomy_coverage(store: Store) -> list[CoverageCell]:
    """Approved counts per (category, response_type) cell, split by knowledge area, thinnest against target first."""
    taxonomy, _ = get_taxonomy(store)
    targets = {(t.category, t.response_type): t.target for t in taxonomy.targets}
    counts: dict[tuple[str, str], Counter] = {cell: Counter() for cell in targets}
    for cat in taxonomy.categories:
        for rt in taxonomy.response_types:
            counts.setdefault((cat, rt), Counter())
    for row in store.db.query(
        "SELECT coalesce(category, '(untagged)') c, coalesce(response_type, '(untagged)') r, "
        "coalesce(knowledge_area, '(untagged)') k, count(*) n FROM examples WHERE status = 'approved' GROUP BY 1, 2, 3"
    ):
        counts.setdefault((row["c"], row["r"]), Counter())[row["k"]] += row["n"]
    cells = [
        CoverageCell(
            category=c,
            response_type=r,
            target=targets.get((c, r)),
            approved=sum(k.values()),
            by_knowledge_area=dict(sorted(k.items())),
        )
        for (c, r), k in counts.items()
    ]

    def thinness(cell: CoverageCell) -> tuple:
        ratio = cell.approved / cell.target if cell.target else float("inf")
        return (ratio, -cell.gap, cell.category, cell.response_type)

    return sorted(cells, key=thinness)


def import_questions(store: Store, actor: str, path: Path) -> dict[str, Any]:
    """Add a log of real user questions (leads). Re-importing adds nothing; bad lines are reported."""
    from curation.similarity.dedup import text_key

    added, duplicates, rejected = 0, 0, []
    with store.write():
        require(acting_user(store, actor), "manage_coverage")
        for location, question, error in read_questions(path):
            if error:
                rejected.append({"line": location, "reason": error})
                continue
            digest = text_key(" ".join(question["text"].split()).casefold())
            if store.db["questions"].count_where("content_hash = ?", [digest]):
                duplicates += 1
                continue
            store.db["questions"].insert(
                {
                    "text": question["text"],
                    "content_hash": digest,
                    "source": path.name,
                    "source_id": question.get("id"),
                    "received_at": question.get("received_at"),
                    "imported_at": now(),
                }
            )
            added += 1
        store.add_history("questions", path.name, "import_questions", actor, None, {"file": path.name, "imported": added})
    return {"imported": added, "duplicates": duplicates, "rejected": rejected}


def _label(texts: list[str], background: Counter) -> str:
    words = Counter(w for t in texts for w in set(re.findall(r"[a-z][a-z'-]{2,}", t.casefold())) if w not in _STOP)
    ranked = sorted(words, key=lambda w: (-words[w] / (1 + background[w]) ** 0.5, w))
    return ", ".join(ranked[:3]) or "misc"


def coverage_report(
    store: Store,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    gap_distance: float = DEFAULT_GAP_DISTANCE,
    model: str | None = None,
    with_map: bool = True,
    save_gaps: bool = True,
) -> CoverageReport:
    """Taxonomy coverage, plus (when questions were imported) question coverage, gap topics and a 2-D map."""
    if not 0 < threshold < 1:
        raise InvalidInput(f"threshold must be in (0, 1), got {threshold}")
    cells = taxonomy_coverage(store)
    questions = list(store.db.query("SELECT id, text FROM questions ORDER BY id"))
    if not questions:
        return CoverageReport(cells=cells)
    found = nearest_approved(store, [q["text"] for q in questions], model)
    q_vecs, best = found.vectors, found.similarity
    matches = [
        QuestionMatch(
            question_id=q["id"],
            text=q["text"],
            nearest_example_id=example_id,
            similarity=round(float(s), 4),
            covered=bool(s >= threshold),
        )
        for q, example_id, s in zip(questions, found.example_ids, best, strict=True)
    ]
    gaps = gap_topics(questions, q_vecs, best, threshold, gap_distance)
    if save_gaps:
        gaps = _save_gaps(store, gaps)
    points = _map(found.examples, found.example_vectors, questions, q_vecs, best >= threshold) if with_map else []
    return CoverageReport(
        cells=cells,
        questions=len(questions),
        covered_questions=int((best >= threshold).sum()),
        threshold=threshold,
        question_matches=matches,
        gap_topics=gaps,
        map=points,
    )


@dataclass(frozen=True)
class Nearest:
    """Each text's nearest approved example: what question coverage is measured with."""

    vectors: np.ndarray  # the texts' embeddings, one row each
    similarity: np.ndarray  # cosine similarity to the nearest approved example (0 when there is none)
    example_ids: list[int | None]  # that example's id
    examples: list[dict]  # the approved examples (id, prompt_text, category), in id order
    example_vectors: np.ndarray  # their prompt embeddings


def nearest_approved(store: Store, texts: list[str], model: str | None = None) -> Nearest:
    """Embed `texts` and find each one's nearest approved example (embeddings come from the store's cache).

    Args:
        store: the store.
        texts: the questions, non-empty.
        model: the embedding model (default: the offline all-MiniLM-L6-v2).
    """
    from curation.similarity.dedup import embeddings

    examples = list(store.db.query("SELECT id, prompt_text, category FROM examples WHERE status = 'approved' ORDER BY id"))
    q_vecs, _ = embeddings(store, texts, model)
    if not examples:
        empty = np.zeros((0, q_vecs.shape[1]), np.float32)
        return Nearest(q_vecs, np.zeros(len(texts)), [None] * len(texts), examples, empty)
    e_vecs, _ = embeddings(store, [e["prompt_text"] for e in examples], model)
    sims = q_vecs @ e_vecs.T
    nearest = sims.argmax(axis=1)
    best = sims[np.arange(len(texts)), nearest]
    return Nearest(q_vecs, best, [examples[int(n)]["id"] for n in nearest], examples, e_vecs)


def gap_topics(questions: list[dict], vecs: np.ndarray, best: np.ndarray, threshold: float, distance: float) -> list[GapTopic]:
    """Cluster the questions below `threshold` into topics of two or more (largest first).

    Args:
        questions: {"id", "text"} per question; a topic's `question_ids` are these ids.
        vecs: their embeddings (rows in the same order).
        best: each question's nearest-approved-example similarity.
        threshold: the coverage threshold.
        distance: the average cosine distance at which clusters stop merging.
    """
    from sklearn.cluster import AgglomerativeClustering

    uncovered = np.nonzero(best < threshold)[0]
    if len(uncovered) < 2:
        return []
    labels = AgglomerativeClustering(
        n_clusters=None, distance_threshold=distance, metric="cosine", linkage="average"
    ).fit_predict(vecs[uncovered])
    background = Counter(w for q in questions for w in set(re.findall(r"[a-z][a-z'-]{2,}", q["text"].casefold())))
    topics = []
    for label in sorted(set(labels)):
        members = uncovered[labels == label]
        if len(members) < 2:
            continue
        centre = vecs[members].mean(axis=0)
        order = members[np.argsort(-(vecs[members] @ centre))]
        texts = [questions[i]["text"] for i in order]
        topics.append(
            GapTopic(
                label=_label(texts, background),
                question_ids=[questions[i]["id"] for i in order],
                representatives=texts[:3],
                similarity=round(float(best[members].mean()), 4),
            )
        )
    return sorted(topics, key=lambda t: (-len(t.question_ids), t.label))


def _save_gaps(store: Store, gaps: list[GapTopic]) -> list[GapTopic]:
    stamp = now()
    saved = []
    with store.write():
        for gap in gaps:
            row_id = (
                store.db["gap_topics"]
                .insert(
                    {
                        "label": gap.label,
                        "question_ids": json.dumps(gap.question_ids),
                        "representatives": json.dumps(gap.representatives),
                        "similarity": gap.similarity,
                        "created_at": stamp,
                    }
                )
                .last_pk
            )
            saved.append(gap.model_copy(update={"id": row_id}))
    return saved


def _map(
    examples: list[dict], e_vecs: np.ndarray, questions: list[dict], q_vecs: np.ndarray, covered: np.ndarray
) -> list[MapPoint]:
    """A 2-D PCA projection of approved examples and questions, for the app to draw."""
    both = np.vstack([e_vecs, q_vecs]).astype(np.float64)
    if len(both) < 3:
        return []
    centred = both - both.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    xy[:, vt[:2].sum(axis=1) < 0] *= -1  # a stable orientation
    points = [
        MapPoint(kind="example", id=e["id"], x=round(float(x), 4), y=round(float(y), 4), label=e["category"] or "(untagged)")
        for e, (x, y) in zip(examples, xy[: len(examples)], strict=True)
    ]
    points += [
        MapPoint(kind="question", id=q["id"], x=round(float(x), 4), y=round(float(y), 4), label=q["text"][:80], covered=bool(c))
        for q, (x, y), c in zip(questions, xy[len(examples) :], covered, strict=True)
    ]
    return points


def latest_gap_topics(store: Store) -> list[GapTopic]:
    """The gap topics of the most recent coverage run."""
    rows = list(
        store.db.query("SELECT * FROM gap_topics WHERE created_at = (SELECT max(created_at) FROM gap_topics) ORDER BY id")
    )
    return [
        GapTopic(
            id=r["id"],
            label=r["label"],
            question_ids=json.loads(r["question_ids"]),
            representatives=json.loads(r["representatives"]),
            similarity=r["similarity"],
        )
        for r in rows
    ]


# ------------------------------------------------------------------------------------------ tasks


def _task(store: Store, row: dict[str, Any]) -> Task:
    question = store.db["questions"].get(row["question_id"])["text"]
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
    task_id = store.db["tasks"].insert(row).last_pk
    details = {"assignee": assignee, "question_id": question_id, **({"note": note} if note else {})}
    store.add_history("task", task_id, "create_task", actor, None, details)
    return _task(store, store.db["tasks"].get(task_id))


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
    author = store.get_user(assignee)
    require(author, "create_example")
    rows = list(store.db["gap_topics"].rows_where("id = ?", [gap_topic_id]))
    if not rows:
        raise NotFound(f"no gap topic {gap_topic_id}; `goldsmith coverage` lists them")
    return author.username, json.loads(rows[0]["question_ids"])[:limit]


def create_tasks(store: Store, actor: str, gap_topic_id: int, assignee: str, *, limit: int | None = None) -> list[Task]:
    """Turn a gap topic's questions into authoring tasks for one author (leads). Questions already tasked are skipped."""
    with store.write():
        author, question_ids = gap_topic_work(store, actor, gap_topic_id, assignee, limit)
        created = []
        for qid in question_ids:
            if store.db["tasks"].count_where("question_id = ? AND status = 'open'", [qid]):
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
    from curation.similarity.dedup import text_key

    text = " ".join(text.split())
    if not text:
        raise InvalidInput("the task's question is empty")
    with store.write():
        require(acting_user(store, actor), action)
        author = store.get_user(assignee)
        require(author, "create_example")
        digest = text_key(text.casefold())
        found = list(store.db["questions"].rows_where("content_hash = ?", [digest]))
        if found:
            question_id = found[0]["id"]
        else:
            question_id = (
                store.db["questions"]
                .insert({"text": text, "content_hash": digest, "source": source, "source_id": source_id, "imported_at": now()})
                .last_pk
            )
        open_rows = list(store.db["tasks"].rows_where("question_id = ? AND status = 'open'", [question_id]))
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
    return [_task(store, r) for r in store.db["tasks"].rows_where(" AND ".join(where) or None, params, order_by="id")]


def complete_task(store: Store, actor: str, task_id: int, response: str, *, submit: bool = True, tags: Any = None) -> Task:
    """Answer a task's question as a new example (by its assignee); the task records the example."""
    with store.write():
        rows = list(store.db["tasks"].rows_where("id = ?", [task_id]))
        if not rows:
            raise NotFound(f"no task {task_id}; `goldsmith tasks` lists yours")
        task = _task(store, rows[0])
        user = acting_user(store, actor)
        if task.assignee != user.username:
            raise PermissionDenied(f"task {task_id} is assigned to {task.assignee}")
        if task.status != "open":
            raise InvalidInput(f"task {task_id} is already done (example {task.example_id})")
        content = ExampleContent.from_pair(task.question, response, tags=tags)
        example = workflow.create_example(
            store,
            actor,
            content,
            submit=submit,
            source="task",
            source_id=str(task_id),
            metadata={"task_id": task_id, "question_id": task.question_id},
        )
        store.db["tasks"].update(task_id, {"status": "done", "example_id": example.id, "version": task.version + 1})
        store.add_history(
            "task", task_id, "complete_task", actor, {"status": "open"}, {"status": "done", "example_id": example.id}
        )
        return _task(store, store.db["tasks"].get(task_id))
