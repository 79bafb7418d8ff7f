"""Sign in: username and password against the store (argon2id), with a lockout after repeated failures.

Signing in lands on the page a link or a reload pointed to (`/browse?id=175`), else the role's first page.
"""

from __future__ import annotations

import streamlit as st

from app import ui
from curation.people import sessions

signed_in = ui.current_user()
if signed_in is not None:  # already signed in (just now, or by the browser's cookie): go where the visitor was going
    target, query = ui.landing_page(signed_in)
    st.switch_page(target, query_params=query or None)

ui.clear_cookie_after_sign_out()
st.title("Goldsmith")
st.caption("Curate supervised fine-tuning data: write, review, snapshot.")
message = st.session_state.pop("login_message", None)
if message:
    st.info(ui._sentence(message), icon=":material/lock_clock:")

with st.form("login", border=True, width=420):
    username = st.text_input("Username", autocomplete="username")
    password = st.text_input("Password", type="password", autocomplete="current-password")
    submitted = st.form_submit_button("Sign in", type="primary", icon=":material/login:")

if submitted:
    session = ui.attempt(lambda: sessions.login(ui.store(), username, password))
    if session is not None:
        st.session_state["token"] = session.token
        st.session_state["cookie_ticket"] = session.ticket  # traded for the browser's cookie on the next page
        target, query = ui.landing_page(session.user)  # straight there: no extra run of this page
        st.switch_page(target, query_params=query or None)
st.caption(
    f"After {sessions.MAX_FAILURES} wrong passwords in a row an account is locked for "
    f"{sessions.LOCKOUT.seconds // 60} minutes. Sessions end after {sessions.IDLE_TIMEOUT.seconds // 60} idle minutes "
    f"and after {sessions.ABSOLUTE_TIMEOUT.seconds // 3600} hours; a reload or a second tab stays signed in until then."
)
