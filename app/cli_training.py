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
    from schemas.evaluation import CostEstimate
    from schemas.training import EvaluationReport, Run

runs_app = typer.Typer(help="Training runs: list, show, metrics, compare, promote, cancel, resume.", no_args_is_help=True)
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
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Train nothing: print what the run would do (examples, tokens, packed rows, steps) and its time and "
            "peak memory here, from a short measured probe.",
        ),
    ] = False,
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
    if dry_run:
        from training.evaluation.estimate import run_estimate

        estimate = run_estimate(open_store(db), as_user, snapshot, cfg, output=sys.stderr)
        emit_json(estimate) if as_json else _echo_estimate(estimate)
        return
    started = time.monotonic()
    run = start_run(open_store(db), as_user, snapshot, cfg, name=name, processes=processes, wait=not detach, output=sys.stderr)
    _show(run, detach=detach, as_json=as_json, seconds=time.monotonic() - started)


def _echo_estimate(e: CostEstimate) -> None:
    minutes, seconds = divmod(round(e.estimated_seconds), 60)
    typer.echo(f"Dry run of {e.base_model} on snapshot {e.snapshot_id} (config {e.config_hash}): nothing was trained.")
    typer.echo(
        f"  {e.examples} examples ({e.skipped} skipped, {e.truncated} truncated), {e.tokens:,} tokens after the chat "
        f"template ({e.label_tokens:,} carry loss)"
    )
    typer.echo(f"  {e.steps} optimizer steps ({e.epochs:g} epochs), {e.rows:,} packed rows, {e.trained_tokens:,} tokens in all")
    typer.echo(
        f"  about {minutes} min {seconds} s on {e.device} ({e.precision}, {e.tokens_per_s:,.0f} tokens/s measured), "
        f"peak memory about {e.peak_memory_mb:,.0f} MB"
    )
    for note in e.notes:
        typer.echo(f"  note: {note}")


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


@runs_app.command("compare")
@handle_errors
def runs_compare(
    run_ids: Annotated[list[str] | None, typer.Argument(help="Finished runs on one snapshot (ids or prefixes).")] = None,
    snapshot: Annotated[str | None, typer.Option(help="Rank every finished run on this snapshot instead.")] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """A leaderboard of finished runs on one snapshot: eval loss, judge win rate, canary change, best categories."""
    from training.evaluation.selection import leaderboard

    board = leaderboard(open_store(db), run_ids or [], snapshot=snapshot)
    if as_json:
        emit_json(board)
        return
    rows = [
        [
            ("* " if r.promoted else "") + r.run_id,
            one_line(r.base_model, 20),
            _loss(r.eval_loss),
            _pct(r.eval_loss_drop),
            _pct(r.judge_win_rate) + (f" ({_pct(r.judge_interval[0])}-{_pct(r.judge_interval[1])})" if r.judge_interval else ""),
            _pct(r.canary_change, signed=True),
            ", ".join(r.best_categories) or ("not evaluated" if not r.evaluated else ""),
        ]
        for r in board.rows
    ]
    typer.echo(f"Snapshot {board.snapshot_id}, best first (* the promoted model):")
    table(rows, ["RUN", "BASE MODEL", "EVAL LOSS", "DROP", "JUDGE WIN RATE", "CANARY", "BEST AT"])


@runs_app.command("promote")
@handle_errors
def runs_promote(
    run_id: Annotated[str, typer.Argument(help="An evaluated run.")],
    min_judge_lower_bound: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="The judge win rate's interval must start above this.")
    ] = 0.5,
    max_canary_rise: Annotated[float, typer.Option(min=0.0, help="The canary loss may rise by less than this share.")] = 0.05,
    category_margin: Annotated[
        float, typer.Option(min=0.0, help="No category's tuned eval loss may exceed the base's by more than this share.")
    ] = 0.0,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Make a run the team's current model (leads), only when its evaluation passes the promotion gate.

    The gate: tuned eval loss below the base's, the judge's win-rate interval above 50%, the canary loss rising by
    less than 5%, and no category worse than the base. `serve-model` with no run serves the promoted one.
    """
    from schemas.evaluation import PromotionGate
    from training.evaluation.promotion import promote_run

    gate = PromotionGate(
        min_judge_lower_bound=min_judge_lower_bound, max_canary_rise=max_canary_rise, category_margin=category_margin
    )
    promotion = promote_run(open_store(db), as_user, run_id, gate)
    if as_json:
        emit_json(promotion)
        return
    typer.echo(f"Run {promotion.run_id} is the team's current model (promoted by {promotion.promoted_by}).")
    for check in promotion.gate.checks:
        typer.echo(f"  passed {check.name}: {check.detail}")


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
    judge_model: Annotated[
        str | None,
        typer.Option(
            help="An LLM judge: the model name served at --judge-url, or base:NAME / a run id loaded here. "
            "Default: the offline judge (similarity to the reference answer)."
        ),
    ] = None,
    judge_url: Annotated[
        str | None, typer.Option(help="An OpenAI-compatible endpoint for the LLM judge, e.g. http://127.0.0.1:8000/v1.")
    ] = None,
    canary: Annotated[
        Path | None, typer.Option(help="A canary file (chat JSONL) instead of the bundled general-text set.")
    ] = None,
    canary_threshold: Annotated[
        float, typer.Option(min=0.0, help="Flag the run when the canary loss rises by more than this share.")
    ] = 0.05,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Evaluate a completed run (leads): eval loss base vs tuned, overall and per category and response type; the
    automatic judge's win rate; the canary (forgetting) check; and the blind comparisons for reviewers.

    It runs as an evaluation job (its progress on stderr) and waits for the report; Ctrl+C stops it.
    """
    from training.evaluate import run_evaluation

    report = run_evaluation(
        open_store(db),
        as_user,
        run_id,
        max_new_tokens=max_new_tokens,
        limit=limit,
        force=force,
        judge_model=judge_model,
        judge_url=judge_url,
        canary=str(canary) if canary else None,
        canary_threshold=canary_threshold,
        output=sys.stderr,
    )
    if as_json:
        emit_json(report)
        return
    _echo_report(report)
    typer.echo(f"{report.comparisons} blind comparisons are ready: `goldsmith judge next {report.run_id} --as REVIEWER`.")


def _pct(value: float | None, signed: bool = False) -> str:
    return "" if value is None else (f"{value:+.1%}" if signed else f"{value:.0%}")


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _echo_report(report: EvaluationReport) -> None:
    base, tuned = report.base, report.tuned
    typer.echo(
        f"Eval loss: base {_loss(base.eval_loss)}, tuned {_loss(tuned.eval_loss)} on {report.examples} eval examples"
        + (f" ({report.eval_loss_drop:.1%} lower)." if report.eval_loss_drop is not None else ".")
    )
    judge = report.judge
    if judge is not None and judge.win_rate is not None and judge.interval:
        typer.echo(
            f"Judge ({judge.method}): tuned wins {judge.wins}, base wins {judge.losses}, ties {judge.ties}: "
            f"win rate {judge.win_rate:.0%} (95% CI {judge.interval[0]:.0%}-{judge.interval[1]:.0%})."
        )
        if judge.agreement is not None:
            kappa = "n/a" if judge.agreement.kappa is None else f"{judge.agreement.kappa:.2f}"
            typer.echo(f"  agrees with people on {_pct(judge.agreement.share)} of {judge.agreement.votes} votes (kappa {kappa})")
    canary = report.canary
    if canary is not None:
        flag = "  FLAGGED: beyond the threshold" if canary.flagged else ""
        typer.echo(
            f"Canary ({canary.examples} general-text examples): loss {_loss(canary.base_loss)} -> {_loss(canary.tuned_loss)} "
            f"({_pct(canary.change, signed=True)}, threshold +{canary.threshold:.0%}){flag}"
        )
    for label, groups in (("CATEGORY", report.by_category), ("RESPONSE TYPE", report.by_response_type)):
        rows = [
            [
                getattr(g, "category", None) or getattr(g, "response_type", ""),
                g.examples,
                _loss(g.base_loss),
                _loss(g.tuned_loss),
                _pct(g.loss_change, signed=True),
                _pct(g.judge_win_rate),
            ]
            for g in groups
        ]
        if rows:
            typer.echo("")
            table(rows, [label, "EXAMPLES", "BASE LOSS", "TUNED LOSS", "CHANGE", "JUDGE WIN RATE"])


@judge_app.command("next")
@handle_errors
def judge_next(
    run_id: Annotated[str, typer.Argument(help="The evaluated run.")],
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Show the next comparison you have not judged: the prompt and answers A and B (which is which stays hidden)."""
    from training.evaluation.blind import next_comparison
    from training.runs import get_run

    store = open_store(db)
    item = next_comparison(store, as_user, get_run(store, run_id).id)
    if as_json:
        emit_json(None if item is None else item.model_dump(mode="json", exclude=item.HIDDEN))
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
    from training.evaluation.blind import vote

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
    run_id: Annotated[str, typer.Argument(help="The evaluated run.")],
    by: Annotated[str | None, typer.Option(help="Split by category or response_type.")] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """The tuned model's win rate against the base over the blind votes, with a 95% Wilson interval (ties count half)."""
    from training.evaluation.blind import win_rate, win_rate_by
    from training.runs import get_run

    store = open_store(db)
    run = get_run(store, run_id)
    if by is not None and by not in ("category", "response_type"):
        raise InvalidInput(f"--by takes category or response_type, got {by!r}")
    rates = win_rate_by(store, run.id, by) if by else {"all": win_rate(store, run.id)}
    if as_json:
        emit_json(rates if by else rates["all"])
        return
    if not any(rate.votes for rate in rates.values()):
        typer.echo("No votes yet.")
        return
    for name, rate in rates.items():
        typer.echo(
            (f"{name}: " if by else "")
            + f"Tuned wins {rate.tuned_wins}, base wins {rate.base_wins}, ties {rate.ties} over {rate.votes} votes: "
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
    from training.evaluation.blind import task_from_comparison

    task = task_from_comparison(open_store(db), as_user, comparison_id, assignee, note=note)
    if as_json:
        emit_json(task)
        return
    typer.echo(f"Task {task.id} for {task.assignee}: {one_line(task.question)}")
