"""`import_file`: bring a file of examples into the store in one transaction.

A killed import leaves nothing half-imported; a re-import adds nothing (content hash); every
record that is not imported is counted as a duplicate or listed as a rejection with its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from curation.datasets.formats import DEFAULT_MAX_CHARS, FORMATS, detect_format, read_records
from curation.errors import InvalidInput, PermissionDenied
from curation.examples.taxonomy import get_taxonomy
from curation.people.permissions import can, require
from curation.people.users import acting_user
from curation.store import Store
from schemas import ImportReport, Rejection, Tags

IMPORT_STATUSES = ("draft", "submitted", "approved")


def import_file(
    store: Store,
    actor: str,
    path: Path,
    *,
    fmt: str = "auto",
    status: str = "draft",
    tags: Tags | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import every good record of `path` as examples written by `actor`.

    Args:
        store: the store.
        actor: the importing user; they become the author of every example.
        path: the file (OpenAI/TRL JSONL, Alpaca, ShareGPT, CSV, prompt/response JSONL).
        fmt: "auto" or one of curation.datasets.formats.FORMATS.
        status: draft, submitted, or approved (leads only, for already-vetted data).
        tags: tags for records that do not set them themselves.
        max_chars: the longest message accepted.
        progress: called with the number of records read so far, every 1,000 records.

    Raises:
        InvalidInput: the file cannot be read at all, or the options are wrong.
        PermissionDenied: the actor may not create examples (or approve them).
    """
    if status not in IMPORT_STATUSES:
        raise InvalidInput(f"imported examples start as {', '.join(IMPORT_STATUSES)}; got {status!r}")
    if fmt != "auto" and fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; use auto or one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise InvalidInput(f"no file at {path}; check the path")
    defaults = (tags or Tags()).model_dump(exclude_defaults=True)
    source = f"import:{path.name}"
    resolved = detect_format(path) if fmt == "auto" else fmt  # InvalidInput when the file cannot be read at all
    with store.write():
        user = acting_user(store, actor)
        require(user, "create_example")
        if status == "approved" and not can(user, "bulk_set_status"):
            # approving without review is a lead's call, recorded as such in each example's history
            raise PermissionDenied(
                f"only leads can import examples as approved; {user.username} can import as draft or submitted"
            )
        taxonomy = get_taxonomy(store)[0]
        report: dict[str, Any] = {"imported": 0, "duplicates": 0, "duplicate_of": [], "rejected": []}
        for n, parsed in enumerate(read_records(path, resolved, max_chars=max_chars), start=1):
            if progress and n % 1000 == 0:
                progress(n)
            where = {parsed.where: parsed.location}
            if parsed.content is None:
                report["rejected"].append(Rejection(**where, reason=parsed.error))
                continue
            content = parsed.content
            if defaults:
                filled = Tags.model_validate(defaults | content.tags.model_dump(exclude_defaults=True))
                content = content.model_copy(update={"tags": filled})
            problems = taxonomy.tag_problems(content.tags)
            if problems:
                report["rejected"].append(Rejection(**where, reason="; ".join(problems)))
                continue
            existing = store.example_ids_with_hash(content.content_hash)
            if existing:
                report["duplicates"] += 1
                report["duplicate_of"].append({**where, "example_id": existing[0]})
                continue
            store.insert_example(
                messages=content.messages,
                tags=content.tags,
                author=user.username,
                status=status,
                actor=user.username,
                source=source,
                source_id=parsed.source_id,
                metadata=parsed.metadata,
                action="import",
            )
            report["imported"] += 1
    return ImportReport(file=str(path), format=resolved, status=status, **report)
