"""`goldsmith logs import` and `goldsmith monitor`: watching production."""

from __future__ import annotations

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
    table,
)
from curation.datasets.formats import DEFAULT_MAX_CHARS
from schemas import one_line

logs_app = typer.Typer(help="Production conversation logs (kept apart from the examples).", no_args_is_help=True)
monitor_app = typer.Typer(
    help="Production trends: live questions, coverage by approved data and bad ratings per period; gap topics; bad answers."
)


@logs_app.command("import")
@handle_errors
def logs_import(
    file: Annotated[Path, typer.Argument(help="The log file: any import format, with optional rating, thumbs and timestamp.")],
    fmt: Annotated[
        str, typer.Option("--format", help="auto, openai, alpaca, sharegpt, csv or pairs (prompt/response JSONL).")
    ] = "auto",
    max_chars: Annotated[int, typer.Option(min=1, help="Reject records with a message longer than this.")] = DEFAULT_MAX_CHARS,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Import production conversations into the log store (leads). They never become examples.

    Exit 0 when nothing was rejected, 1 when some records were rejected, 2 when the file cannot be read.
    """
    from curation.insight.monitoring import import_logs

    report = import_logs(open_store(db), as_user, file, fmt=fmt, max_chars=max_chars)
    if as_json:
        emit_json(report)
    else:
        typer.echo(
            f"Imported {report.imported} production conversations from {file} ({report.format}); "
            f"{report.duplicates} already known; {len(report.rejected)} records rejected."
        )
        echo_rejected(report.rejected)
    if report.rejected:
        raise typer.Exit(EXIT_FAILED)


@monitor_app.callback(invoke_without_command=True)
@handle_errors
def monitor_command(
    ctx: typer.Context,
    period: Annotated[str, typer.Option(help="day, week (from Monday, UTC) or month.")] = "week",
    threshold: Annotated[
        float, typer.Option(help="A question is covered when its nearest approved example is at least this similar.")
    ] = 0.5,
    model: Annotated[str | None, typer.Option(help="Embedding model (default: the offline all-MiniLM-L6-v2).")] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Production trends per period, the latest period's gap topics and the badly rated answers."""
    if ctx.invoked_subcommand:
        return
    from curation.insight.monitoring import monitor

    report = monitor(open_store(db), period=period, threshold=threshold, model=model)
    if as_json:
        emit_json(report)
        return
    if not report.logs:
        typer.echo("No production logs yet: `goldsmith logs import FILE --as LEAD` adds them.")
        return
    table(
        [[t.start, t.questions, f"{t.coverage:.0%}" if t.coverage is not None else "-", t.rated, t.bad] for t in report.trend],
        [period.upper(), "QUESTIONS", "COVERED", "RATED", "BAD"],
    )
    typer.echo(f"\nCovered: nearest approved example at similarity ≥ {report.threshold}. Bad: rating 1-2 or thumbs down.")
    for n, gap in enumerate(report.gap_topics, start=1):
        seen = f"{gap.earlier} more in earlier periods" if gap.earlier else "new this period"
        typer.echo(f"\nGap topic {n} of {report.latest}: {gap.label} ({len(gap.log_ids)} questions, {seen})")
        for text in gap.representatives:
            typer.echo(f"  - {one_line(text, 100)}")
        typer.echo(f"  logs: {' '.join(map(str, gap.log_ids))}")
    if report.bad_answers:
        typer.echo(f"\n{len(report.bad_answers)} badly rated answers, newest first:")
        table(
            [
                [
                    b.log_id,
                    f"{b.received_at:%Y-%m-%d}" if b.received_at else "",
                    b.verdict,
                    b.task_id or "",
                    one_line(b.question, 60),
                ]
                for b in report.bad_answers
            ],
            ["LOG", "DAY", "RATING", "TASK", "QUESTION"],
        )
    if report.gap_topics or report.bad_answers:
        typer.echo("\nMake authoring tasks: `goldsmith monitor task LOG_ID... --assignee AUTHOR --as LEAD`.")


@monitor_app.command("task")
@handle_errors
def monitor_task(
    log_ids: Annotated[list[int], typer.Argument(help="Production log ids (a bad answer's, or a gap topic's logs).")],
    assignee: Annotated[str, typer.Option(help="The author who will answer the questions.")],
    label: Annotated[str | None, typer.Option(help="The gap topic the logs come from, for the task's note.")] = None,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Turn production logs' questions into authoring tasks (leads); the note carries the rating."""
    from curation.insight.monitoring import create_log_tasks

    tasks = create_log_tasks(open_store(db), as_user, log_ids, assignee, label=label)
    if as_json:
        emit_json(tasks)
        return
    for task in tasks:
        typer.echo(f"Task {task.id} for {task.assignee}: {one_line(task.question, 70)}")
