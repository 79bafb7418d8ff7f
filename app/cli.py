"""`goldsmith`: the command line. Each command reads its inputs, calls one service function, prints.

The commands live in the app.cli_* modules; COMMANDS says which module holds each. A call loads
only the module of the command it runs (`goldsmith dedup` never imports the training, serving or
admin commands), which saves about 0.1 s on every call; `goldsmith --help`, an unknown name and
`app` (for tests and embedding) build the whole tree.
"""

from __future__ import annotations

import gc
import sys
from functools import cache
from importlib import import_module
from typing import Any

import typer

# Every top-level command (a function) and command group (a typer.Typer), in --help order.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("app.cli_examples", "init"),
    "new": ("app.cli_examples", "new"),
    "edit": ("app.cli_examples", "edit"),
    "submit": ("app.cli_examples", "submit"),
    "withdraw": ("app.cli_examples", "withdraw"),
    "review": ("app.cli_examples", "review"),
    "queue": ("app.cli_examples", "queue"),
    "archive": ("app.cli_examples", "archive"),
    "set-status": ("app.cli_examples", "set_status"),
    "list": ("app.cli_examples", "list_examples"),
    "search": ("app.cli_examples", "search"),
    "show": ("app.cli_examples", "show"),
    "stats": ("app.cli_examples", "stats"),
    "demo": ("app.cli_examples", "demo"),
    "review-overlap": ("app.cli_examples", "review_overlap"),
    # data in and out, curation, and the admin's groups, after the example commands
    "import": ("app.cli_data", "import_command"),
    "export": ("app.cli_data", "export_command"),
    "snapshot": ("app.cli_data", "snapshot_app"),
    "validate": ("app.cli_data", "validate_command"),
    "dedup": ("app.cli_curation", "dedup_command"),
    "check": ("app.cli_curation", "check_command"),
    "resolve": ("app.cli_curation", "resolve_command"),
    "coverage": ("app.cli_curation", "coverage_command"),
    "draft": ("app.cli_drafts", "draft_command"),
    "accept-draft": ("app.cli_drafts", "accept_draft_command"),
    "draft-gap": ("app.cli_drafts", "draft_gap_command"),
    "tasks": ("app.cli_curation", "tasks_app"),
    "logs": ("app.cli_monitor", "logs_app"),
    "monitor": ("app.cli_monitor", "monitor_app"),
    "user": ("app.cli_admin", "user_app"),
    "taxonomy": ("app.cli_admin", "taxonomy_app"),
    "guidelines": ("app.cli_admin", "guidelines_app"),
    "serve": ("app.cli_serve", "serve_command"),
    "train": ("app.cli_training", "train_command"),
    "runs": ("app.cli_training", "runs_app"),
    "eval": ("app.cli_training", "eval_command"),
    "judge": ("app.cli_training", "judge_app"),
    "models": ("app.cli_models", "models_app"),
    "jobs": ("app.cli_jobs", "jobs_app"),
    "serve-model": ("app.cli_serve_model", "serve_model_command"),
}


def build(*names: str) -> typer.Typer:
    """The command line with the named top-level commands (all of them when none are named)."""
    from app.cli_common import handle_errors

    cli = typer.Typer(
        name="goldsmith",
        help="Goldsmith: curate supervised fine-tuning data, from real questions to an evaluated LoRA adapter.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    if len(names) == 1:
        # one command alone would become the whole program; the callback keeps `goldsmith NAME ...`
        cli.callback()(_group)
    for name in names or COMMANDS:
        module, attribute = COMMANDS[name]
        target = getattr(import_module(module), attribute)
        if isinstance(target, typer.Typer):
            cli.add_typer(target, name=name)
        else:
            cli.command(name)(handle_errors(target))
    return cli


def _group() -> None:
    pass


@cache
def _full() -> typer.Typer:
    return build()


def __getattr__(name: str) -> Any:
    if name == "app":  # `from app.cli import app`: the whole command line
        return _full()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console-script entry point: build only the command being run, when it is a known one."""
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    cli = build(name) if name in COMMANDS else _full()
    # What the imports made lives until exit: keep it out of the interpreter's garbage collections,
    # the last of which (at exit) otherwise walks all of it again (~35 ms on every call).
    gc.freeze()
    cli()


if __name__ == "__main__":
    main()
