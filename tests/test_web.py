"""The server's session route (app/web/asgi.py): a sign-in ticket buys the HttpOnly cookie; Sign out clears it.

The route is called as the server calls it (an ASGI request), against a real store; the browser test
drives the same route through chromium.
"""

from __future__ import annotations

import asyncio
import json
from http.cookies import SimpleCookie

import pytest

from conftest import PASSWORD
from curation.errors import AuthenticationFailed
from curation.people import sessions

HOST = "127.0.0.1:8501"


@pytest.fixture
def route(team, db_path, monkeypatch):
    monkeypatch.setenv("GOLDSMITH_DB", str(db_path))
    from app.web import asgi

    return asgi.session_route


def call(route, method: str, *, body: dict | None = None, origin: str | None = f"http://{HOST}", cookie: str | None = None):
    from starlette.requests import Request

    headers = [(b"host", HOST.encode()), (b"content-type", b"application/json")]
    if origin:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", f"{sessions.COOKIE_NAME}={cookie}".encode()))
    payload = json.dumps(body or {}).encode()

    async def receive() -> dict:
        return {"type": "http.request", "body": payload, "more_body": False}

    scope = {
        "type": "http",
        "method": method,
        "path": "/_goldsmith/session",
        "headers": headers,
        "scheme": "http",
        "server": ("127.0.0.1", 8501),
        "query_string": b"",
    }
    return asyncio.run(route(Request(scope, receive)))


def set_cookie(response) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(response.headers["set-cookie"])
    return cookie


def test_a_ticket_buys_a_signed_httponly_lax_cookie_once(team, route):
    session = sessions.login(team, "amy", PASSWORD)
    response = call(route, "POST", body={"ticket": session.ticket})
    assert response.status_code == 204
    morsel = set_cookie(response)[sessions.COOKIE_NAME]
    assert morsel["httponly"] and morsel["samesite"] == "lax" and morsel["path"] == "/" and not morsel["secure"]
    assert int(morsel["max-age"]) == 12 * 3600
    token = sessions.token_from_cookie(team, morsel.value)
    assert sessions.check_session(team, token).username == "amy"
    again = call(route, "POST", body={"ticket": session.ticket})
    assert again.status_code == 401 and "set-cookie" not in again.headers


def test_another_site_can_neither_sign_in_nor_out(team, route):
    session = sessions.login(team, "amy", PASSWORD)
    for origin in ("http://evil.example", None):
        refused = call(route, "POST", body={"ticket": session.ticket}, origin=origin)
        assert refused.status_code == 403 and "set-cookie" not in refused.headers
    assert call(route, "POST", body={"ticket": session.ticket}).status_code == 204  # the ticket was not spent


def test_sign_out_clears_the_cookie_and_ends_the_session_everywhere(team, route):
    session = sessions.login(team, "amy", PASSWORD)
    cookie = set_cookie(call(route, "POST", body={"ticket": session.ticket}))[sessions.COOKIE_NAME].value
    refused = call(route, "DELETE", cookie=cookie, origin="http://evil.example")
    assert refused.status_code == 403
    assert sessions.check_session(team, session.token).username == "amy"
    cleared = call(route, "DELETE", cookie=cookie)
    assert cleared.status_code == 204
    morsel = set_cookie(cleared)[sessions.COOKIE_NAME]
    assert morsel.value == "" and int(morsel["max-age"]) == 0
    with pytest.raises(AuthenticationFailed, match="session has ended"):
        sessions.check_session(team, session.token)  # the tab that signed in is signed out too
