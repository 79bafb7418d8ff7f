"""`goldsmith init | new | edit | submit | withdraw | review | queue | ... | demo`: the store and its examples' commands."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli_common import (
    DEFAULT_DB,
    EXIT_FAILED,
    AsOption,
    DbOption,
    JsonOption,
    emit_json,
    open_store,
    parse_tags,
    read_text_arg,
    table,
)
from curation.errors import InvalidInput
from curation.examples import review_queue, workflow
from schemas import QUEUE_FLAGS, Example, ExampleContent, ExampleFilter, ReviewInput, ReviewQueueFilter, Rubric, Tags, one_line

TagOption = Annotated[
    list[str] | None, typer.Option("--tag", help="category=…, response_type=… or knowledge_area=… (repeatable).")
]
LabelOption = Annotated[list[str] | None, typer.Option("--label", help="A free label (repeatable).")]
PageOption = Annotated[int, typer.Option(min=1, help="Which page of results to show.")]
PageSizeOption = Annotated[int, typer.Option(min=1, max=500, help="Examples per page (1-500).")]
VersionOption = Annotated[
    int | None, typer.Option("--version", help="The version you read; refuse to save if it changed since. Default: current.")
]


def _content(
    base: ExampleContent | None,
    *,
    file: Path | None,
    prompt: str | None,
    response: str | None,
    system: str | None,
    tags: list[str] | None,
    labels: list[str] | None,
) -> ExampleContent:
    """The example a command describes: a JSON file, or options applied on top of `base`."""
    if file is not None:
        raw = read_text_arg("-" if str(file) == "-" else f"@{file}")
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as error:
            raise InvalidInput(f"{file} is not valid JSON (line {error.lineno}: {error.msg})") from None
        if not isinstance(data, dict) or "messages" not in data:
            raise InvalidInput(f'{file} must hold a JSON object like {{"messages": [...], "tags": {{...}}}}')
        content = ExampleContent.model_validate({"messages": data["messages"], "tags": data.get("tags") or {}})
        return content.model_copy(update={"tags": parse_tags(tags, labels, content.tags)}) if tags or labels else content
    if base is None:
        if prompt is None or response is None:
            raise InvalidInput("give --prompt and --response (or --file with a JSON example)")
        return ExampleContent.from_pair(
            read_text_arg(prompt),
            read_text_arg(response),
            system=system and read_text_arg(system),
            tags=parse_tags(tags, labels, Tags()),
        )
    messages = [m.model_dump() for m in base.messages]
    if system is not None:
        messages = [m for m in messages if m["role"] != "system"]
        if read_text_arg(system).strip():
            messages.insert(0, {"role": "system", "content": read_text_arg(system)})
    if prompt is not None:
        first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
        messages[first_user]["content"] = read_text_arg(prompt)
    if response is not None:
        messages[-1]["content"] = read_text_arg(response)
    return ExampleContent.model_validate({"messages": messages, "tags": parse_tags(tags, labels, base.tags)})


def _print_example(example: Example, store: Any, *, history: bool) -> None:
    t = example.tags
    typer.echo(f"Example {example.id}  ·  {example.status}  ·  version {example.version}  ·  by {example.author}")
    typer.echo(
        f"Tags: category={t.category or '-'}  response_type={t.response_type or '-'}  knowledge_area={t.knowledge_area or '-'}"
        + (f"  labels={', '.join(t.labels)}" if t.labels else "")
    )
    typer.echo(f"Source: {example.source}" + (f" (id {example.source_id})" if example.source_id else ""))
    for m in example.messages:
        typer.echo(f"\n[{m.role}]\n{m.content}")
    for r in review_queue.reviews_of(store, example.id):
        scores = f" {r.rubric.scores}" if r.rubric else ""
        typer.echo(
            f"\nReview by {r.reviewer} of version {r.example_version}: {r.decision}{scores}"
            + (f"\n  {r.comment}" if r.comment else "")
        )
    if history:
        typer.echo("\nHistory:")
        for h in store.history("example", example.id):
            typer.echo(f"  {h.at:%Y-%m-%d %H:%M} {h.actor:<10} {h.action:<16} {', '.join(sorted((h.after or {}).keys()))}")


def init(db: DbOption = DEFAULT_DB) -> None:
    """Create a new, empty Goldsmith database (or bring an existing one up to date)."""
    store = open_store(db, create=True)
    typer.echo(f"Goldsmith database ready at {db} (schema version {store.schema_version}).")
    if store.count_users() == 0:
        typer.echo(f"Next: add the first admin with `goldsmith user add NAME --role admin --db {db}`.")


def new(
    prompt: Annotated[str | None, typer.Option(help="The user's message (@FILE reads a file, - reads stdin).")] = None,
    response: Annotated[str | None, typer.Option(help="The ideal assistant response (@FILE, -).")] = None,
    system: Annotated[str | None, typer.Option(help="An optional system prompt.")] = None,
    file: Annotated[
        Path | None, typer.Option(help='A JSON file {"messages": [...], "tags": {...}} for multi-turn examples (- for stdin).')
    ] = None,
    tag: TagOption = None,
    label: LabelOption = None,
    submit: Annotated[bool, typer.Option(help="Send it to review now instead of saving a draft.")] = False,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Write a new example (you are its author)."""
    content = _content(None, file=file, prompt=prompt, response=response, system=system, tags=tag, labels=label)
    example = workflow.create_example(open_store(db), as_user, content, submit=submit)
    emit_json(example) if as_json else typer.echo(f"Created example {example.id} ({example.status}).")


def edit(
    example_id: Annotated[int, typer.Argument(help="The example's id.")],
    prompt: Annotated[str | None, typer.Option(help="New text of the first user turn.")] = None,
    response: Annotated[str | None, typer.Option(help="New text of the final assistant turn.")] = None,
    system: Annotated[str | None, typer.Option(help="New system prompt ('' removes it).")] = None,
    file: Annotated[Path | None, typer.Option(help="Replace the whole conversation from a JSON file.")] = None,
    tag: TagOption = None,
    label: LabelOption = None,
    version: VersionOption = None,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Edit an example. Editing an approved example sends it back to review."""
    store = open_store(db)
    current = store.get_example(example_id)
    content = _content(current, file=file, prompt=prompt, response=response, system=system, tags=tag, labels=label)
    example = workflow.edit_example(store, as_user, example_id, version or current.version, content)
    if as_json:
        emit_json(example)
    elif example.version == current.version:
        typer.echo(f"Example {example_id} unchanged: the edit matches what is stored.")
    else:
        typer.echo(f"Saved example {example_id} (version {example.version}, {example.status}).")


def submit(
    example_id: int,
    reason: Annotated[
        str | None,
        typer.Option(help="Why it should be reviewed anyway: needed for an exact duplicate or an over-limit example."),
    ] = None,
    version: VersionOption = None,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
) -> None:
    """Send your draft (or reworked example) to review."""
    example = workflow.submit_example(open_store(db), as_user, example_id, version, reason=reason)
    typer.echo(f"Example {example.id} submitted for review.")


def withdraw(example_id: int, version: VersionOption = None, db: DbOption = DEFAULT_DB, as_user: AsOption = "") -> None:
    """Take your example back from the review queue to draft, to change it (the Write page's Withdraw to draft)."""
    example = workflow.withdraw_example(open_store(db), as_user, example_id, version)
    typer.echo(f"Example {example.id} is a draft again (version {example.version}).")


def queue(
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    author: Annotated[str | None, typer.Option(help="Only this author's examples.")] = None,
    waiting_days: Annotated[int | None, typer.Option(min=0, help="Only examples waiting at least this many days.")] = None,
    flag: Annotated[
        list[str] | None,
        typer.Option(help=f"Only examples with this flag (repeatable): {', '.join(QUEUE_FLAGS)}."),
    ] = None,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Your review queue (the Review page's filters): how many wait for you, and which comes next."""
    flt = ReviewQueueFilter(category=category, author=author, waiting_days=waiting_days, flags=tuple(flag or ()))
    found = review_queue.review_queue(open_store(db), as_user, flt)
    if as_json:
        emit_json(found)
        return
    typer.echo(f"{found.waiting} waiting for you; {found.matching} match the filters.")
    if found.next is not None:
        typer.echo(f"Next: example {found.next.id} by {found.next.author}: {one_line(found.next.prompt, 100)}")


def review(
    example_id: int,
    approve: Annotated[bool, typer.Option("--approve", help="Approve it.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject it (needs --comment).")] = False,
    request_changes: Annotated[
        bool, typer.Option("--request-changes", help="Send it back to the author (needs --comment).")
    ] = False,
    comment: Annotated[str, typer.Option(help="What is right or wrong, for the author.")] = "",
    accuracy: Annotated[int | None, typer.Option(min=1, max=5, help="Rubric score 1-5.")] = None,
    tone: Annotated[int | None, typer.Option(min=1, max=5, help="Rubric score 1-5.")] = None,
    compliance: Annotated[int | None, typer.Option(min=1, max=5, help="Rubric score 1-5.")] = None,
    completeness: Annotated[int | None, typer.Option(min=1, max=5, help="Rubric score 1-5.")] = None,
    version: VersionOption = None,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Approve, reject or request changes on a submitted example, with rubric scores."""
    decisions = [d for d, on in (("approve", approve), ("reject", reject), ("request_changes", request_changes)) if on]
    if len(decisions) != 1:
        raise InvalidInput("give exactly one of --approve, --reject or --request-changes")
    scores = {"accuracy": accuracy, "tone": tone, "compliance": compliance, "completeness": completeness}
    review_input = ReviewInput(decision=decisions[0], rubric=Rubric(**scores), comment=comment)  # only the scores given
    result = workflow.review_example(open_store(db), as_user, example_id, version, review_input)
    emit_json(result) if as_json else typer.echo(f"Example {example_id}: {result.decision.replace('_', ' ')} recorded.")


def archive(example_id: int, version: VersionOption = None, db: DbOption = DEFAULT_DB, as_user: AsOption = "") -> None:
    """Archive an approved or rejected example (leads). It stays in the store."""
    workflow.archive_example(open_store(db), as_user, example_id, version)
    typer.echo(f"Example {example_id} archived.")


def set_status(
    status: Annotated[str, typer.Argument(help="submitted, approved, rejected, changes_requested or archived.")],
    example_ids: Annotated[list[int], typer.Argument(help="The examples to move.")],
    comment: Annotated[str, typer.Option(help="Why (needed for rejected and changes_requested).")] = "",
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
) -> None:
    """Move many examples to one status at once (leads). All or nothing."""
    moved = workflow.bulk_set_status(open_store(db), as_user, example_ids, status, comment=comment)
    typer.echo(f"Moved {len(moved)} examples to {status}.")


StatusOption = Annotated[str | None, typer.Option(help="draft, submitted, approved, rejected, changes_requested or archived.")]
AuthorOption = Annotated[str | None, typer.Option(help="Only this author's examples.")]
OneLabelOption = Annotated[str | None, typer.Option(help="Only examples with this label.")]
FromOption = Annotated[str | None, typer.Option("--from", help="Only examples written on or after this day (YYYY-MM-DD).")]
ToOption = Annotated[str | None, typer.Option("--to", help="Only examples written on or before this day (YYYY-MM-DD).")]


def _day(value: str | None, option: str) -> date | None:
    try:
        return None if value is None else date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{option} needs a day like 2026-11-25; got {value!r}") from None


def list_examples(
    status: StatusOption = None,
    author: AuthorOption = None,
    tag: TagOption = None,
    label: OneLabelOption = None,
    created_from: FromOption = None,
    created_to: ToOption = None,
    page: PageOption = 1,
    page_size: PageSizeOption = 50,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """List examples, newest first, filtered by status, author, tags and date."""
    search(None, status, author, tag, label, created_from, created_to, page, page_size, db, as_json)


def search(
    query: Annotated[str | None, typer.Argument(help="Words to find in prompts and responses.")],
    status: StatusOption = None,
    author: AuthorOption = None,
    tag: TagOption = None,
    label: OneLabelOption = None,
    created_from: FromOption = None,
    created_to: ToOption = None,
    page: PageOption = 1,
    page_size: PageSizeOption = 50,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Full-text search over prompts and responses, best matches first."""
    tags = parse_tags(tag, None, Tags()).model_dump(exclude={"labels"})
    flt = ExampleFilter(
        query=query,
        status=status,
        author=author,
        label=label,
        created_from=_day(created_from, "--from"),
        created_to=_day(created_to, "--to"),
        page=page,
        page_size=page_size,
        **tags,
    )
    page_ = open_store(db).list_examples(flt)
    if as_json:
        emit_json({"total": page_.total, "page": page_.page, "pages": page_.pages, "items": page_.items})
        return
    rows = [
        [e.id, e.status, e.author, e.tags.category or "", e.tags.response_type or "", one_line(e.prompt)] for e in page_.items
    ]
    table(rows, ["ID", "STATUS", "AUTHOR", "CATEGORY", "TYPE", "PROMPT"])
    more = f"; next page: --page {page_.page + 1}" if page_.page < page_.pages else ""
    typer.echo(f"\nPage {page_.page} of {page_.pages} ({page_.total} examples){more}")


def show(
    example_id: int,
    history: Annotated[bool, typer.Option(help="Also print the example's history.")] = True,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Show one example: conversation, tags, reviews and history."""
    store = open_store(db)
    example = store.get_example(example_id)
    if as_json:
        emit_json(
            {
                "example": example,
                "reviews": review_queue.reviews_of(store, example_id),
                "history": store.history("example", example_id),
            }
        )
        return
    _print_example(example, store, history=history)


def stats(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """Counts of examples by status, category and author, and of reviews and users."""
    result = open_store(db).stats()
    if as_json:
        emit_json(result)
        return
    typer.echo(f"{result.examples} examples, {result.reviews} reviews")
    for title, counts in (
        ("Status", result.by_status),
        ("Category", result.by_category),
        ("Author", result.by_author),
        ("Decisions", result.reviews_by_decision),
        ("Users", result.users_by_role),
    ):
        typer.echo(f"{title}: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none"))


def demo(
    db: DbOption = Path("demo.db"),
    sample_dir: Annotated[
        Path | None, typer.Option(help="A folder shaped like sample_data/ (default: the bundled sample team).")
    ] = None,
    password: Annotated[str | None, typer.Option(help="One password for every demo user (default: generated).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Load the bundled sample team (users, taxonomy, guidelines, reviewed examples) into a new store."""
    from curation.demo import load_demo

    if db.exists():
        raise InvalidInput(f"{db} already exists; the demo only loads into a new file (choose another --db or remove it)")
    summary = load_demo(open_store(db, create=True), sample_dir, password=password)
    if as_json:
        emit_json(summary)
        return
    typer.echo(
        f"Demo store ready at {db}: {summary.examples} examples ({', '.join(f'{k} {v}' for k, v in summary.by_status.items())}), "
        f"{summary.production_logs} production conversations."
    )
    typer.echo("Demo users (passwords shown once):")
    table([[u["username"], u["role"], u["password"]] for u in summary.users], ["USER", "ROLE", "PASSWORD"])
    if summary.problems:
        typer.echo(f"{len(summary.problems)} sample records were skipped:", err=True)
        for p in summary.problems:
            typer.echo(f"  {p}", err=True)
        raise typer.Exit(EXIT_FAILED)


def review_overlap(
    share: Annotated[float | None, typer.Argument(help="Share of examples that get two reviews, 0-1 (omit to show it).")] = None,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
) -> None:
    """Show or set the share of examples that get two independent reviews (admins set it)."""
    from curation.examples import review_queue

    store = open_store(db)
    if share is not None:
        review_queue.set_overlap_share(store, as_user, share)
    typer.echo(f"{review_queue.overlap_share(store):.0%} of examples get two independent reviews.")
