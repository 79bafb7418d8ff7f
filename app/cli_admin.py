"""`goldsmith user ...`, `goldsmith taxonomy ...` and `goldsmith guidelines ...`: the admin's commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from app.cli_common import DEFAULT_DB, AsOption, DbOption, JsonOption, emit_json, handle_errors, open_store, table
from curation.errors import InvalidInput
from curation.examples import taxonomy as taxonomy_service
from curation.people import users as user_service

user_app = typer.Typer(help="Add people, change roles, deactivate accounts, set passwords.", no_args_is_help=True)
taxonomy_app = typer.Typer(help="Show or replace the taxonomy (tag values and targets).", no_args_is_help=True)
guidelines_app = typer.Typer(help="Show or replace the writing guidelines.", no_args_is_help=True)


def _password_input(generate: bool, password_stdin: bool) -> str | None:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if generate or not sys.stdin.isatty():
        return None
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@user_app.command("add")
@handle_errors
def user_add(
    username: Annotated[str, typer.Argument(help="Login name: letters, digits, '.', '_' or '-'.")],
    role: Annotated[str, typer.Option(help="author, reviewer, lead or admin.")] = "author",
    display_name: Annotated[str, typer.Option(help="Full name shown in the app.")] = "",
    generate_password: Annotated[bool, typer.Option(help="Generate a password and print it once.")] = False,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input.")] = False,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Add a user. The first user of a new store must be an admin and needs no --as.

    The password is prompted for; without a terminal (or with --generate-password) one is
    generated and printed once.
    """
    store = open_store(db)
    password = _password_input(generate_password, password_stdin)
    added = user_service.add_user(store, as_user, username, role, display_name=display_name, password=password)
    user, generated = added.user, added.generated_password
    if as_json:
        emit_json({"user": user, "password": generated})
        return
    typer.echo(f"Added {user.username} ({user.role}).")
    if generated:
        typer.echo(f"Password (shown once, store it now): {generated}")


@user_app.command("list")
@handle_errors
def user_list(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """List users with their roles."""
    users = open_store(db).list_users()
    if as_json:
        emit_json(users)
        return
    table([[u.username, u.display_name, u.role, "yes" if u.active else "no"] for u in users], ["USER", "NAME", "ROLE", "ACTIVE"])


@user_app.command("set-role")
@handle_errors
def user_set_role(
    username: str,
    role: Annotated[str, typer.Argument(help="author, reviewer, lead or admin.")],
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
    as_json: JsonOption = False,
) -> None:
    """Change a user's role (admins)."""
    store = open_store(db)
    user = user_service.set_role(store, as_user, username, role, store.get_user(username).version)
    emit_json(user) if as_json else typer.echo(f"{user.username} is now {user.role}.")


def _set_active(db: Path, as_user: str, username: str, active: bool) -> None:
    store = open_store(db)
    user_service.set_active(store, as_user, username, active, store.get_user(username).version)
    typer.echo(f"{username} is {'active again' if active else 'deactivated'}.")


@user_app.command("deactivate")
@handle_errors
def user_deactivate(username: str, db: DbOption = DEFAULT_DB, as_user: AsOption = "") -> None:
    """Stop a user from signing in; their examples and history stay (admins)."""
    _set_active(db, as_user, username, False)


@user_app.command("activate")
@handle_errors
def user_activate(username: str, db: DbOption = DEFAULT_DB, as_user: AsOption = "") -> None:
    """Let a deactivated user sign in again (admins)."""
    _set_active(db, as_user, username, True)


@user_app.command("passwd")
@handle_errors
def user_passwd(
    username: str,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input.")] = False,
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
) -> None:
    """Set a password: your own, or anyone's if you are an admin."""
    store = open_store(db)
    password = _password_input(False, password_stdin)
    if password is None:
        raise InvalidInput("no terminal to prompt on; pipe the password with --password-stdin")
    user_service.set_password(store, as_user, username, password)
    typer.echo(f"Password for {username} changed.")


@taxonomy_app.command("show")
@handle_errors
def taxonomy_show(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """Show the allowed tag values and the targets."""
    taxonomy, version = taxonomy_service.get_taxonomy(open_store(db))
    if as_json:
        emit_json({"version": version, "taxonomy": taxonomy})
        return
    typer.echo(f"Taxonomy version {version}")
    for name in ("categories", "response_types", "knowledge_areas"):
        typer.echo(f"{name}: {', '.join(getattr(taxonomy, name)) or '(any)'}")
    if taxonomy.targets:
        table([[t.category, t.response_type, t.target] for t in taxonomy.targets], ["CATEGORY", "RESPONSE TYPE", "TARGET"])


@taxonomy_app.command("set")
@handle_errors
def taxonomy_set(
    file: Annotated[Path, typer.Argument(help="JSON file: categories, response_types, knowledge_areas, targets.")],
    db: DbOption = DEFAULT_DB,
    as_user: AsOption = "",
) -> None:
    """Replace the taxonomy from a JSON file (admins)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InvalidInput(f"{file} is not valid JSON (line {error.lineno}: {error.msg})") from None
    store = open_store(db)
    version = taxonomy_service.set_taxonomy(store, as_user, data, taxonomy_service.get_taxonomy(store)[1])
    typer.echo(f"Taxonomy saved (version {version}).")


@guidelines_app.command("show")
@handle_errors
def guidelines_show(db: DbOption = DEFAULT_DB) -> None:
    """Print the writing guidelines (Markdown)."""
    text, _ = taxonomy_service.get_guidelines(open_store(db))
    typer.echo(text or "No guidelines yet; an admin sets them with `goldsmith guidelines set FILE`.")


@guidelines_app.command("set")
@handle_errors
def guidelines_set(
    file: Annotated[Path, typer.Argument(help="A Markdown file.")], db: DbOption = DEFAULT_DB, as_user: AsOption = ""
) -> None:
    """Replace the writing guidelines from a Markdown file (admins)."""
    store = open_store(db)
    version = taxonomy_service.set_guidelines(
        store, as_user, file.read_text(encoding="utf-8"), taxonomy_service.get_guidelines(store)[1]
    )
    typer.echo(f"Guidelines saved (version {version}).")
