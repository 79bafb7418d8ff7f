"""`import_file`: bring a file of examples into the store in one transaction.

A killed import leaves nothing half-imported; a re-import adds nothing (content hash); every
record that is not imported is counted as a duplicate or listed as a rejection with its place
and reason, and what is odd about the file but lost nothing comes back as a warning. Records are
validated one by one and written in batches (one INSERT over a batch's rows and one over their
history rows), which is what keeps a 20,000-record import near the speed of SQLite itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curation.datasets.formats import DEFAULT_MAX_CHARS, FORMATS, PREFERENCES, Parsed, detect_format, read_records
from curation.errors import InvalidInput, PermissionDenied
from curation.examples.taxonomy import get_taxonomy
from curation.people.permissions import can, require
from curation.people.users import acting_user
from curation.store import NewExample, Store
from schemas import DuplicateOf, ImportReport, Rejection, Tags, Taxonomy

IMPORT_STATUSES = ("draft", "submitted", "approved")
BATCH = 1000
_BAD_ANSWER = "the file's KTO label marks this answer as bad, so it is stored as rejected and never trains a model"


@dataclass
class _Tally:
    """What the import did so far (becomes the ImportReport)."""

    imported: int = 0
    imported_as_rejected: int = 0
    duplicates: int = 0
    duplicate_of: list[DuplicateOf] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    """How every record of this import is written."""

    author: str
    status: str
    source: str
    defaults: dict[str, Any]
    taxonomy: Taxonomy


def import_file(
    store: Store,
    actor: str,
    path: Path,
    *,
    fmt: str = "auto",
    status: str = "draft",
    tags: Tags | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    preference: str = "refuse",
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import every good record of `path` as examples written by `actor`.

    Args:
        store: the store.
        actor: the importing user; they become the author of every example.
        path: the file (OpenAI/TRL chat, Alpaca, Dolly, ShareGPT, CSV, prompt/response; JSONL, JSON or CSV).
        fmt: "auto" or one of curation.datasets.formats.FORMATS.
        status: draft, submitted, or approved (leads only, for already-vetted data). A KTO record
            labelled false is stored as rejected whatever the status asked for.
        tags: tags for records that do not set them themselves.
        max_chars: the longest message accepted.
        preference: a preference pair is refused ("refuse") or imported with its chosen answer ("chosen").
        progress: called with the number of records read so far, every 1,000 records.

    Raises:
        InvalidInput: the file cannot be read at all, or the options are wrong.
        PermissionDenied: the actor may not create examples (or approve them).
    """
    if status not in IMPORT_STATUSES:
        raise InvalidInput(f"imported examples start as {', '.join(IMPORT_STATUSES)}; got {status!r}")
    if fmt != "auto" and fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; use auto or one of {', '.join(FORMATS)}")
    if preference not in PREFERENCES:
        raise InvalidInput(f"--preference takes {' or '.join(PREFERENCES)}; got {preference!r}")
    resolved = detect_format(path) if fmt == "auto" else fmt  # InvalidInput when the file cannot be read at all
    tally = _Tally()
    with store.write():
        user = acting_user(store, actor)
        require(user, "create_example")
        if status == "approved" and not can(user, "bulk_set_status"):
            # approving without review is a lead's call, recorded as such in each example's history
            raise PermissionDenied(
                f"only leads can import examples as approved; {user.username} can import as draft or submitted"
            )
        plan = _Plan(
            user.username,
            status,
            f"import:{path.name}",
            (tags or Tags()).model_dump(exclude_defaults=True),
            get_taxonomy(store)[0],
        )
        records = read_records(path, resolved or "auto", max_chars=max_chars, preference=preference)
        for batch in _batches(_counted(records, progress), BATCH):
            _write_batch(store, plan, batch, tally)
    return ImportReport(file=str(path), format=resolved or "unknown", status=status, **tally.__dict__)


def _counted(records: Iterable[Parsed], progress: Callable[[int], None] | None) -> Iterator[Parsed]:
    for n, parsed in enumerate(records, start=1):
        if progress and n % 1000 == 0:
            progress(n)
        yield parsed


def _batches(records: Iterable[Parsed], size: int) -> Iterator[list[Parsed]]:
    batch: list[Parsed] = []
    for parsed in records:
        batch.append(parsed)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_batch(store: Store, plan: _Plan, batch: list[Parsed], tally: _Tally) -> None:
    """Account for every record of a batch, then write the new examples in one go."""
    accepted = [(parsed, item, item.content_hash) for parsed in batch if (item := _accepted(parsed, plan, tally))]
    known = store.ids_with_hashes([digest for _, _, digest in accepted])
    new: dict[str, NewExample] = {}
    repeats: list[tuple[Parsed, str]] = []
    for parsed, item, digest in accepted:
        if digest in known or digest in new:
            repeats.append((parsed, digest))
        else:
            new[digest] = item
    ids = store.insert_examples(list(new.values()), author=plan.author, actor=plan.author)
    known.update(zip(new, ids, strict=True))
    tally.duplicates += len(repeats)
    tally.duplicate_of += [DuplicateOf(line=p.line, index=p.index, example_id=known[d]) for p, d in repeats]
    tally.imported += len(new)
    tally.imported_as_rejected += sum(1 for item in new.values() if item.status == "rejected")


def _accepted(parsed: Parsed, plan: _Plan, tally: _Tally) -> NewExample | None:
    """The example a record becomes, or None (its rejection or warning is counted)."""
    if parsed.warning:
        tally.warnings.append(Rejection(line=parsed.line, index=parsed.index, reason=parsed.warning))
        return None
    if parsed.content is None:
        tally.rejected.append(Rejection(line=parsed.line, index=parsed.index, reason=parsed.error or "unreadable"))
        return None
    content = parsed.content
    if plan.defaults:
        filled = Tags.model_validate(plan.defaults | content.tags.model_dump(exclude_defaults=True))
        content = content.model_copy(update={"tags": filled})
    problems = plan.taxonomy.tag_problems(content.tags)
    if problems:
        tally.rejected.append(Rejection(line=parsed.line, index=parsed.index, reason="; ".join(problems)))
        return None
    bad = parsed.verdict == "bad"
    return NewExample(
        content=content,
        status="rejected" if bad else plan.status,
        source=plan.source,
        source_id=parsed.source_id,
        metadata=parsed.metadata,
        note={"reason": _BAD_ANSWER} if bad else None,
        content_hash=content.content_hash,
    )
