"""`goldsmith train | runs | eval | judge`: LoRA runs, their monitoring, and the blind evaluation.

Training and evaluation run as jobs (training.jobs): in the foreground the command streams the
worker's progress to stderr and waits; `--detach` starts the run in the background and returns.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli_common import DEFAULT_DB, AsOption, DbOption, JsonOption, emit_json, handle_errors, open_store, table
from curation.errors import InvalidInput
from schemas import one_line

if TYPE_CHECKING:
    from schemas.training import Run

runs_app = typer.Typer(help="Training runs: list, show, metrics, cancel, resume.", no_args_is_help=True)
judge_app = typer.Typer(help="Blind side-by-side evaluation: next, vote, win rate, task.", no_args_is_help=True)

ProcessesOption = Annotated[
    int, typer.Option("--processes", min=1, help="Processes (GPUs, or CPU workers with gloo) to train with through torchrun.")
]
DetachOption = Annotated[bool, typer.Option("--detach", help="Start the run in the background and return at once.")]


def _show(run: Run, *, detach: bool, as_json: bool, seconds: float) -> None:
    """A launched run: started in the background (--detach), or as it ended; exit 1 when it failed or died."""
    if as_json:
        emit_json(run)
    elif detach:
        typer.echo(f"Run {run.id} started in the background (pid {run.pid}); follow it with `goldsmith runs show {run.id}`.")
    else:
        _describe(run, seconds)
    if not detach and run.status in ("failed", "died"):
        raise typer.Exit(1)


def _describe(run: Run, seconds: float | None = None) -> None:
    result = run.result
    typer.echo(f"Run {run.id} ({run.name}): {run.status} at step {run.step}/{run.total_steps or '?'}")
    if run.error:
        typer.echo(f"  {run.error}")
    if result.get("base_eval_loss") is not None and result.get("final_eval_loss") is not None:
        typer.echo(
            f"  eval loss {result['base_eval_loss']:.4f} (base) -> {result['final_eval_loss']:.4f} "
            f"({100 * result.get('eval_loss_drop', 0):.1f}% lower)"
        )
    if result.get("tokens_per_s"):
        typer.echo(f"  {result['tokens_per_s']:.0f} tokens/s, peak memory {result.get('peak_memory_mb', 0):.0f} MB")
    if result.get("adapter"):
        typer.echo(f"  adapter: {result['adapter']}")
    if seconds is not None:
        typer.echo(f"  {seconds:.0f} s")


def train_command(
    snapshot: Annotated[str, typer.Argument(help="The snapshot to train on (id, name or id prefix).")],
    base_model: Annotated[
        str | None, typer.Option(help="Hugging Face id, local folder, or smollm2-135m (the offline SmolLM2-135M-Instruct).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="A YAML file of training settings (see README).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.")] = None,
    setting: Annotated[list[str] | None, typer.Option("--set", help="Override a setting: KEY=VALUE (repeatable).")] = None,
    name: Annotated[str | None, typer.Option(help="A name for the run.")] = None,
    processes: ProcessesOption = 1,
    detach: DetachOption = False,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Fine-tune a LoRA adapter on a snapshot (leads). Ctrl+C or SIGTERM saves a checkpoint; resume with `runs resume`."""
    from training.config import load_config, parse_overrides
    from training.runs import start_run

    overrides = parse_overrides(setting or [])
    overrides.update({"base_model": base_model, "max_steps": max_steps})
    cfg = load_config(config, overrides)
    started = time.monotonic()
    run = start_run(open_store(db), as_user, snapshot, cfg, name=name, processes=processes, wait=not detach, output=sys.stderr)
    _show(run, detach=detach, as_json=as_json, seconds=time.monotonic() - started)


@runs_app.command("resume")
@handle_errors
def runs_resume(
    run_id: Annotated[str, typer.Argument(help="The run to resume from its last complete checkpoint.")],
    processes: ProcessesOption = 1,
    detach: DetachOption = False,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Resume an interrupted, died, failed or cancelled run from its last complete checkpoint (leads)."""
    from training.runs import resume_run

    started = time.monotonic()
    run = resume_run(open_store(db), as_user, run_id, processes=processes, wait=not detach, output=sys.stderr)
    _show(run, detach=detach, as_json=as_json, seconds=time.monotonic() - started)


@runs_app.command("list")
@handle_errors
def runs_list(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """List training runs, newest first."""
    from training.runs import list_runs

    found = list_runs(open_store(db))
    if as_json:
        emit_json(found)
        return
    rows = []
    for r in found:
        drop = r.result.get("eval_loss_drop")
        rows.append(
            [
                r.id,
                r.status,
                f"{r.step}/{r.total_steps or '?'}",
                r.snapshot_id,
                one_line(r.base_model, 24),
                f"{100 * drop:.1f}%" if drop is not None else "",
                r.created_at.strftime("%Y-%m-%d %H:%M"),
            ]
        )
    table(rows, ["RUN", "STATUS", "STEP", "SNAPSHOT", "BASE MODEL", "EVAL DROP", "CREATED"])


@runs_app.command("show")
@handle_errors
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """A run's status, result, lineage and events."""
    from training.runs import events, get_run

    store = open_store(db)
    run = get_run(store, run_id)
    if as_json:
        emit_json({"run": run, "events": events(store, run.id)})
        return
    _describe(run)
    typer.echo(f"  snapshot {run.snapshot_id}, config {run.config_hash}, code {run.code_version}, folder {run.run_dir}")
    for event in events(store, run.id):
        typer.echo(f"  {event.at:%Y-%m-%d %H:%M:%S}  {event.kind:<18} {event.message}")


@runs_app.command("metrics")
@handle_errors
def runs_metrics(
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    kind: Annotated[str | None, typer.Option(help="train or eval.")] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """The run's logged metrics (loss, eval loss, learning rate, tokens/s, memory)."""
    from training.runs import get_run, metrics

    store = open_store(db)
    points = metrics(store, get_run(store, run_id).id, kind=kind)
    if as_json:
        emit_json(points)
        return
    fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    table(
        [
            [
                p.step,
                p.kind,
                fmt(p.loss, ".4f"),
                fmt(p.eval_loss, ".4f"),
                fmt(p.learning_rate, ".2e"),
                fmt(p.tokens_per_s, ".0f"),
                fmt(p.memory_mb, ".0f"),
            ]
            for p in points
        ],
        ["STEP", "KIND", "LOSS", "EVAL LOSS", "LR", "TOKENS/S", "MEMORY MB"],
    )


@runs_app.command("cancel")
@handle_errors
def runs_cancel(
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix.")], db: DbOption = DEFAULT_DB, as_user: AsOption = ""
) -> None:
    """Stop a running run (leads): it saves a checkpoint and ends as cancelled."""
    from training.runs import cancel_run

    run = cancel_run(open_store(db), as_user, run_id)
    typer.echo(f"Cancel requested for {run.id}; it stops after its current step.")


def eval_command(
    run_id: Annotated[str, typer.Argument(help="A completed run.")],
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest generated answer.")] = 256,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N eval prompts.")] = None,
    force: Annotated[bool, typer.Option(help="Regenerate even if reviewers already voted (deletes the votes).")] = False,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Eval loss and perplexity for base and tuned, and answers to every eval prompt for the blind side-by-side (leads).

    It runs as an evaluation job (its progress on stderr) and waits for the report; Ctrl+C stops it.
    """
    from training.evaluate import run_evaluation

    report = run_evaluation(
        open_store(db), as_user, run_id, max_new_tokens=max_new_tokens, limit=limit, force=force, output=sys.stderr
    )
    if as_json:
        emit_json(report)
        return
    base, tuned = report.base, report.tuned
    fmt = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731
    typer.echo(
        f"Eval loss: base {fmt(base.eval_loss, '.4f')} (ppl {fmt(base.perplexity, '.1f')}), "
        f"tuned {fmt(tuned.eval_loss, '.4f')} (ppl {fmt(tuned.perplexity, '.1f')}) on {report.examples} eval examples."
    )
    typer.echo(f"{report.comparisons} blind comparisons are ready: `goldsmith judge next {report.run_id} --as REVIEWER`.")


@judge_app.command("next")
@handle_errors
def judge_next(
    run_id: Annotated[str, typer.Argument(help="The evaluated run.")],
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Show the next comparison you have not judged: the prompt and answers A and B (which is which stays hidden)."""
    from training.evaluate import next_comparison
    from training.runs import get_run

    store = open_store(db)
    item = next_comparison(store, as_user, get_run(store, run_id).id)
    if as_json:
        emit_json(None if item is None else item.model_dump(mode="json", exclude={"tuned_is"}))
        return
    if item is None:
        typer.echo("Nothing left to judge for this run.")
        return
    typer.echo(f"Comparison {item.id}")
    for message in item.messages:
        typer.echo(f"[{message['role']}] {message['content']}")
    typer.echo(f"\n--- Answer A ---\n{item.answer_a}\n\n--- Answer B ---\n{item.answer_b}\n")
    typer.echo(f"Vote with `goldsmith judge vote {item.id} --choice a|b|tie --as YOU`.")


@judge_app.command("vote")
@handle_errors
def judge_vote(
    comparison_id: Annotated[int, typer.Argument(help="The comparison's id.")],
    choice: Annotated[str, typer.Option(help="a, b or tie.")],
    score: Annotated[
        list[str] | None, typer.Option("--score", help="Rubric score NAME=1..5 (accuracy, tone, compliance, completeness).")
    ] = None,
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Judge a comparison blind; afterwards you are told which answer the tuned model wrote."""
    from schemas.review import RUBRIC
    from schemas.training import VoteInput
    from training.evaluate import vote

    rubric = {}
    for pair in score or []:
        key, _, value = pair.partition("=")
        if key not in RUBRIC or not value.strip().isdigit():
            raise InvalidInput(f"--score needs NAME=1..5 with NAME one of {', '.join(RUBRIC)}; got {pair!r}")
        rubric[key] = int(value)
    judgement = VoteInput.model_validate({"choice": choice.lower(), "rubric": rubric, "comment": comment})
    result = vote(open_store(db), as_user, comparison_id, judgement)
    if as_json:
        emit_json(result)
        return
    typer.echo(f"Recorded. Winner: {result.winner}.")


@judge_app.command("winrate")
@handle_errors
def judge_winrate(
    run_id: Annotated[str, typer.Argument(help="The evaluated run.")], db: DbOption = DEFAULT_DB, as_json: JsonOption = False
) -> None:
    """The tuned model's win rate against the base over the blind votes, with a 95% Wilson interval (ties count half)."""
    from training.evaluate import win_rate
    from training.runs import get_run

    store = open_store(db)
    rate = win_rate(store, get_run(store, run_id).id)
    if as_json:
        emit_json(rate)
        return
    if not rate.votes:
        typer.echo("No votes yet.")
        return
    typer.echo(
        f"Tuned wins {rate.tuned_wins}, base wins {rate.base_wins}, ties {rate.ties} over {rate.votes} votes: "
        f"win rate {rate.win_rate:.2f} (95% CI {rate.ci_low:.2f}-{rate.ci_high:.2f})."
    )


@judge_app.command("task")
@handle_errors
def judge_task(
    comparison_id: Annotated[int, typer.Argument(help="A comparison the tuned model lost or answered badly.")],
    assignee: Annotated[str, typer.Option(help="The author who will write a better example.")],
    note: Annotated[str, typer.Option(help="What was wrong.")] = "",
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Send a comparison's prompt back to an author as an authoring task."""
    from training.evaluate import task_from_comparison

    task = task_from_comparison(open_store(db), as_user, comparison_id, assignee, note=note)
    if as_json:
        emit_json(task)
        return
    typer.echo(f"Task {task.id} for {task.assignee}: {one_line(task.question)}")
