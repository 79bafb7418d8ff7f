"""Browse: full-text search with filters and server-side pagination; a click on a row opens that example
with its reviews and history."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial

import streamlit as st

from app import ui
from curation.examples.review_queue import reviews_of
from curation.examples.taxonomy import get_taxonomy
from curation.people.permissions import can
from schemas import STATUSES, ExampleFilter, one_line, plain
from schemas.review import DECIDED

user = ui.require_user()
store = ui.store()
taxonomy, _ = get_taxonomy(store)

st.title("Browse")

if "id" in st.query_params:  # a link from another page (a duplicate match, a cluster): open it once
    if st.query_params["id"].isdigit():
        st.session_state["browse_open"] = int(st.query_params["id"])
    del st.query_params["id"]


def _select(label: str, options: tuple[str, ...] | list[str], key: str, words: Callable[[str], str] = str) -> str | None:
    picked = st.selectbox(label, ["(any)", *options], key=key, format_func=lambda v: v if v == "(any)" else words(v))
    return None if picked == "(any)" else picked


with st.container(border=True):
    query = st.text_input("Search prompts and responses", key="browse_q", placeholder="e.g. hail roof")
    c1, c2, c3, c4, c5 = st.columns(5)
    with c1:
        status = _select("Status", STATUSES, "browse_status", plain)
    with c2:
        author = _select("Author", [u.username for u in store.list_users()], "browse_author")
    with c3:
        category = _select("Category", taxonomy.categories, "browse_cat")
    with c4:
        response_type = _select("Response type", taxonomy.response_types, "browse_rt")
    with c5:
        area = _select("Knowledge area", taxonomy.knowledge_areas, "browse_ka")
    c6, c9, c10, c7, c8 = st.columns([2, 1, 1, 1, 1])
    label = c6.text_input("Label", key="browse_label") or None
    created_from = c9.date_input("Written from", value=None, key="browse_from")
    created_to = c10.date_input("Written until", value=None, key="browse_to")
    page_size = c7.selectbox("Per page", [25, 50, 100, 200], index=1, key="browse_size")
    page_no = c8.number_input("Page", min_value=1, value=1, step=1, key="browse_page")

flt = ui.attempt(
    lambda: ExampleFilter(
        query=query or None,
        status=status,
        author=author,
        category=category,
        response_type=response_type,
        knowledge_area=area,
        label=label,
        created_from=created_from,
        created_to=created_to,
        page=int(page_no),
        page_size=page_size,
    )
)
page = ui.attempt(partial(store.list_examples, flt)) if flt is not None else None
if page:
    if page.page > page.pages and page.total:
        st.warning(f"Page {page.page} is past the end; there are {page.pages} pages. Pick a lower page number.")
    st.caption(f"{page.total:,} examples · page {page.page} of {page.pages:,}")
    rows = [
        {
            "id": e.id,
            "status": plain(e.status),
            "author": e.author,
            "category": e.tags.category or "",
            "type": e.tags.response_type or "",
            "prompt": one_line(e.prompt, 100),
            "updated": e.updated_at.strftime("%Y-%m-%d %H:%M"),
        }
        for e in page.items
    ]
    # A click on any cell opens its example (the row's checkbox still works too).
    picked = st.dataframe(
        rows, hide_index=True, on_select="rerun", selection_mode=["single-row", "single-cell"], key="browse_table"
    )
    selection = picked.selection if picked and hasattr(picked, "selection") else None
    chosen = (selection.rows or [cell[0] for cell in selection.cells]) if selection else []
    if chosen and chosen[0] < len(rows) and rows[chosen[0]]["id"] != st.session_state.get("browse_shown_pick"):
        st.session_state["browse_open"] = st.session_state["browse_shown_pick"] = rows[chosen[0]]["id"]

st.number_input(
    "Open example by id",
    min_value=0,
    value=0,
    step=1,
    key="browse_id",
    help="0 closes it.",
    on_change=lambda: st.session_state.update(browse_open=int(st.session_state["browse_id"]) or None),
)
opened: int | None = st.session_state.get("browse_open")
if opened:
    example = ui.attempt(partial(store.get_example, opened))
    if example:
        st.divider()
        st.subheader(f"Example {example.id}")
        st.caption(
            f"{plain(example.status)} · version {example.version} · by {example.author} · {ui.tags_line(example)} · "
            f"source {example.source}" + (f" ({example.source_id})" if example.source_id else "")
        )
        if can(user, "edit_example") and (user.role == "lead" or example.author == user.username):
            st.page_link(
                "pages/write.py", label="Edit on the Write page", icon=":material/edit:", query_params={"id": str(example.id)}
            )
        convo, side = st.columns([3, 2], gap="large")
        with convo:
            ui.conversation(example)
        with side:
            st.markdown("**Reviews**")
            reviews = reviews_of(store, example.id)
            if not reviews:
                st.caption("Not reviewed yet.")
            for r in reviews:
                scores = f" · {', '.join(f'{k} {v}' for k, v in r.rubric.scores.items())}" if r.rubric else ""
                st.markdown(f"**{r.reviewer}** · version {r.example_version} · {DECIDED[r.decision]}{scores}")
                if r.comment:
                    ui.markdown(r.comment)
            st.markdown("**History**")
            history = store.history("example", example.id)
            st.dataframe(
                [
                    {
                        "when": h.at.strftime("%Y-%m-%d %H:%M:%S"),
                        "who": h.actor,
                        "action": h.action,
                        "changed": ", ".join(sorted((h.after or {}).keys())),
                    }
                    for h in history
                ],
                hide_index=True,
            )
            with st.expander("Before and after of each change"):
                for h in history:
                    st.caption(f"{h.at:%Y-%m-%d %H:%M:%S} · {h.actor} · {h.action}")
                    st.code(json.dumps({"before": h.before, "after": h.after}, ensure_ascii=False, indent=1), language="json")
