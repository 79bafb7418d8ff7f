"""Signing in: lockout after repeated failures, idle and absolute timeouts, logout."""

from datetime import UTC, datetime, timedelta

import pytest

from conftest import PASSWORD
from curation.errors import AuthenticationFailed, InvalidInput
from curation.people import sessions, users


class Clock:
    def __init__(self):
        self.now = datetime(2026, 1, 1, 9, tzinfo=UTC)

    def __call__(self):
        return self.now


def test_login_opens_a_session_that_check_session_accepts(team):
    session = sessions.login(team, "Amy", PASSWORD)
    assert session.user.username == "amy"
    assert sessions.check_session(team, session.token).username == "amy"
    stored = team.db["sessions"].rows
    assert all(session.token not in str(row) for row in stored)  # only the hash is stored


def test_wrong_password_and_unknown_user_read_the_same(team):
    with pytest.raises(AuthenticationFailed, match="wrong username or password") as wrong:
        sessions.login(team, "amy", "not the password")
    with pytest.raises(AuthenticationFailed, match="wrong username or password") as unknown:
        sessions.login(team, "nobody", "not the password")
    assert str(wrong.value) == str(unknown.value)


def test_five_failures_lock_the_account_for_fifteen_minutes(team):
    clock = Clock()
    for _ in range(4):
        with pytest.raises(AuthenticationFailed, match="wrong username"):
            sessions.login(team, "amy", "bad password!", clock=clock)
    with pytest.raises(AuthenticationFailed, match="locked for 15 minutes"):
        sessions.login(team, "amy", "bad password!", clock=clock)
    clock.now += timedelta(minutes=5)
    with pytest.raises(AuthenticationFailed, match="locked for 10 more minutes"):
        sessions.login(team, "amy", PASSWORD, clock=clock)  # even the right password
    assert [h.action for h in team.history("user", "amy")][-1] == "lockout"
    clock.now += timedelta(minutes=11)
    assert sessions.login(team, "amy", PASSWORD, clock=clock).user.username == "amy"


def test_a_success_resets_the_failure_count(team):
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            sessions.login(team, "amy", "bad password!")
    sessions.login(team, "amy", PASSWORD)
    for _ in range(4):
        with pytest.raises(AuthenticationFailed, match="wrong username"):
            sessions.login(team, "amy", "bad password!")


def test_idle_timeout_is_enforced_on_the_server(team):
    clock = Clock()
    session = sessions.login(team, "amy", PASSWORD, clock=clock)
    clock.now += timedelta(minutes=20)
    sessions.check_session(team, session.token, clock=clock)  # activity keeps it alive
    clock.now += timedelta(minutes=20)
    sessions.check_session(team, session.token, clock=clock)
    clock.now += timedelta(minutes=31)
    with pytest.raises(AuthenticationFailed, match="idle"):
        sessions.check_session(team, session.token, clock=clock)
    clock.now -= timedelta(minutes=31)  # an ended session stays ended
    with pytest.raises(AuthenticationFailed, match="session has ended"):
        sessions.check_session(team, session.token, clock=clock)


def test_absolute_timeout_ends_even_an_active_session(team):
    clock = Clock()
    session = sessions.login(team, "amy", PASSWORD, clock=clock)
    for _ in range(13 * 3):
        clock.now += timedelta(minutes=20)
        if clock.now - session.created_at > sessions.ABSOLUTE_TIMEOUT:
            break
        sessions.check_session(team, session.token, clock=clock)
    with pytest.raises(AuthenticationFailed, match="at most 12 hours"):
        sessions.check_session(team, session.token, clock=clock)


def test_logout_and_deactivation_end_the_session(team):
    session = sessions.login(team, "amy", PASSWORD)
    sessions.logout(team, session.token)
    with pytest.raises(AuthenticationFailed, match="session has ended"):
        sessions.check_session(team, session.token)
    other = sessions.login(team, "al", PASSWORD)
    users.set_active(team, "ada", "al", False, team.get_user("al").version)
    with pytest.raises(AuthenticationFailed, match="deactivated"):
        sessions.check_session(team, other.token)
    with pytest.raises(AuthenticationFailed):
        sessions.check_session(team, "made-up-token")


# ------------------------------------------------------------------------------------------ the warning, the cookie, the password


def test_the_attempt_before_the_lockout_warns_for_known_and_unknown_names_alike(team):
    for name in ("amy", "nobody"):
        for _ in range(3):
            with pytest.raises(AuthenticationFailed, match="^wrong username or password$"):
                sessions.login(team, name, "bad password!")
        with pytest.raises(AuthenticationFailed, match=f"One more wrong password locks '{name}' for 15 minutes"):
            sessions.login(team, name, "bad password!")
        with pytest.raises(AuthenticationFailed, match="locked for 15 minutes"):
            sessions.login(team, name, "bad password!")


def test_a_sign_in_ticket_buys_one_signed_cookie_for_the_same_session(team):
    clock = Clock()
    session = sessions.login(team, "amy", PASSWORD, clock=clock)
    assert session.ticket and session.ticket != session.token
    cookie = sessions.redeem_ticket(team, session.ticket, clock=clock)
    assert session.token not in cookie  # the page's token never reaches the browser
    with pytest.raises(AuthenticationFailed, match="used or expired"):
        sessions.redeem_ticket(team, session.ticket, clock=clock)  # once
    token = sessions.token_from_cookie(team, cookie)
    assert sessions.check_session(team, token, clock=clock).username == "amy"
    forged = cookie[:-1] + ("0" if cookie[-1] != "0" else "1")
    assert sessions.token_from_cookie(team, forged) is None and sessions.token_from_cookie(team, "no-dot") is None
    rows = list(team.db["sessions"].rows)
    assert len(rows) == 1 and all(token not in str(r) and session.ticket not in str(r) for r in rows)  # only hashes
    sessions.logout(team, token)  # signing out from the cookie ends the page's session too: one session
    with pytest.raises(AuthenticationFailed, match="session has ended"):
        sessions.check_session(team, session.token, clock=clock)


def test_a_ticket_expires_after_a_minute(team):
    clock = Clock()
    session = sessions.login(team, "amy", PASSWORD, clock=clock)
    clock.now += sessions.TICKET_LIFETIME + timedelta(seconds=1)
    with pytest.raises(AuthenticationFailed, match="used or expired"):
        sessions.redeem_ticket(team, session.ticket, clock=clock)


def test_the_cookie_obeys_the_same_timeouts(team):
    clock = Clock()
    session = sessions.login(team, "amy", PASSWORD, clock=clock)
    token = sessions.token_from_cookie(team, sessions.redeem_ticket(team, session.ticket, clock=clock))
    clock.now += timedelta(minutes=31)
    with pytest.raises(AuthenticationFailed, match="idle"):
        sessions.check_session(team, token, clock=clock)


def test_changing_your_own_password_needs_the_current_one_and_ends_your_other_sessions(team):
    here, elsewhere = sessions.login(team, "amy", PASSWORD), sessions.login(team, "amy", PASSWORD)
    with pytest.raises(AuthenticationFailed, match="current password is not right, so nothing was changed"):
        sessions.change_password(team, here.token, "a wrong one", "a brand new password")
    with pytest.raises(InvalidInput, match="differ"):
        sessions.change_password(team, here.token, PASSWORD, "a brand new password", confirm="something else")
    with pytest.raises(InvalidInput, match="at least 10"):
        sessions.change_password(team, here.token, PASSWORD, "short")
    sessions.change_password(team, here.token, PASSWORD, "a brand new password", confirm="a brand new password")
    assert sessions.check_session(team, here.token).username == "amy"
    with pytest.raises(AuthenticationFailed, match="session has ended"):
        sessions.check_session(team, elsewhere.token)
    with pytest.raises(AuthenticationFailed, match="wrong username or password"):
        sessions.login(team, "amy", PASSWORD)
    assert sessions.login(team, "amy", "a brand new password").user.username == "amy"


def test_an_admin_reset_signs_the_user_out_everywhere(team):
    session = sessions.login(team, "amy", PASSWORD)
    users.set_password(team, "ada", "amy", "reset by the admin")
    with pytest.raises(AuthenticationFailed, match="session has ended"):
        sessions.check_session(team, session.token)
