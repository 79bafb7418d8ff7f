"""Who may do what. Enforced in the service functions, so the CLI and the app share one rule book."""

from __future__ import annotations

from typing import Literal, get_args

from curation.errors import PermissionDenied
from schemas import Example, User

Action = Literal[
    "create_example",
    "edit_example",
    "submit_example",
    "review_example",
    "archive_example",
    "bulk_set_status",
    "create_snapshot",
    "launch_training",
    "judge_models",
    "use_playground",
    "manage_coverage",
    "manage_users",
    "manage_taxonomy",
    "manage_guidelines",
]
ACTIONS: tuple[str, ...] = get_args(Action)

_AUTHORING = {"create_example", "edit_example", "submit_example"}
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "author": frozenset(_AUTHORING | {"use_playground"}),
    "reviewer": frozenset({"review_example", "judge_models", "use_playground"}),
    # A lead can do everything a reviewer can, writes examples too, and runs the data pipeline.
    "lead": frozenset(
        _AUTHORING
        | {"review_example", "archive_example", "bulk_set_status", "create_snapshot", "launch_training", "manage_coverage"}
        | {"judge_models", "use_playground"}
    ),
    "admin": frozenset({"manage_users", "manage_taxonomy", "manage_guidelines"}),
}


def can(user: User, action: str) -> bool:
    """Whether the user's role allows the action at all (ownership aside)."""
    return user.active and action in ROLE_ACTIONS[user.role]


def require(user: User, action: str, example: Example | None = None) -> None:
    """Raise PermissionDenied unless `user` may do `action` (on `example`, when given)."""
    if not user.active:
        raise PermissionDenied(f"user {user.username!r} is deactivated; ask an admin to reactivate the account")
    if action not in ROLE_ACTIONS[user.role]:
        roles = " or ".join(r for r, actions in ROLE_ACTIONS.items() if action in actions)
        raise PermissionDenied(
            f"{user.username} is {'an' if user.role[0] in 'aeiou' else 'a'} {user.role} and cannot "
            f"{action.replace('_', ' ')}; that needs the {roles} role"
        )
    if example is None:
        return
    if action in ("edit_example", "submit_example") and user.role != "lead" and example.author != user.username:
        raise PermissionDenied(f"example {example.id} belongs to {example.author}; authors can only change their own examples")
    if action == "review_example" and example.author == user.username:
        raise PermissionDenied(f"you wrote example {example.id}; another reviewer must review it")
