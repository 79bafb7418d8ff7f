"""Model drafts after the people: how much of the approved data started as a model's draft, and
how much the experts changed it (no model needed: the draft is kept in the example's metadata)."""

from __future__ import annotations

import difflib
import json
from collections import Counter
from typing import Any

from curation.examples.workflow import drafted_by
from curation.store import Store
from schemas import Example


def edit_distance(draft: str, final: str) -> float:
    """Normalised edit distance in [0, 1]: 1 - difflib's similarity ratio (0: unchanged, 1: rewritten)."""
    return 1.0 - difflib.SequenceMatcher(None, draft, final, autojunk=False).ratio()


def draft_diff(example: Example) -> list[str] | None:
    """A unified diff of the model's draft against the current response (None: not model-drafted)."""
    mark = drafted_by(example)
    if mark is None:
        return None
    draft = str(mark.get("draft", ""))
    return list(
        difflib.unified_diff(
            draft.splitlines(), example.response.splitlines(), "model draft", "current response", lineterm="", n=2
        )
    )


def draft_label(mark: dict[str, Any]) -> str:
    """`smollm2-135m` or `smollm2-135m + run abc123`: which model wrote a draft."""
    model = str(mark.get("model") or "a model")
    return f"{model} + run {mark['run_id']}" if mark.get("run_id") else model


def drafted_share(store: Store) -> dict[str, Any]:
    """Approved examples that started as a model's draft, and how much people changed them.

    Returns:
        `approved` (count), `drafted` (approved and model-drafted), `share` (drafted / approved,
        None without approved examples), `accepted_unchanged` and `unchanged_share` (final
        response equal to the draft, whitespace aside), `mean_edit_distance` (mean normalised
        edit distance draft -> final response, None without drafts) and `by_model` (drafted
        counts per model).
    """
    approved = store.db.execute("SELECT count(*) FROM examples WHERE status = 'approved'").fetchone()[0]
    rows = store.db.execute(
        "SELECT messages, json_extract(metadata, '$.drafted_by') FROM examples "
        "WHERE status = 'approved' AND json_extract(metadata, '$.drafted_by') IS NOT NULL"
    ).fetchall()
    distances, unchanged, models = [], 0, Counter()
    for messages, mark_json in rows:
        mark = json.loads(mark_json)
        if not isinstance(mark, dict):
            continue
        draft, final = str(mark.get("draft", "")), json.loads(messages)[-1]["content"]
        distances.append(edit_distance(draft, final))
        unchanged += " ".join(draft.split()) == " ".join(final.split())
        models[draft_label(mark)] += 1
    drafted = len(distances)
    return {
        "approved": approved,
        "drafted": drafted,
        "share": drafted / approved if approved else None,
        "accepted_unchanged": unchanged,
        "unchanged_share": unchanged / drafted if drafted else None,
        "mean_edit_distance": sum(distances) / drafted if drafted else None,
        "by_model": dict(models.most_common()),
    }
