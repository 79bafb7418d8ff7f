"""Compare (reviewers and leads): blind side-by-side judging of a run's answers against the base
model's, the tuned model's win rate with its confidence interval, and a losing answer sent back
to an author as a task."""

from __future__ import annotations

import streamlit as st

from app import ui
from curation.people.users import assignable_authors
from schemas import RUBRIC
from schemas.training import VoteInput
from training.evaluation.blind import evaluation, judged, next_comparison, task_from_comparison, vote, win_rate, win_rate_by
from training.runs import list_runs

CHOICES = {"a": "A is better", "b": "B is better", "tie": "Tie"}

user = ui.require_user("judge_models")
store = ui.store()

st.title("Compare")
flash = st.session_state.pop("compare_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")

evaluated = {r.id: (r, evaluation(store, r.id)) for r in list_runs(store) if r.status == "completed"}
reports = {run_id: (run, report) for run_id, (run, report) in evaluated.items() if report is not None and report.comparisons}
if not reports:
    st.info("No run has blind comparisons yet. A lead evaluates a finished run on the Training page.", icon=":material/compare:")
    st.stop()

ids = list(reports)
run_id = ui.remembered_select(
    "Run", ids, "compare_run", lambda i: f"{reports[i][0].name} · {i} ({reports[i][1].comparisons} comparisons)"
)
run, report = reports[run_id]
st.caption(f"Base model {run.base_model} against its LoRA run {run.id}; each pair is shown in a random order.")

# ------------------------------------------------------------------------------------------ win rate

rate = win_rate(store, run_id)
c1, c2, c3, c4 = st.columns(4)
c1.metric(
    "Tuned model win rate",
    f"{rate.win_rate:.0%}" if rate.win_rate is not None else "n/a",
    help="Wins of the tuned model over all votes; ties count half.",
)
c2.metric(
    f"{rate.confidence:.0%} interval",
    f"{rate.ci_low:.0%} – {rate.ci_high:.0%}" if rate.ci_low is not None else "n/a",
    help="Wilson score interval: the range the true win rate is likely in, given this many votes.",
)
c3.metric("Votes", rate.votes, help=f"Tuned wins {rate.tuned_wins}, base wins {rate.base_wins}, ties {rate.ties}.")
c4.metric("Comparisons", report.comparisons)
by_category = win_rate_by(store, run_id, "category")
if rate.votes:
    with st.expander("Win rate by category (worst first)", expanded=False):
        st.dataframe(
            [
                {
                    "category": name,
                    "votes": r.votes,
                    "tuned wins": r.tuned_wins,
                    "base wins": r.base_wins,
                    "ties": r.ties,
                    "win rate": f"{r.win_rate:.0%}" if r.win_rate is not None else "",
                    "95% interval": f"{r.ci_low:.0%} – {r.ci_high:.0%}" if r.ci_low is not None else "",
                }
                for name, r in by_category.items()
            ],
            hide_index=True,
        )
judge = report.judge
if judge is not None and judge.win_rate is not None:
    agreed = judge.agreement
    st.caption(
        f"The automatic judge ({judge.method}) prefers the tuned model on {judge.win_rate:.0%} of the prompts"
        + (
            f"; it agrees with people on {agreed.share:.0%} of {agreed.votes} votes"
            + (f" (Cohen's kappa {agreed.kappa:.2f})" if agreed.kappa is not None else "")
            if agreed and agreed.share is not None
            else "."
        )
    )
done, total = judged(store, user.username, run_id)
if total:
    st.progress(done / total, text=f"You have judged {done} of {total} comparisons")

# ------------------------------------------------------------------------------------------ the last vote, revealed

last = st.session_state.get("compare_last")
if last and last["run_id"] == run_id:
    with st.container(border=True):
        tuned = last["tuned_is"].upper()
        outcome = {"tuned": "the tuned model won", "base": "the base model won", "tie": "a tie"}[last["winner"]]
        picked = "called it a tie" if last["choice"] == "tie" else f"picked answer {last['choice'].upper()}"
        st.markdown(
            f"**Comparison {last['comparison_id']} revealed:** answer {tuned} was the tuned model; you {picked}, so {outcome}."
        )
        if last.get("task_id"):
            st.caption(f"Sent to {last['assignee']} as task {last['task_id']}.")
        else:
            if last["winner"] != "tuned":
                st.caption("The tuned model did not win this one: an author can write the example it needs.")
            authors = [u.username for u in assignable_authors(store)]
            with st.form(f"task-{last['comparison_id']}", border=False):
                t1, t2 = st.columns([1, 2])
                assignee = t1.selectbox("Author", authors)
                note = t2.text_input("Note for the author (optional)", placeholder="what the answer got wrong")
                send = st.form_submit_button("Send to an author as a task", icon=":material/assignment_add:")
            if send:
                revealed = last["comparison_id"]  # read here: the lambda would see `last` as Optional
                task = ui.attempt(lambda: task_from_comparison(store, user.username, revealed, assignee or "", note=note))
                if task:
                    st.session_state["compare_last"] = {**last, "task_id": task.id, "assignee": task.assignee}
                    st.rerun()

# ------------------------------------------------------------------------------------------ the next pair

comparison = ui.attempt(lambda: next_comparison(store, user.username, run_id))
if comparison is None:
    st.info(f"You have judged every comparison of {run_id}. Thank you.", icon=":material/task_alt:")
    st.stop()

st.subheader(f"Comparison {comparison.id}")
with st.container(border=True):
    for m in comparison.messages:
        with st.chat_message(m["role"], avatar=ui.ROLE_ICONS.get(m["role"])):
            st.caption(m["role"])
            ui.markdown(m["content"])
left, right = st.columns(2, gap="large")
for col, label, text in ((left, "A", comparison.answer_a), (right, "B", comparison.answer_b)):
    with col.container(border=True):
        st.markdown(f"**Answer {label}**")
        ui.markdown(text or "*(empty answer)*")
if comparison.reference:
    with st.expander("Reference answer from the snapshot"):
        ui.markdown(comparison.reference)

with st.form(f"vote-{comparison.id}", border=True):
    choice = st.radio("Which answer is better?", list(CHOICES), format_func=CHOICES.get, horizontal=True, index=None)
    st.markdown("**Rubric for the better answer** (1 poor … 5 excellent)")
    cols = st.columns(len(RUBRIC))
    scores = {
        name: col.slider(name.capitalize(), 1, 5, 3, key=f"cmp-{name}-{comparison.id}")
        for col, name in zip(cols, RUBRIC, strict=True)
    }
    comment = st.text_area("Comment (optional)")
    submitted = st.form_submit_button("Record vote", type="primary", icon=":material/how_to_vote:")

if submitted:
    if choice is None:
        st.error("Pick A, B or tie before recording the vote.", icon=":material/error:")
    else:
        pair_id, judgement = comparison.id, {"choice": choice, "rubric": scores, "comment": comment}
        recorded = ui.attempt(lambda: vote(store, user.username, pair_id, VoteInput.model_validate(judgement)))
        if recorded:
            st.session_state["compare_last"] = {
                "run_id": run_id,
                "comparison_id": comparison.id,
                "choice": choice,
                "tuned_is": comparison.tuned_is,
                "winner": recorded.winner,
            }
            st.rerun()
