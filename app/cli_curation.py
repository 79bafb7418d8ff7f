"""`goldsmith dedup | check | resolve | coverage | tasks`: the curation engine's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli_common import (
    DEFAULT_DB,
    AsOption,
    DbOption,
    JsonOption,
    emit_json,
    handle_errors,
    open_store,
    parse_tags,
    table,
)
from curation.errors import InvalidInput
from schemas import DEFAULT_MAX_TOKENS, ExampleContent, Tags, one_line

tasks_app = typer.Typer(help="Authoring tasks made from gap topics: list, create, complete.", no_args_is_help=True)
ModelOption = Annotated[str | None, typer.Option(help="Embedding model (default: the offline all-MiniLM-L6-v2).")]


def dedup_command(
    method: Annotated[str, typer.Option(help="exact, near, semantic or all.")] = "all",
    threshold: Annotated[float | None, typer.Option(help="Near-duplicate Jaccard threshold (default: the engine's).")] = None,
    semantic_threshold: Annotated[float, typer.Option(help="Cosine similarity for semantic duplicates.")] = 0.9,
    model: ModelOption = None,
    keep_punctuation: Annotated[
        bool, typer.Option(help="Exact duplicates must also match in punctuation (case and spacing are still ignored).")
    ] = False,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Find exact, near and semantic duplicate clusters among the examples (nothing is changed)."""
    from curation.similarity.dedup import METHODS, find_duplicates

    methods = list(METHODS) if method == "all" else [m.strip() for m in method.split(",")]
    report = find_duplicates(
        open_store(db),
        methods,
        near_threshold=threshold,
        semantic_threshold=semantic_threshold,
        model=model,
        ignore_punctuation=not keep_punctuation,
    )
    if as_json:
        emit_json(report)
        return
    table(
        [[c.kind, f"{c.similarity:.2f}", " ".join(map(str, c.ids))] for c in report.clusters], ["KIND", "SIMILARITY", "EXAMPLES"]
    )
    typer.echo(
        f"\n{len(report.clusters)} clusters among {report.examples} examples. Resolve one with "
        "`goldsmith resolve IDS... --resolution keep_one --keep ID --as LEAD`."
    )


def check_command(
    prompt: Annotated[str | None, typer.Option(help="The draft's user message.")] = None,
    response: Annotated[str | None, typer.Option(help="The draft's response.")] = None,
    example_id: Annotated[
        int | None, typer.Option("--example", help="Check a stored example instead (it is not matched to itself).")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="The draft's tags, KEY=VALUE (category, response_type, knowledge_area).")
    ] = None,
    semantic: Annotated[bool, typer.Option(help="Also look for semantic matches (loads the embedding model).")] = True,
    max_tokens: Annotated[int, typer.Option(min=1, help="The target model's context limit.")] = DEFAULT_MAX_TOKENS,
    model: ModelOption = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Check a draft as the Write page does: duplicates it repeats, personal data, guideline rules, tags, length."""
    from curation.examples.checks import check_draft

    store = open_store(db)
    if example_id is not None:
        content: ExampleContent = store.get_example(example_id)
    elif prompt and response:
        content = ExampleContent.from_pair(prompt, response, tags=parse_tags(tag, None, Tags()))
    else:
        raise InvalidInput("give --prompt and --response, or --example ID")
    report = check_draft(store, content, exclude_id=example_id, model=model, semantic=semantic, max_tokens=max_tokens)
    if as_json:
        emit_json(report)
        return
    typer.echo(f"About {report.tokens} tokens (limit {report.max_tokens}).")
    for warning in report.warnings:
        typer.echo(f"Warning: {warning}")
    if report.note:
        typer.echo(report.note)
    if not report.matches:
        typer.echo("No duplicates found.")
        return
    table(
        [[m.kind, f"{m.similarity:.2f}", m.example_id, m.status, one_line(m.prompt)] for m in report.matches],
        ["KIND", "SIMILARITY", "EXAMPLE", "STATUS", "PROMPT"],
    )


def resolve_command(
    example_ids: Annotated[list[int], typer.Argument(help="Every example of the cluster.")],
    resolution: Annotated[str, typer.Option(help="keep_one, merge or intended_variation.")],
    keep: Annotated[int | None, typer.Option(help="The example to keep (keep_one, merge).")] = None,
    note: Annotated[str, typer.Option(help="Why, for the history.")] = "",
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Resolve a duplicate cluster (leads): keep one, merge, or mark as intended variation."""
    from curation.examples.duplicates import resolve_duplicates

    result = resolve_duplicates(open_store(db), as_user, example_ids, resolution, keep_id=keep, note=note)
    if as_json:
        emit_json(result)
        return
    archived = f"; archived {', '.join(map(str, result.archived))}" if result.archived else ""
    typer.echo(f"Recorded {resolution} for examples {', '.join(map(str, result.example_ids))}{archived}.")


def coverage_command(
    queries: Annotated[
        Path | None, typer.Option(help="A log of real user questions to import first (JSONL, JSON, CSV or .txt).")
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="A question is covered when its nearest approved example is at least this similar.")
    ] = 0.5,
    with_map: Annotated[bool, typer.Option("--map/--no-map", help="Include the 2-D map points in --json output.")] = False,
    model: ModelOption = None,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Coverage: approved examples against taxonomy targets and against real questions, with gap topics."""
    from curation.insight.coverage import coverage_report, import_questions

    store = open_store(db)
    imported = import_questions(store, as_user, queries) if queries else None
    report = coverage_report(store, threshold=threshold, model=model, with_map=with_map)
    if as_json:
        emit_json({"imported_questions": imported, **report.model_dump(mode="json")})
        return
    if imported:
        typer.echo(
            f"Imported {imported.imported} questions ({imported.duplicates} already known, {len(imported.rejected)} rejected)."
        )
    typer.echo("Taxonomy cells, thinnest first:")
    table(
        [[c.category, c.response_type, c.approved, c.target if c.target is not None else "-", c.gap] for c in report.cells[:15]],
        ["CATEGORY", "RESPONSE TYPE", "APPROVED", "TARGET", "GAP"],
    )
    if report.questions:
        share = report.covered_questions / report.questions
        covered = f"{report.covered_questions} of {report.questions} real questions covered ({share:.0%})"
        typer.echo(f"\n{covered} at similarity ≥ {report.threshold}.")
        for gap in report.gap_topics:
            typer.echo(
                f"\nGap topic {gap.id}: {gap.label} ({len(gap.question_ids)} questions, mean similarity {gap.similarity:.2f})"
            )
            for text in gap.representatives:
                typer.echo(f"  - {one_line(text, 100)}")
        if report.gap_topics:
            typer.echo("\nTurn one into tasks: `goldsmith tasks create GAP_ID --assignee AUTHOR --as LEAD`.")


@tasks_app.command("list")
@handle_errors
def tasks_list(
    assignee: Annotated[str | None, typer.Option(help="Only this author's tasks.")] = None,
    status: Annotated[str, typer.Option(help="open, done or all.")] = "open",
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """List authoring tasks."""
    from curation.insight.tasks import list_tasks

    tasks = list_tasks(open_store(db), assignee=assignee, status=None if status == "all" else status)
    if as_json:
        emit_json(tasks)
        return
    table(
        [[t.id, t.assignee, t.status, t.example_id or "", one_line(t.question, 70)] for t in tasks],
        ["TASK", "ASSIGNEE", "STATUS", "EXAMPLE", "QUESTION"],
    )


@tasks_app.command("create")
@handle_errors
def tasks_create(
    gap_topic: Annotated[int, typer.Argument(help="The gap topic's id (from `goldsmith coverage`).")],
    assignee: Annotated[str, typer.Option(help="The author who will answer the questions.")],
    limit: Annotated[int | None, typer.Option(help="At most this many questions.")] = None,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
) -> None:
    """Turn a gap topic's questions into authoring tasks for an author (leads)."""
    from curation.insight.tasks import create_tasks

    created = create_tasks(open_store(db), as_user, gap_topic, assignee, limit=limit)
    typer.echo(f"Created {len(created)} tasks for {assignee}.")


@tasks_app.command("complete")
@handle_errors
def tasks_complete(
    task_id: Annotated[int, typer.Argument(help="The task's id.")],
    response: Annotated[str, typer.Option(help="Your answer to the task's question.")],
    draft: Annotated[bool, typer.Option(help="Save the new example as a draft instead of submitting it.")] = False,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
) -> None:
    """Answer a task's question: creates the example (submitted for review) and closes the task."""
    from curation.insight.tasks import complete_task

    task = complete_task(open_store(db), as_user, task_id, response, submit=not draft)
    typer.echo(f"Task {task.id} done: example {task.example_id}.")
