"""The README cannot drift from the code: every `goldsmith ...` line in it parses against the real CLI,
and its layout section names every module of the tree (sqlite-utils keeps its docs true the same way)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from app.cli import app
from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(?:\.\.\.)?$")  # RUN, SNAPSHOT, IDS... stand for a value


def code_lines() -> list[str]:
    """Each `goldsmith` command in the README's shell blocks (continuations joined, `&&` chains split)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("goldsmith "):
                    commands.append(part)
    return commands


def prose_mentions() -> list[str]:
    """`goldsmith ...` in running text: partial usage (a missing argument is fine there, a wrong option is not)."""
    outside = re.sub(r"```.*?```", "", README, flags=re.S)
    found = set(re.findall(r"`(goldsmith [^`]+)`", outside))
    return sorted(m for m in found if not PLACEHOLDER.match(m.split()[1]))  # `goldsmith COMMAND --help` is generic


def parse(command: str, *, partial: bool = False) -> tuple[list[str], dict[str, Any]]:
    """Parse a command line with the real click tree: unknown commands or options raise, nothing runs.

    `partial`: a missing argument, or a group named without its subcommand, is fine (running text).
    """
    words = shlex.split(command)[1:]
    args = [("1" if PLACEHOLDER.match(a) and (i or not partial) else a) for i, a in enumerate(words)]
    path: list[str] = []
    try:
        ctx = typer.main.get_command(app).make_context("goldsmith", args)
        while hasattr(ctx.command, "resolve_command"):
            rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
            if not rest:  # a group that also runs on its own (goldsmith monitor)
                return path, ctx.params
            name, sub, rest = ctx.command.resolve_command(ctx, rest)
            path.append(str(name))
            ctx = sub.make_context(name, rest, parent=ctx)
    except typer.Exit as done:  # --help printed what it should
        assert done.exit_code == 0, command
        return path or ["--help"], {}
    except Exception as error:
        if partial and type(error).__name__ in ("MissingParameter", "NoArgsIsHelpError"):
            return path, {}
        raise
    return path, ctx.params


def test_the_readme_shows_commands():
    assert len(code_lines()) > 40 and len(prose_mentions()) > 10


@pytest.mark.parametrize("command", code_lines())
def test_every_readme_command_parses(command):
    path, _ = parse(command)
    assert path, command


@pytest.mark.parametrize("command", prose_mentions())
def test_every_command_named_in_the_prose_exists(command):
    parse(command, partial=True)


def test_a_renamed_option_would_fail():
    with pytest.raises(Exception, match="No such option: --resume"):
        parse("goldsmith train v1 --resume RUN")
    with pytest.raises(Exception, match="No such command"):
        parse("goldsmith snapshot cut --name v1")


def test_the_layout_section_names_every_module():
    layout = README.split("## Layout", 1)[1].split("\n## ", 1)[0]
    modules = [
        p.relative_to(ROOT).as_posix()
        for layer in ("schemas", "curation", "training", "app")
        for p in sorted((ROOT / layer).rglob("*.py"))
        if p.name != "__init__.py"
    ]
    missing = [m for m in modules if Path(m).name not in layout]
    assert missing == []
