"""The blind side-by-side: comparisons, people's votes, win rates (overall and per scenario), the
automatic judge's agreement with people, and a losing answer sent back to an author.

Evaluation (training.evaluate) writes one comparison per eval prompt: the base model's and the
tuned model's answers in a seeded random order, with the example's category and response type
and the automatic judge's verdict. Reviewers vote blind; the judge's verdict is never shown
before a vote (`Comparison.HIDDEN`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from curation.errors import Conflict, NotFound
from curation.insight.tasks import create_task
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store, now
from schemas import Task
from schemas.evaluation import Agreement, Winner
from schemas.training import Comparison, EvaluationReport, VoteInput, VoteResult, WinRate
from training.evaluation.judge import agreement, wilson

UNTAGGED = "(untagged)"


def evaluation(store: Store, run_id: str) -> EvaluationReport | None:
    """The run's last evaluation report (None before it is evaluated), its judge's agreement with people's votes so far."""
    row = store.db.execute("SELECT report FROM evaluations WHERE run_id = ?", [run_id]).fetchone()
    if not row:
        return None
    report = EvaluationReport.model_validate_json(row[0])
    if report.judge is None:
        return report
    return report.model_copy(update={"judge": report.judge.model_copy(update={"agreement": judge_agreement(store, run_id)})})


def _comparison(row: dict[str, Any]) -> Comparison:
    detail = row.get("judge_detail")
    return Comparison.model_validate(
        {**row, "messages": json.loads(row["messages"]), "judge_detail": json.loads(detail) if detail else None}
    )


def get_comparison(store: Store, comparison_id: int) -> Comparison:
    """A blind comparison by id (with which side the tuned model wrote: not for reviewers' eyes)."""
    rows = list(store.db.table("comparisons").rows_where("id = ?", [comparison_id]))
    if not rows:
        raise NotFound(f"no comparison {comparison_id}")
    return _comparison(rows[0])


def next_comparison(store: Store, reviewer: str, run_id: str) -> Comparison | None:
    """The next comparison of the run this reviewer has not judged (None when all are done)."""
    user = acting_user(store, reviewer)
    require(user, "judge_models")
    rows = list(
        store.db.query(
            "SELECT * FROM comparisons WHERE run_id = ? AND id NOT IN (SELECT comparison_id FROM votes WHERE reviewer = ?) "
            "ORDER BY id LIMIT 1",
            [run_id, user.username],
        )
    )
    return _comparison(rows[0]) if rows else None


def judged(store: Store, reviewer: str, run_id: str) -> tuple[int, int]:
    """How many of the run's comparisons this reviewer has judged, and how many there are."""
    done, total = store.db.execute(
        "SELECT count(v.id), count(DISTINCT c.id) FROM comparisons c "
        "LEFT JOIN votes v ON v.comparison_id = c.id AND v.reviewer = ? WHERE c.run_id = ?",
        [reviewer.strip().lower(), run_id],
    ).fetchone()
    return done, total


def vote(store: Store, reviewer: str, comparison_id: int, judgement: VoteInput) -> VoteResult:
    """Record a reviewer's blind judgement; each reviewer judges a comparison once. The result reveals the winner."""
    user = acting_user(store, reviewer)
    require(user, "judge_models")
    comparison = get_comparison(store, comparison_id)
    with store.write():
        if store.db.table("votes").count_where("comparison_id = ? AND reviewer = ?", [comparison_id, user.username]):
            raise Conflict(f"{user.username} already judged comparison {comparison_id}")
        row = {
            "comparison_id": comparison_id,
            "reviewer": user.username,
            "choice": judgement.choice,
            "rubric": json.dumps(judgement.rubric),
            "comment": judgement.comment.strip(),
            "created_at": now(),
        }
        vote_id = store.db.table("votes").insert(row).last_pk
        store.add_history("comparison", comparison_id, "vote", user.username, None, {"choice": judgement.choice})
    return VoteResult.model_validate(
        {**row, "id": vote_id, "rubric": judgement.rubric, "winner": _winner(judgement.choice, comparison.tuned_is)}
    )


def _winner(choice: str, tuned_is: str) -> Winner:
    return "tie" if choice == "tie" else ("tuned" if choice == tuned_is else "base")


def _rate(run_id: str, winners: list[Winner], confidence: float) -> WinRate:
    ties = winners.count("tie")
    tuned = winners.count("tuned")
    n = len(winners)
    low, high = wilson(tuned + ties / 2, n, confidence) if n else (None, None)
    return WinRate(
        run_id=run_id,
        votes=n,
        tuned_wins=tuned,
        base_wins=n - ties - tuned,
        ties=ties,
        win_rate=(tuned + ties / 2) / n if n else None,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
    )


def _votes(store: Store, run_id: str) -> list[tuple[Winner, str, str, str | None]]:
    """(person's winner, category, response type, judge's winner) for every vote on the run."""
    rows = store.db.execute(
        "SELECT v.choice, c.tuned_is, c.category, c.response_type, c.judge_winner FROM votes v "
        "JOIN comparisons c ON c.id = v.comparison_id WHERE c.run_id = ? ORDER BY v.id",
        [run_id],
    ).fetchall()
    return [(_winner(choice, tuned_is), cat or UNTAGGED, kind or UNTAGGED, judge) for choice, tuned_is, cat, kind, judge in rows]


def win_rate(store: Store, run_id: str, confidence: float = 0.95) -> WinRate:
    """The tuned model's win rate over all blind votes on the run (ties count half)."""
    return _rate(run_id, [w for w, *_ in _votes(store, run_id)], confidence)


def win_rate_by(store: Store, run_id: str, key: str = "category", confidence: float = 0.95) -> dict[str, WinRate]:
    """The blind win rate per category (or `key="response_type"`), worst first."""
    if key not in ("category", "response_type"):
        raise ValueError(f"key must be category or response_type, got {key!r}")
    groups: dict[str, list[Winner]] = defaultdict(list)
    for winner, category, response_type, _ in _votes(store, run_id):
        groups[category if key == "category" else response_type].append(winner)
    rates = {name: _rate(run_id, winners, confidence) for name, winners in groups.items()}
    return dict(sorted(rates.items(), key=lambda item: (item[1].win_rate or 0.0, item[0])))


def judge_agreement(store: Store, run_id: str) -> Agreement | None:
    """The automatic judge against people, over every vote on a comparison the judge judged; None without such votes."""
    pairs: list[tuple[Winner, Winner]] = [(judge, person) for person, _, _, judge in _votes(store, run_id) if judge]  # type: ignore[misc]
    return agreement(pairs)


def task_from_comparison(store: Store, actor: str, comparison_id: int, assignee: str, *, note: str = "") -> Task:
    """Send a comparison the tuned model lost (or answered badly) back to an author as a task."""
    comparison = get_comparison(store, comparison_id)
    question = "\n".join(m["content"] for m in comparison.messages if m["role"] == "user")
    reason = note.strip() or f"the tuned model of {comparison.run_id} answered this poorly in the blind comparison"
    task = create_task(
        store,
        actor,
        question,
        assignee,
        note=f"comparison {comparison_id}: {reason}",
        source=f"eval:{comparison.run_id}",
        source_id=str(comparison_id),
        action="judge_models",
    )
    with store.write():
        store.db.execute("UPDATE votes SET task_id = ? WHERE comparison_id = ? AND task_id IS NULL", [task.id, comparison_id])
    return task
