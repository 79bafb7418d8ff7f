"""Coverage: approved examples against the taxonomy's targets, and against real user questions.

Real questions (the question log, and the questions of the deployed model's production logs) are
matched to their nearest approved example by embedding similarity; the ones below the threshold
are clustered into gap topics, each named by its most central question, and a gap topic can be
turned into authoring tasks (curation.insight.tasks).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curation.datasets.formats import read_questions
from curation.errors import InvalidInput
from curation.examples.taxonomy import get_taxonomy
from curation.insight.tasks import question_key
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.similarity.cache import embeddings
from curation.store import Store, now
from schemas import CoverageCell, CoverageReport, GapTopic, MapPoint, QuestionImportReport, QuestionMatch, Rejection, one_line

DEFAULT_THRESHOLD = 0.5  # measured on the sample question log: see the README
DEFAULT_GAP_DISTANCE = 0.65  # average cosine distance; on the sample log this recovers the planted gap topics
LABEL_WIDTH = 90  # a gap topic's name: its most central question, cut to this many characters


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


def import_questions(store: Store, actor: str, path: Path) -> QuestionImportReport:
    """Add a log of real user questions (leads). Re-importing adds nothing; bad lines are reported."""
    added, duplicates, rejected = 0, 0, []
    with store.write():
        require(acting_user(store, actor), "manage_coverage")
        for location, question, error in read_questions(path):
            if error or question is None:
                rejected.append(Rejection(line=location, reason=error))
                continue
            digest = question_key(question["text"])
            if store.db.table("questions").count_where("content_hash = ?", [digest]):
                duplicates += 1
                continue
            store.db.table("questions").insert(
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
    return QuestionImportReport(file=path.name, imported=added, duplicates=duplicates, rejected=rejected)


def import_question_log(store: Store, actor: str, name: str, data: bytes) -> QuestionImportReport:
    """`import_questions` for a file that arrived as bytes (the Dashboard's upload); `name` gives its format."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / (Path(name).name or "questions.jsonl")
        path.write_bytes(data)
        return import_questions(store, actor, path)


def real_questions(store: Store, *, adopt: bool = False) -> list[dict]:
    """The question log plus the production logs' questions it lacks (case and spacing aside), in order.

    With `adopt` (a lead's coverage run), those production questions join the question log
    (source "production"), so gap topics and authoring tasks can name them; otherwise they carry
    the negative of their log id.
    """
    rows = list(store.db.query("SELECT id, text FROM questions ORDER BY id"))
    known = {r["content_hash"] for r in store.db.query("SELECT content_hash FROM questions")}
    extra = []
    for log in store.db.query("SELECT id, question, received_at FROM prod_logs ORDER BY id"):
        key = question_key(log["question"])
        if key not in known:
            known.add(key)
            extra.append({"id": -log["id"], "text": log["question"], "key": key, "log": log})
    if adopt and extra:
        with store.write():
            for item in extra:
                log = item.pop("log")
                item["id"] = store.insert_row(
                    "questions",
                    {
                        "text": item["text"],
                        "content_hash": item["key"],
                        "source": "production",
                        "source_id": str(log["id"]),
                        "received_at": log["received_at"],
                        "imported_at": now(),
                    },
                )
    return rows + [{"id": item["id"], "text": item["text"]} for item in extra]


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
    questions = real_questions(store, adopt=save_gaps)
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
                label=one_line(texts[0], LABEL_WIDTH),  # the most central question: what the topic is about
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
                store.db.table("gap_topics")
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
