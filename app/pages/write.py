"""Write: authors write or fix examples (system prompt, multi-turn), tag them from the taxonomy, see the
guidelines beside the editor and the checks as they pause typing, answer gap-topic tasks in the same
editor, and work through their own queue. An example waiting for review is shown read-only, with
*Withdraw to draft*."""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import streamlit as st
from pydantic import ValidationError

from app import ui
from curation.errors import GoldsmithError
from curation.examples import workflow
from curation.examples.checks import check_draft, save_and_check
from curation.examples.drafts import accept_draft, draft_label
from curation.examples.review_queue import reviews_of
from curation.examples.taxonomy import get_guidelines, get_taxonomy
from curation.insight.tasks import answer_task, get_task, list_tasks
from schemas import Example, ExampleContent, ExampleFilter, Tags, Task, one_line, plain
from schemas.curation import SavedExample
from training.drafts import draft_example
from training.playground import base_ref
from training.runs import list_runs

NONE = "(none)"  # a tag left unset
TAG_WIDGETS = {"category": "cat", "response_type": "rt", "knowledge_area": "ka"}  # each tag's widget key (after the prefix)
QUEUE_SHOWN = 15  # per list; Browse (filtered by author and status) pages through the rest
DEFAULT_BASE = "smollm2-135m"
PAUSE_MS = 900  # the checks run when the author has not typed for this long
# Trusted script (no user text in it): after a pause in typing in the editor's text areas, send their
# current text (keyed by each widget's key) to the checks fragment, before the field is even left.
_PAUSE_JS = f"""
export default function(component) {{
  const {{ setStateValue }} = component;
  let timer = null;
  const send = () => {{
    const texts = {{}};
    document.querySelectorAll(".st-key-write_editor textarea").forEach((area) => {{
      const holder = area.closest("[class*='st-key-w']");
      const key = holder && [...holder.classList].find((c) => c.startsWith("st-key-w"));
      if (key) texts[key.slice(7)] = area.value;
    }});
    setStateValue("texts", texts);
  }};
  const onInput = (event) => {{
    if (!event.target.closest || !event.target.closest(".st-key-write_editor")) return;
    clearTimeout(timer);
    timer = setTimeout(send, {PAUSE_MS});
  }};
  document.addEventListener("input", onInput, true);
  return () => {{ clearTimeout(timer); document.removeEventListener("input", onInput, true); }};
}}
"""
_pause_watcher = st.components.v2.component("goldsmith_pause_watcher", js=_PAUSE_JS)

user = ui.require_user("create_example")
store = ui.store()
taxonomy, _ = get_taxonomy(store)
guidelines, _ = get_guidelines(store)


def _open(example_id: int | None, task_id: int | None = None) -> None:
    """Open an example (or a task, prefilled) in the editor tab."""
    for key in ("write_loaded", "write_turns", "write_checks", "write_task"):
        st.session_state.pop(key, None)
    st.session_state["write_id"] = example_id
    if task_id is not None:
        st.session_state["write_task"] = task_id
    st.session_state["write_tab"] = "Editor"


st.title("Write")
if "id" in st.query_params and st.query_params["id"].isdigit():
    _open(int(st.query_params["id"]))
    del st.query_params["id"]
example_id: int | None = st.session_state.get("write_id")
example = ui.attempt(partial(store.get_example, example_id)) if example_id else None
if example is not None and st.session_state.get("write_loaded") != example.id:
    st.session_state["write_loaded"], st.session_state["write_version"] = example.id, example.version
# The version the author opened: saving names it, so someone else's change in between is a Conflict, never overwritten.
read_version = st.session_state.get("write_version", 0) if example is not None else 0
task_id: int | None = st.session_state.get("write_task") if example is None else None
task = ui.attempt(partial(get_task, store, user.username, task_id)) if task_id else None
flash = st.session_state.pop("write_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")

editor_tab, queue_tab = st.tabs(["Editor", "My queue"], key="write_tab", on_change="rerun")


# ------------------------------------------------------------------------------------------ queue
def _queue() -> None:
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
    for status, title in (("changes_requested", "Changes requested"), ("draft", "Drafts"), ("submitted", "Waiting for review")):
        st.subheader(title)
        if not mine[status].items:
            st.caption("None.")
        elif mine[status].total > QUEUE_SHOWN:
            st.caption(
                f"The newest {QUEUE_SHOWN} of {mine[status].total:,}; Browse filtered by author and status lists them all."
            )
        for e in mine[status].items:
            left, right = st.columns([6, 1], vertical_alignment="center")
            left.text(f"#{e.id} · v{e.version} · {one_line(e.prompt)}")
            right.button("Open", key=f"open-{e.id}", on_click=_open, args=(e.id,))
    st.subheader("Tasks from coverage gaps")
    if not tasks:
        st.caption("No open tasks. Leads turn gap topics on the Dashboard into tasks for you.")
    for t in tasks:
        left, right = st.columns([6, 1], vertical_alignment="center")
        left.text(f"Task {t.id} · {one_line(t.question, 110)}")
        right.button("Answer", key=f"task-{t.id}", on_click=_open, args=(None, t.id), help="Opens it in the editor, prefilled.")


with queue_tab:
    if queue_tab.open is not False:
        _queue()


# ------------------------------------------------------------------------------------------ editor
def _choice(label: str, options: tuple[str, ...], current: str | None, key: str) -> str | None:
    if not options:
        return st.text_input(label, value=current or "", key=key) or None
    values = [NONE, *options]
    index = values.index(current) if current in values else 0
    picked = st.selectbox(label, values, index=index, key=key)
    return None if picked == NONE else picked


def _guidelines() -> None:
    st.subheader("Guidelines")
    with st.container(height=620, border=True):
        if guidelines:
            ui.markdown(guidelines, small_headings=True)
        else:
            st.caption("No guidelines yet: an admin writes them on the Admin page.")


def _reviews(example: Example) -> None:
    reviews = reviews_of(store, example.id)
    if reviews:
        st.subheader("Reviewers' comments")
        for r in reversed(reviews):
            scores = f" · {', '.join(f'{k} {v}' for k, v in r.rubric.scores.items())}" if r.rubric else ""
            st.markdown(f"**{r.reviewer}** on version {r.example_version}: {plain(r.decision)}{scores}")
            if r.comment:
                ui.markdown(r.comment)


def _read_only(example: Example) -> None:
    """An example that cannot be edited now: its text, and what its author can do about it."""
    st.markdown(f"**Example {example.id}** · {plain(example.status)} · version {example.version} · {ui.tags_line(example)}")
    if example.status == "submitted":
        st.info("It is waiting for review, so it cannot be edited. Withdraw it to draft to change it.", icon=":material/lock:")
        if st.button("Withdraw to draft", key=f"withdraw-{example.id}-{example.version}", icon=":material/undo:"):
            back = ui.attempt(partial(workflow.withdraw_example, store, user.username, example.id, example.version))
            if back is not None:
                st.session_state["write_version"] = back.version
                st.session_state["write_flash"] = f"Example {example.id} is a draft again (version {back.version}); edit it."
                st.rerun()
    else:
        st.info(f"This example is {plain(example.status)}; it cannot be edited. Start a new one instead.", icon=":material/lock:")
    ui.conversation(example)
    held = st.session_state.get("write_checks")
    if held is not None and held[0] == (example.content_hash, example.tags):  # just submitted: what the checks found
        st.subheader("Checks on what you submitted")
        ui.draft_checks(held[1])


def _model_note(example: Example) -> None:
    mark = example.drafted_by
    if mark is None:
        return
    accepted = example.metadata.get("draft_accepted") or {}
    if accepted:
        state = f"Accepted as is by {accepted.get('by')}."
    elif example.draft_untouched:
        state = "The response is still the model's text: edit it, or accept it as is, before submitting."
    else:
        state = "Edited since the draft."
    st.info(f"Started as a model draft ({ui.safe_markdown_text(draft_label(mark))}). {state}", icon=":material/smart_toy:")
    can_accept = example.draft_untouched and example.status in workflow.SUBMITTABLE
    if can_accept and st.button("Accept the draft as is", key=f"accept-{example.id}-{read_version}", icon=":material/done_all:"):
        accepted_example = ui.attempt(partial(accept_draft, store, user.username, example.id, read_version))
        if accepted_example:
            st.session_state["write_version"] = accepted_example.version
            st.session_state["write_flash"] = f"Draft of example {example.id} accepted as is; you can submit it now."
            st.rerun()


class Turn(NamedTuple):
    """One user turn and its answer as the editor holds them (context and weight kept from imported files)."""

    user: str
    reply: str
    context: str = ""
    weight: int | None = None  # the answer's weight: 0 not learned, 1 or none learned


def _turns_of(example: Example | None, task: Task | None) -> tuple[str, list[Turn]]:
    """The system prompt and the turns of an example (a task prefills its question)."""
    messages = list(example.messages) if example else []
    system_text = messages[0].content if messages and messages[0].role == "system" else ""
    said = [m for m in messages if m.role != "system"]
    turns = [Turn(q.content, a.content, q.context or "", a.weight) for q, a in zip(said[0::2], said[1::2], strict=False)]
    return system_text, turns or [Turn(task.question if task else "", "")]


def _conversation_fields(example: Example | None, task: Task | None, prefix: str) -> tuple[str, list[Turn]]:
    """The system prompt and the turns as written now."""
    system_text, turns = _turns_of(example, task)
    st.session_state.setdefault("write_turns", len(turns))
    count = st.session_state["write_turns"]
    system = st.text_area("System prompt (optional)", value=system_text, key=f"{prefix}-system", height=80, on_change="ignore")
    written = []
    for i in range(count):
        was = turns[i] if i < len(turns) else Turn("", "")
        st.markdown(f"**Turn {i + 1}**")
        user_text = st.text_area("User message", value=was.user, key=f"{prefix}-u{i}", height=100, on_change="ignore")
        with st.expander("Context passage (optional)", expanded=bool(was.context)):
            context = st.text_area(
                "The passage the question needs, kept apart from the question",
                value=was.context,
                key=f"{prefix}-c{i}",
                height=100,
                on_change="ignore",
                help="Alpaca's `input`, Dolly's `context`: the model sees it after the question.",
            )
        reply = st.text_area("Ideal response", value=was.reply, key=f"{prefix}-a{i}", height=160, on_change="ignore")
        learn = st.toggle(
            "The model learns this response",
            value=was.weight != 0,
            key=f"{prefix}-learn{i}",
            help="Off: weight 0. The model reads this answer as part of the conversation but is not trained on it.",
        )
        written.append(Turn(user_text, reply, context, _weight(learn, was.weight)))
    with st.container(horizontal=True):
        if st.button("Add a turn", icon=":material/add_comment:"):
            st.session_state["write_turns"] = count + 1
            st.rerun()
        if st.button("Remove last turn", disabled=count <= 1):
            st.session_state["write_turns"] = count - 1
            st.rerun()
    return system, written


def _weight(learn: bool, was: int | None) -> int | None:
    """The weight a toggle means: off is 0; on keeps an explicit 1 from the file, else none (learned)."""
    return 0 if not learn else (1 if was == 1 else None)


def _messages(system: str, written: list[Turn]) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": system}] if system.strip() else []
    for turn in written:
        question: dict[str, Any] = {"role": "user", "content": turn.user}
        if turn.context.strip():
            question["context"] = turn.context
        answer: dict[str, Any] = {"role": "assistant", "content": turn.reply}
        if turn.weight is not None:
            answer["weight"] = turn.weight
        msgs += [question, answer]
    return msgs


def _typed() -> None:
    """The pause watcher sent the text as it stands: the fragment reruns with it."""


def _live_checks(prefix: str, tags_in: dict[str, Any], exclude_id: int | None) -> None:
    """The checks on what is written now, rerun (this fragment only) when the author pauses typing."""
    typed = _pause_watcher(key="write_pause", default={"texts": {}}, on_texts_change=_typed).get("texts") or {}
    turns = st.session_state.get("write_turns", 1)
    value = lambda name: typed.get(f"{prefix}-{name}", st.session_state.get(f"{prefix}-{name}") or "")  # noqa: E731
    unlearned = [st.session_state.get(f"{prefix}-learn{i}") is False for i in range(turns)]
    written = [Turn(value(f"u{i}"), value(f"a{i}"), value(f"c{i}"), 0 if unlearned[i] else None) for i in range(turns)]
    if not all(t.user.strip() and t.reply.strip() for t in written):
        st.caption("The checks run as you write, once each turn has a message and a response.")
        return
    try:
        content = ExampleContent.model_validate({"messages": _messages(value("system"), written), "tags": tags_in})
    except ValueError:
        return  # the save explains what is wrong with it
    held = st.session_state.get("write_checks")
    if held is None or held[0] != (content.content_hash, content.tags):
        # exact and near duplicates, personal data, guideline rules, tags, length; semantic ones on save
        held = ((content.content_hash, content.tags), check_draft(store, content, exclude_id=exclude_id, semantic=False))
        st.session_state["write_checks"] = held
    st.subheader("Checks as you write")
    ui.draft_checks(held[1])


def _saved(result: SavedExample) -> None:
    saved = result.example
    ui.renew_form_token("write")  # a second click on the old button is dropped
    st.session_state["write_id"] = st.session_state["write_loaded"] = saved.id
    st.session_state["write_version"] = saved.version
    st.session_state.pop("write_task", None)
    st.session_state["write_checks"] = ((saved.content_hash, saved.tags), result.checks)
    verb = "submitted for review" if saved.status == "submitted" else f"saved ({plain(saved.status)})"
    st.session_state["write_flash"] = f"Example {saved.id} {verb}, version {saved.version}."


def _as_written(prefix: str, example: Example | None, task: Task | None) -> tuple[str, list[Turn], dict[str, Any]]:
    """The system prompt, the turns and the tags as the editor's widgets hold them now (read by the Save callback)."""
    state = st.session_state
    _, before = _turns_of(example, task)
    turns = []
    for i in range(state.get("write_turns", 1)):
        was = before[i].weight if i < len(before) else None
        learn = state.get(f"{prefix}-learn{i}", True)
        text = [state.get(f"{prefix}-{name}{i}") or "" for name in ("u", "a", "c")]
        turns.append(Turn(text[0], text[1], text[2], _weight(learn, was)))
    picked = {name: state.get(f"{prefix}-{key}") for name, key in TAG_WIDGETS.items()}
    tags = {name: None if value == NONE else value for name, value in picked.items()}
    return state.get(f"{prefix}-system") or "", turns, tags | {"labels": state.get(f"{prefix}-labels") or ""}


def _save(prefix: str, example: Example | None, opened: int, task: Task | None, submit: bool) -> None:
    """Save draft / Submit for review, as a callback: one run of the page shows the result."""
    system, written, tags_in = _as_written(prefix, example, task)
    reason = st.session_state.get(f"{prefix}-reason") or ""
    try:
        content = ExampleContent.model_validate({"messages": _messages(system, written), "tags": tags_in})
        if task is not None:
            result = answer_task(store, user.username, task.id, content, submit=submit, reason=reason)
        else:
            result = save_and_check(
                store,
                user.username,
                content,
                example_id=example.id if example else None,
                expected_version=opened if example else None,
                submit=submit,
                reason=reason,
            )
    except (GoldsmithError, ValidationError) as error:
        st.session_state["write_refused"] = error  # shown under the buttons by the run this callback precedes
        return
    _saved(result)


def _editor(example: Example | None, task: Task | None) -> None:
    if example is not None:
        st.markdown(f"**Editing example {example.id}** · {plain(example.status)} · version {read_version}")
        if read_version != example.version:
            st.warning(
                f"Example {example.id} changed since you opened it (now version {example.version}). Saving will be "
                "refused; copy your text, then reload the latest version.",
                icon=":material/sync_problem:",
            )
            if st.button("Reload the latest version", icon=":material/refresh:"):
                st.session_state["write_version"] = example.version
                st.rerun()
        _model_note(example)
    elif task is not None:
        st.info(f"Answering task {task.id}: write the response, tag it, and submit it.", icon=":material/assignment:")
    else:
        st.markdown("**New example**")
    prefix = f"w{ui.form_token('write')}-{example.id if example else f't{task.id}' if task else 'new'}-{read_version}"
    with st.container(key="write_editor"):
        system, written = _conversation_fields(example, task, prefix)
    tags = example.tags if example else Tags()
    c1, c2, c3 = st.columns(3)
    with c1:
        category = _choice("Category", taxonomy.categories, tags.category, f"{prefix}-{TAG_WIDGETS['category']}")
    with c2:
        response_type = _choice("Response type", taxonomy.response_types, tags.response_type, f"{prefix}-rt")
    with c3:
        area = _choice("Knowledge area", taxonomy.knowledge_areas, tags.knowledge_area, f"{prefix}-ka")
    labels = st.text_input("Labels (comma separated)", value=", ".join(tags.labels), key=f"{prefix}-labels")
    tags_in = {"category": category, "response_type": response_type, "knowledge_area": area, "labels": labels}
    _draft_with_model(example, system, written, tags_in, prefix)
    st.text_input(
        "Note for the reviewer",
        key=f"{prefix}-reason",
        placeholder="Needed to send an exact duplicate or an over-limit example: why it should be reviewed anyway",
    )
    can_submit = example is None or example.status in workflow.SUBMITTABLE or example.status == "approved"
    with st.container(horizontal=True):
        opened = (prefix, example, read_version, task)
        st.button("Save draft", key=f"{prefix}-save", icon=":material/save:", on_click=_save, args=(*opened, False))
        st.button(
            "Submit for review",
            key=f"{prefix}-submit",
            type="primary",
            disabled=not can_submit,
            on_click=_save,
            args=(*opened, True),
        )
    refused = st.session_state.pop("write_refused", None)
    if refused is not None:
        ui.show_error(refused)
    st.fragment(_live_checks)(prefix, tags_in, example.id if example else None)
    if example is not None:
        _reviews(example)


def _draft_with_model(example: Example | None, system: str, written: list[Turn], tags_in: dict[str, Any], prefix: str) -> None:
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
    if not ask:
        return
    msgs = _messages(system, written)[:-1]  # up to the last user message
    drafting = partial(
        draft_example,
        store,
        user.username,
        model_ref,
        msgs,
        tags=ui.attempt(partial(Tags.model_validate, tags_in)),
        example_id=example.id if example else None,
        expected_version=read_version if example else None,
        max_new_tokens=max_new_tokens,
    )
    with st.spinner(f"{ui.safe_markdown_text(model_label)} is drafting (the first draft also loads the model)..."):
        drafted = ui.attempt(drafting)
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


with editor_tab:
    if editor_tab.open is not False:
        left, right = st.columns([3, 2], gap="large")
        with right:
            _guidelines()
        with left:
            if example is not None or task is not None:
                st.button("Start a new example", icon=":material/add:", on_click=_open, args=(None,))
            if example is not None and example.status not in workflow.EDITABLE:
                _read_only(example)
            else:
                _editor(example, task)
