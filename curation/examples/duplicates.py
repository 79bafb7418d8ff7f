"""Resolving duplicates: a lead's decision on a cluster (keep one, merge, intended variation).

Duplicates are flagged for a person, never deleted: a resolution is recorded in its own table and
in the history of every example involved, and archives only what the lead chose to drop. An
intended variation is remembered so the batch dedup (curation.similarity.dedup) stops reporting it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, get_args

from curation.errors import InvalidInput
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store, now
from schemas import DuplicateResolution, Resolution

RESOLUTIONS: tuple[str, ...] = get_args(Resolution)


def resolve_duplicates(
    store: Store, actor: str, example_ids: Sequence[int], resolution: str, *, keep_id: int | None = None, note: str = ""
) -> DuplicateResolution:
    """Record a lead's decision on a duplicate cluster (leads), in the history of every example involved.

    keep_one: archive every example but `keep_id`. merge: like keep_one, and the kept example
    gains the others' labels. intended_variation: change nothing; stop reporting this cluster.

    Returns:
        What was recorded, with the ids it archived.
    """
    ids = sorted(set(example_ids))
    if resolution not in RESOLUTIONS:
        raise InvalidInput(f"resolution must be one of {', '.join(RESOLUTIONS)}; got {resolution!r}")
    if len(ids) < 2:
        raise InvalidInput("a duplicate cluster has at least two examples; name them all")
    if resolution != "intended_variation" and keep_id not in ids:
        raise InvalidInput(f"{resolution} needs --keep ID, one of {', '.join(map(str, ids))}")
    with store.write():
        user = acting_user(store, actor)
        require(user, "bulk_set_status")
        examples = [store.get_example(i) for i in ids]
        row_id = (
            store.db.table("duplicate_resolutions")
            .insert(
                {
                    "kind": "duplicate",
                    "example_ids": json.dumps(ids),
                    "resolution": resolution,
                    "kept_id": keep_id,
                    "note": note,
                    "resolved_by": user.username,
                    "resolved_at": now(),
                }
            )
            .last_pk
        )
        archived: list[int] = []
        note_fields = {"resolution": resolution, "cluster": ids, "kept_id": keep_id, "note": note, "resolution_id": row_id}
        for example in examples:
            changes: dict[str, Any] = {}
            if resolution in ("keep_one", "merge") and example.id != keep_id and example.status != "archived":
                changes["status"] = "archived"
                archived.append(example.id)
            if resolution == "merge" and example.id == keep_id:
                labels = dict.fromkeys(example.tags.labels)
                for other in examples:
                    labels.update(dict.fromkeys(other.tags.labels))
                changes["tags"] = example.tags.model_copy(update={"labels": tuple(labels)})
            if changes:
                store.update_example(example.id, example.version, user.username, "resolve_duplicate", changes, note_fields)
            else:  # nothing about the example changes, but the decision about it is still part of its history
                store.add_history("example", example.id, "resolve_duplicate", user.username, None, note_fields)
    return DuplicateResolution(resolution_id=row_id, resolution=resolution, example_ids=ids, kept_id=keep_id, archived=archived)
