"""What every page of the app shares: the store of this browser session, the signed-in user,
safe rendering of user text, and errors shown as sentences.

Streamlit runs each browser session's reruns on its own thread, so each session opens its own
Store (held in st.session_state); nothing opens one shared sqlite connection for everybody.
"""

from __future__ import annotations

import html
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st
from pydantic import ValidationError

from curation.errors import AuthenticationFailed, Conflict, GoldsmithError, explain
from curation.people import sessions
from curation.people.permissions import can
from curation.store import Store
from schemas import Example, User

T = TypeVar("T")
DB_ENV = "GOLDSMITH_DB"
PAGES = Path(__file__).resolve().parent / "pages"
NAV = [  # (file, title, icon, url path, the action a user needs to see it; None: everyone signed in)
    ("pages/write.py", "Write", ":material/edit_note:", "write", "create_example"),
    ("pages/review.py", "Review", ":material/fact_check:", "review", "review_example"),
    ("pages/browse.py", "Browse", ":material/search:", "browse", None),
    ("pages/dashboard.py", "Dashboard", ":material/monitoring:", "dashboard", None),
    ("pages/snapshots.py", "Snapshots", ":material/inventory_2:", "snapshots", "create_snapshot"),
    ("pages/training.py", "Training", ":material/model_training:", "training", "launch_training"),
    ("pages/compare.py", "Compare", ":material/compare:", "compare", "judge_models"),
    ("pages/playground.py", "Playground", ":material/chat:", "playground", "use_playground"),
    ("pages/production.py", "Production", ":material/insights:", "production", "manage_coverage"),
    ("pages/admin.py", "Admin", ":material/admin_panel_settings:", "admin", "manage_users"),
]
ROLE_ICONS = {"system": ":material/settings:", "user": ":material/person:", "assistant": ":material/support_agent:"}


def db_path() -> Path:
    return Path(os.environ.get(DB_ENV, "goldsmith.db")).resolve()


def store() -> Store:
    """This browser session's store (opened on first use, reopened if GOLDSMITH_DB changes)."""
    path = db_path()
    held = st.session_state.get("_store")
    if held is None or held.path != path:
        if not path.exists():
            st.error(f"No Goldsmith database at {path}. Start the app with `goldsmith serve --db PATH` on an existing store.")
            st.stop()
        held = Store(path)
        st.session_state["_store"] = held
    return held


def current_user() -> User | None:
    """The signed-in user, checked against the store on every page load (idle and absolute timeouts)."""
    token = st.session_state.get("token")
    if not token:
        return None
    try:
        return sessions.check_session(store(), token)
    except AuthenticationFailed as error:
        st.session_state.pop("token", None)
        st.session_state["login_message"] = str(error)
        return None


def require_user(action: str | None = None) -> User:
    """The signed-in user (who may do `action`); a signed-out visitor is sent to the sign-in page.

    The router hides pages a role cannot use; this check also covers a typed-in address.
    """
    user = current_user()
    if user is None:
        st.switch_page("pages/login.py")
    if action is not None and not can(user, action):
        st.error(f"{user.username} is {'an' if user.role[0] in 'aeiou' else 'a'} {user.role}; this page is not for that role.")
        st.stop()
    with st.sidebar:  # drawn by each page (widgets of the router script do not keep their state across pages)
        st.caption(f"Signed in as `{user.username}` ({user.role})")
        if st.button("Sign out", icon=":material/logout:", key="sign_out"):
            sign_out()
            st.rerun()
    return user


def home_page(user: User) -> str:
    """The first page the user's role may use (where signing in lands)."""
    return next(f for f, _, _, _, action in NAV if action is None or can(user, action))


def sign_out() -> None:
    sessions.logout(store(), st.session_state.pop("token", None))
    for key in list(st.session_state):
        if key != "_store":
            del st.session_state[key]


# ------------------------------------------------------------------------------------------ errors


def show_error(error: Exception) -> None:
    """A user-caused error as one sentence (with the fix); never a traceback."""
    if isinstance(error, Conflict):
        st.error(f"Not saved: {error}", icon=":material/sync_problem:")
    elif isinstance(error, GoldsmithError):
        st.error(_sentence(str(error)), icon=":material/error:")
    elif isinstance(error, ValidationError):
        st.error(_sentence(explain(error)), icon=":material/error:")
    else:
        raise error


def attempt(action: Callable[..., T]) -> T | None:
    """Call `action` (with no arguments); on a user-caused error show it and return None."""
    try:
        return action()
    except (GoldsmithError, ValidationError) as error:
        show_error(error)
        return None


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


# ------------------------------------------------------------------------------------------ safe text

_SCHEMES = r"(?:javascript|vbscript|data|file)\s*(?::|&amp;(?:#0*58|#x0*3a|colon);)"  # also &#58; (escaped already)
# A Markdown link target ([x](target), <target>, or a reference [x]: target) that names a script-capable scheme.
_UNSAFE_TARGET = re.compile(rf"(?im)(\]\(\s*<?\s*|^\s{{0,3}}\[[^\]]*\]:\s*<?\s*)(?={_SCHEMES})")
_SCRIPT_SCHEME = re.compile(r"(?i)\b(javascript|vbscript)(\s*):")


def safe_markdown_text(text: str) -> str:
    """User Markdown made inert: HTML escaped (shown as text), script-capable link targets defused.

    Streamlit already refuses raw HTML without unsafe_allow_html; this is the second wall, and
    it also covers Markdown links such as [x](javascript:alert(1)), which become in-page anchors.
    """
    text = html.escape(text, quote=False)  # <script> becomes visible text; &#58; cannot spell a scheme
    text = _UNSAFE_TARGET.sub(r"\1#unsafe-link-", text)
    return _SCRIPT_SCHEME.sub(lambda m: f"{m.group(1)}\u200b{m.group(2)}:", text)


def markdown(text: str, *, small_headings: bool = False) -> None:
    """Render user-written Markdown safely (headings shrunk to level 4 in narrow side panels)."""
    text = safe_markdown_text(text)
    if small_headings:
        text = re.sub(r"(?m)^#{1,3}(?=\s)", "####", text)
    st.markdown(text)


def conversation(example: Example | Any) -> None:
    """An example's turns as chat bubbles, each rendered as safe Markdown."""
    for m in example.messages:
        with st.chat_message(m.role, avatar=ROLE_ICONS.get(m.role)):
            st.caption(m.role)
            markdown(m.content)


def tags_line(example: Example) -> str:
    t = example.tags
    parts = [f"{k}: {v}" for k, v in (("category", t.category), ("type", t.response_type), ("area", t.knowledge_area)) if v]
    if t.labels:
        parts.append("labels: " + ", ".join(t.labels))
    return " · ".join(parts) or "untagged"


# ------------------------------------------------------------------------------------------ forms


def remembered_select(label: str, options: list[Any], key: str, format_func: Callable[[Any], str] = str) -> Any:
    """A selectbox that opens on the option in st.session_state[key] (set by a page after creating one) and keeps the choice."""
    opened = st.session_state.get(key)
    chosen = st.selectbox(label, options, index=options.index(opened) if opened in options else 0, format_func=format_func)
    st.session_state[key] = chosen
    return chosen


def form_token(name: str) -> str:
    """A per-form token: the form's key changes after a successful submit, so a double click on the
    old button is dropped instead of creating a second row."""
    key = f"_form_token_{name}"
    if key not in st.session_state:
        st.session_state[key] = secrets.token_hex(4)
    return st.session_state[key]


def renew_form_token(name: str) -> None:
    st.session_state[f"_form_token_{name}"] = secrets.token_hex(4)


def link_to_example(example_id: int, label: str | None = None) -> None:
    """A link to an example on the Browse page (in-app navigation: the session is kept)."""
    st.page_link("pages/browse.py", label=label or f"Example {example_id}", query_params={"id": str(example_id)})
