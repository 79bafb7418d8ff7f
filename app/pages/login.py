"""Sign in: username and password against the store (argon2id), with a lockout after repeated failures."""

from __future__ import annotations

import streamlit as st

from app import ui
from curation.errors import AuthenticationFailed
from curation.people import sessions

signed_in = ui.current_user()
if signed_in is not None:  # already signed in (e.g. just now): go to the user's first page
    st.switch_page(ui.home_page(signed_in))

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
    try:
        session = sessions.login(ui.store(), username, password)
    except AuthenticationFailed as error:
        ui.show_error(error)
    else:
        st.session_state["token"] = session.token
        st.rerun()
st.caption(
    f"After {sessions.MAX_FAILURES} wrong passwords in a row an account is locked for "
    f"{sessions.LOCKOUT.seconds // 60} minutes. Sessions end after {sessions.IDLE_TIMEOUT.seconds // 60} idle minutes."
)
