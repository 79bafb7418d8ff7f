"""Snapshots (leads): cut a validated snapshot (override a blocked one with a reason), list them,
download their files or an export. The Training page trains on them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app import ui
from curation.datasets.exporting import EXPORT_FORMATS
from curation.datasets.snapshots import SnapshotBlocked, create_snapshot, verify_snapshot
from curation.examples.taxonomy import get_taxonomy
from schemas import ExampleFilter, ValidationReport

user = ui.require_user("create_snapshot")
store = ui.store()
taxonomy, _ = get_taxonomy(store)

st.title("Snapshots")
flash = st.session_state.pop("snap_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")


# Each check of the validation suite in a lead's words, and what to do when it fails (by its name's start).
CHECKS = {
    "messages_not_empty": ("Every example has a conversation", None),
    "prompt_present": ("Every example has a question", "Write the question, or archive the example."),
    "prompt_not_empty": ("No question is blank", "Write the question, or archive the example."),
    "response_present": ("Every example has an answer", "Write the answer, or archive the example."),
    "response_not_empty": ("No answer is blank", "Write the answer, or archive the example."),
    "roles_well_formed": ("Turns alternate question and answer", "Fix the order of the turns on the Write page."),
    "tokens_within_limit": ("Fits the model's token limit", "Shorten or split the example."),
    "content_unique": (
        "No conversation appears twice",
        "Keep one copy of each and archive the rest (Dashboard, Duplicate clusters), then cut the snapshot again.",
    ),
    "no_leak_into_eval": (
        "No eval example repeats a train example",
        "Archive one of each pair, or resolve the pair as a duplicate cluster so the split keeps it on one side.",
    ),
}
TAGS = {"category": "category", "response_type": "response type", "knowledge_area": "knowledge area"}


def check_words(name: str, description: str) -> tuple[str, str]:
    """(title, what to do) for one check of the suite, in words a lead reads."""
    if name in CHECKS:
        title, fix = CHECKS[name]
        return title, fix or description
    for key, words in TAGS.items():
        if name == f"{key}_in_taxonomy":
            return f"The {words} is one of the taxonomy's", "Retag the example, or add the value to the taxonomy (Admin)."
        if name == f"{key}_present":
            return f"Every example has a {words}", "Tag the example on the Write page."
    personal = (("email", "an email address"), ("phone_number", "a personal phone number"), ("card_number", "a card number"))
    for kind, words in personal:
        for field, where in (("prompt", "question"), ("response", "answer")):
            if name == f"no_{kind}_in_{field}":
                return f"No {words} in the {where}", description
    return name.replace("_", " ").capitalize(), description


def report_table(report: ValidationReport) -> None:
    """A validation report: one row per check, failures first; then each failing example, a link away."""
    order = {"FAILED": 0, "warning": 1, "ok": 2}
    rows = sorted(
        (
            {
                "result": "ok" if e.success else ("FAILED" if e.severity == "critical" else "warning"),
                "check": check_words(e.name, e.description)[0],
                "examples": e.unexpected_count,
                "what to do": check_words(e.name, e.description)[1] if not e.success else "",
            }
            for e in report.expectations
        ),
        key=lambda r: order[str(r["result"])],
    )
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    failing = [
        {"example": f"/browse?id={x.id}", "split": x.split, "check": check_words(e.name, e.description)[0]}
        for e in report.expectations
        if not e.success
        for x in e.unexpected_examples
    ]
    if failing:
        st.markdown("**Examples to fix** (click one to open it)")
        st.dataframe(
            pd.DataFrame(failing),
            hide_index=True,
            column_config={"example": st.column_config.LinkColumn("example", display_text=r"/browse\?id=(\d+)")},
        )


with st.form(f"snapshot-{ui.form_token('snapshot')}", border=True):
    st.markdown("**Cut a snapshot of the approved examples**")
    c1, c2, c3 = st.columns([2, 1, 1])
    name = c1.text_input("Name", placeholder="v1 or claims-2026-11")
    eval_fraction = c2.number_input("Eval share", 0.0, 0.9, 0.1, 0.05, help="Share of each category held out for evaluation.")
    seed = c3.number_input("Seed", 0, 2**31 - 1, 0, help="The same data and seed give the same files.")
    category = st.selectbox("Only this category", ["(all)", *taxonomy.categories])
    create = st.form_submit_button("Validate and create", type="primary", icon=":material/inventory_2:")


def _create(override: str | None = None) -> None:
    params = st.session_state["snap_params"]
    flt = ExampleFilter(category=params["category"]) if params["category"] else None
    with st.spinner("Validating and writing the snapshot..."):
        try:
            snap = create_snapshot(
                store,
                user.username,
                params["name"],
                eval_fraction=params["eval_fraction"],
                seed=params["seed"],
                flt=flt,
                override_reason=override,
            )
        except SnapshotBlocked as blocked:
            st.session_state["snap_blocked"] = blocked.report
            return
        except Exception as error:
            ui.show_error(error)
            return
    st.session_state.pop("snap_blocked", None)
    ui.renew_form_token("snapshot")
    st.session_state["snap_flash"] = f"Snapshot {snap.id} ({snap.name}): {snap.train} train and {snap.eval} eval examples."
    st.session_state["snap_open"] = snap.id
    st.rerun()


if create:
    st.session_state["snap_params"] = {
        "name": name,
        "eval_fraction": float(eval_fraction),
        "seed": int(seed),
        "category": None if category == "(all)" else category,
    }
    _create()

blocked = st.session_state.get("snap_blocked")
if blocked:
    failed = [check_words(e.name, e.description)[0] for e in blocked.expectations if e.name in blocked.critical_failures]
    st.error(
        f"The snapshot was not written: {len(failed)} required check{'s' if len(failed) > 1 else ''} failed "
        f"({'; '.join(failed)}). Fix the examples listed below, or publish it anyway with a reason that is recorded.",
        icon=":material/block:",
    )
    report_table(blocked)
    with st.form("override"):
        reason = st.text_area("Reason to publish anyway (recorded in the manifest and the history)")
        if st.form_submit_button("Create anyway", icon=":material/warning:"):
            if not reason.strip():
                st.error("Give a reason to override; it is recorded with the snapshot.")
            else:
                _create(reason)

st.subheader("All snapshots")
snaps = store.list_snapshots()
if not snaps:
    st.caption("No snapshots yet.")
else:
    st.dataframe(
        [
            {
                "id": s.id,
                "name": s.name,
                "train": s.train,
                "eval": s.eval,
                "by": s.created_by,
                "created": s.created_at.strftime("%Y-%m-%d %H:%M"),
            }
            for s in snaps
        ],
        hide_index=True,
    )
    ids = [s.id for s in snaps]
    names = {s.id: s.name for s in snaps}
    chosen = ui.remembered_select("Open a snapshot", ids, "snap_open", lambda i: f"{i} · {names[i]}")
    snap = next(s for s in snaps if s.id == chosen)
    folder = Path(snap.path)
    st.caption(f"Files in {folder}")
    if st.button("Verify the files against the manifest"):
        checked = ui.attempt(lambda: verify_snapshot(folder))
        if checked:
            st.success("The files match the manifest (sha256 and counts).")
    validation = folder / "validation.json"
    if validation.exists():
        with st.expander("Validation report"):
            report_table(ValidationReport.model_validate_json(validation.read_bytes()))
    cols = st.columns(3)
    for col, file_name in zip(cols, ("train.jsonl", "eval.jsonl", "manifest.json"), strict=True):
        path = folder / file_name
        if path.exists():
            col.download_button(
                f"Download {file_name}",
                data=path.read_bytes,
                file_name=f"{snap.name}-{file_name}",
                key=f"dl-{file_name}",
            )

st.subheader("Export the approved examples")
fmt = st.selectbox("Format", [f for f in EXPORT_FORMATS if f != "hf"], key="export_fmt")
if st.button("Prepare the export", icon=":material/download:"):
    from curation.datasets.exporting import export_bytes

    with st.spinner("Exporting..."):
        st.session_state["export"] = (fmt, ui.attempt(lambda: export_bytes(store, fmt, ExampleFilter(status="approved"))))
prepared = st.session_state.get("export")
if prepared and prepared[1] is not None:
    suffix = {"openai": "jsonl", "csv": "csv"}.get(prepared[0], "json")
    st.download_button(f"Download approved.{suffix}", data=prepared[1], file_name=f"approved-{prepared[0]}.{suffix}")

st.subheader("Training")
st.caption("A snapshot's train.jsonl and eval.jsonl are chat-format files any SFT trainer reads.")
st.page_link("pages/training.py", label="Train a LoRA run on a snapshot", icon=":material/model_training:")
