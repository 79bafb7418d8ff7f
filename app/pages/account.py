"""Your account: who you are signed in as, and changing your own password (the current one first)."""

from __future__ import annotations

import streamlit as st

from app import ui
from curation.people import sessions
from curation.people.users import MIN_PASSWORD_LENGTH

user = ui.require_user()

st.title("Your account")
name = f" ({ui.safe_markdown_text(user.display_name)})" if user.display_name else ""
st.caption(f"Signed in as `{user.username}`{name} · {user.role}")
flash = st.session_state.pop("account_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")

with st.form(f"password-{ui.form_token('password')}", border=True, width=480):
    st.markdown("**Change your password**")
    current = st.text_input("Current password", type="password", autocomplete="current-password")
    new = st.text_input(f"New password (at least {MIN_PASSWORD_LENGTH} characters)", type="password", autocomplete="new-password")
    again = st.text_input("New password again", type="password", autocomplete="new-password")
    change = st.form_submit_button("Change password", type="primary", icon=":material/key:")

if change:
    token = ui.session_token()
    changed = ui.attempt(lambda: sessions.change_password(ui.store(), token, current, new, confirm=again))
    if changed is not None:
        ui.renew_form_token("password")
        st.session_state["account_flash"] = "Password changed. Your other sessions (other browsers) were signed out."
        st.rerun()
