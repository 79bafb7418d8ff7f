"""Driving the Streamlit app through AppTest in tests: sign in, open a page, read what it shows."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from conftest import PASSWORD, ROOT
from curation.people import sessions

MAIN = str(ROOT / "app" / "main.py")


# The first page in a test session that embeds text (the Write page's checks, the coverage map)
# builds the int8 MiniLM model once, which takes 20-40 s on an idle 2-core machine and longer on
# a busy one: the timeout leaves room for that, and a page that hangs still fails.
TIMEOUT_S = 240


def app(store, username: str | None, page: str | None = None, timeout: float = TIMEOUT_S) -> AppTest:
    """Run the app signed in as `username` (None: signed out), on `page` when given."""
    at = AppTest.from_file(MAIN, default_timeout=timeout)
    if username:
        at.session_state["token"] = sessions.login(store, username, PASSWORD).token
    if page:
        at.switch_page(page)
    return at.run()


def one(elements, label: str):
    found = [e for e in elements if e.label == label]
    assert found, f"no element labelled {label!r}; have {[e.label for e in elements]}"
    return found[0]


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "text", "title", "subheader") for e in getattr(at, kind)]
    parts += [str(e.value) for kind in ("error", "warning", "info", "success") for e in getattr(at, kind)]
    return "\n".join(map(str, parts))


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
