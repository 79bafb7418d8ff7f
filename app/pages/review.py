"""Review: the next submitted example for this reviewer, rubric scores, a decision with a comment,
the diff against the last reviewed version, and the team's overlap and agreement."""

from __future__ import annotations

import streamlit as st

from app import ui
from curation.examples import review_queue, workflow
from curation.examples.drafts import draft_diff, draft_label
from schemas import RUBRIC, ReviewInput, Rubric

user = ui.require_user("review_example")
store = ui.store()

st.title("Review")
flash = st.session_state.pop("review_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")

skipped = tuple(st.session_state.get("review_skipped", ()))
example = ui.attempt(lambda: review_queue.next_for_review(store, user.username, skip=skipped))
share = review_queue.overlap_share(store)
report = review_queue.agreement_report(store)
mine = next((r for r in report.reviewers if r.reviewer == user.username), None)

c1, c2, c3, c4 = st.columns(4)
c1.metric("Waiting for you", review_queue.queue_size(store, user.username))
c2.metric("Your reviews (7 days)", mine.last_7_days if mine else 0)
c3.metric("Double-reviewed share", f"{share:.0%}")
c4.metric(
    "Team agreement",
    f"{report.agreement:.0%}" if report.agreement is not None else "n/a",
    help=f"{report.agreed} of {report.double_reviewed} double-reviewed examples got the same decision from both reviewers.",
)

if example is None:
    st.info("Nothing left to review. " + ("Skipped examples come back: " if skipped else "") + "Check again later.")
    if skipped and st.button("Show the skipped examples again"):
        st.session_state["review_skipped"] = []
        st.rerun()
    st.stop()

double = review_queue.is_double_reviewed(example.id, share)
st.subheader(f"Example {example.id}")
st.caption(
    f"by {example.author} · version {example.version} · {ui.tags_line(example)}"
    + (" · gets two independent reviews" if double else "")
)
mark = example.drafted_by
if mark is not None:
    accepted = example.metadata.get("draft_accepted") or {}
    st.info(
        f"Started as a model draft ({ui.safe_markdown_text(draft_label(mark))})"
        + (f"; accepted as is by {accepted.get('by')}." if accepted else "; the author edited it: see what changed below."),
        icon=":material/smart_toy:",
    )
left, right = st.columns([3, 2], gap="large")
with left:
    ui.conversation(example)
    drafted = draft_diff(example)
    if drafted is not None:
        with st.expander("The model's draft against the current response", expanded=True):
            st.code("\n".join(drafted) or "Unchanged: the response is the model's draft, word for word.", language="diff")
    diff = review_queue.diff_since_last_review(store, example)
    if diff is not None:
        with st.expander("Changes since the last review", expanded=True):
            st.code("\n".join(diff) or "No text changes since the last review.", language="diff")
    earlier = [r for r in store.reviews_for(example.id) if r.example_version < example.version]
    if earlier:
        with st.expander(f"Earlier reviews ({len(earlier)})"):
            for r in earlier:
                st.markdown(f"**{r.reviewer}** on version {r.example_version}: {r.decision.replace('_', ' ')}")
                if r.comment:
                    ui.markdown(r.comment)

with right:
    # One form: Tab moves through the scores, the decision and the comment; the button records it.
    # Its key names the example and version, so a double click cannot record a review twice.
    with st.form(f"review-{example.id}-{example.version}", border=True):
        st.markdown("**Rubric** (1 poor … 5 excellent)")
        scores = {
            name: st.slider(name.capitalize(), 1, 5, 4, key=f"score-{name}-{example.id}-{example.version}") for name in RUBRIC
        }
        decision = st.radio(
            "Decision",
            ["approve", "request_changes", "reject"],
            format_func=lambda d: {"approve": "Approve", "request_changes": "Request changes", "reject": "Reject"}[d],
            horizontal=True,
        )
        comment = st.text_area("Comment for the author", help="Needed to reject or request changes.")
        recorded = st.form_submit_button("Record review", type="primary", icon=":material/gavel:")
    if st.button("Skip for now", icon=":material/skip_next:"):
        st.session_state["review_skipped"] = [*skipped, example.id]
        st.rerun()

if recorded:
    reviewed, review = example, ui.attempt(lambda: ReviewInput(decision=decision, rubric=Rubric(**scores), comment=comment))
    stored = None
    if review is not None:
        judged = review
        stored = ui.attempt(lambda: workflow.review_example(store, user.username, reviewed.id, reviewed.version, judged))
    if stored:
        after = store.get_example(example.id)
        pending = after.status == "submitted"
        st.session_state["review_flash"] = (
            f"Review of example {example.id} recorded; it waits for a second reviewer."
            if pending
            else f"Example {example.id}: {stored.decision.replace('_', ' ')} recorded."
        )
        st.rerun()

with st.expander("Reviewer throughput and agreement"):
    if report.reviewers:
        st.dataframe(
            [
                {
                    "reviewer": r.reviewer,
                    "reviews": r.reviews,
                    "last 7 days": r.last_7_days,
                    "approved": r.decisions.get("approve", 0),
                    "changes requested": r.decisions.get("request_changes", 0),
                    "rejected": r.decisions.get("reject", 0),
                    "double-reviewed": r.double_reviewed,
                    "agreed": r.agreed,
                }
                for r in report.reviewers
            ],
            hide_index=True,
        )
    else:
        st.caption("No reviews yet.")
