"""Dashboard: counts by status and tag, coverage against targets, reviewer throughput and agreement,
how much of the approved data started as model drafts, duplicate clusters to resolve, the coverage
map and gap topics that become authoring tasks or model drafts (drafted by a job in its own
process, so the page never waits for the model)."""

from __future__ import annotations

from functools import partial

import altair as alt
import pandas as pd
import streamlit as st

from app import ui
from curation.examples import review_queue
from curation.examples.drafts import drafted_share
from curation.insight import coverage
from curation.insight.coverage import import_question_log
from curation.insight.tasks import create_tasks
from curation.people.permissions import can
from curation.people.users import assignable_authors
from schemas import DuplicateResolution, GapTopic, Job, one_line
from training.drafts import start_gap_drafting
from training.jobs import get_job, latest_job, list_jobs

REFRESH_S = 3

user = ui.require_user()
store = ui.store()
is_lead = can(user, "bulk_set_status")

st.title("Dashboard")
flash = st.session_state.pop("dash_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")

stats = store.stats()
cols = st.columns(len(stats.by_status) + 1 or 1)
cols[0].metric("Examples", f"{stats.examples:,}")
for col, (status, n) in zip(cols[1:], stats.by_status.items(), strict=False):
    col.metric(status.replace("_", " ").capitalize(), f"{n:,}")

left, right = st.columns(2, gap="large")
with left:
    st.subheader("By status")
    frame = pd.DataFrame({"status": list(stats.by_status), "examples": list(stats.by_status.values())})
    st.altair_chart(
        alt.Chart(frame).mark_bar().encode(x=alt.X("examples:Q"), y=alt.Y("status:N", sort="-x"), tooltip=["status", "examples"]),
        width="stretch",
    )
with right:
    st.subheader("By category")
    frame = pd.DataFrame({"category": list(stats.by_category), "examples": list(stats.by_category.values())})
    st.altair_chart(
        alt.Chart(frame).mark_bar().encode(x="examples:Q", y=alt.Y("category:N", sort="-x"), tooltip=["category", "examples"]),
        width="stretch",
    )

# ------------------------------------------------------------------------------------------ coverage heat map
st.subheader("Coverage against targets")
cells = coverage.taxonomy_coverage(store)
if cells:
    heat = pd.DataFrame(
        [
            {
                "category": c.category,
                "response type": c.response_type,
                "approved": c.approved,
                "target": c.target or 0,
                "filled": min(1.0, c.approved / c.target) if c.target else None,
                "label": f"{c.approved}/{c.target}" if c.target else str(c.approved),
            }
            for c in cells
        ]
    )
    base = alt.Chart(heat).encode(
        x=alt.X("response type:N", axis=alt.Axis(labelAngle=-25, labelLimit=0, title=None)),
        y=alt.Y("category:N", axis=alt.Axis(labelLimit=0, title=None)),
    )
    # Dark cells (both ends of red-yellow-green) get white numbers, light ones black; a cell without a target is grey.
    dark = "datum.filled != null && (datum.filled < 0.3 || datum.filled > 0.75)"
    chart = base.mark_rect(stroke="white").encode(
        color=alt.Color(
            "filled:Q",
            scale=alt.Scale(scheme="redyellowgreen", domain=[0, 1]),
            title="share of target",
            legend=alt.Legend(format="%"),
        ),
        tooltip=["category", "response type", "approved", "target"],
    ) + base.mark_text(baseline="middle", fontSize=13).encode(
        text="label:N", color=alt.condition(dark, alt.value("white"), alt.value("#1f1f1f"))
    )
    categories = heat["category"].nunique()
    st.altair_chart(chart.properties(height=max(160, 38 * categories)), width="stretch")
    thin = [c for c in cells if c.target and c.approved < c.target][:5]
    if thin:
        st.caption("Thinnest cells: " + "; ".join(f"{c.category} / {c.response_type} ({c.approved} of {c.target})" for c in thin))
else:
    st.caption("No taxonomy yet: an admin sets categories, response types and targets on the Admin page.")

# ------------------------------------------------------------------------------------------ reviewers
st.subheader("Reviewers")
report = review_queue.agreement_report(store)
c1, c2, c3 = st.columns(3)
c1.metric("Reviews", f"{stats.reviews:,}")
c2.metric("Double-reviewed", report.double_reviewed)
c3.metric("Agreement", f"{report.agreement:.0%}" if report.agreement is not None else "n/a")
if report.reviewers:
    frame = pd.DataFrame(
        [
            {"reviewer": r.reviewer, "decision": d.replace("_", " "), "reviews": n}
            for r in report.reviewers
            for d, n in r.decisions.items()
        ]
    )
    st.altair_chart(
        alt.Chart(frame)
        .mark_bar()
        .encode(x="reviews:Q", y=alt.Y("reviewer:N", sort="-x"), color="decision:N", tooltip=["reviewer", "decision", "reviews"]),
        width="stretch",
    )

# ------------------------------------------------------------------------------------------ model drafts
st.subheader("Model drafts")
drafts = drafted_share(store)
d1, d2, d3 = st.columns(3)
d1.metric(
    "Approved that started as drafts",
    f"{drafts.share:.0%}" if drafts.share is not None else "n/a",
    help=f"{drafts.drafted} of {drafts.approved} approved examples started as a model's draft.",
)
d2.metric(
    "Accepted unchanged",
    f"{drafts.unchanged_share:.0%}" if drafts.unchanged_share is not None else "n/a",
    help=f"{drafts.accepted_unchanged} approved drafts kept the model's text word for word.",
)
d3.metric(
    "Mean change by the experts",
    f"{drafts.mean_edit_distance:.0%}" if drafts.mean_edit_distance is not None else "n/a",
    help="Normalised edit distance from the model's draft to the approved response (1 - difflib ratio): 0% unchanged.",
)
if drafts.by_model:
    st.caption("Drafted by: " + "; ".join(f"{ui.safe_markdown_text(m)} ({n})" for m, n in drafts.by_model.items()))


# ------------------------------------------------------------------------------------------ duplicates
def _resolved(done: DuplicateResolution) -> str:
    ids = ", ".join(map(str, done.example_ids))
    if done.resolution == "intended_variation":
        return f"Cluster {ids} marked as intended variation; it is no longer reported and nothing was archived."
    archived = ", ".join(map(str, done.archived)) or "nothing"
    merged = " (its labels gained the others')" if done.resolution == "merge" else ""
    return f"Cluster {ids}: kept example {done.kept_id}{merged}, archived {archived}."


st.subheader("Duplicate clusters")
methods = st.multiselect("Methods", ["exact", "near", "semantic"], default=["exact", "near"], key="dash_methods")
keep_punctuation = st.checkbox(
    "Exact duplicates must match in punctuation too",
    key="dash_keep_punctuation",
    disabled="exact" not in methods,
    help='Case and spacing are always ignored; by default punctuation is too ("Is hail covered?" = "is hail covered").',
)
if st.button("Find duplicate clusters", icon=":material/content_copy:", disabled=not methods):
    from curation.similarity.dedup import find_duplicates

    with st.spinner("Comparing every example (signatures and embeddings are cached in the store)..."):
        found = ui.attempt(lambda: find_duplicates(store, methods, ignore_punctuation=not keep_punctuation))
    if found is not None:
        st.session_state["dash_dups"] = found
dups = st.session_state.get("dash_dups")
if dups is not None:
    st.caption(f"{len(dups.clusters)} clusters among {dups.examples:,} examples.")
    for n, cluster in enumerate(dups.clusters[:30]):
        with st.expander(f"{cluster.kind} · similarity {cluster.similarity:.2f} · examples {', '.join(map(str, cluster.ids))}"):
            for example_id in cluster.ids:
                example = ui.attempt(lambda i=example_id: store.get_example(i))
                if example:
                    ui.link_to_example(example.id, f"Example {example.id} · {example.status} · by {example.author}")
                    st.text(one_line(example.prompt, 140))
            if is_lead:
                with st.form(f"resolve-{n}-{'-'.join(map(str, cluster.ids))}"):
                    resolution = st.radio(
                        "Resolution",
                        ["keep_one", "merge", "intended_variation"],
                        format_func=lambda r: {
                            "keep_one": "Keep one (archive the others)",
                            "merge": "Merge (keep one, gain the others' labels)",
                            "intended_variation": "Intended variation (stop reporting)",
                        }[r],
                    )
                    keep = st.selectbox("Keep", cluster.ids)
                    note = st.text_input("Note")
                    if st.form_submit_button("Resolve"):
                        from curation.examples.duplicates import resolve_duplicates

                        done = ui.attempt(
                            lambda c=cluster, r=resolution, k=keep, t=note: resolve_duplicates(
                                store, user.username, c.ids, r, keep_id=None if r == "intended_variation" else k, note=t
                            )
                        )
                        if done:
                            rest = [c for c in dups.clusters if c.ids != cluster.ids]  # the other clusters stay listed
                            st.session_state["dash_dups"] = dups.model_copy(update={"clusters": rest})
                            st.session_state["dash_flash"] = _resolved(done)
                            st.rerun()
    if len(dups.clusters) > 30:
        st.caption(f"Showing 30 of {len(dups.clusters)}; resolve these first or use `goldsmith dedup`.")

# ------------------------------------------------------------------------------------------ coverage map and gaps
st.subheader("Coverage map and gap topics")
if st.button("Compute the coverage map", icon=":material/scatter_plot:"):
    with st.spinner("Embedding questions and approved examples (cached after the first run)..."):
        try:
            result = ui.attempt(lambda: coverage.coverage_report(store, save_gaps=can(user, "manage_coverage")))
        except ImportError as error:
            st.error(f"The coverage map needs the embedding model, which is not installed here ({error}).")
            result = None
    if result is not None:
        st.session_state["dash_cov"] = result
if can(user, "manage_coverage"):
    with st.expander("Add a question log", icon=":material/upload_file:"):
        st.caption(
            "Real questions users asked (JSONL with a `text` or `question` field, or one question per line). "
            "The production logs' questions (Production page) count too."
        )
        log = st.file_uploader("Question log", type=["jsonl", "json", "txt", "csv"], key="dash_questions")
        if log is not None and st.button("Import the questions", icon=":material/upload:"):
            added = ui.attempt(partial(import_question_log, store, user.username, log.name, log.getvalue()))
            if added is not None:
                st.session_state["dash_flash"] = (
                    f"{added.imported} questions added, {added.duplicates} already known, {len(added.rejected)} rejected."
                )
                st.rerun()
cov = st.session_state.get("dash_cov")
if cov is not None:
    if not cov.questions:
        st.info("No real questions yet: add a question log above, or import production logs on the Production page.")
    else:
        st.caption(f"{cov.covered_questions} of {cov.questions} real questions are covered (similarity ≥ {cov.threshold}).")
        points = pd.DataFrame(
            [
                {
                    "x": p.x,
                    "y": p.y,
                    "kind": p.kind if p.kind == "example" else ("covered question" if p.covered else "gap question"),
                    "label": p.label,
                }
                for p in cov.map
            ]
        )
        if not points.empty:
            st.altair_chart(
                alt.Chart(points)
                .mark_circle(size=40, opacity=0.7)
                .encode(x=alt.X("x:Q", axis=None), y=alt.Y("y:Q", axis=None), color="kind:N", tooltip=["kind", "label"])
                .interactive(),
                width="stretch",
            )


def _drafted(job: Job) -> int:
    return len((job.result or {}).get("example_ids", []))


def _draft_form(gap: GapTopic, authors: list[str]) -> None:
    """Draft answers to a gap topic's questions with a model, as a drafting job in its own process."""
    if gap.id is None:  # a topic not saved to the store has nothing to draft against
        return
    topic_id: int = gap.id
    job = latest_job(store, "draft_gap", topic_id)
    if job is not None and job.active:
        st.caption(f"Drafting answers in the background: {_drafted(job)} so far (job {job.id}, pid {job.pid}).")
        return
    if job is not None:
        _draft_outcome(job)
    from training.runs import list_runs

    finished = [r.id for r in list_runs(store) if r.status == "completed"]
    with st.form(f"gap-draft-{gap.id}"):
        st.markdown("**Draft answers with a model** (an author edits or accepts each draft before review)")
        assignee = st.selectbox("Drafts for", authors, key=f"da-{gap.id}")
        model = st.selectbox(
            "Model", ["base:smollm2-135m", *finished], key=f"dm-{gap.id}", help="A base model, or a finished run's adapter."
        )
        limit = st.number_input("How many questions", 1, len(gap.question_ids), min(5, len(gap.question_ids)), key=f"dl-{gap.id}")
        if st.form_submit_button("Draft answers"):
            started = ui.attempt(
                lambda: start_gap_drafting(store, user.username, topic_id, model or "", assignee or "", limit=int(limit))
            )
            if started:
                st.session_state["dash_flash"] = (
                    f"Drafting answers to gap topic {gap.id} for {assignee} in the background (job {started.id})."
                )
                st.rerun()


def _draft_outcome(job: Job) -> None:
    """How a gap topic's last drafting batch ended."""
    assignee = job.params.get("assignee", "?")
    if job.status == "completed":
        st.caption(f"Last batch: {_drafted(job)} drafts for {assignee} (job {job.id}).")
        return
    said = ui.safe_markdown_text(one_line(job.error or job.status, 300))
    text = f"The last batch ({job.id}) {job.status} after {_drafted(job)} drafts for {assignee}: {said}"
    if job.status == "cancelled":
        st.info(text, icon=":material/stop_circle:")
    else:
        st.error(text, icon=":material/error:")
    if job.log_path:
        st.caption(f"Log: `{job.log_path}`")


def _draft_jobs(watched: list[str]) -> None:
    """The drafting batches at work now, whoever started them; redrawn while any is active."""
    active = list_jobs(store, kind="draft_gap", active=True)
    for job in active:
        st.info(
            f"Drafting answers to gap topic {job.target} for {job.params.get('assignee', '?')}: "
            f"{_drafted(job)} so far (job {job.id}, pid {job.pid})...",
            icon=":material/hourglass_top:",
        )
    done = [job_id for job_id in watched if job_id not in {j.id for j in active}]
    if done:
        job = get_job(store, done[0])
        if job.status == "completed":
            st.session_state["dash_flash"] = f"Gap topic {job.target}: {_drafted(job)} drafts created."
        else:
            st.session_state["dash_draft_failed"] = (
                f"Drafting gap topic {job.target} {job.status} after {_drafted(job)} drafts: "
                f"{ui.safe_markdown_text(one_line(job.error or '', 300))}"
            )
        st.rerun()  # it ended: redraw the page with its outcome


failed = st.session_state.pop("dash_draft_failed", None)
if failed:
    st.error(failed, icon=":material/error:")
drafting = [job.id for job in list_jobs(store, kind="draft_gap", active=True)]
st.fragment(_draft_jobs, run_every=REFRESH_S if drafting else None)(drafting)

gaps = coverage.latest_gap_topics(store)
if gaps:
    authors = [u.username for u in assignable_authors(store)]
    for gap in gaps[:20]:
        with ui.lazy_expander(
            f"Gap topic {gap.id}: {gap.label} ({len(gap.question_ids)} questions)", f"dash-gap-open-{gap.id}"
        ) as open_:
            if not open_:
                continue
            for text in gap.representatives:
                st.text(f"• {text}")
            if can(user, "manage_coverage") and authors:
                with st.form(f"gap-{gap.id}"):
                    assignee = st.selectbox("Assign to", authors)
                    limit = st.number_input("How many questions", 1, len(gap.question_ids), min(5, len(gap.question_ids)))
                    if st.form_submit_button("Create authoring tasks"):
                        made = ui.attempt(
                            lambda g=gap, a=assignee, n=limit: create_tasks(store, user.username, g.id, a, limit=int(n))
                        )
                        if made is not None:
                            st.session_state["dash_flash"] = f"{len(made)} tasks created for {assignee}."
                            st.rerun()
                _draft_form(gap, authors)
else:
    st.caption("No gap topics yet. Compute the coverage map after importing real questions.")
