"""`goldsmith import`, `goldsmith export` and `goldsmith snapshot ...`: data in and out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from app.cli_common import (
    DEFAULT_DB,
    EXIT_FAILED,
    AsOption,
    DbOption,
    JsonOption,
    echo_rejected,
    emit_json,
    handle_errors,
    open_store,
    parse_tags,
    plural,
    table,
)
from curation.datasets.exporting import EXPORT_FORMATS, export_examples
from curation.datasets.formats import DEFAULT_MAX_CHARS
from curation.datasets.importing import import_file
from curation.datasets.snapshots import create_snapshot, verify_snapshot
from curation.errors import InvalidInput
from schemas import ExampleFilter, Tags

snapshot_app = typer.Typer(help="Cut, list, show and verify snapshots (versioned training sets).", no_args_is_help=True)

TagOption = Annotated[
    list[str] | None, typer.Option("--tag", help="KEY=VALUE with KEY category, response_type or knowledge_area.")
]


def import_command(
    file: Annotated[Path, typer.Argument(help="The file to import.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="auto, openai, alpaca, dolly, sharegpt, csv or pairs (prompt/response, TRL prompt/completion)."
        ),
    ] = "auto",
    status: Annotated[str, typer.Option(help="draft, submitted, or approved (leads, for already-vetted data).")] = "draft",
    tag: TagOption = None,
    preference: Annotated[
        str,
        typer.Option(
            help="Preference pairs: refuse (default), or chosen: import the chosen answer, the rejected one as metadata."
        ),
    ] = "refuse",
    max_chars: Annotated[
        int, typer.Option(min=1, help="Reject records with a message (or a context) longer than this many characters.")
    ] = DEFAULT_MAX_CHARS,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Import examples from a file: every good record in, every bad one reported with its line.

    Exit 0 when nothing was rejected, 1 when some records were rejected, 2 when the file cannot be read.
    """
    store = open_store(db)
    tags = parse_tags(tag, None, Tags())

    def progress(n: int) -> None:
        if not as_json and n % 10_000 == 0:
            typer.echo(f"... {n:,} records read", err=True)

    report = import_file(
        store, as_user, file, fmt=fmt, status=status, tags=tags, max_chars=max_chars, preference=preference, progress=progress
    )
    if as_json:
        typer.echo(report.model_dump_json(exclude_none=True, indent=2))
    else:
        bad = f", {report.imported_as_rejected} of them as rejected (labelled bad)" if report.imported_as_rejected else ""
        typer.echo(
            f"Imported {plural(report.imported, 'example')} from {file} ({report.format}, as {report.status}{bad}); "
            f"{plural(report.duplicates, 'duplicate')} skipped; {plural(len(report.rejected), 'record')} rejected."
        )
        echo_rejected(report.rejected)
        for warning in report.warnings:
            typer.echo(f"  warning, {warning.place}: {warning.reason}", err=True)
    if report.rejected:
        raise typer.Exit(EXIT_FAILED)


def export_command(
    out: Annotated[Path, typer.Option("-o", "--out", help="The file to write (a folder for --format hf).")],
    fmt: Annotated[str, typer.Option("--format", help=f"{', '.join(EXPORT_FORMATS)}.")] = "openai",
    status: Annotated[str, typer.Option(help="Which examples: approved (default) or another status.")] = "approved",
    tag: TagOption = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Export examples for a trainer (openai, alpaca, sharegpt, hf) or a spreadsheet (csv)."""
    store = open_store(db)
    tags = parse_tags(tag, None, Tags()).model_dump(exclude={"labels"})
    count = export_examples(store, fmt, out, ExampleFilter(status=status, **tags))
    if as_json:
        emit_json({"exported": count, "path": str(out), "format": fmt})
    else:
        typer.echo(f"Exported {plural(count, status + ' example')} to {out} ({fmt}).")


@snapshot_app.command("create")
@handle_errors
def snapshot_create(
    name: Annotated[str, typer.Option(help="A name for people, e.g. v1 or claims-2026-11.")],
    eval_fraction: Annotated[float, typer.Option(help="Share of each category held out for evaluation, in [0, 1).")] = 0.1,
    seed: Annotated[int, typer.Option(help="Split seed: the same data and seed give the same files.")] = 0,
    tag: TagOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for snapshot folders (default: snapshots/ beside the database).")
    ] = None,
    groups: Annotated[
        str, typer.Option(help="Duplicate clusters kept on one side of the split: near, semantic, both, none.")
    ] = "both",
    max_tokens: Annotated[int, typer.Option(help="The target model's context limit, for the token-length expectation.")] = 2048,
    tokenizer: Annotated[
        str | None, typer.Option(help="Count tokens with this tokenizer (local folder or cached model id).")
    ] = None,
    override_reason: Annotated[
        str | None, typer.Option(help="Publish despite failed critical expectations (leads); the reason is recorded.")
    ] = None,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Cut a validated snapshot of the approved examples (leads): train/eval JSONL, manifest, validation report.

    Near and semantic duplicate clusters never straddle train and eval. A failing critical
    expectation refuses the snapshot (exit 1) unless a lead gives --override-reason.
    """
    from curation.datasets.snapshots import SnapshotBlocked

    tags = parse_tags(tag, None, Tags()).model_dump(exclude={"labels"})
    try:
        snap = create_snapshot(
            open_store(db),
            as_user,
            name,
            eval_fraction=eval_fraction,
            seed=seed,
            flt=ExampleFilter(**tags),
            groups=groups,
            root=out,
            max_tokens=max_tokens,
            tokenizer=tokenizer,
            override_reason=override_reason,
        )
    except SnapshotBlocked as blocked:
        if as_json:
            emit_json({"blocked": True, "reason": str(blocked), "report": blocked.report})
            raise typer.Exit(EXIT_FAILED) from None
        raise
    if as_json:
        emit_json({"id": snap.id, "name": snap.name, "path": snap.path, "train": snap.train, "eval": snap.eval})
    else:
        typer.echo(f"Snapshot {snap.id} ({snap.name}): {snap.train} train, {snap.eval} eval examples in {snap.path}")


def validate_command(
    key: Annotated[str, typer.Argument(help="Snapshot id, name, or the path of a snapshot folder.")],
    max_tokens: Annotated[int, typer.Option(help="The target model's context limit.")] = 2048,
    tokenizer: Annotated[
        str | None, typer.Option(help="Count tokens with this tokenizer (local folder or cached model id).")
    ] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Run the expectation suite on a snapshot and save validation.json beside its files. Exit 1 on a critical failure."""
    from curation.datasets.snapshots import revalidate_snapshot

    path, report = revalidate_snapshot(open_store(db), key, max_tokens=max_tokens, tokenizer=tokenizer)
    if as_json:
        emit_json(report)
    else:
        for entry in report.expectations:
            mark = "ok  " if entry.success else ("FAIL" if entry.severity == "critical" else "warn")
            typer.echo(
                f"{mark} {entry.name}: {entry.unexpected_count} examples" + ("" if entry.success else f" - {entry.description}")
            )
        typer.echo(f"Report saved to {path / 'validation.json'}.")
    if not report.success:
        raise typer.Exit(EXIT_FAILED)


@snapshot_app.command("list")
@handle_errors
def snapshot_list(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """List snapshots, newest first."""
    snaps = open_store(db).list_snapshots()
    if as_json:
        emit_json(snaps)
        return
    table(
        [[s.id, s.name, s.train, s.eval, s.created_by, f"{s.created_at:%Y-%m-%d %H:%M}"] for s in snaps],
        ["ID", "NAME", "TRAIN", "EVAL", "BY", "CREATED"],
    )


@snapshot_app.command("show")
@handle_errors
def snapshot_show(
    key: Annotated[str, typer.Argument(help="Snapshot id, id prefix or name.")],
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Show a snapshot's manifest (after checking its files against it)."""
    snap = open_store(db).get_snapshot(key)
    manifest = verify_snapshot(Path(snap.path))
    if as_json:
        emit_json({"snapshot": snap, "manifest": manifest})
        return
    typer.echo(f"Snapshot {snap.id} ({snap.name}) at {snap.path}: files match the manifest")
    typer.echo(json.dumps(manifest.model_dump(mode="json"), indent=2, ensure_ascii=False))


@snapshot_app.command("verify")
@handle_errors
def snapshot_verify(
    key: Annotated[str, typer.Argument(help="Snapshot id, name, or the path of a snapshot folder.")], db: DbOption = DEFAULT_DB
) -> None:
    """Check a snapshot's files against its manifest (sha256 and counts)."""
    from curation.datasets.snapshots import snapshot_folder

    path = snapshot_folder(open_store(db), key) if not Path(key).is_dir() else Path(key)
    try:
        manifest = verify_snapshot(path)
    except InvalidInput as error:
        typer.echo(f"FAILED: {error}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    typer.echo(f"OK: {path} matches its manifest ({manifest.counts.train} train, {manifest.counts.eval} eval).")
