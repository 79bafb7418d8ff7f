"""What every `goldsmith` command shares: options, opening the store, output, and error handling."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from curation.errors import Conflict, GoldsmithError, InvalidInput, NotFound, explain
from curation.store import Store
from schemas import TAG_KEYS, Tags

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DbOption = Annotated[
    Path,
    typer.Option("--db", envvar="GOLDSMITH_DB", help="The Goldsmith database file (env GOLDSMITH_DB).", show_default=True),
]
AsOption = Annotated[
    str,
    typer.Option(
        "--as",
        envvar="GOLDSMITH_USER",
        show_default=False,
        help="Who is acting, for permissions and history (env GOLDSMITH_USER).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
DEFAULT_DB = Path("goldsmith.db")


def open_store(db: Path, *, create: bool = False) -> Store:
    """Open the store at `db`; refuse to invent one unless `create` (a typo must not start a new, empty store)."""
    if not create and not db.exists():
        raise InvalidInput(f"no Goldsmith database at {db}; create one with `goldsmith init --db {db}` or pass --db")
    if db.is_dir():
        raise InvalidInput(f"{db} is a folder; --db needs a file path such as {db / 'goldsmith.db'}")
    return Store(db)


def handle_errors(fn: F) -> F:
    """Turn Goldsmith's errors into one line on stderr and an exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except (InvalidInput, NotFound) as error:
            fail(str(error), EXIT_USAGE)
        except GoldsmithError as error:
            prefix = "Conflict: " if isinstance(error, Conflict) else ""
            fail(prefix + str(error), EXIT_FAILED)
        except ValidationError as error:
            fail(explain(error), EXIT_USAGE)
        except OSError as error:
            fail(f"{error.strerror or error}: {error.filename or ''}".rstrip(": "), EXIT_USAGE)
        except Exception as error:
            if os.environ.get("GOLDSMITH_DEBUG"):
                raise
            fail(f"unexpected error ({type(error).__name__}: {error}); rerun with GOLDSMITH_DEBUG=1 and report it", EXIT_FAILED)

    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int) -> None:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def emit_json(value: Any) -> None:
    """Print a model, a list of models or plain data as JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, BaseModel):
            return v.model_dump(mode="json")
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    typer.echo(json.dumps(plain(value), ensure_ascii=False, indent=2))


def table(rows: list[list[Any]], headers: list[str]) -> None:
    """A plain left-aligned text table."""
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, r in enumerate(cells):
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            typer.echo("  ".join("-" * w for w in widths))


def plural(count: int, noun: str) -> str:
    """`1 example`, `2 examples`."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def echo_rejected(rejected: list[Any], shown: int = 50) -> None:
    """An import's rejected records on stderr, each with its place (line, or record and line) and reason; the first `shown`."""
    for r in rejected[:shown]:
        typer.echo(f"  {r.place}: {r.reason}", err=True)
    if len(rejected) > shown:
        typer.echo(f"  ... and {len(rejected) - shown} more (use --json for all)", err=True)


def read_text_arg(value: str) -> str:
    """`-` reads standard input; `@PATH` reads a file; anything else is the text itself."""
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        return Path(value[1:]).read_text(encoding="utf-8")
    return value


def parse_tags(pairs: list[str] | None, labels: list[str] | None, base: Tags) -> Tags:
    """`--tag KEY=VALUE` options (and `--label`s) applied on top of `base`."""
    values: dict[str, Any] = base.model_dump()
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or key.strip() not in TAG_KEYS:
            raise InvalidInput(f"--tag needs KEY=VALUE with KEY one of {', '.join(TAG_KEYS)}; got {pair!r}")
        values[key.strip()] = value
    if labels is not None:
        values["labels"] = labels
    return Tags.model_validate(values)
