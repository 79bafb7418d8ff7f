"""Training (leads): launch a LoRA run on a snapshot, watch its curves live, cancel or resume it,
and start its evaluation. Training and evaluation run as jobs in their own processes
(training.jobs); this page only starts, polls and draws them, from the store."""

from __future__ import annotations

from datetime import UTC, datetime

import altair as alt
import pandas as pd
import streamlit as st
import yaml

from app import ui
from curation.errors import GoldsmithError
from schemas import Job, one_line
from schemas.evaluation import CostEstimate, GateResult
from schemas.training import ACTIVE_STATUSES, RESUMABLE_STATUSES, EvaluationReport, Run, TrainConfig
from training.config import load_config
from training.evaluate import start_evaluation
from training.evaluation.blind import evaluation
from training.evaluation.estimate import start_estimate
from training.evaluation.promotion import gate_for_run, promote_run
from training.evaluation.selection import leaderboard
from training.jobs import get_job, latest_job
from training.runs import cancel_run, events, get_run, launch, list_runs, metrics, resume_run, start_run

REFRESH_S = 2  # how often the curves of an active run, and an evaluation's state, are redrawn
DEFAULTS = {name: field.default for name, field in TrainConfig.model_fields.items()}

user = ui.require_user("launch_training")
store = ui.store()

st.title("Training")
flash = st.session_state.pop("train_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")

# ------------------------------------------------------------------------------------------ launch


def estimate_job() -> Job | None:
    job_id = st.session_state.get("train_estimate_job")
    if not job_id:
        return None
    try:
        return get_job(store, job_id)
    except GoldsmithError:
        return None


def show_estimate() -> None:
    """The last cost estimate asked for in this session (what the run would do here), before the launch button."""
    job = estimate_job()
    if job is None:
        st.caption("Estimate the cost before launching: examples, tokens, steps, time and peak memory on this machine.")
        return
    if job.active:
        st.info(f"Estimating (job {job.id}): loading the model and timing a short probe...", icon=":material/hourglass_top:")
        return
    if job.status != "completed" or job.result is None:
        st.error(f"The estimate {job.status}: {ui.safe_markdown_text(one_line(job.error or '', 300))}", icon=":material/error:")
        return
    e = CostEstimate.model_validate(job.result)
    st.markdown(f"**Cost estimate** · {ui.safe_markdown_text(e.base_model)} · config {e.config_hash}")
    m = st.columns(6)
    m[0].metric("Examples", e.examples, help=f"{e.skipped} skipped, {e.truncated} truncated")
    m[1].metric("Tokens", f"{e.tokens:,}", help="Training tokens after the chat template, one epoch")
    m[2].metric("Packed rows", f"{e.rows:,}")
    m[3].metric("Steps", e.steps, help=f"{e.epochs:g} epochs")
    m[4].metric("Estimated time", f"{e.estimated_seconds / 60:.1f} min", help=f"{e.tokens_per_s:,.0f} tokens/s measured")
    m[5].metric("Peak memory", f"{e.peak_memory_mb:,.0f} MB", help=f"measured on {e.device} ({e.precision})")
    for note in e.notes:
        st.caption(ui.safe_markdown_text(note))


def estimate_poll(was_active: bool) -> None:
    """Redraw the page once the estimate job ends."""
    job = estimate_job()
    if was_active and (job is None or not job.active):
        st.rerun()


_estimating = estimate_job()
if _estimating is not None and _estimating.active:
    st.fragment(estimate_poll, run_every=REFRESH_S)(True)

snaps = store.list_snapshots()
snap_names = {s.id: s.name for s in snaps}
if not snaps:
    st.info("There is no snapshot to train on yet. Cut one on the Snapshots page first.", icon=":material/inventory_2:")
else:
    with st.form(f"launch-{ui.form_token('launch')}", border=True):
        st.markdown("**Launch a LoRA run**")
        c1, c2, c3 = st.columns([2, 2, 2])
        snapshot_id = c1.selectbox(
            "Snapshot",
            [s.id for s in snaps],
            format_func=lambda i: f"{snap_names[i]} · {i[:12]} ({next(s.train for s in snaps if s.id == i)} train)",
        )
        base_model = c2.text_input(
            "Base model", DEFAULTS["base_model"], help="A short name, a local model folder or a cached hub id."
        )
        run_name = c3.text_input("Run name (optional)", placeholder="snapshot name + model")
        c1, c2, c3, c4 = st.columns(4)
        knobs = {
            "learning_rate": c1.number_input("Learning rate", 1e-7, 1.0, DEFAULTS["learning_rate"], 1e-5, format="%.2e"),
            "epochs": c2.number_input("Epochs", 0.1, 100.0, DEFAULTS["epochs"], 0.5),
            "max_steps": c3.number_input("Max steps (0: use epochs)", 0, 1_000_000, 0, 10) or None,
            "eval_every": c4.number_input("Evaluate every (steps)", 1, 100_000, DEFAULTS["eval_every"]),
            "batch_size": c1.number_input("Batch size", 1, 1024, DEFAULTS["batch_size"]),
            "gradient_accumulation_steps": c2.number_input(
                "Gradient accumulation", 1, 1024, DEFAULTS["gradient_accumulation_steps"]
            ),
            "max_seq_length": c3.number_input("Max sequence length", 16, 131_072, DEFAULTS["max_seq_length"], 64),
            "precision": c4.selectbox("Precision", ["auto", "fp32", "bf16", "fp16"]),
            "lora_r": c1.number_input("LoRA r", 1, 1024, DEFAULTS["lora_r"]),
            "lora_alpha": c2.number_input("LoRA alpha", 0.5, 4096.0, float(DEFAULTS["lora_alpha"]), 1.0),
            "lora_dropout": c3.number_input("LoRA dropout", 0.0, 0.95, DEFAULTS["lora_dropout"], 0.01),
        }
        extra = st.text_area(
            "More settings (YAML, optional)",
            placeholder="schedule: linear\nwarmup_ratio: 0.1\ntarget_modules: all-linear",
            help="Any TrainConfig setting as `key: value`; these replace the fields above.",
        )
        show_estimate()
        b1, b2 = st.columns([1, 4])
        estimate_clicked = b1.form_submit_button(
            "Estimate the cost", icon=":material/calculate:", help="Measures a short probe; trains nothing."
        )
        launch_clicked = b2.form_submit_button("Launch", type="primary", icon=":material/rocket_launch:")

    if launch_clicked or estimate_clicked:
        try:
            more = yaml.safe_load(extra) if extra.strip() else {}
        except yaml.YAMLError as error:
            more = None
            st.error(
                f"The extra settings are not valid YAML: {ui.safe_markdown_text(one_line(str(error), 200))}",
                icon=":material/error:",
            )
        if more is not None and not isinstance(more, dict):
            st.error("The extra settings must be `key: value` lines, e.g. `schedule: linear`.", icon=":material/error:")
            more = None
        config = None if more is None else ui.attempt(lambda: load_config(None, {**knobs, "base_model": base_model, **more}))
        started = None
        if isinstance(config, TrainConfig) and estimate_clicked:
            settings = config
            job = ui.attempt(lambda: start_estimate(store, user.username, snapshot_id, settings))
            if job:
                st.session_state["train_estimate_job"] = job.id
                st.rerun()
        elif isinstance(config, TrainConfig):
            settings = config  # the lambda below sees a TrainConfig, not an Optional
            started = ui.attempt(lambda: start_run(store, user.username, snapshot_id, settings, name=run_name))
        if started:
            ui.renew_form_token("launch")
            st.session_state["train_open"] = started.id
            st.session_state["train_flash"] = f"Run {started.id} launched (worker pid {started.pid})."
            st.rerun()

# ------------------------------------------------------------------------------------------ runs


def age(then: datetime | None) -> str:
    if then is None:
        return "never"
    seconds = max(0, int((datetime.now(UTC) - then).total_seconds()))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago" if seconds < 7200 else f"{seconds // 3600} h ago"


def steps(run: Run) -> str:
    return f"{run.step} / {run.total_steps}" if run.total_steps else f"{run.step} / ?"


def runs_table() -> None:
    st.dataframe(
        [
            {
                "id": r.id,
                "name": r.name,
                "status": r.status,
                "step": steps(r),
                "snapshot": snap_names.get(r.snapshot_id, r.snapshot_id[:12]),
                "base model": r.base_model,
                "created": r.created_at.strftime("%Y-%m-%d %H:%M"),
                "by": r.created_by,
                "config hash": r.config_hash,
            }
            for r in list_runs(store)
        ],
        hide_index=True,
    )


st.subheader("Runs")
runs = list_runs(store)
if not runs:
    st.caption("No runs yet.")
    st.stop()
st.fragment(runs_table, run_every=REFRESH_S if any(r.status in ACTIVE_STATUSES for r in runs) else None)()
ids = [r.id for r in runs]
by_id = {r.id: r for r in runs}
chosen = ui.remembered_select("Open a run", ids, "train_open", lambda i: f"{i} · {by_id[i].name} · {by_id[i].status}")
run = by_id[chosen]


def curves(run_id: str) -> None:
    points = metrics(store, run_id)
    if not points:
        st.caption("No metrics yet: the first points appear after the first logged step.")
        return
    df = pd.DataFrame([p.model_dump() for p in points])
    train, evals = df[df["kind"] == "train"], df[df["kind"] == "eval"]
    loss = pd.concat(
        [
            pd.DataFrame({"step": train["step"], "loss": train["loss"], "series": "train loss"}),
            pd.DataFrame({"step": evals["step"], "loss": evals["eval_loss"], "series": "eval loss"}),
        ]
    ).dropna()
    chart = (
        alt.Chart(loss).mark_line(point=True).encode(x="step:Q", y=alt.Y("loss:Q", scale=alt.Scale(zero=False)), color="series:N")
    )
    st.altair_chart(chart.properties(title="Loss", height=260))
    left, right = st.columns(2)
    for col, column, title in ((left, "learning_rate", "Learning rate"), (right, "tokens_per_s", "Tokens per second")):
        data = train[["step", column]].dropna()
        col.altair_chart(
            alt.Chart(data)
            .mark_line()
            .encode(x="step:Q", y=alt.Y(f"{column}:Q", title=title))
            .properties(title=title, height=200)
        )


def live(run_id: str, was_active: bool) -> None:
    """The run's state and curves; redrawn every REFRESH_S seconds while it is active."""
    current = ui.attempt(lambda: get_run(store, run_id))
    if current is None:
        return
    if was_active and current.status not in ACTIVE_STATUSES:
        st.rerun()  # it ended: redraw the whole page so the buttons follow
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Status", current.status)
    c2.metric("Step", steps(current))
    c3.metric("Heartbeat", age(current.heartbeat_at), help="When the worker last reported; a dead worker is marked died.")
    c4.metric("Processes", current.world_size)
    if current.cancel_requested and current.status in ACTIVE_STATUSES:
        st.info("Cancel requested: the worker saves a checkpoint and stops.", icon=":material/hourglass_top:")
    if current.error:
        st.error(ui.safe_markdown_text(one_line(current.error, 400)), icon=":material/error:")
    result = current.result
    if result.get("base_eval_loss") is not None:
        r1, r2, r3, r4 = st.columns(4)
        r1.metric("Base eval loss", f"{result['base_eval_loss']:.4f}")
        final = result.get("final_eval_loss")
        r2.metric("Final eval loss", f"{final:.4f}" if final is not None else "n/a")
        drop = result.get("eval_loss_drop")
        r3.metric("Eval loss drop", f"{drop:.1%}" if drop is not None else "n/a", help="(base - final) / base")
        speed = result.get("tokens_per_s")
        r4.metric("Tokens per second", f"{speed:,.0f}" if speed else "n/a")
    curves(run_id)
    with st.expander("Events", expanded=current.status not in ("completed",)):
        st.dataframe(
            [{"at": e.at.strftime("%Y-%m-%d %H:%M:%S"), "event": e.kind, "message": e.message} for e in events(store, run_id)],
            hide_index=True,
        )


st.markdown(f"#### {ui.safe_markdown_text(run.name)}")
st.caption(
    ui.safe_markdown_text(
        f"{run.id} · snapshot {snap_names.get(run.snapshot_id, run.snapshot_id)} · base model {run.base_model} · "
        f"config {run.config_hash} · code {run.code_version} · folder {run.run_dir}"
    )
)
active = run.status in ACTIVE_STATUSES
st.fragment(live, run_every=REFRESH_S if active else None)(run.id, active)
with st.expander("Config"):
    st.code(yaml.safe_dump(run.config.model_dump(mode="json"), sort_keys=False), language="yaml")
train_job = latest_job(store, "train", run.id)
if train_job is not None:
    st.caption(f"Worker log: `{train_job.log_path}` (job {train_job.id}, {train_job.status})")

# ------------------------------------------------------------------------------------------ actions

if active and st.button("Cancel the run", icon=":material/stop_circle:"):
    cancelled = ui.attempt(lambda: cancel_run(store, user.username, run.id))
    if cancelled:
        st.session_state["train_flash"] = f"Cancel requested for {run.id}; the worker saves a checkpoint and stops."
        st.rerun()
# A stopped run resumes; a queued run whose worker never started (its launch failed) is started here.
if run.status in RESUMABLE_STATUSES and st.button("Resume from the last checkpoint", icon=":material/play_arrow:"):
    started = ui.attempt(lambda: resume_run(store, user.username, run.id))
    if started:
        st.session_state["train_flash"] = f"Run {run.id} resumed (worker pid {started.pid})."
        st.rerun()
elif active and run.pid is None and st.button("Start the worker", icon=":material/play_arrow:"):
    started = ui.attempt(lambda: launch(store, user.username, run.id))
    if started:
        st.session_state["train_flash"] = f"Run {run.id} started (worker pid {started.pid})."
        st.rerun()

if run.status != "completed":
    st.stop()

# ------------------------------------------------------------------------------------------ evaluation

st.subheader("Evaluation")


def category_chart(report: EvaluationReport) -> None:
    """Per category, worst first: the judge's win rate (with its interval) and the change of the eval loss."""
    rows = [
        {
            "category": c.category,
            "judge win rate": c.judge_win_rate,
            "low": c.judge_interval[0] if c.judge_interval else None,
            "high": c.judge_interval[1] if c.judge_interval else None,
            "loss change": c.loss_change,
            "examples": c.examples,
        }
        for c in report.by_category
    ]
    if not rows:
        return
    df = pd.DataFrame(rows)
    order = list(df["category"])
    y = alt.Y("category:N", sort=order, title=None)
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("judge win rate:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            y=y,
            color=alt.condition("datum['judge win rate'] >= 0.5", alt.value("#2e7d32"), alt.value("#c62828")),
            tooltip=[
                "category",
                "examples",
                alt.Tooltip("judge win rate:Q", format=".0%"),
                alt.Tooltip("loss change:Q", format="+.1%"),
            ],
        )
    )
    whiskers = alt.Chart(df).mark_rule(color="black").encode(x="low:Q", x2="high:Q", y=y)
    half = alt.Chart(pd.DataFrame({"x": [0.5]})).mark_rule(strokeDash=[4, 4]).encode(x="x:Q")
    losses = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("loss change:Q", axis=alt.Axis(format="%"), title="eval loss change (tuned vs base)"),
            y=alt.Y("category:N", sort=order, title=None, axis=None),
            color=alt.condition("datum['loss change'] <= 0", alt.value("#2e7d32"), alt.value("#c62828")),
        )
    )
    st.altair_chart(
        alt.hconcat(
            (bars + whiskers + half).properties(title="Judge win rate by category (worst first)", width=330),
            losses.properties(title="Eval loss change", width=250),
        )
    )


def show_report(report: EvaluationReport) -> None:
    e1, e2, e3, e4 = st.columns(4)
    e1.metric("Eval examples", report.examples)
    e2.metric("Base eval loss", f"{report.base.eval_loss:.4f}" if report.base.eval_loss is not None else "n/a")
    e3.metric("Tuned eval loss", f"{report.tuned.eval_loss:.4f}" if report.tuned.eval_loss is not None else "n/a")
    drop = report.eval_loss_drop
    e4.metric("Eval loss drop", f"{drop:.1%}" if drop is not None else "n/a")
    j1, j2, j3, j4 = st.columns(4)
    judge, canary = report.judge, report.canary
    if judge is not None:
        j1.metric("Judge win rate", f"{judge.win_rate:.0%}" if judge.win_rate is not None else "n/a", help=judge.method)
        j2.metric("Judge 95% interval", f"{judge.interval[0]:.0%} – {judge.interval[1]:.0%}" if judge.interval else "n/a")
        agreed = judge.agreement
        j3.metric(
            "Judge agrees with people",
            f"{agreed.share:.0%}" if agreed and agreed.share is not None else "no votes yet",
            help=(
                f"over {agreed.votes} votes, Cohen's kappa {agreed.kappa:.2f}" if agreed and agreed.kappa is not None else None
            ),
        )
    if canary is not None:
        j4.metric(
            "Canary loss change",
            f"{canary.change:+.1%}" if canary.change is not None else "n/a",
            help=f"General text outside the domain ({canary.examples} examples); flagged above +{canary.threshold:.0%}.",
        )
        if canary.flagged:
            st.warning(
                f"The canary loss rose {canary.change:+.1%}, beyond +{canary.threshold:.0%}: the tuned model may have lost "
                "general ability. Try fewer epochs, a lower learning rate or a smaller LoRA rank.",
                icon=":material/warning:",
            )
    category_chart(report)
    with st.expander("By category and response type"):
        for label, groups in (("category", report.by_category), ("response type", report.by_response_type)):
            st.dataframe(
                [
                    {
                        label: getattr(g, "category", None) or getattr(g, "response_type", ""),
                        "examples": g.examples,
                        "base loss": g.base_loss,
                        "tuned loss": g.tuned_loss,
                        "loss change": f"{g.loss_change:+.1%}" if g.loss_change is not None else "",
                        "judge win rate": f"{g.judge_win_rate:.0%}" if g.judge_win_rate is not None else "",
                    }
                    for g in groups
                ],
                hide_index=True,
            )
    st.page_link("pages/compare.py", label=f"Judge its {report.comparisons} blind comparisons", icon=":material/compare:")


def show_gate(gate: GateResult) -> None:
    """The promotion gate's figures, and the Promote button when it holds."""
    st.markdown("**Promotion gate** " + ("(passes)" if gate.passed else "(does not pass)"))
    for check in gate.checks:
        icon = ":material/check_circle:" if check.passed else ":material/cancel:"
        st.markdown(f"{icon} {check.name}: {ui.safe_markdown_text(check.detail)}")
    if st.button("Promote to the team's current model", icon=":material/verified:", disabled=not gate.passed):
        promoted = ui.attempt(lambda: promote_run(store, user.username, run.id))
        if promoted:
            st.session_state["train_flash"] = f"Run {run.id} is the team's current model; `goldsmith serve-model` serves it."
            st.rerun()


report = evaluation(store, run.id)
if report:
    show_report(report)
    gate = ui.attempt(lambda: gate_for_run(store, run.id))
    if gate:
        show_gate(gate)
else:
    st.caption("Not evaluated yet: evaluation scores base and tuned on the eval split and writes the blind comparisons.")

board = ui.attempt(lambda: leaderboard(store, snapshot=run.snapshot_id))
if board and board.rows:
    st.markdown(f"**Leaderboard** of the finished runs on snapshot {snap_names.get(run.snapshot_id, run.snapshot_id)}")
    st.dataframe(
        [
            {
                "run": r.run_id,
                "name": r.name,
                "promoted": "yes" if r.promoted else "",
                "base model": r.base_model,
                "eval loss": r.eval_loss,
                "drop": f"{r.eval_loss_drop:.1%}" if r.eval_loss_drop is not None else "",
                "judge win rate": f"{r.judge_win_rate:.0%}" if r.judge_win_rate is not None else "",
                "canary": f"{r.canary_change:+.1%}" if r.canary_change is not None else "",
                "best at": ", ".join(r.best_categories),
            }
            for r in board.rows
        ],
        hide_index=True,
    )


def eval_state(run_id: str, was_active: bool) -> None:
    """The run's latest evaluation job, whoever started it; redrawn every REFRESH_S seconds while it is active."""
    job = latest_job(store, "evaluate", run_id)
    if job is None:
        return
    if not job.active:
        if was_active:
            st.rerun()  # it ended: redraw the whole page with the report or the error
        return
    st.info(
        f"Evaluating in the background (job {job.id}, {job.status}, pid {job.pid}); the report appears here when it ends.",
        icon=":material/hourglass_top:",
    )
    st.caption(f"Log: `{job.log_path}`")


def ended(job: Job) -> None:
    """How the last evaluation ended, when it did not complete."""
    when = f"{job.finished_at:%Y-%m-%d %H:%M} UTC" if job.finished_at else "earlier"
    message = ui.safe_markdown_text(one_line(job.error or job.status, 400))
    if job.status == "failed":
        st.error(f"The last evaluation ({when}) failed: {message}", icon=":material/error:")
    elif job.status == "died":
        st.warning(f"The last evaluation ({when}) stopped without finishing: {message}", icon=":material/warning:")
    elif job.status == "cancelled":
        st.info(f"The last evaluation ({when}) was stopped: {message}", icon=":material/stop_circle:")
    if job.log_path:
        st.caption(f"Full log: `{job.log_path}`")


last_eval = latest_job(store, "evaluate", run.id)
running = last_eval is not None and last_eval.active
if last_eval is not None and not running and last_eval.status != "completed":
    ended(last_eval)
st.fragment(eval_state, run_every=REFRESH_S if running else None)(run.id, running)
if not running:
    c1, c2, c3 = st.columns([1, 1, 2], vertical_alignment="bottom")
    max_new_tokens = c1.number_input("Longest answer (new tokens)", 16, 2048, 256, 16)
    limit = c2.number_input("Eval prompts (0: all)", 0, 100_000, 0, help="Fewer prompts finish sooner on a CPU.")
    force = bool(report) and c3.checkbox("Regenerate: deletes the blind votes already cast on this run")
    d1, d2, d3 = st.columns([2, 2, 1])
    judge_model = d1.text_input(
        "LLM judge (optional)",
        placeholder="offline judge (similarity to the reference)",
        help="A model name served at the URL, or base:NAME / a run id loaded here.",
    )
    judge_url = d2.text_input("Judge endpoint (optional)", placeholder="http://127.0.0.1:8000/v1")
    threshold = d3.number_input("Canary threshold", 0.0, 1.0, 0.05, 0.01, help="Flag a canary loss rise above this share.")
    if st.button("Evaluate", icon=":material/analytics:", help="Runs the evaluation as a job in its own process."):
        job = ui.attempt(
            lambda: start_evaluation(
                store,
                user.username,
                run.id,
                max_new_tokens=int(max_new_tokens),
                limit=int(limit) or None,
                force=force,
                judge_model=judge_model.strip() or None,
                judge_url=judge_url.strip() or None,
                canary_threshold=float(threshold),
            )
        )
        if job:
            st.session_state["train_flash"] = f"Evaluation of {run.id} started (job {job.id})."
            st.rerun()
