"""Goldsmith's Streamlit app: the router. `goldsmith serve` runs it (through app/web/asgi.py).

Signs the user in (curation.people.sessions, checked on every page load: the tab's own session, or
the browser's signed cookie after a reload or in a second tab) and shows only the pages the user's
role may use (curation.people.permissions.can). Each page is one module in app/pages/. A signed-out
visitor's address (`/browse?id=175`) is remembered by the page (ui.require_user), and signing in lands there.
"""

from __future__ import annotations

import streamlit as st

from app import ui
from curation.people.permissions import can

st.set_page_config(page_title="Goldsmith", page_icon=":material/diamond:", layout="wide")

MODELS = {"training", "compare", "playground", "production"}
MANAGE = {"snapshots", "admin"}

user = ui.current_user()
if user is None:
    # Only the sign-in page is shown. The others stay registered but hidden, so an address typed
    # for one of them still resolves, and that page sends the signed-out visitor back here.
    login = st.Page("pages/login.py", title="Sign in", icon=":material/login:", url_path="login", default=True)
    hidden = [st.Page(f, title=t, icon=i, url_path=u, visibility="hidden") for f, t, i, u, _ in ui.NAV]
    page = st.navigation([login, *hidden], position="hidden")
else:
    allowed = [(f, t, i, u) for f, t, i, u, action in ui.NAV if action is None or can(user, action)]
    pages = {u: st.Page(f, title=t, icon=i, url_path=u, default=n == 0) for n, (f, t, i, u) in enumerate(allowed)}
    work = [p for u, p in pages.items() if u not in MANAGE | MODELS]
    models = [p for u, p in pages.items() if u in MODELS]
    manage = [p for u, p in pages.items() if u in MANAGE]
    login = st.Page("pages/login.py", title="Sign in", url_path="login", visibility="hidden")
    account = st.Page("pages/account.py", title="Your account", url_path="account", visibility="hidden")
    groups = {"Work": [*work, login, account], "Models": models, "Manage": manage}
    page = st.navigation({name: group for name, group in groups.items() if group})
page.run()
