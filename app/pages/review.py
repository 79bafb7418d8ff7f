"""Review: the reviewer's queue (filters, an id box, counts that agree), then one example with the checks its
author saw at the top, readable word-level diffs, and a pinned rubric that starts unset: only the scores a
reviewer gives are recorded, and the decision must be chosen."""

from __future__ import annotations

from functools import partial

import streamlit as st
from pydantic import ValidationError

from app import ui
from curation.errors import GoldsmithError
from curation.examples import review_queue, workflow
from curation.examples.drafts import draft_label
from curation.examples.review_brief import review_brief
from curation.examples.taxonomy import get_taxonomy
from curation.people.users import assignable_authors
from schemas import QUEUE_FLAGS, RUBRIC, Example, ReviewInput, ReviewQueueFilter
from schemas.review import DECIDED, FLAG_WORDS

WAITING = {0: "any time", 1: "1 day or more", 3: "3 days or more", 7: "a week or more"}
DECISION_LABELS = {"approve": "Approve", "request_changes": "Request changes", "reject": "Reject"}
# The rubric column stays in view while a long example scrolls past it.
PIN_RUBRIC = (
    "<style>[data-testid='stColumn']:has(.st-key-review_rubric){position:sticky;top:3.75rem;align-self:flex-start;"
    "max-height:calc(100vh - 4.5rem);overflow-y:auto;z-index:2}</style>"
)

user = ui.require_user("review_example")
store = ui.store()
taxonomy, _ = get_taxonomy(store)

st.title("Review")
flash = st.session_state.pop("review_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")

# ------------------------------------------------------------------------------------------ the queue
with st.expander("Choose what to review", icon=":material/filter_list:"):
    c1, c2, c3, c4 = st.columns([2, 2, 2, 3])
    category = c1.selectbox("Category", ["(any)", *taxonomy.categories], key="rq_category")
    authors = [u.username for u in assignable_authors(store) if u.username != user.username]
    author = c2.selectbox("Author", ["(any)", *authors], key="rq_author")
    waiting = c3.selectbox("Waiting", list(WAITING), format_func=lambda d: WAITING[d], key="rq_waiting")
    flags = c4.multiselect("Flags", QUEUE_FLAGS, format_func=lambda f: FLAG_WORDS[f], key="rq_flags", placeholder="any")
    wanted = st.number_input("Open example by id", min_value=0, value=0, step=1, key="rq_id", help="0: the queue decides.")
flt = ReviewQueueFilter(
    category=None if category == "(any)" else category,
    author=None if author == "(any)" else author,
    waiting_days=waiting or None,
    flags=tuple(flags),
)
skipped = tuple(st.session_state.get("review_skipped", ()))
queue = review_queue.review_queue(store, user.username, flt, skip=skipped)
report = review_queue.agreement_report(store)
mine = next((r for r in report.reviewers if r.reviewer == user.username), None)

c1, c2, c3, c4 = st.columns(4)
c1.metric("Waiting for you", queue.waiting, help="Submitted by others, not yet reviewed by you at their current version.")
c2.metric(
    "Left to review" + (" (filtered)" if flt.active else ""),
    queue.left,
    help=f"{queue.matching} match the filters; you skipped {queue.skipped} of them for now." if flt.active else None,
)
c3.metric("Your reviews (7 days)", mine.last_7_days if mine else 0)
c4.metric(
    "Team agreement",
    f"{report.agreement:.0%}" if report.agreement is not None else "n/a",
    help=f"{report.agreed} of {report.double_reviewed} double-reviewed examples got the same decision from both reviewers.",
)

opened = partial(review_queue.open_for_review, store, user.username, int(wanted))
example: Example | None = ui.attempt(opened) if wanted else queue.next
if example is None:
    if wanted:
        st.stop()
    if queue.waiting == 0:
        st.info("Nothing is waiting for you. Check again later.", icon=":material/done_all:")
    elif queue.matching == 0:
        st.info(f"None of the {queue.waiting} examples waiting for you match these filters; widen them.")
    else:
        st.info(f"You skipped all {queue.skipped} examples left here; they come back when you ask.")
    if skipped and st.button("Show the skipped examples again", icon=":material/replay:"):
        st.session_state["review_skipped"] = []
        st.rerun()
    st.stop()

brief = review_brief(store, user.username, example.id)


def _skip(example_id: int) -> None:
    st.session_state["review_skipped"] = [*st.session_state.get("review_skipped", ()), example_id]


def _record(example: Example, waits_for_second: bool) -> None:
    """Record Review: the scores given, the chosen decision and the comment, as one service call."""
    form = f"{example.id}-{example.version}"
    given = {
        "decision": st.session_state.get(f"decision-{form}"),
        "rubric": {name: st.session_state.get(f"score-{name}-{form}") for name in RUBRIC},
        "comment": st.session_state.get(f"comment-{form}") or "",
    }
    try:
        judged = ReviewInput.model_validate(given)
        stored = workflow.review_example(store, user.username, example.id, example.version, judged)
    except (GoldsmithError, ValidationError) as error:
        st.session_state["review_refused"] = error  # shown under the form by the run this callback precedes
        return
    st.session_state["review_flash"] = (
        f"Review of example {example.id} recorded; it waits for a second reviewer."
        if waits_for_second
        else f"Example {example.id}: {DECIDED[stored.decision]}."
    )
    st.session_state["rq_id"] = 0  # an example opened by id: back to the queue


# ------------------------------------------------------------------------------------------ what it is
st.subheader(f"Example {example.id}")
st.caption(
    f"by {example.author} · version {example.version} · {ui.tags_line(example)} · waiting since {example.updated_at:%Y-%m-%d}"
    + (" · gets two independent reviews" if brief.double_reviewed else "")
    + (" · the first review is in; yours decides" if brief.first_review_given else "")
)
if brief.problems:
    st.error("It went to review despite: " + "; ".join(brief.problems) + ".", icon=":material/report:")
    if brief.reason:
        st.info(f"The author's reason: {ui.safe_markdown_text(brief.reason)}", icon=":material/record_voice_over:")
elif brief.reason:
    st.info(f"The author's note: {ui.safe_markdown_text(brief.reason)}", icon=":material/record_voice_over:")
mark = example.drafted_by
if mark is not None:
    accepted = example.metadata.get("draft_accepted") or {}
    st.info(
        f"Started as a model draft ({ui.safe_markdown_text(draft_label(mark))})"
        + (f"; accepted as is by {accepted.get('by')}." if accepted else "; the author edited it: see what changed below."),
        icon=":material/smart_toy:",
    )
with st.expander("What the checks found when it was submitted", expanded=bool(brief.checks.warnings or brief.checks.matches)):
    ui.draft_checks(brief.checks)

st.html(PIN_RUBRIC)
left, right = st.columns([3, 2], gap="large")
with left:
    ui.conversation(example)
    if brief.review_diff is not None:
        with st.expander("What changed since the last review", expanded=True):
            ui.text_diff(brief.review_diff)
    if brief.draft_diff is not None:
        with st.expander("The model's draft against the response", expanded=True):
            ui.text_diff(brief.draft_diff)
    if brief.earlier_reviews:
        with st.expander(f"Earlier reviews ({len(brief.earlier_reviews)})"):
            for r in brief.earlier_reviews:
                given = ", ".join(f"{k} {v}" for k, v in r.rubric.scores.items()) if r.rubric else "no scores"
                st.markdown(f"**{r.reviewer}** on version {r.example_version}: {DECIDED[r.decision]} · {given}")
                if r.comment:
                    ui.markdown(r.comment)

with right, st.container(key="review_rubric"):
    # One form: Tab moves through the scores, the decision and the comment; the button records it. Its
    # key names the example and version, so a double click cannot record a review twice. Nothing starts
    # chosen: a score left blank is not recorded, and there is no decision until the reviewer picks one.
    with st.form(f"review-{example.id}-{example.version}", border=True):
        st.markdown("**Rubric** (1 poor … 5 excellent; leave a criterion blank to not score it)")
        form = f"{example.id}-{example.version}"
        for name in RUBRIC:
            st.segmented_control(name.capitalize(), [1, 2, 3, 4, 5], key=f"score-{name}-{form}")
        st.radio(
            "Decision",
            list(DECISION_LABELS),
            index=None,
            format_func=lambda d: DECISION_LABELS[d],
            horizontal=True,
            key=f"decision-{form}",
        )
        st.text_area("Comment for the author", help="Needed to reject or request changes.", key=f"comment-{form}")
        # Callbacks run before the next run: a review or a skip costs one run of the page, not two.
        waits = brief.double_reviewed and not brief.first_review_given
        st.form_submit_button("Record review", type="primary", icon=":material/gavel:", on_click=_record, args=(example, waits))
    refused = st.session_state.pop("review_refused", None)
    if refused is not None:
        ui.show_error(refused)
    position = f"{queue.left} left" + (f", {queue.skipped} skipped" if queue.skipped else "")
    if not wanted:
        st.button("Skip for now", icon=":material/skip_next:", help=position, on_click=_skip, args=(example.id,))

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
