"""Write: authors write or fix examples (system prompt, multi-turn), tag them from the taxonomy,
see the guidelines beside the editor, get live checks on save, and work through their own queue."""

from __future__ import annotations

from functools import partial

import streamlit as st

from app import ui
from curation.examples import workflow
from curation.examples.checks import check_draft
from curation.examples.drafts import accept_draft, draft_label
from curation.examples.taxonomy import get_guidelines, get_taxonomy
from curation.insight.tasks import complete_task, list_tasks
from schemas import Example, ExampleContent, ExampleFilter, Tags, one_line
from training.drafts import draft_example
from training.playground import base_ref
from training.runs import list_runs

QUEUE_SHOWN = 15  # per list; Browse (filtered by author and status) pages through the rest
DEFAULT_BASE = "smollm2-135m"

user = ui.require_user("create_example")
store = ui.store()
taxonomy, _ = get_taxonomy(store)
guidelines, _ = get_guidelines(store)

st.title("Write")

if "id" in st.query_params and st.query_params["id"].isdigit():
    st.session_state["write_id"] = int(st.query_params["id"])
    st.session_state.pop("write_loaded", None)
    st.session_state.pop("write_turns", None)
    del st.query_params["id"]
example_id: int | None = st.session_state.get("write_id")
example = ui.attempt(partial(store.get_example, example_id)) if example_id else None
if example is not None and st.session_state.get("write_loaded") != example.id:
    st.session_state["write_loaded"], st.session_state["write_version"] = example.id, example.version
# The version the author opened: saving names it, so someone else's change in between is a Conflict, never overwritten.
read_version = st.session_state.get("write_version", 0) if example is not None else 0
flash = st.session_state.pop("write_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")

editor_tab, queue_tab = st.tabs(["Editor", "My queue"])

# ------------------------------------------------------------------------------------------ queue
with queue_tab:
    mine = {
        status: store.list_examples(ExampleFilter(author=user.username, status=status, page_size=QUEUE_SHOWN))
        for status in ("changes_requested", "draft", "submitted")
    }
    tasks = list_tasks(store, assignee=user.username, status="open")
    cols = st.columns(4)
    cols[0].metric("Changes requested", mine["changes_requested"].total)
    cols[1].metric("Drafts", mine["draft"].total)
    cols[2].metric("Waiting for review", mine["submitted"].total)
    cols[3].metric("Tasks assigned", len(tasks))
    for status, title in (("changes_requested", "Changes requested"), ("draft", "Drafts")):
        st.subheader(title)
        if not mine[status].items:
            st.caption("None.")
        elif mine[status].total > QUEUE_SHOWN:
            st.caption(
                f"The newest {QUEUE_SHOWN} of {mine[status].total:,}; Browse filtered by author and status lists them all."
            )
        for e in mine[status].items:
            left, right = st.columns([6, 1])
            left.text(f"#{e.id} · v{e.version} · {one_line(e.prompt)}")
            if right.button("Open", key=f"open-{e.id}"):
                st.session_state["write_id"] = e.id
                st.session_state.pop("write_loaded", None)
                st.session_state.pop("write_turns", None)
                st.rerun()
    st.subheader("Tasks from coverage gaps")
    if not tasks:
        st.caption("No open tasks. Leads turn gap topics on the Dashboard into tasks for you.")
    for task in tasks:
        with st.expander(f"Task {task.id}: {one_line(task.question, 70)}"):
            st.text(task.question)
            with st.form(f"task-{task.id}-{ui.form_token('task')}"):
                answer = st.text_area("Your response", height=160)
                if st.form_submit_button("Answer and submit for review", type="primary"):
                    done = ui.attempt(lambda t=task, a=answer: complete_task(store, user.username, t.id, a))
                    if done:
                        ui.renew_form_token("task")
                        st.session_state["write_flash"] = f"Task {done.id} answered as example {done.example_id}."
                        st.rerun()


# ------------------------------------------------------------------------------------------ editor
def _choice(label: str, options: tuple[str, ...], current: str | None, key: str) -> str | None:
    if not options:
        return st.text_input(label, value=current or "", key=key) or None
    values = ["(none)", *options]
    index = values.index(current) if current in values else 0
    picked = st.selectbox(label, values, index=index, key=key)
    return None if picked == "(none)" else picked


with editor_tab:
    left, right = st.columns([3, 2], gap="large")
    with right:
        st.subheader("Guidelines")
        with st.container(height=620, border=True):
            if guidelines:
                ui.markdown(guidelines, small_headings=True)
            else:
                st.caption("No guidelines yet: an admin writes them on the Admin page.")
    with left:
        if example is not None:
            st.markdown(f"**Editing example {example.id}** · {example.status} · version {read_version}")
            if read_version != example.version:
                st.warning(
                    f"Example {example.id} changed since you opened it (now version {example.version}). Saving will be "
                    "refused; copy your text, then reload the latest version.",
                    icon=":material/sync_problem:",
                )
                if st.button("Reload the latest version", icon=":material/refresh:"):
                    st.session_state["write_version"] = example.version
                    st.rerun()
            if example.status not in workflow.EDITABLE:
                st.info(f"This example is {example.status}; only drafts, changes requested and approved examples can be edited.")
        else:
            st.markdown("**New example**")
        mark = example.drafted_by if example is not None else None
        if example is not None and mark is not None:
            model_drafted = example
            accepted = example.metadata.get("draft_accepted") or {}
            if accepted:
                state = f"Accepted as is by {accepted.get('by')}."
            elif example.draft_untouched:
                state = "The response is still the model's text: edit it, or accept it as is, before submitting."
            else:
                state = "Edited since the draft."
            st.info(
                f"Started as a model draft ({ui.safe_markdown_text(draft_label(mark))}). {state}", icon=":material/smart_toy:"
            )
            can_accept = example.draft_untouched and example.status in workflow.SUBMITTABLE
            accept_key = f"accept-{example.id}-{read_version}"
            if can_accept and st.button("Accept the draft as is", key=accept_key, icon=":material/done_all:"):
                accepted_example = ui.attempt(lambda: accept_draft(store, user.username, model_drafted.id, read_version))
                if accepted_example:
                    st.session_state["write_version"] = accepted_example.version
                    st.session_state["write_flash"] = f"Draft of example {example.id} accepted as is; you can submit it now."
                    st.rerun()
        if example is not None and st.button("Start a new example", icon=":material/add:"):
            st.session_state.pop("write_id", None)
            st.session_state.pop("write_loaded", None)
            st.session_state.pop("write_turns", None)
            st.session_state.pop("write_checks", None)
            st.rerun()

        messages = list(example.messages) if example else []
        system_text = messages[0].content if messages and messages[0].role == "system" else ""
        turns = [m for m in messages if m.role != "system"]
        pairs = [(turns[i].content, turns[i + 1].content) for i in range(0, len(turns) - 1, 2)] or [("", "")]
        st.session_state.setdefault("write_turns", len(pairs))
        count = st.session_state["write_turns"]
        prefix = f"w{ui.form_token('write')}-{example.id if example else 'new'}-{read_version}"

        system = st.text_area("System prompt (optional)", value=system_text, key=f"{prefix}-system", height=80)
        written = []
        for i in range(count):
            prompt_value, response_value = pairs[i] if i < len(pairs) else ("", "")
            st.markdown(f"**Turn {i + 1}**")
            user_text = st.text_area("User message", value=prompt_value, key=f"{prefix}-u{i}", height=100)
            reply = st.text_area("Ideal response", value=response_value, key=f"{prefix}-a{i}", height=160)
            written.append((user_text, reply))
        with st.container(horizontal=True):
            if st.button("Add a turn", icon=":material/add_comment:"):
                st.session_state["write_turns"] = count + 1
                st.rerun()
            if st.button("Remove last turn", disabled=count <= 1):
                st.session_state["write_turns"] = count - 1
                st.rerun()

        tags = example.tags if example else Tags()
        c1, c2, c3 = st.columns(3)
        with c1:
            category = _choice("Category", taxonomy.categories, tags.category, f"{prefix}-cat")
        with c2:
            response_type = _choice("Response type", taxonomy.response_types, tags.response_type, f"{prefix}-rt")
        with c3:
            area = _choice("Knowledge area", taxonomy.knowledge_areas, tags.knowledge_area, f"{prefix}-ka")
        labels = st.text_input("Labels (comma separated)", value=", ".join(tags.labels), key=f"{prefix}-labels")
        tags_in = {"category": category, "response_type": response_type, "knowledge_area": area, "labels": labels}

        draftable = example is None or example.status in workflow.SUBMITTABLE
        with st.expander("Draft with a model", icon=":material/smart_toy:"):
            st.caption(
                "A model drafts the response to the last user message and the example is saved as a model draft. "
                "Edit it or accept it as is before submitting; reviewers see what the model wrote."
            )
            finished = {r.id: r for r in list_runs(store) if r.status == "completed"}
            kind = st.radio("Draft with", ["A base model", "A finished run"] if finished else ["A base model"], key="wd_kind")
            if kind == "A finished run":
                run_id = st.selectbox("Run", list(finished), format_func=lambda i: f"{finished[i].name} · {i}", key="wd_run")
                model_ref, model_label = run_id, f"run {run_id}"
            else:
                name = st.text_input("Base model", DEFAULT_BASE, key="wd_base", help="A short name or a local model folder.")
                model_ref, model_label = base_ref(name), name.strip()
            max_new_tokens = st.slider("Longest draft (new tokens)", 16, 1024, 256, 16, key="wd_tokens")
            ask = st.button(
                "Draft the response",
                key=f"{prefix}-draft",
                icon=":material/smart_toy:",
                disabled=not draftable,
                help="Replaces the last response with the model's draft (drafts and changes requested only).",
            )
        if ask:

            def _draft() -> Example:
                msgs = [{"role": "system", "content": system}] if system.strip() else []
                for u, a in written[:-1]:
                    msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
                msgs.append({"role": "user", "content": written[-1][0]})
                return draft_example(
                    store,
                    user.username,
                    model_ref,
                    msgs,
                    tags=Tags.model_validate(tags_in),
                    example_id=example.id if example else None,
                    expected_version=read_version if example else None,
                    max_new_tokens=max_new_tokens,
                )

            with st.spinner(f"{ui.safe_markdown_text(model_label)} is drafting (the first draft also loads the model)..."):
                drafted = ui.attempt(_draft)
            if drafted:
                ui.renew_form_token("write")
                st.session_state["write_id"] = st.session_state["write_loaded"] = drafted.id
                st.session_state["write_version"] = drafted.version
                st.session_state.pop("write_turns", None)
                st.session_state["write_flash"] = (
                    f"Example {drafted.id} drafted by {ui.safe_markdown_text(model_label)}, version {drafted.version}. "
                    "Edit the response, or accept it as is, before submitting."
                )
                st.rerun()

        editable = example is None or example.status in workflow.EDITABLE
        can_submit = example is None or example.status in workflow.SUBMITTABLE or example.status == "approved"
        with st.container(horizontal=True):
            save = st.button("Save draft", key=f"{prefix}-save", disabled=not editable, icon=":material/save:")
            submit = st.button(
                "Submit for review", key=f"{prefix}-submit", type="primary", disabled=not (editable and can_submit)
            )

        if save or submit:

            def _save() -> Example:
                msgs = [{"role": "system", "content": system}] if system.strip() else []
                for u, a in written:
                    msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
                content = ExampleContent.model_validate({"messages": msgs, "tags": tags_in})
                return workflow.save_example(
                    store,
                    user.username,
                    content,
                    example_id=example.id if example else None,
                    expected_version=read_version if example else None,
                    submit=submit,
                )

            saved = ui.attempt(_save)
            if saved:
                ui.renew_form_token("write")  # a second click on the old button is dropped
                st.session_state["write_id"] = st.session_state["write_loaded"] = saved.id
                st.session_state["write_version"] = saved.version
                with st.spinner("Checking for duplicates and personal data..."):
                    st.session_state["write_checks"] = (saved.id, check_draft(store, saved, exclude_id=saved.id))
                verb = "submitted for review" if saved.status == "submitted" else f"saved ({saved.status})"
                st.session_state["write_flash"] = f"Example {saved.id} {verb}, version {saved.version}."
                st.rerun()

        checks = st.session_state.get("write_checks")
        if checks and example is not None and checks[0] == example.id:
            result = checks[1]
            st.subheader("Checks on the last save")
            st.caption(f"About {result.tokens} tokens (limit {result.max_tokens}).")
            for warning in result.warnings:
                st.warning(warning, icon=":material/warning:")
            if result.note:
                st.caption(result.note)
            if result.matches:
                st.warning(f"{len(result.matches)} existing examples look like this one:", icon=":material/content_copy:")
                for m in result.matches:
                    ui.link_to_example(m.example_id, f"Example {m.example_id} · {m.kind} {m.similarity:.2f} · {m.status}")
                    st.text(one_line(m.prompt, 120))
            elif not result.warnings:
                st.success("No duplicates or personal data found.")

        if example is not None:
            reviews = store.reviews_for(example.id)
            if reviews:
                st.subheader("Reviewers' comments")
                for r in reversed(reviews):
                    scores = f" · {', '.join(f'{k} {v}' for k, v in r.rubric.model_dump().items())}" if r.rubric else ""
                    st.markdown(f"**{r.reviewer}** on version {r.example_version}: {r.decision.replace('_', ' ')}{scores}")
                    if r.comment:
                        ui.markdown(r.comment)
