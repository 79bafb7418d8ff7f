"""Playground (authors, reviewers, leads): chat with a base model or a finished run's adapter, to
see what the data taught it. The model answers in this app's process (kept loaded for the next
message); the first answer waits for the model to load."""

from __future__ import annotations

import streamlit as st

from app import ui
from training.playground import base_ref, chat
from training.runs import list_runs

DEFAULT_BASE = "smollm2-135m"

user = ui.require_user("use_playground")
store = ui.store()

st.title("Playground")
st.caption("Ask a model a question the way a customer would. Nothing here is saved.")

finished = {r.id: r for r in list_runs(store) if r.status == "completed"}
with st.sidebar:
    kind = st.radio("Model", ["A finished run", "A base model"] if finished else ["A base model"], key="pg_kind")
    if kind == "A finished run":
        run_id = st.selectbox("Run", list(finished), format_func=lambda i: f"{finished[i].name} · {i}", key="pg_run")
        model_ref, model_label = run_id, f"run {run_id}"
    else:
        name = st.text_input(
            "Base model", DEFAULT_BASE, key="pg_base", help="A short name, a local model folder or a cached hub id."
        )
        model_ref, model_label = base_ref(name), name.strip()
    max_new_tokens = st.slider("Longest answer (new tokens)", 16, 1024, 256, 16, key="pg_tokens")
    temperature = st.slider("Temperature", 0.0, 1.5, 0.0, 0.1, key="pg_temp", help="0 answers the same way every time.")
    system = st.text_area("System prompt (optional)", key="pg_system")
    if st.button("Clear the conversation", icon=":material/delete_sweep:"):
        st.session_state["pg_messages"] = []

history: list[dict[str, str]] = st.session_state.setdefault("pg_messages", [])
asked = st.chat_input("Ask the model")
if asked and asked.strip():
    history.append({"role": "user", "content": asked})
    turns = [{"role": "system", "content": system}] if system.strip() else []
    turns += [{"role": m["role"], "content": m["content"]} for m in history]
    with st.spinner(
        f"{ui.safe_markdown_text(model_label)} is answering (the first answer also loads the model, which is slow on a CPU)..."
    ):
        answer = ui.attempt(
            lambda: chat(store, user.username, model_ref, turns, max_new_tokens=max_new_tokens, temperature=temperature)
        )
    if answer is None:
        history.pop()  # not answered: the question can be asked again
    else:
        history.append({"role": "assistant", "content": answer, "model": model_label})

if not history:
    st.info(f"Talking to {ui.safe_markdown_text(model_label)}. Type a question below.", icon=":material/chat:")
for m in history:
    with st.chat_message(m["role"], avatar=ui.ROLE_ICONS.get(m["role"])):
        if m["role"] == "assistant":
            st.caption(ui.safe_markdown_text(m.get("model", "")))
        ui.markdown(m["content"] or "*(empty answer)*")
