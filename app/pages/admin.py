"""Admin: users and roles, the taxonomy and its targets, the guidelines, and the review overlap."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import ui
from curation.examples import review_queue
from curation.examples.taxonomy import get_guidelines, get_taxonomy, set_guidelines, set_taxonomy
from curation.people import users
from schemas import ROLES

user = ui.require_user("manage_users")
store = ui.store()

st.title("Admin")
flash = st.session_state.pop("admin_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")
secret = st.session_state.pop("admin_secret", None)
if secret:
    st.warning(f"Password for {secret[0]} (shown once; it is not stored): `{secret[1]}`", icon=":material/key:")


def done(message: str) -> None:
    st.session_state["admin_flash"] = message
    st.rerun()


# Stateful tabs: a save reruns the page on the same tab (its errors show where the admin is looking),
# and only the open tab's content runs.
people_tab, taxonomy_tab, guidelines_tab = st.tabs(
    ["Users and roles", "Taxonomy and targets", "Guidelines and review"], key="admin_tab", on_change="rerun"
)


def _people() -> None:
    people = store.list_users()
    st.dataframe(
        [
            {
                "username": u.username,
                "name": u.display_name,
                "role": u.role,
                "active": u.active,
                "since": f"{u.created_at:%Y-%m-%d}",
            }
            for u in people
        ],
        hide_index=True,
    )
    add, change = st.columns(2, gap="large")
    with add, st.form(f"add-user-{ui.form_token('add_user')}"):
        st.markdown("**Add a user**")
        username = st.text_input("Username")
        display = st.text_input("Display name")
        role = st.selectbox("Role", ROLES)
        password = st.text_input("Password (leave empty to generate one)", type="password")
        if st.form_submit_button("Add user", type="primary"):
            added = ui.attempt(
                lambda: users.add_user(store, user.username, username, role, display_name=display, password=password or None)
            )
            if added:
                ui.renew_form_token("add_user")
                if added.generated_password:
                    st.session_state["admin_secret"] = (added.user.username, added.generated_password)
                done(f"Added {added.user.username} as {added.user.role}.")
    with change:
        names = [u.username for u in people]
        target_name = st.selectbox("User", names, key="admin_target")
        target = next(u for u in people if u.username == target_name)
        with st.form(f"role-{target.username}-{target.version}"):
            new_role = st.selectbox("Role", ROLES, index=ROLES.index(target.role))
            if st.form_submit_button("Change role"):
                changed = ui.attempt(lambda: users.set_role(store, user.username, target.username, new_role, target.version))
                if changed is not None:
                    done(f"{target.username} is now {new_role}.")
        label = "Deactivate" if target.active else "Reactivate"
        if st.button(f"{label} {target.username}", key=f"active-{target.username}-{target.version}"):
            changed = ui.attempt(
                lambda: users.set_active(store, user.username, target.username, not target.active, target.version)
            )
            if changed is not None:
                done(f"{target.username} {'deactivated' if target.active else 'reactivated'}.")
        with st.form(f"password-{target.username}-{target.version}"):
            new_password = st.text_input("New password", type="password")
            if st.form_submit_button("Set password"):
                changed = ui.attempt(lambda: users.set_password(store, user.username, target.username, new_password))
                if changed is not None:
                    done(f"Password of {target.username} changed.")


def _taxonomy() -> None:
    taxonomy, version = get_taxonomy(store)
    st.caption(f"Version {version}. One value per line; an empty list leaves that tag free.")
    with st.form(f"taxonomy-{version}"):
        c1, c2, c3 = st.columns(3)
        categories = c1.text_area("Categories", "\n".join(taxonomy.categories), height=180)
        response_types = c2.text_area("Response types", "\n".join(taxonomy.response_types), height=180)
        areas = c3.text_area("Knowledge areas", "\n".join(taxonomy.knowledge_areas), height=180)
        st.markdown("**Targets** (approved examples wanted per category and response type)")
        targets = st.data_editor(
            pd.DataFrame(
                [t.model_dump() for t in taxonomy.targets] or [], columns=["category", "response_type", "target"]
            ).astype({"target": "Int64"}),
            num_rows="dynamic",
            hide_index=True,
            key=f"targets-{version}",
        )
        if st.form_submit_button("Save taxonomy", type="primary"):

            def lines(text: str) -> list[str]:
                return [v.strip() for v in text.splitlines() if v.strip()]

            rows = [
                {
                    "category": str(r["category"]).strip(),
                    "response_type": str(r["response_type"]).strip(),
                    "target": int(r["target"]),
                }
                for r in targets.to_dict("records")
                if pd.notna(r.get("category")) and pd.notna(r.get("response_type")) and pd.notna(r.get("target"))
            ]
            value = {
                "categories": lines(categories),
                "response_types": lines(response_types),
                "knowledge_areas": lines(areas),
                "targets": rows,
            }
            saved = ui.attempt(lambda: set_taxonomy(store, user.username, value, version))
            if saved:
                done(f"Taxonomy saved (version {saved}).")


def _guidelines() -> None:
    text, g_version = get_guidelines(store)
    key = f"guidelines-{g_version}"
    edit, preview = st.columns(2, gap="large")
    with edit:
        new_text = st.text_area("Guidelines (Markdown)", text, height=420, key=key)
        if st.button("Save guidelines", type="primary", key=f"save-{key}"):
            saved = ui.attempt(lambda: set_guidelines(store, user.username, new_text, g_version))
            if saved:
                done(f"Guidelines saved (version {saved}).")
    with preview:
        st.markdown("**Preview of your edit**" + (" (not saved yet)" if new_text != text else ""))
        with st.container(height=420, border=True):
            ui.markdown(new_text, small_headings=True)
    share = review_queue.overlap_share(store)
    with st.form(f"overlap-{share}"):
        picked = st.slider(
            "Share of examples that get two independent reviews", 0.0, 1.0, share, 0.05, help="0.2 sends one example in five."
        )
        if (
            st.form_submit_button("Save review overlap")
            and ui.attempt(lambda: review_queue.set_overlap_share(store, user.username, picked)) is not None
        ):
            done(f"{picked:.0%} of examples now get two reviews.")


for tab, draw in ((people_tab, _people), (taxonomy_tab, _taxonomy), (guidelines_tab, _guidelines)):
    with tab:
        if tab.open is not False:
            draw()
