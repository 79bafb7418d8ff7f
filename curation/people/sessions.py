"""Signing in to the app: lockout after repeated failures, idle and absolute session timeouts, the cookie.

A session is a random token; the store keeps only its sha256 with the time it was created and
last used. Every page load calls `check_session`, so the timeouts are enforced on the server,
whatever the browser does.

The browser holds a second token of the same session in a signed, HttpOnly, SameSite=Lax cookie
(`cookie_value`), so a reload or a second tab stays signed in. A page cannot set an HttpOnly
cookie itself: signing in also makes a one-time ticket (60 seconds; only its sha256 is kept) that
the page's script trades at the app's own route for that cookie (`redeem_ticket`); the token the
page signed in with never reaches the browser. Either token names the same session row, so
signing out ends it in every tab at its next step.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from curation.errors import AuthenticationFailed, InvalidInput
from curation.people.users import authenticate, set_password
from curation.store import Store
from schemas import User

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
TOUCH_EVERY = timedelta(seconds=30)  # last_seen is written at most this often (a page load stays a read)
TICKET_LIFETIME = timedelta(seconds=60)  # the page trades the ticket for the cookie right after signing in
COOKIE_NAME = "goldsmith_session"
_keys: dict[str, bytes] = {}  # the cookie-signing key of each store file, read once per process

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
    """A signed-in user, the token that names their session, and the one-time ticket for the browser's cookie."""

    token: str
    user: User
    created_at: datetime
    ticket: str = ""


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
        count = _record_failure(store, name, moment)
        if count >= MAX_FAILURES:
            raise AuthenticationFailed(
                f"wrong username or password, {MAX_FAILURES} times in a row; {name!r} is locked for {_minutes(LOCKOUT)} minutes"
            ) from None
        if count == MAX_FAILURES - 1 and str(error) == "wrong username or password":
            raise AuthenticationFailed(
                f"wrong username or password. One more wrong password locks {name!r} for {_minutes(LOCKOUT)} minutes; "
                "if you are unsure, ask an admin to reset it"
            ) from None
        raise error from None
    token, ticket = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    with store.write():
        store.db.table("login_failures").delete_where("username = ?", [name])
        store.db.table("sessions").insert(
            {
                "token_hash": _hash(token),
                "username": user.username,
                "created_at": _stamp(moment),
                "last_seen": _stamp(moment),
                "ended_at": None,
                "ticket_hash": _hash(ticket),
                "ticket_expires": _stamp(moment + TICKET_LIFETIME),
            }
        )
    return Session(token=token, user=user, created_at=moment, ticket=ticket)


def _record_failure(store: Store, name: str, moment: datetime) -> int:
    """Count one failed sign-in; returns the count (MAX_FAILURES: this one locks the name)."""
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
    return failures


def check_session(store: Store, token: str | None, *, clock: Clock = _utcnow) -> User:
    """The user of a live session; ends it (and raises) when idle or too old.

    Raises:
        AuthenticationFailed: no such session, signed out, timed out, or the user was deactivated.
    """
    expired = AuthenticationFailed("your session has ended; sign in again")
    if not token:
        raise expired
    rows = _rows(store, token)
    if not rows or rows[0]["ended_at"]:
        raise expired
    row, moment = rows[0], clock()
    digest = row["token_hash"]
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
    """End a session, named by either of its tokens: every tab that holds it is signed out (a no-op for an unknown one)."""
    rows = _rows(store, token) if token else []
    if rows:
        _end(store, rows[0]["token_hash"], clock())


def _rows(store: Store, token: str) -> list[dict]:
    """The session row a token names: the one the page signed in with, or the browser cookie's."""
    digest = _hash(token)
    return list(store.db.table("sessions").rows_where("token_hash = ? OR cookie_hash = ?", [digest, digest]))


def _end(store: Store, digest: str, moment: datetime) -> None:
    with store.write():
        store.conn.execute("UPDATE sessions SET ended_at = ? WHERE token_hash = ? AND ended_at IS NULL", [_stamp(moment), digest])


# ------------------------------------------------------------------------------------------ the cookie


def _key(store: Store) -> bytes:
    where = str(store.path or id(store))
    if where not in _keys:
        row = store.db.table("session_keys").get("cookie")
        _keys[where] = bytes.fromhex(row["secret"])
    return _keys[where]


def _signature(store: Store, token: str) -> str:
    return hmac.new(_key(store), token.encode("utf-8"), hashlib.sha256).hexdigest()


def cookie_value(store: Store, token: str) -> str:
    """What the browser's cookie holds: the session token and its HMAC under this store's key."""
    return f"{token}.{_signature(store, token)}"


def token_from_cookie(store: Store, value: str | None) -> str | None:
    """The session token in a cookie this store signed; None for a missing, malformed or forged one."""
    if not value or "." not in value:
        return None
    token, _, signature = value.rpartition(".")
    return token if token and hmac.compare_digest(signature, _signature(store, token)) else None


def redeem_ticket(store: Store, ticket: str, *, clock: Clock = _utcnow) -> str:
    """Trade a sign-in's one-time ticket for the cookie value of its session (once, within TICKET_LIFETIME).

    The ticket is a second secret that lets the page's script ask the app's route for the
    HttpOnly cookie without the session token ever reaching the page.

    Raises:
        AuthenticationFailed: unknown, used or expired ticket, or a session that has ended.
    """
    refused = AuthenticationFailed("this sign-in link is used or expired; sign in again")
    if not ticket:
        raise refused
    moment = clock()
    with store.write():
        rows = list(store.db.table("sessions").rows_where("ticket_hash = ?", [_hash(ticket)]))
        if not rows:
            raise refused
        row, cookie_token = rows[0], secrets.token_urlsafe(32)
        fresh = not row["ended_at"] and datetime.fromisoformat(row["ticket_expires"]) >= moment
        changes = {"ticket_hash": None, "ticket_expires": None} | ({"cookie_hash": _hash(cookie_token)} if fresh else {})
        store.db.table("sessions").update(row["token_hash"], changes)
    if not fresh:
        raise refused
    return cookie_value(store, cookie_token)


def change_password(
    store: Store, token: str | None, current: str, new: str, *, confirm: str | None = None, clock: Clock = _utcnow
) -> User:
    """A signed-in user changes their own password, giving the current one first (and the new one twice, `confirm`).

    Their other sessions (other browsers) end; this one stays. A wrong current password counts
    toward the lockout like a wrong sign-in.

    Raises:
        AuthenticationFailed: the session has ended, or the current password is wrong.
        InvalidInput: the new password is too short, or `confirm` differs from it.
    """
    user = check_session(store, token, clock=clock)
    if confirm is not None and confirm != new:
        raise InvalidInput("the two new passwords differ; type the same new password twice")
    try:
        authenticate(store, user.username, current or "")
    except AuthenticationFailed:
        failures = _record_failure(store, user.username, clock())
        left = MAX_FAILURES - failures
        more = f"; {left} more wrong tries lock the account" if 0 < left < MAX_FAILURES else ""
        raise AuthenticationFailed(f"your current password is not right, so nothing was changed{more}") from None
    keep = _rows(store, token or "")[0]["token_hash"]
    return set_password(store, user.username, user.username, new, keep_session=keep)
