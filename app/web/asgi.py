"""The server `goldsmith serve` runs: Streamlit's own (st.App, on Starlette) plus Goldsmith's session route.

Streamlit 1.67 gives a page the browser's cookies read-only (st.context.cookies) and no way to
set one; st.login signs people in only through an OpenID provider. Its supported way to add an
HTTP handler is st.App's `routes`, so the HttpOnly cookie is set here:

- POST /_goldsmith/session {"ticket": ...}: a page that just signed someone in hands the browser a
  one-time ticket (curation.people.sessions); trading it here sets the signed session cookie
  (HttpOnly, SameSite=Lax, Secure over https, 12 hours at most: the session's own limit).
- DELETE /_goldsmith/session: ends the session the cookie names and clears the cookie (Sign out).

Both answer only same-origin requests (the Origin header must name this host), so another site
cannot sign a browser in or out. The handler parses, calls one service function, and answers.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import streamlit as st
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from streamlit.runtime.pages_manager import PagesManager

from app import ui
from curation.errors import AuthenticationFailed
from curation.people import sessions
from curation.similarity import live
from curation.store import Store

MAIN = ui.PAGES.parent / "main.py"  # app/main.py, the router

# app/main.py declares every page with st.navigation. Streamlit decides once per process, at the
# first session, whether the folder beside the main script (app/pages/) is an old-style pages
# directory; when that first visit opens /review or /browse directly, it would run the page
# without the router, for every session after it (no role-filtered navigation, no deep link).
# Deciding it here, before any session, keeps every run on the router.
PagesManager.uses_pages_directory = False


def _same_origin(request: Request) -> bool:
    origin, host = request.headers.get("origin"), request.headers.get("host")
    return bool(origin and host) and urlsplit(origin).netloc == host


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def _cookie_for(ticket: str) -> str:
    store = Store(ui.db_path())
    try:
        return sessions.redeem_ticket(store, ticket)
    finally:
        store.close()


def _sign_out(cookie: str | None) -> None:
    store = Store(ui.db_path())
    try:
        sessions.logout(store, sessions.token_from_cookie(store, cookie))
    finally:
        store.close()


async def session_route(request: Request) -> Response:
    """POST: trade a sign-in ticket for the session cookie. DELETE: end the cookie's session and clear it."""
    if not _same_origin(request):
        return JSONResponse({"error": "cross-site requests cannot sign in or out"}, status_code=403)
    if request.method == "DELETE":
        await run_in_threadpool(_sign_out, request.cookies.get(sessions.COOKIE_NAME))
        response = Response(status_code=204)
        response.delete_cookie(sessions.COOKIE_NAME, path="/", secure=_secure(request), httponly=True, samesite="lax")
        return response
    try:
        body = await request.json()
        value = await run_in_threadpool(_cookie_for, str(body.get("ticket", "")) if isinstance(body, dict) else "")
    except (ValueError, AuthenticationFailed) as error:
        return JSONResponse({"error": str(error)}, status_code=401)
    response = Response(status_code=204)
    response.set_cookie(
        sessions.COOKIE_NAME,
        value,
        max_age=int(sessions.ABSOLUTE_TIMEOUT.total_seconds()),
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )
    return response


app = st.App(str(MAIN), routes=[Route(ui.SESSION_ROUTE, session_route, methods=["POST", "DELETE"])])
if ui.db_path().exists():  # the first save after a start does not wait for the duplicate index to load
    live.warm_up(ui.db_path())
