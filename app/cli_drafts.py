"""`goldsmith draft | accept-draft | draft-gap`: drafts from a model, which only a person approves."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from app.cli_common import (
    DEFAULT_DB,
    AsOption,
    DbOption,
    JsonOption,
    emit_json,
    open_store,
    parse_tags,
    read_text_arg,
    table,
)
from schemas import Tags, one_line
from schemas.drafts import Draft, DraftProvenance

ModelRefOption = Annotated[
    str,
    typer.Option(
        "--model",
        help="base:NAME for a base model (base:smollm2-135m, base:/path/to/model) or a completed run's id (its adapter).",
    ),
]
MaxTokensOption = Annotated[int, typer.Option(min=1, max=2048, help="The longest draft, in new tokens.")]
TemperatureOption = Annotated[float, typer.Option(min=0.0, max=2.0, help="0 drafts the same text every time; above 0 samples.")]


def draft_command(
    prompt: Annotated[str, typer.Option(help="The user's message to draft a response to (@FILE reads a file, - stdin).")],
    model: ModelRefOption,
    system: Annotated[str | None, typer.Option(help="An optional system prompt.")] = None,
    save: Annotated[bool, typer.Option("--save", help="Save the draft as a new draft example (you are its author).")] = False,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="With --save: category=…, response_type=… (repeatable).")] = None,
    max_new_tokens: MaxTokensOption = 256,
    temperature: TemperatureOption = 0.0,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Ask a model for a draft response to a prompt; --save keeps it as a draft example to edit or accept."""
    from training.drafts import draft_example, draft_response

    store = open_store(db)
    messages = [{"role": "system", "content": read_text_arg(system)}] if system and read_text_arg(system).strip() else []
    messages.append({"role": "user", "content": read_text_arg(prompt)})
    example = None
    if save:  # drafted and saved in one call
        tags = parse_tags(tag, None, Tags())
        example = draft_example(
            store, as_user, model, messages, tags=tags, max_new_tokens=max_new_tokens, temperature=temperature
        )
        draft = Draft(text=example.response, provenance=DraftProvenance.model_validate(example.drafted_by))
    else:
        draft = draft_response(store, as_user, model, messages, max_new_tokens=max_new_tokens, temperature=temperature)
    if as_json:
        emit_json({**draft.model_dump(mode="json"), "example": example})
        return
    typer.echo(draft.text)
    if example is not None:
        typer.echo(
            f"\nSaved as draft example {example.id}. Edit it (`goldsmith edit {example.id} --response ...`) or accept it "
            f"as is (`goldsmith accept-draft {example.id}`), then submit it.",
            err=True,
        )


def accept_draft_command(
    example_id: Annotated[int, typer.Argument(help="The model-drafted example.")],
    version: Annotated[int | None, typer.Option("--version", help="The version you read (default: current).")] = None,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
) -> None:
    """Accept a model's draft response as is, so the example can be submitted (its author or a lead)."""
    from curation.examples.drafts import accept_draft

    example = accept_draft(open_store(db), as_user, example_id, version)
    typer.echo(f"Draft of example {example.id} accepted as is; submit it with `goldsmith submit {example.id}`.")


def draft_gap_command(
    gap_topic: Annotated[int, typer.Argument(help="The gap topic's id (from `goldsmith coverage`).")],
    model: ModelRefOption,
    assignee: Annotated[str, typer.Option(help="The author whose drafts queue receives the examples.")],
    limit: Annotated[int | None, typer.Option(min=1, help="Draft at most this many of the topic's questions.")] = None,
    max_new_tokens: MaxTokensOption = 256,
    temperature: TemperatureOption = 0.0,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Draft an answer to every question of a gap topic, as draft examples of one author (leads).

    It runs as a drafting job (its progress on stderr) and waits; Ctrl+C stops it, keeping the drafts already saved.
    """
    from training.drafts import run_gap_drafting

    examples = run_gap_drafting(
        open_store(db),
        as_user,
        gap_topic,
        model,
        assignee,
        limit=limit,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        output=sys.stderr,
    )
    if as_json:
        emit_json(examples)
        return
    if examples:
        table([[e.id, e.author, one_line(e.prompt, 70)] for e in examples], ["EXAMPLE", "AUTHOR", "QUESTION"])
    typer.echo(f"{len(examples)} drafts created for {assignee} from gap topic {gap_topic}.")
