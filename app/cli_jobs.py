"""`goldsmith jobs list | show | cancel`: the long work (training, evaluation, batch drafting) running in its own processes."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli_common import DEFAULT_DB, AsOption, DbOption, JsonOption, emit_json, handle_errors, open_store, table
from schemas import one_line

jobs_app = typer.Typer(help="Jobs: training, evaluation and batch drafting in their own processes.", no_args_is_help=True)


@jobs_app.command("list")
@handle_errors
def jobs_list(
    kind: Annotated[str | None, typer.Option(help="train, evaluate or draft_gap.")] = None,
    active: Annotated[bool, typer.Option("--active", help="Only queued and running jobs.")] = False,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first, with their state checked (a job whose process is gone shows as died)."""
    from training.jobs import list_jobs

    found = list_jobs(open_store(db), kind=kind, active=active)
    if as_json:
        emit_json(found)
        return
    table(
        [
            [j.id, j.kind, j.target, j.status, j.created_by, f"{j.created_at:%Y-%m-%d %H:%M}", one_line(j.error or "", 50)]
            for j in found
        ],
        ["JOB", "KIND", "TARGET", "STATUS", "BY", "CREATED", "ERROR"],
    )


@jobs_app.command("show")
@handle_errors
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="The job's id.")], db: DbOption = DEFAULT_DB, as_json: JsonOption = False
) -> None:
    """A job's state, its result or error, and where its log is."""
    from training.jobs import get_job

    job = get_job(open_store(db), job_id)
    if as_json:
        emit_json(job)
        return
    typer.echo(f"Job {job.id}: {job.kind} of {job.target}, {job.status} (started by {job.created_by})")
    for label, value in (("error", job.error), ("result", job.result), ("log", job.log_path)):
        if value:
            typer.echo(f"  {label}: {value}")


@jobs_app.command("cancel")
@handle_errors
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="The job's id.")], db: DbOption = DEFAULT_DB, as_user: AsOption = ""
) -> None:
    """Ask a job to stop (leads): a training run saves a checkpoint first; a drafting batch keeps its drafts."""
    from training.jobs import cancel_job

    job = cancel_job(open_store(db), as_user, job_id)
    typer.echo(f"Cancel requested for job {job.id} ({job.kind} of {job.target}); it is {job.status}.")
