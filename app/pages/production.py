"""Production (leads): the deployed model's real conversations against the approved data, period by
period (live questions, share covered, bad ratings), the latest period's gap topics and the badly
rated answers, each one click away from an authoring task."""

from __future__ import annotations

import tempfile
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from app import ui
from curation.insight import monitoring
from curation.people.users import assignable_authors
from schemas import one_line
from schemas.monitoring import BadAnswer

BAD_PER_PAGE = 10

user = ui.require_user("manage_coverage")
store = ui.store()

st.title("Production")
flash = st.session_state.pop("prod_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")

with st.expander("Import production logs", icon=":material/upload_file:"):
    st.caption(
        "Any import format (OpenAI chat JSONL, ShareGPT, Alpaca, CSV), with optional `rating` (1-5), `thumbs` "
        "(up/down) and `timestamp` per conversation. Logs never become examples. CLI: `goldsmith logs import FILE`."
    )
    uploaded = st.file_uploader("Conversation log", type=["jsonl", "json", "csv"], key="prod_upload")
    if uploaded is not None and st.button("Import logs", icon=":material/upload:"):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / Path(uploaded.name).name
            path.write_bytes(uploaded.getvalue())
            imported = ui.attempt(lambda: monitoring.import_logs(store, user.username, path))
        if imported is not None:
            st.success(
                f"Imported {imported.imported} conversations; {imported.duplicates} already known; "
                f"{len(imported.rejected)} rejected."
            )
            if imported.rejected:
                st.dataframe(pd.DataFrame([r.model_dump() for r in imported.rejected]), hide_index=True)

period = st.radio("Period", list(monitoring.PERIODS), index=1, horizontal=True, key="prod_period")
version = (period, *monitoring.report_version(store))
cached = st.session_state.get("prod_report")
if cached and cached[0] == version:  # nothing changed since the last rerun: reuse the report
    report = cached[1]
else:
    with st.spinner("Matching questions to approved examples (embeddings are cached after the first run)..."):
        try:
            report = ui.attempt(lambda: monitoring.monitor(store, period=period))
        except ImportError as error:
            st.error(f"Monitoring needs the embedding model, which is not installed here ({error}).")
            report = None
    if report is not None:
        st.session_state["prod_report"] = (version, report)
if report is None:
    st.stop()
if not report.logs:
    st.info("No production logs yet: import a file above, or `goldsmith logs import FILE --as LEAD`.")
    st.stop()

# ------------------------------------------------------------------------------------------ trends
latest, previous = report.trend[-1], report.trend[-2] if len(report.trend) > 1 else None
c1, c2, c3, c4 = st.columns(4)
c1.metric("Conversations", f"{report.logs:,}")
c2.metric(
    f"Questions, {period} of {latest.start}",
    latest.questions,
    delta=latest.questions - previous.questions if previous else None,
)
c3.metric(
    "Covered by approved data",
    f"{latest.coverage:.0%}" if latest.coverage is not None else "n/a",
    delta=f"{(latest.coverage - previous.coverage) * 100:+.0f} pts"
    if previous and latest.coverage is not None and previous.coverage is not None
    else None,
)
c4.metric("Rated badly", latest.bad, delta=latest.bad - previous.bad if previous else None, delta_color="inverse")

trend = pd.DataFrame([t.model_dump() for t in report.trend])
trend["start"] = pd.to_datetime(trend["start"])
x = alt.X("start:T", title=f"{period} starting")
left, middle, right = st.columns(3)
with left:
    st.subheader("Live questions")
    st.altair_chart(
        alt.Chart(trend).mark_bar().encode(x=x, y=alt.Y("questions:Q", title="questions"), tooltip=["start", "questions"]),
        width="stretch",
    )
with middle:
    st.subheader("Coverage")
    st.altair_chart(
        alt.Chart(trend)
        .mark_line(point=True)
        .encode(
            x=x,
            y=alt.Y("coverage:Q", title="share covered", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            tooltip=["start", alt.Tooltip("coverage:Q", format=".0%"), "covered", "questions"],
        ),
        width="stretch",
    )
with right:
    st.subheader("Bad ratings")
    st.altair_chart(
        alt.Chart(trend)
        .mark_bar(color="#d62728")
        .encode(x=x, y=alt.Y("bad:Q", title="rated 1-2 or thumbs down"), tooltip=["start", "bad", "rated"]),
        width="stretch",
    )
st.caption(
    f"A question is covered when its nearest approved example has similarity ≥ {report.threshold} "
    "(the same rule as the coverage map)."
)

authors = [u.username for u in assignable_authors(store)]

# ------------------------------------------------------------------------------------------ gap topics
st.subheader(f"Gap topics of the {period} of {report.latest}")
if not report.gap_topics:
    st.caption("No gap topics: the latest period's uncovered questions do not group into topics.")
for n, gap in enumerate(report.gap_topics):
    seen = f"{gap.earlier} more in earlier periods" if gap.earlier else "new this period"
    with ui.lazy_expander(f"{gap.label} ({len(gap.log_ids)} questions, {seen})", f"prod-gap-open-{gap.log_ids[0]}") as open_:
        if not open_:
            continue
        for text in gap.representatives:
            st.text(f"• {one_line(text, 160)}")
        logs = ", ".join(map(str, gap.log_ids))
        st.caption(f"Mean similarity to the nearest approved example: {gap.similarity:.2f}. Logs: {logs}.")
        if authors:
            with st.form(f"prod-gap-{n}-{gap.log_ids[0]}"):
                assignee = st.selectbox("Assign to", authors)
                if st.form_submit_button("Make tasks"):
                    made = ui.attempt(
                        lambda g=gap, a=assignee: monitoring.create_log_tasks(store, user.username, g.log_ids, a, label=g.label)
                    )
                    if made is not None:
                        st.session_state["prod_flash"] = f"{len(made)} tasks for {assignee} from gap topic '{gap.label}'."
                        st.rerun()


# ------------------------------------------------------------------------------------------ bad answers
def _bad_answer(bad: BadAnswer, authors: list[str]) -> None:
    ui.conversation(bad)
    if bad.comment:
        st.text(f"Customer's comment: {bad.comment}")
    st.caption(f"Nearest approved example: similarity {bad.similarity:.2f} ({'covered' if bad.covered else 'not covered'}).")
    if bad.task_id:
        st.caption(f"Authoring task {bad.task_id} was made from this conversation.")
    elif authors:
        with st.form(f"prod-bad-{bad.log_id}"):
            assignee = st.selectbox("Assign to", authors)
            if st.form_submit_button("Make task"):
                made = ui.attempt(lambda: monitoring.create_log_tasks(store, user.username, [bad.log_id], assignee))
                if made is not None:
                    st.session_state["prod_flash"] = f"Task {made[0].id} for {assignee}: {one_line(made[0].question, 80)}"
                    st.rerun()  # the whole page: the flash and the counts above change


@st.fragment
def _bad_answers(bad_answers: list[BadAnswer], authors: list[str]) -> None:
    """Ten at a time, each drawn only when opened (opening one reruns this fragment, not the page)."""
    st.subheader(f"Badly rated answers ({len(bad_answers)})")
    if not bad_answers:
        st.caption("No answer was rated 1-2 or got a thumbs down.")
    pages = max(1, -(-len(bad_answers) // BAD_PER_PAGE))
    number = st.number_input(f"Page (of {pages})", 1, pages, 1, key="prod_bad_page") if pages > 1 else 1
    first = (number - 1) * BAD_PER_PAGE
    for bad in bad_answers[first : first + BAD_PER_PAGE]:
        day = f"{bad.received_at:%Y-%m-%d}" if bad.received_at else "undated"
        label = f"Log {bad.log_id} · {bad.verdict} · {day} · {one_line(bad.question, 80)}"
        with ui.lazy_expander(label, f"prod-bad-open-{bad.log_id}") as open_:
            if open_:
                _bad_answer(bad, authors)
    if pages > 1:
        shown = f"{first + 1}-{min(first + BAD_PER_PAGE, len(bad_answers))}"
        st.caption(f"Newest first: {shown} of {len(bad_answers)}; `goldsmith monitor` lists them all.")


_bad_answers(report.bad_answers, authors)
