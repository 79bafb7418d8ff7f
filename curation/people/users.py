"""Users: adding people, roles, passwords (argon2id) and sign-in."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import ValidationError

from curation.errors import AuthenticationFailed, InvalidInput, MissingActor, NotFound, PermissionDenied
from curation.people.permissions import can, require
from curation.store import Store, now
from schemas import ROLES, NewUser, User

MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()  # argon2id with argon2-cffi's current recommended parameters


def acting_user(store: Store, username: str | None) -> User:
    """The user an action is done as.

    Raises:
        MissingActor: nobody is named (the CLI reports it as bad usage, exit 2).
        PermissionDenied: the name is nobody's.
    """
    if not username or not username.strip():
        raise MissingActor("say who is acting with --as USER (or GOLDSMITH_USER)")
    try:
        return store.get_user(username.strip().lower())
    except NotFound:
        raise PermissionDenied(f"no user named {username!r}; `goldsmith user list` shows who exists") from None


def assignable_authors(store: Store) -> list[User]:
    """Who can be given authoring work (a task, a gap topic's drafts): active users who may write examples."""
    return [u for u in store.list_users() if can(u, "create_example")]


def assignable_author(store: Store, username: str) -> User:
    """The named user, when they can be given authoring work.

    Raises:
        NotFound: nobody has that name.
        PermissionDenied: they are deactivated or their role does not write examples.
    """
    user = store.get_user(username)
    require(user, "create_example")
    return user


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password is {len(password)} characters; use at least {MIN_PASSWORD_LENGTH}")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of: {', '.join(ROLES)}")


def add_user(
    store: Store, actor: str | None, username: str, role: str, *, display_name: str = "", password: str | None = None
) -> NewUser:
    """Add a user. The very first user needs no actor and must be an admin.

    Returns:
        The user, and the generated password when none was given (show it once; it is not stored).
    """
    _check_role(role)
    generated = None
    if password is None:
        password = generated = secrets.token_urlsafe(12)
    _check_password(password)
    try:
        user = User(username=username, display_name=display_name.strip(), role=role, created_at=now())
    except ValidationError as error:  # the rule names the field itself: "username 'x y' is not valid: use ..."
        raise InvalidInput("; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors())) from None
    with store.write():
        if store.count_users() == 0:
            if role != "admin":
                raise InvalidInput(f"the first user must be an admin: `goldsmith user add {user.username} --role admin`")
            by = user.username
        else:
            admin = acting_user(store, actor)
            require(admin, "manage_users")
            by = admin.username
        store.insert_user(user, _hasher.hash(password), actor=by)
    return NewUser(user=user, generated_password=generated)


def set_role(store: Store, actor: str, username: str, role: str, expected_version: int) -> User:
    """Change a user's role; the last active admin cannot be demoted."""
    _check_role(role)
    with store.write():
        require(acting_user(store, actor), "manage_users")
        target = store.get_user(username)
        if target.role == "admin" and role != "admin" and target.active and _active_admins(store) == 1:
            raise InvalidInput(f"{username} is the last admin; make someone else an admin first")
        return store.update_user(username, expected_version, actor, "set_role", {"role": role})


def set_active(store: Store, actor: str, username: str, active: bool, expected_version: int) -> User:
    """Deactivate (or reactivate) a user; their examples and history stay."""
    with store.write():
        require(acting_user(store, actor), "manage_users")
        target = store.get_user(username)
        if not active and target.role == "admin" and target.active and _active_admins(store) == 1:
            raise InvalidInput(f"{username} is the last admin; make someone else an admin first")
        return store.update_user(username, expected_version, actor, "activate" if active else "deactivate", {"active": active})


def set_password(store: Store, actor: str, username: str, password: str, *, keep_session: str | None = None) -> User:
    """Set a password: users change their own, admins anyone's.

    Every session of that user ends (whoever knew the old password is signed out), except
    `keep_session` (the sha256 of the session the user changed it from).
    """
    _check_password(password)
    with store.write():
        me = acting_user(store, actor)
        if me.username != username.strip().lower():
            require(me, "manage_users")
        target = store.get_user(username)
        changed = store.update_user(
            target.username, target.version, actor, "set_password", {"password_hash": _hasher.hash(password)}
        )
        store.conn.execute(
            "UPDATE sessions SET ended_at = ? WHERE username = ? AND ended_at IS NULL AND token_hash != ?",
            [now(), target.username, keep_session or ""],
        )
        return changed


def authenticate(store: Store, username: str, password: str) -> User:
    """The user if the password matches; AuthenticationFailed otherwise (same words for both causes)."""
    failed = AuthenticationFailed("wrong username or password")
    try:
        user = store.get_user(username.strip().lower())
        stored = store.password_hash(user.username)
    except NotFound:
        _hasher.hash(password)  # spend the same time as a real check, so names cannot be probed
        raise failed from None
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        raise failed from None
    if not user.active:
        raise AuthenticationFailed(f"the account {user.username!r} is deactivated; ask an admin")
    return user


def _active_admins(store: Store) -> int:
    return sum(1 for u in store.list_users() if u.role == "admin" and u.active)
