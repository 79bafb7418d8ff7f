"""What every page of the app shares: the store of this browser session, the signed-in user,
safe rendering of user text, and errors shown as sentences.

Streamlit runs each browser session's reruns on its own thread, so each session opens its own
Store (held in st.session_state); nothing opens one shared sqlite connection for everybody.

Signing in: the tab that signs in keeps its session token in st.session_state (on the server);
the browser gets an HttpOnly cookie for the same session from the app's own route (app/web/asgi.py),
asked for by a small script (`_cookie_script`) with a one-time ticket, so a reload or a second
tab finds the session in st.context.cookies. Every page load checks the session on the server.
"""

from __future__ import annotations

import html
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import streamlit as st
from pydantic import ValidationError

from curation.errors import AuthenticationFailed, Conflict, GoldsmithError, explain
from curation.people import sessions
from curation.people.permissions import can
from curation.store import Store
from schemas import DraftCheck, Example, TextDiff, User, one_line, plain

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
SESSION_ROUTE = "/_goldsmith/session"  # app/web/asgi.py: trades a sign-in ticket for the cookie (POST), clears it (DELETE)
# Trusted script (no user text reaches it): asks the app's route to set or clear the HttpOnly session
# cookie, once per ticket. The browser keeps the cookie; the script never sees it. It reports nothing
# back: a report would cost the page one more run, and the next step checks the session anyway.
_COOKIE_JS = """
export default function(component) {
  const { data } = component;
  if (!data || !data.action) return;
  window.__goldsmithCookie = window.__goldsmithCookie || new Set();
  if (window.__goldsmithCookie.has(data.nonce)) return;
  window.__goldsmithCookie.add(data.nonce);
  const init = data.action === "set"
    ? { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ticket: data.ticket }) }
    : { method: "DELETE" };
  fetch(data.route, { ...init, credentials: "same-origin" }).catch(() => {});
}
"""
_cookie_script = st.components.v2.component("goldsmith_session_cookie", js=_COOKIE_JS)
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


def session_token() -> str | None:
    """This tab's session token: the one it signed in with, else the browser's signed cookie (a reload, a second tab)."""
    token = st.session_state.get("token")
    if token:
        return token
    cookie = st.context.cookies.get(sessions.COOKIE_NAME)
    if not cookie or cookie == st.session_state.get("_dead_cookie"):
        return None
    return sessions.token_from_cookie(store(), cookie)


def current_user() -> User | None:
    """The signed-in user, checked against the store on every page load (idle and absolute timeouts)."""
    token = session_token()
    if not token:
        return None
    try:
        return sessions.check_session(store(), token)
    except AuthenticationFailed as error:
        st.session_state.pop("token", None)
        # the cookie this tab connected with stays in st.context: never try it again here
        st.session_state["_dead_cookie"] = st.context.cookies.get(sessions.COOKIE_NAME)
        st.session_state["login_message"] = str(error)
        return None


def require_user(action: str | None = None) -> User:
    """The signed-in user (who may do `action`); a signed-out visitor is sent to the sign-in page.

    The router hides pages a role cannot use; this check also covers a typed-in address.
    """
    user = current_user()
    if user is None:
        remember_destination()  # signing in lands here again
        st.switch_page("pages/login.py")
    if action is not None and not can(user, action):
        st.error(f"{user.username} is {'an' if user.role[0] in 'aeiou' else 'a'} {user.role}; this page is not for that role.")
        st.stop()
    with st.sidebar:  # drawn by each page (widgets of the router script do not keep their state across pages)
        st.caption(f"Signed in as `{user.username}` ({user.role})")
        st.page_link("pages/account.py", label="Your account", icon=":material/manage_accounts:")
        if st.button("Sign out", icon=":material/logout:", key="sign_out"):
            sign_out()
            st.switch_page("pages/login.py")  # not this page again: signing in next lands on the role's first page
        ticket = st.session_state.get("cookie_ticket")
        if ticket:  # just signed in: the browser fetches its cookie, so a reload or a new tab stays signed in
            _cookie_once("cookie_ticket", {"action": "set", "ticket": ticket, "nonce": ticket[:8]})
    return user


def _cookie_once(key: str, data: dict[str, str]) -> None:
    """Mount the cookie script for st.session_state[key]; the run after the one that mounted it drops the key
    (the script fetched on mounting, and its nonce keeps it from fetching twice)."""
    value = st.session_state[key]
    if st.session_state.get(f"{key}_mounted") == value:
        del st.session_state[key], st.session_state[f"{key}_mounted"]
        return
    _cookie_script(data={**data, "route": SESSION_ROUTE}, key=f"{key}_script")
    st.session_state[f"{key}_mounted"] = value


def landing_page(user: User) -> tuple[str, dict[str, str]]:
    """Where signing in lands: the page a link or a reload pointed to (when the role may use it), else the first one."""
    target = st.session_state.pop("after_login", None)
    if target:
        for file, _, _, url_path, action in NAV:
            if url_path == target["page"] and (action is None or can(user, action)):
                return file, target["query"]
    return home_page(user), {}


def remember_destination() -> None:
    """Note where a signed-out visitor was going (`/browse?id=175`: this page and its query), for after they sign in."""
    url_path = urlsplit(st.context.url or "").path.rstrip("/").rsplit("/", 1)[-1]
    if url_path and url_path != "login":
        st.session_state["after_login"] = {"page": url_path, "query": st.query_params.to_dict()}


def clear_cookie_after_sign_out() -> None:
    """On the sign-in page after *Sign out*: the browser drops its cookie (the session already ended on the server)."""
    if st.session_state.get("_clear_cookie"):
        _cookie_once("_clear_cookie", {"action": "clear", "nonce": st.session_state["_clear_cookie"]})


def home_page(user: User) -> str:
    """The first page the user's role may use (where signing in lands)."""
    return next(f for f, _, _, _, action in NAV if action is None or can(user, action))


def sign_out() -> None:
    """End this session on the server (every tab holding it is signed out at its next step) and drop the cookie."""
    sessions.logout(store(), session_token())
    for key in list(st.session_state):
        if key != "_store":
            del st.session_state[key]
    st.session_state["_dead_cookie"] = st.context.cookies.get(sessions.COOKIE_NAME)
    st.session_state["_clear_cookie"] = secrets.token_hex(4)


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


_MUTED = "<style>[class*='st-key-gs_unlearned_'] [data-testid='stMarkdownContainer']{opacity:.55}</style>"


def conversation(example: Example | Any) -> None:
    """An example's turns as chat bubbles, each rendered as safe Markdown: a user turn's context passage
    apart from its question, and an answer the model does not learn (weight 0) muted and marked."""
    if any(m.weight == 0 for m in example.messages):
        st.html(_MUTED)
    for i, m in enumerate(example.messages):
        with st.chat_message(m.role, avatar=ROLE_ICONS.get(m.role)):
            if m.weight == 0:
                st.caption(f"{m.role} · not learned (weight 0): the model reads this answer but is not trained on it")
                with st.container(key=f"gs_unlearned_{secrets.token_hex(4)}_{i}"):
                    markdown(m.content)
                continue
            st.caption(m.role)
            markdown(m.content)
            if m.context is not None:
                with st.container(border=True):
                    st.caption("Context passage (given with the question)")
                    markdown(m.context)


_DIFF_STYLE = (
    ".gs-diff{font-size:.95rem;line-height:1.55}.gs-diff .gs-turn{margin:0 0 .7rem}"
    ".gs-diff .gs-label{font-weight:600;font-size:.8rem;color:#52525b}"
    ".gs-diff .gs-text{white-space:pre-wrap;overflow-wrap:anywhere;margin:0}"
    ".gs-diff ins{background:#d3f5dc;color:#0b4a1d;text-decoration:none;border-radius:3px;padding:0 1px}"
    ".gs-diff del{background:#fde1e0;color:#82130f;border-radius:3px;padding:0 1px}"
    ".gs-diff .gs-same-turn{color:#71717a;font-size:.8rem}"
)


def text_diff(diff: TextDiff) -> None:
    """A word-level diff: changed turns with added words in green and removed words struck through in red.

    Every piece of user text is HTML-escaped before it is wrapped in <ins>/<del>, so nothing a user
    wrote is ever markup; the text wraps (long answers change a word at a time, not a line).
    """
    parts = [f"<style>{_DIFF_STYLE}</style><div class='gs-diff'>"]
    parts.append(f"<div class='gs-label'>From {html.escape(diff.before)} to {html.escape(diff.after)}</div>")
    same = [t.label for t in diff.turns if not t.changed]
    for turn in diff.turns:
        if not turn.changed:
            continue
        body = "".join(_segment_html(seg.op, seg.text) for seg in turn.segments)
        parts.append(
            f"<div class='gs-turn'><div class='gs-label'>{html.escape(turn.label)}</div><p class='gs-text'>{body}</p></div>"
        )
    if not diff.changed:
        parts.append("<p class='gs-same-turn'>No changes.</p>")
    elif same:
        parts.append(f"<p class='gs-same-turn'>Unchanged: {html.escape(', '.join(same))}.</p>")
    st.html("".join(parts) + "</div>")


def draft_checks(check: DraftCheck, *, empty: str = "No duplicates, personal data or guideline warnings found.") -> None:
    """What the checks found, the same way on the Write and Review pages: the token count against the limit,
    each warning as a sentence, and the examples it repeats with their questions and links."""
    st.caption(f"About {check.tokens:,} tokens of the model's {check.max_tokens:,}-token limit.")
    for warning in check.warnings:
        st.warning(warning, icon=":material/warning:")
    if check.note:
        st.caption(check.note)
    if check.matches:
        st.warning(
            f"{len(check.matches)} existing example{'s look' if len(check.matches) > 1 else ' looks'} like this one:",
            icon=":material/content_copy:",
        )
        for m in check.matches:
            kind = "word for word" if m.kind == "exact" else f"{m.kind} match, similarity {m.similarity:.2f}"
            link_to_example(m.example_id, f"Example {m.example_id} · {kind} · {plain(m.status)}")
            st.caption(safe_markdown_text(one_line(m.prompt, 160)))
    elif not check.warnings:
        st.success(empty, icon=":material/check_circle:")


def _segment_html(op: str, text: str) -> str:
    escaped = html.escape(text)
    return escaped if op == "same" else f"<ins>{escaped}</ins>" if op == "added" else f"<del>{escaped}</del>"


def tags_line(example: Example) -> str:
    t = example.tags
    parts = [f"{k}: {v}" for k, v in (("category", t.category), ("type", t.response_type), ("area", t.knowledge_area)) if v]
    if t.labels:
        parts.append("labels: " + ", ".join(t.labels))
    return " · ".join(parts) or "untagged"


# ------------------------------------------------------------------------------------------ forms


@contextmanager
def lazy_expander(label: str, key: str) -> Iterator[bool]:
    """An expander whose content runs only while it is open: Streamlit draws a closed expander's content too,
    so a page of thirty closed expanders with forms cost three times a page without them. Opening one reruns
    the page (or the fragment it sits in); the open state lives in st.session_state[key]."""
    box = st.expander(label, key=key, on_change="rerun")
    with box:
        yield bool(box.open)


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
