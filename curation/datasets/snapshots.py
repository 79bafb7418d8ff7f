"""Snapshots: immutable, content-addressed folders of approved examples, split into train and eval.

A snapshot folder holds train.jsonl, eval.jsonl (chat `messages`, each line with the example's
`id` and `source_id`) and manifest.json (sha256 of each file, counts per tag, the filter, seed,
creator, time, schema version). It is written under a temporary name, fsynced and renamed, so a
killed snapshot leaves no half folder; its id is the hash of its data, so the same approved set
and seed always give the same id and byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from curation.datasets.exporting import iter_examples
from curation.datasets.split import split
from curation.datasets.validation import options_for, report_json, validate_records, validate_snapshot
from curation.errors import GoldsmithError, InvalidInput, explain
from curation.osutil import fsync_dir, pid_alive
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.similarity.dedup import duplicate_groups
from curation.store import Store, now
from schemas import DEFAULT_MAX_TOKENS, Example, ExampleFilter, Snapshot, SnapshotManifest, ValidationReport
from schemas.snapshot import ManifestValidation, SnapshotCounts, SnapshotFile, ValidationOverride

FILES = ("train.jsonl", "eval.jsonl")


def default_root(store: Store) -> Path:
    """Where snapshots go unless told otherwise: a `snapshots` folder beside the database."""
    return (store.path.parent if store.path else Path.cwd()) / "snapshots"


def _record_of(example: Example) -> dict[str, Any]:
    """A snapshot line: the conversation as a model trains on it (a turn's context joined into its text by
    schemas.CONTEXT_TEMPLATE; an assistant turn's `weight` kept, 0 meaning not learned)."""
    messages = []
    for m in example.messages:
        turn: dict[str, Any] = {"role": m.role, "content": m.text}
        if m.weight is not None:
            turn["weight"] = m.weight
        messages.append(turn)
    return {"id": example.id, "source_id": example.source_id, "messages": messages, "tags": example.tags.model_dump(mode="json")}


def _line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class SnapshotBlocked(GoldsmithError):
    """A critical expectation failed; the snapshot was not written. `report` says which and where."""

    def __init__(self, message: str, report: ValidationReport):
        super().__init__(message)
        self.report = report


def _blocked_message(report: ValidationReport) -> str:
    parts = []
    for entry in report.failed("critical"):
        ids = ", ".join(f"{e.split} {e.id}" for e in entry.unexpected_examples[:5])
        parts.append(f"{entry.name}: {entry.unexpected_count} examples ({ids}) - {entry.description.rstrip('.')}")
    return (
        "the snapshot breaks critical expectations, so it was not written: "
        + "; ".join(parts)
        + ". Fix those examples, or (leads) override with a reason."
    )


def _write(path: Path, data: bytes) -> str:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    path.chmod(0o444)  # snapshots are immutable: read-only files say so to people and tools
    return hashlib.sha256(data).hexdigest()


def _tag_counts(examples: Iterable[Example]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter] = {k: Counter() for k in ("category", "response_type", "knowledge_area", "labels")}
    for e in examples:
        for key in ("category", "response_type", "knowledge_area"):
            counts[key][getattr(e.tags, key) or "(untagged)"] += 1
        counts["labels"].update(e.tags.labels)
    return {k: dict(sorted(v.items())) for k, v in counts.items()}


def _drafts_without_review(store: Store, examples: Iterable[Example]) -> list[int]:
    """Model-drafted examples whose current text no reviewer approved: a model may draft, only a person approves."""
    missing = []
    for e in examples:
        if e.drafted_by is None:
            continue
        reviewed = False
        for h in store.history("example", e.id):  # oldest first: a text change needs a later approving review
            if h.action == "approve":
                reviewed = True
            elif h.after and "messages" in h.after:
                reviewed = False
        if not reviewed:
            missing.append(e.id)
    return missing


def create_snapshot(
    store: Store,
    actor: str,
    name: str,
    *,
    eval_fraction: float = 0.1,
    seed: int = 0,
    flt: ExampleFilter | None = None,
    groups: str = "both",
    keep_together: Iterable[Iterable[int]] = (),
    root: Path | None = None,
    validate: bool = True,
    override_reason: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    tokenizer: str | None = None,
) -> Snapshot:
    """Cut a snapshot of the approved examples matching `flt` (leads).

    Args:
        store: the store.
        actor: the lead creating it.
        name: a human name ("v1-claims"); the id is derived from the data.
        eval_fraction: share of each category held out for evaluation, in [0, 1).
        seed: split seed.
        flt: narrows the approved set (tags, author, label); its status is always approved.
        groups: which duplicate clusters the split keeps on one side, computed here: near,
            semantic, both (the default) or none.
        keep_together: more groups of example ids that must stay on one side of the split.
        root: the folder that holds snapshot folders (default: beside the database).
        validate: run the expectation suite (curation.datasets.validation) first; its report is
            saved in the snapshot as validation.json.
        override_reason: a lead's reason to publish despite failed critical expectations; it is
            recorded in the manifest and the history. Without it such a snapshot is refused.
        max_tokens: the target model's context limit, for the token-length expectation.
        tokenizer: the target model's tokenizer (local folder or cached id) to count tokens with.

    Returns:
        The snapshot; an identical earlier snapshot (same data) is returned instead of a copy.

    Raises:
        SnapshotBlocked: a critical expectation failed and no override reason was given.
        InvalidInput: nothing matches, or a model-drafted example was approved without a
            reviewer approving its current text (never overridable).
    """
    name = name.strip()
    if not name:
        raise InvalidInput("give the snapshot a name, such as v1 or claims-2026-11")
    if not 0 <= eval_fraction < 1:
        raise InvalidInput(f"eval fraction must be in [0, 1), got {eval_fraction}")
    require(acting_user(store, actor), "create_snapshot")
    examples, schema_version = _approved(store, flt)
    clusters = [*duplicate_groups(store, groups), *(list(g) for g in keep_together)]
    train_ids, eval_ids = split([(i, e.tags.category) for i, e in examples.items()], eval_fraction, seed, clusters)
    records = {
        "train.jsonl": [_record_of(examples[i]) for i in train_ids],
        "eval.jsonl": [_record_of(examples[i]) for i in eval_ids],
    }
    data = {f: b"".join(_line(r) for r in rows) for f, rows in records.items()}
    digests = {f: hashlib.sha256(b).hexdigest() for f, b in data.items()}
    snapshot_id = hashlib.sha256("".join(digests[f] for f in FILES).encode()).hexdigest()[:16]
    final = (root or default_root(store)) / snapshot_id
    if final.exists():
        return _record(store, final)
    report = None
    if validate:
        options = options_for(store, max_tokens=max_tokens, tokenizer=tokenizer)
        report = validate_records(records["train.jsonl"], records["eval.jsonl"], options)
        if not report.success and not (override_reason and override_reason.strip()):
            raise SnapshotBlocked(_blocked_message(report), report)
        data["validation.json"] = report_json(report).encode()
    manifest = SnapshotManifest(
        id=snapshot_id,
        name=name,
        created_by=actor,
        created_at=now(),
        seed=seed,
        eval_fraction=eval_fraction,
        filter=_filter(flt).model_dump(mode="json", exclude={"page", "page_size", "query"}, exclude_none=True),
        schema_version=schema_version,
        files={f: SnapshotFile(sha256=digests[f], examples=len(records[f])) for f in FILES},
        counts=_counts(examples, train_ids, eval_ids, clusters),
        validation=_validation_summary(report, actor, override_reason),
    )
    _publish(final.parent, final, data, manifest)
    return _record(store, final)


def _filter(flt: ExampleFilter | None) -> ExampleFilter:
    """The filter a snapshot is cut with: always the approved examples, never a search or a page."""
    return (flt or ExampleFilter()).model_copy(update={"status": "approved", "query": None, "page": 1})


def _approved(store: Store, flt: ExampleFilter | None) -> tuple[dict[int, Example], int]:
    """The approved examples matching the filter (one consistent read) and the store's schema version.

    Raises:
        InvalidInput: none match, or a model draft's current text was never approved by a reviewer.
    """
    with store.read():
        examples = {e.id: e for e in iter_examples(store, _filter(flt))}
        schema_version = store.schema_version
        unreviewed = _drafts_without_review(store, examples.values())
    if not examples:
        raise InvalidInput("no approved examples match; approve some (or widen the filter) before cutting a snapshot")
    if unreviewed:
        ids = ", ".join(map(str, unreviewed))
        raise InvalidInput(
            f"examples {ids} started as model drafts and no reviewer approved their current text (a bulk move or an "
            "import approved them); send them back to review "
            f"(`goldsmith set-status submitted {ids.replace(',', '')} --as LEAD`) before cutting a snapshot"
        )
    return examples, schema_version


def _counts(examples: dict[int, Example], train_ids: list[int], eval_ids: list[int], clusters: list[list[int]]) -> SnapshotCounts:
    return SnapshotCounts(
        train=len(train_ids),
        eval=len(eval_ids),
        groups_kept_together=sum(1 for g in clusters if len(set(g) & examples.keys()) > 1),
        model_drafted=sum(1 for e in examples.values() if e.drafted_by is not None),
        train_tags=_tag_counts(examples[i] for i in train_ids),
        eval_tags=_tag_counts(examples[i] for i in eval_ids),
    )


def _validation_summary(report: ValidationReport | None, actor: str, reason: str | None) -> ManifestValidation | None:
    if report is None:
        return None
    override = None if report.success else ValidationOverride(by=actor, reason=(reason or "").strip())
    return ManifestValidation(
        success=report.success, critical_failures=report.critical_failures, warnings=report.warnings, override=override
    )


def _publish(root: Path, final: Path, data: dict[str, bytes], manifest: SnapshotManifest) -> None:
    """Write into a hidden temporary folder, fsync everything, then rename it into place."""
    root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(root)
    tmp = root / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for file_name, blob in data.items():
            _write(tmp / file_name, blob)
        text = json.dumps(manifest.model_dump(mode="json"), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        _write(tmp / "manifest.json", text.encode())
        fsync_dir(tmp)
        os.rename(tmp, final)  # atomic; fails if another process published the same snapshot first
        fsync_dir(root)
    except OSError:
        if not final.exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_abandoned(root: Path) -> None:
    """Delete temporary folders left by snapshot processes that were killed (their pid is gone)."""
    for tmp in root.glob(".tmp-*-*-*"):
        pid = tmp.name.split("-")[-2]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _record(store: Store, folder: Path) -> Snapshot:
    """Record a published (and verified) folder in the store; idempotent."""
    manifest = verify_snapshot(folder)
    snapshot = Snapshot(
        id=manifest.id,
        name=manifest.name,
        path=str(folder.resolve()),
        created_by=manifest.created_by,
        created_at=manifest.created_at,
        seed=manifest.seed,
        eval_fraction=manifest.eval_fraction,
        filter=manifest.filter,
        train=manifest.counts.train,
        eval=manifest.counts.eval,
        schema_version=manifest.schema_version,
        manifest_sha256=hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest(),
    )
    with store.write():
        if store.db.table("snapshots").count_where("id = ?", [snapshot.id]):
            return store.get_snapshot(snapshot.id)
        inserted = store.insert_snapshot(snapshot)
        override = manifest.validation.override if manifest.validation else None
        if manifest.validation and override:
            store.add_history(
                "snapshot",
                snapshot.id,
                "override_validation",
                override.by,
                None,
                {"reason": override.reason, "critical_failures": manifest.validation.critical_failures},
            )
        return inserted


def snapshot_folder(store: Store, key: str) -> Path:
    """A snapshot's folder: `key` is a snapshot folder's path, or a snapshot's id, id prefix or name."""
    path = Path(key)
    return path if path.is_dir() else Path(store.get_snapshot(key).path)


def verify_snapshot(folder: Path) -> SnapshotManifest:
    """Check a snapshot folder against its manifest; return the manifest.

    Raises:
        InvalidInput: a file is missing, or its bytes or line count differ from the manifest.
    """
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise InvalidInput(f"{folder} has no manifest.json; it is not a complete snapshot")
    try:
        manifest = SnapshotManifest.model_validate_json(manifest_path.read_bytes())
    except ValidationError as error:
        raise InvalidInput(f"{manifest_path} is not a snapshot manifest ({explain(error)}); restore the file") from None
    for file_name, expected in manifest.files.items():
        path = folder / file_name
        if not path.is_file():
            raise InvalidInput(f"snapshot {folder.name} is missing {file_name}")
        blob = path.read_bytes()
        if hashlib.sha256(blob).hexdigest() != expected.sha256:
            raise InvalidInput(f"snapshot {folder.name}: {file_name} does not match its sha256 in the manifest; it was changed")
        lines = blob.count(b"\n")
        if lines != expected.examples:
            raise InvalidInput(f"snapshot {folder.name}: {file_name} has {lines} lines, the manifest says {expected.examples}")
    digest = hashlib.sha256("".join(manifest.files[f].sha256 for f in FILES).encode()).hexdigest()[:16]
    if digest != manifest.id or folder.name != manifest.id:
        raise InvalidInput(f"snapshot folder {folder.name} does not match its content id {digest}")
    return manifest


def revalidate_snapshot(
    store: Store, key: str, *, max_tokens: int = DEFAULT_MAX_TOKENS, tokenizer: str | None = None
) -> tuple[Path, ValidationReport]:
    """Run the expectation suite again on a snapshot (id, name or folder) and save validation.json beside its files.

    The same options as when it was cut: the store's taxonomy and near-duplicates as leaks.
    """
    folder = snapshot_folder(store, key)
    return folder, validate_snapshot(folder, options_for(store, max_tokens=max_tokens, tokenizer=tokenizer))
