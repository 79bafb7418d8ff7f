"""`goldsmith models compare`: candidate base models scored on a snapshot's eval split, before training."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from app.cli_common import DEFAULT_DB, AsOption, DbOption, JsonOption, emit_json, handle_errors, open_store, table
from schemas import one_line

models_app = typer.Typer(help="Base models: compare candidates on a snapshot before training.", no_args_is_help=True)


@models_app.command("compare")
@handle_errors
def models_compare(
    snapshot: Annotated[str, typer.Argument(help="The snapshot whose eval split scores the models (id, name or prefix).")],
    base_model: Annotated[
        list[str], typer.Option("--base-model", help="A candidate: short name, local folder or cached hub id (repeatable).")
    ],
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N eval examples.")] = None,
    samples: Annotated[int, typer.Option(min=0, max=20, help="Answers shown per model.")] = 3,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest sample answer.")] = 96,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Score candidate base models on the snapshot's eval split (leads): eval loss, sample answers, parameters,
    memory to load and tokens/s measured on this machine. It runs as a job and waits; Ctrl+C stops it."""
    from training.evaluation.selection import run_model_comparison

    result = run_model_comparison(
        open_store(db),
        as_user,
        snapshot,
        base_model,
        limit=limit,
        samples=samples,
        max_new_tokens=max_new_tokens,
        output=sys.stderr,
    )
    if as_json:
        emit_json(result)
        return
    typer.echo(f"Snapshot {result.snapshot_id}: {result.examples} eval examples, on {result.device}.")
    rows = [
        [
            c.base_model,
            f"{c.parameters / 1e6:,.1f} M" if c.parameters else "",
            f"{c.load_memory_mb:,.0f}" if c.load_memory_mb is not None else "",
            f"{c.eval_loss:.4f}" if c.eval_loss is not None else "",
            f"{c.tokens_per_s:,.1f}" if c.tokens_per_s else "",
            "could not be scored (below)" if c.error else "",
        ]
        for c in result.candidates
    ]
    table(rows, ["BASE MODEL", "PARAMETERS", "LOAD MB", "EVAL LOSS", "TOKENS/S", ""])
    for c in result.candidates:
        if c.error:
            typer.echo(f"{c.base_model}: {c.error}")
    for c in result.candidates:
        for sample in c.samples:
            typer.echo(f"\n[{c.base_model}] {one_line(sample.prompt, 100)}\n  -> {one_line(sample.answer, 300)}")
