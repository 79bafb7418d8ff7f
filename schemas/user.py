"""Users and their roles."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, field_validator

UserRole = Literal["author", "reviewer", "lead", "admin"]
ROLES: tuple[str, ...] = get_args(UserRole)
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")


def normalise_username(value: Any) -> Any:
    """Lower-case and check a username; raise ValueError with the rule when it breaks it."""
    if not isinstance(value, str):
        return value
    name = value.strip().lower()
    if not _USERNAME.match(name):
        raise ValueError(
            f"username {value!r} is not valid: use 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


class User(BaseModel):
    """A person who uses Goldsmith. The password hash never leaves the store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str
    display_name: str = ""
    role: UserRole
    active: bool = True
    version: int = 1
    created_at: datetime

    @field_validator("username", mode="before")
    @classmethod
    def _username(cls, value: Any) -> Any:
        return normalise_username(value)


class NewUser(BaseModel):
    """A user just added, and the password generated for them (None when one was given): shown once, never stored."""

    model_config = ConfigDict(frozen=True)

    user: User
    generated_password: str | None = None
