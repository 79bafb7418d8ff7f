"""Signing in to the app: lockout after repeated failures, idle and absolute session timeouts.

A session is a random token handed to the browser session; the store keeps only its sha256
with the time it was created and last used. Every page load calls `check_session`, so the
timeouts are enforced on the server, whatever the browser does.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from curation.errors import AuthenticationFailed
from curation.people.users import authenticate
from curation.store import Store
from schemas import User

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
TOUCH_EVERY = timedelta(seconds=30)  # last_seen is written at most this often (a page load stays a read)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _minutes(delta: timedelta) -> int:
    return max(1, -(-int(delta.total_seconds()) // 60))


@dataclass(frozen=True)
class Session:
    """A signed-in user and the token that names their session."""

    token: str
    user: User
    created_at: datetime


def login(store: Store, username: str, password: str, *, clock: Clock = _utcnow) -> Session:
    """Check the password and open a session.

    After MAX_FAILURES wrong passwords in a row for a name, that name is locked for LOCKOUT,
    even with the right password. Unknown names are counted the same way, so a lockout does
    not reveal who exists.

    Raises:
        AuthenticationFailed: wrong username or password, a locked or deactivated account.
    """
    name = (username or "").strip().lower()
    if not name or not password:
        raise AuthenticationFailed("enter your username and password")
    moment = clock()
    failures = store.db.table("login_failures")
    row = failures.get(name) if failures.count_where("username = ?", [name]) else None
    if row and row["locked_until"] and datetime.fromisoformat(row["locked_until"]) > moment:
        wait = datetime.fromisoformat(row["locked_until"]) - moment
        raise AuthenticationFailed(
            f"too many failed sign-ins for {name!r}; the account is locked for {_minutes(wait)} more minutes "
            "(or ask an admin to reset the password)"
        )
    try:
        user = authenticate(store, name, password)
    except AuthenticationFailed as error:
        locked = _record_failure(store, name, moment)
        if locked:
            raise AuthenticationFailed(
                f"wrong username or password, {MAX_FAILURES} times in a row; {name!r} is locked for {_minutes(LOCKOUT)} minutes"
            ) from None
        raise error from None
    token = secrets.token_urlsafe(32)
    with store.write():
        store.db.table("login_failures").delete_where("username = ?", [name])
        store.db.table("sessions").insert(
            {
                "token_hash": _hash(token),
                "username": user.username,
                "created_at": _stamp(moment),
                "last_seen": _stamp(moment),
                "ended_at": None,
            }
        )
    return Session(token=token, user=user, created_at=moment)


def _record_failure(store: Store, name: str, moment: datetime) -> bool:
    """Count one failed sign-in; True when it locks the name."""
    with store.write():
        rows = list(store.db.table("login_failures").rows_where("username = ?", [name]))
        failures = (rows[0]["failures"] if rows else 0) + 1
        locked = failures >= MAX_FAILURES
        store.db.table("login_failures").upsert(
            {
                "username": name,
                "failures": 0 if locked else failures,
                "locked_until": _stamp(moment + LOCKOUT) if locked else None,
                "updated_at": _stamp(moment),
            },
            pk="username",
        )
        if locked and store.db.table("users").count_where("username = ?", [name]):
            store.add_history("user", name, "lockout", name, None, {"locked_until": _stamp(moment + LOCKOUT)})
    return locked


def check_session(store: Store, token: str | None, *, clock: Clock = _utcnow) -> User:
    """The user of a live session; ends it (and raises) when idle or too old.

    Raises:
        AuthenticationFailed: no such session, signed out, timed out, or the user was deactivated.
    """
    expired = AuthenticationFailed("your session has ended; sign in again")
    if not token:
        raise expired
    digest = _hash(token)
    rows = list(store.db.table("sessions").rows_where("token_hash = ?", [digest]))
    if not rows or rows[0]["ended_at"]:
        raise expired
    row, moment = rows[0], clock()
    last_seen, created = datetime.fromisoformat(row["last_seen"]), datetime.fromisoformat(row["created_at"])
    if moment - last_seen > IDLE_TIMEOUT:
        _end(store, digest, moment)
        raise AuthenticationFailed(f"you were idle for more than {_minutes(IDLE_TIMEOUT)} minutes; sign in again")
    if moment - created > ABSOLUTE_TIMEOUT:
        _end(store, digest, moment)
        raise AuthenticationFailed(f"sessions last at most {_minutes(ABSOLUTE_TIMEOUT) // 60} hours; sign in again")
    user = store.get_user(row["username"])
    if not user.active:
        _end(store, digest, moment)
        raise AuthenticationFailed(f"the account {user.username!r} is deactivated; ask an admin")
    if moment - last_seen >= TOUCH_EVERY:
        with store.write():
            store.db.table("sessions").update(digest, {"last_seen": _stamp(moment)})
    return user


def logout(store: Store, token: str | None, *, clock: Clock = _utcnow) -> None:
    """End a session (a no-op for an unknown or already ended one)."""
    if token:
        _end(store, _hash(token), clock())


def _end(store: Store, digest: str, moment: datetime) -> None:
    with store.write():
        store.conn.execute("UPDATE sessions SET ended_at = ? WHERE token_hash = ? AND ended_at IS NULL", [_stamp(moment), digest])
