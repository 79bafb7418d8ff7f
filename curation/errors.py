"""Goldsmith's errors. Each message says what failed, the value, and how to fix it."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class GoldsmithError(Exception):
    """Base class: anything a user can cause and should read as one sentence."""


class InvalidInput(GoldsmithError):
    """The input is malformed or breaks a rule."""


class MissingActor(InvalidInput):
    """An action that is done as someone was asked for without naming who (bad usage, like a missing option)."""


class NotFound(GoldsmithError):
    """The thing named does not exist."""


class PermissionDenied(GoldsmithError):
    """The acting user's role or ownership does not allow the action."""


class Conflict(GoldsmithError):
    """Someone else changed the thing since it was read; nothing was overwritten."""

    def __init__(self, message: str, *, current: Any = None):
        super().__init__(message)
        self.current = current


class AuthenticationFailed(GoldsmithError):
    """Wrong username or password, a locked account, or an expired session."""


def explain(error: ValidationError) -> str:
    """Turn a pydantic ValidationError into one readable line per problem."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def invalid(error: ValidationError, what: str) -> InvalidInput:
    """Wrap a ValidationError for `what` (e.g. "example") as InvalidInput."""
    return InvalidInput(f"invalid {what}: {explain(error)}")
