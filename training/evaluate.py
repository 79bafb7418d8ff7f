"""Evaluation: eval loss for base and tuned, generated answers, blind side-by-side, win rate.

`evaluate_run` (run by an evaluation job's worker: `start_evaluation` starts one, `run_evaluation`
starts one and waits) scores both models on the snapshot's eval split (loss and perplexity on the
reference answers) and writes one comparison per eval prompt: the base model's answer and the
tuned model's answer in a seeded random order, so reviewers cannot tell which is which. Votes
(better A, better B, tie; rubric; comment) turn into a win rate with a Wilson interval, and a
losing answer becomes an authoring task in one call.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any, TextIO

from curation.errors import Conflict, GoldsmithError, InvalidInput, NotFound
from curation.insight.tasks import create_task
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store, now
from schemas import Job, Snapshot, Task
from schemas.jobs import EvaluateJobParams
from schemas.training import (
    Comparison,
    EvaluationReport,
    GenerationSettings,
    LossFigures,
    Run,
    VoteInput,
    VoteResult,
    WinRate,
)
from training.data import collate, encode_records, loss_model, read_split
from training.jobs import start_job
from training.runs import get_run, lock_holder, log_event, run_lock

GENERATION_BATCH = 8
EVAL_LOCK = "eval.lock"  # held by the process evaluating a run


def prompt_and_reference(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], str]:
    """The conversation up to its last assistant turn, and that turn's text (the reference answer)."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last], messages[last]["content"]


def load_tuned(run: Run) -> tuple[Any, Any]:
    """The base model with the run's adapter on top, and the tokenizer (CPU or the first GPU)."""
    import torch
    from peft import PeftModel

    from training.models import load_model, load_tokenizer, resolve_base_model

    adapter = Path(run.run_dir) / "adapter"
    if not (adapter / "adapter_config.json").exists():
        raise InvalidInput(f"run {run.id} has no adapter yet ({run.status}); evaluate a completed run")
    base_path = resolve_base_model(run.config.base_model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = PeftModel.from_pretrained(load_model(base_path, dtype=dtype, device=device), adapter)
    model.eval()
    return model, load_tokenizer(str(adapter))


def eval_loss(model: Any, tokenizer: Any, records: list[dict[str, Any]], max_length: int) -> float | None:
    """Mean loss per assistant token over the records (the model as it is: adapter on or off)."""
    import torch

    items, _ = encode_records(tokenizer, records, max_length)
    wrapped = loss_model(model)
    total, count = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(items), GENERATION_BATCH):
            batch = collate(items[start : start + GENERATION_BATCH], packing=True, pad_id=tokenizer.pad_token_id)
            inputs = {k: v.to(device) for k, v in batch["inputs"].items()}
            total += float(wrapped(inputs, batch["rows"].to(device), batch["cols"].to(device), batch["targets"].to(device)))
            count += int(batch["targets"].numel())
    return total / count if count else None


def generate(
    model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], *, max_new_tokens: int, temperature: float = 0.0
) -> list[str]:
    """Answers to chat prompts, in batches with left padding; greedy unless a temperature is given."""
    import torch

    answers: list[str] = []
    device = next(model.parameters()).device
    tokenizer.padding_side = "left"
    for start in range(0, len(prompts), GENERATION_BATCH):
        texts = [
            tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
            for p in prompts[start : start + GENERATION_BATCH]
        ]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        sampling = {"do_sample": True, "temperature": temperature, "top_p": 0.95} if temperature > 0 else {"do_sample": False}
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling)
        for row in out[:, batch["input_ids"].shape[1] :]:
            answers.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return answers


def _evaluable(
    store: Store, actor: str, run_id: str, *, force: bool, limit: int | None
) -> tuple[Run, Snapshot, list[dict[str, Any]]]:
    """Check that `actor` may evaluate the run now; the run, its snapshot and the eval records to use.

    Raises:
        PermissionDenied: the actor is not a lead.
        InvalidInput: the run is not completed, has no adapter, or its snapshot has no eval examples.
        Conflict: reviewers already voted on its comparisons and `force` is not set.
    """
    require(acting_user(store, actor), "launch_training")
    run = get_run(store, run_id)
    if run.status != "completed":
        raise InvalidInput(f"run {run.id} is {run.status}; only a completed run can be evaluated")
    if not (Path(run.run_dir) / "adapter" / "adapter_config.json").exists():
        raise InvalidInput(f"run {run.id} has no adapter at {Path(run.run_dir) / 'adapter'}; was its folder moved?")
    voted = store.db.execute(
        "SELECT count(*) FROM votes JOIN comparisons c ON c.id = comparison_id WHERE c.run_id = ?", [run.id]
    ).fetchone()[0]
    if voted and not force:
        raise Conflict(f"run {run.id} already has {voted} blind votes; pass --force to regenerate (the votes are deleted)")
    snapshot = store.get_snapshot(run.snapshot_id)
    records = read_split(Path(snapshot.path) / "eval.jsonl")[:limit]
    if not records:
        raise InvalidInput(f"snapshot {snapshot.id} has no eval examples; cut one with --eval-fraction above 0")
    return run, snapshot, records


def evaluate_run(
    store: Store,
    actor: str,
    run_id: str,
    *,
    max_new_tokens: int = 256,
    limit: int | None = None,
    seed: int = 0,
    force: bool = False,
) -> EvaluationReport:
    """Score base and tuned on the eval split and write the blind comparisons (leads), in this process.

    The job service runs this in an evaluation job's worker; `start_evaluation` starts one.

    Raises:
        PermissionDenied, InvalidInput, Conflict: as `start_evaluation`; Conflict also when another
        process is evaluating the run.
    """
    run, snapshot, records = _evaluable(store, actor, run_id, force=force, limit=limit)
    # One evaluation of a run at a time, however it was started.
    with run_lock(Path(run.run_dir), EVAL_LOCK, "is already being evaluated", "wait for it to finish"):
        log_event(store, run.id, "evaluation_started", f"pid {os.getpid()}: {len(records)} eval prompts, by {actor}")
        try:
            report = _evaluate_run(store, actor, run, snapshot, records, max_new_tokens, seed)
        except BaseException as error:
            log_event(store, run.id, "evaluation_failed", f"{type(error).__name__}: {error}"[:500])
            raise
        drop = report.eval_loss_drop
        log_event(
            store,
            run.id,
            "evaluated",
            f"{report.comparisons} blind comparisons" + (f"; eval loss {drop:.1%} lower" if drop is not None else ""),
        )
    return report


def start_evaluation(
    store: Store,
    actor: str,
    run_id: str,
    *,
    max_new_tokens: int = 256,
    limit: int | None = None,
    force: bool = False,
    wait: bool = False,
    output: TextIO | None = None,
) -> Job:
    """Evaluate a completed run as a job in its own process (leads); the Training page's Evaluate button.

    Everything that can be checked before the model loads is checked here, so a refusal is
    immediate; the job's result is the EvaluationReport's JSON.

    Args:
        store: the store (a database file).
        actor: the lead who asks (launch_training).
        run_id: a completed run's id or unique id prefix.
        max_new_tokens: the longest generated answer.
        limit: only the first N eval prompts (None: all).
        force: regenerate even if reviewers already voted (the votes are deleted).
        wait: stay attached until it ends; else return at once with the job queued.
        output: with `wait`, where the worker's output goes.

    Raises:
        PermissionDenied: the actor is not a lead.
        InvalidInput: the run is not completed, has no adapter, or there is nothing to evaluate on.
        Conflict: reviewers already voted (without `force`), or the run is already being evaluated.
    """
    run, _, _ = _evaluable(store, actor, run_id, force=force, limit=limit)
    params = EvaluateJobParams(run_id=run.id, max_new_tokens=max_new_tokens, limit=limit, force=force)
    return start_job(store, actor, "evaluate", params.model_dump(), wait=wait, output=output)


def run_evaluation(
    store: Store,
    actor: str,
    run_id: str,
    *,
    max_new_tokens: int = 256,
    limit: int | None = None,
    force: bool = False,
    output: TextIO | None = None,
) -> EvaluationReport:
    """Evaluate a completed run as a job and wait for its report (`goldsmith eval`); arguments as `start_evaluation`.

    Raises:
        GoldsmithError: the evaluation failed, died or was stopped (the message says why).
    """
    job = start_evaluation(
        store, actor, run_id, max_new_tokens=max_new_tokens, limit=limit, force=force, wait=True, output=output
    )
    if job.status != "completed" or job.result is None:
        raise GoldsmithError(f"the evaluation of run {job.target} {job.status}: {job.error or 'no report'} (job {job.id})")
    return EvaluationReport.model_validate(job.result)


def evaluating(run: Run) -> str | None:
    """The pid of the process evaluating the run now, or None."""
    return lock_holder(Path(run.run_dir), EVAL_LOCK)


def _evaluate_run(
    store: Store, actor: str, run: Run, snapshot: Snapshot, records: list[dict[str, Any]], max_new_tokens: int, seed: int
) -> EvaluationReport:
    model, tokenizer = load_tuned(run)
    with model.disable_adapter():
        base_loss = eval_loss(model, tokenizer, records, run.config.max_seq_length)
    tuned_loss = eval_loss(model, tokenizer, records, run.config.max_seq_length)
    prompts, references = zip(*(prompt_and_reference(r["messages"]) for r in records), strict=True)
    with model.disable_adapter():
        base_answers = generate(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens)
    tuned_answers = generate(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens)
    order = random.Random(f"{run.id}:{seed}")
    report = EvaluationReport(
        run_id=run.id,
        snapshot_id=snapshot.id,
        examples=len(records),
        base=LossFigures(eval_loss=base_loss, perplexity=math.exp(base_loss) if base_loss is not None else None),
        tuned=LossFigures(eval_loss=tuned_loss, perplexity=math.exp(tuned_loss) if tuned_loss is not None else None),
        generation=GenerationSettings(max_new_tokens=max_new_tokens, decoding="greedy"),
        eval_loss_drop=(base_loss - tuned_loss) / base_loss if base_loss and tuned_loss is not None else None,
        comparisons=len(records),
    )
    with store.write():
        store.db.execute("DELETE FROM votes WHERE comparison_id IN (SELECT id FROM comparisons WHERE run_id = ?)", [run.id])
        store.db.execute("DELETE FROM comparisons WHERE run_id = ?", [run.id])
        for record, prompt, reference, base, tuned in zip(records, prompts, references, base_answers, tuned_answers, strict=True):
            tuned_is = order.choice("ab")
            store.db.table("comparisons").insert(
                {
                    "run_id": run.id,
                    "example_id": record.get("id"),
                    "messages": json.dumps(prompt, ensure_ascii=False),
                    "reference": reference,
                    "answer_a": tuned if tuned_is == "a" else base,
                    "answer_b": base if tuned_is == "a" else tuned,
                    "tuned_is": tuned_is,
                    "created_at": now(),
                }
            )
        store.db.table("evaluations").upsert(
            {"run_id": run.id, "created_at": now(), "created_by": actor, "report": report.model_dump_json()}, pk="run_id"
        )
        store.add_history(
            "run", run.id, "evaluate_run", actor, None, {"comparisons": len(records), "eval_loss_drop": report.eval_loss_drop}
        )
    return report


def evaluation(store: Store, run_id: str) -> EvaluationReport | None:
    """The run's last evaluation report, or None before it is evaluated."""
    row = store.db.execute("SELECT report FROM evaluations WHERE run_id = ?", [run_id]).fetchone()
    return EvaluationReport.model_validate_json(row[0]) if row else None


def _comparison(row: dict[str, Any]) -> Comparison:
    return Comparison.model_validate({**row, "messages": json.loads(row["messages"])})


def get_comparison(store: Store, comparison_id: int) -> Comparison:
    """A blind comparison by id (with which side the tuned model wrote: not for reviewers' eyes)."""
    rows = list(store.db.table("comparisons").rows_where("id = ?", [comparison_id]))
    if not rows:
        raise NotFound(f"no comparison {comparison_id}")
    return _comparison(rows[0])


def next_comparison(store: Store, reviewer: str, run_id: str) -> Comparison | None:
    """The next comparison of the run this reviewer has not judged (None when all are done)."""
    user = acting_user(store, reviewer)
    require(user, "judge_models")
    rows = list(
        store.db.query(
            "SELECT * FROM comparisons WHERE run_id = ? AND id NOT IN (SELECT comparison_id FROM votes WHERE reviewer = ?) "
            "ORDER BY id LIMIT 1",
            [run_id, user.username],
        )
    )
    return _comparison(rows[0]) if rows else None


def judged(store: Store, reviewer: str, run_id: str) -> tuple[int, int]:
    """How many of the run's comparisons this reviewer has judged, and how many there are."""
    done, total = store.db.execute(
        "SELECT count(v.id), count(DISTINCT c.id) FROM comparisons c "
        "LEFT JOIN votes v ON v.comparison_id = c.id AND v.reviewer = ? WHERE c.run_id = ?",
        [reviewer.strip().lower(), run_id],
    ).fetchone()
    return done, total


def vote(store: Store, reviewer: str, comparison_id: int, judgement: VoteInput) -> VoteResult:
    """Record a reviewer's blind judgement; each reviewer judges a comparison once. The result reveals the winner."""
    user = acting_user(store, reviewer)
    require(user, "judge_models")
    comparison = get_comparison(store, comparison_id)
    with store.write():
        if store.db.table("votes").count_where("comparison_id = ? AND reviewer = ?", [comparison_id, user.username]):
            raise Conflict(f"{user.username} already judged comparison {comparison_id}")
        row = {
            "comparison_id": comparison_id,
            "reviewer": user.username,
            "choice": judgement.choice,
            "rubric": json.dumps(judgement.rubric),
            "comment": judgement.comment.strip(),
            "created_at": now(),
        }
        vote_id = store.db.table("votes").insert(row).last_pk
        store.add_history("comparison", comparison_id, "vote", user.username, None, {"choice": judgement.choice})
    winner = "tie" if judgement.choice == "tie" else ("tuned" if judgement.choice == comparison.tuned_is else "base")
    return VoteResult.model_validate({**row, "id": vote_id, "rubric": judgement.rubric, "winner": winner})


def wilson(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (successes may be fractional: ties count half)."""
    if n == 0:
        return (0.0, 1.0)
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def win_rate(store: Store, run_id: str, confidence: float = 0.95) -> WinRate:
    """The tuned model's win rate over all blind votes on the run (ties count half)."""
    rows = store.db.execute(
        "SELECT v.choice, c.tuned_is FROM votes v JOIN comparisons c ON c.id = v.comparison_id WHERE c.run_id = ?", [run_id]
    ).fetchall()
    ties = sum(1 for choice, _ in rows if choice == "tie")
    tuned = sum(1 for choice, tuned_is in rows if choice == tuned_is)
    base = len(rows) - ties - tuned
    n = len(rows)
    low, high = wilson(tuned + ties / 2, n, confidence) if n else (None, None)
    return WinRate(
        run_id=run_id,
        votes=n,
        tuned_wins=tuned,
        base_wins=base,
        ties=ties,
        win_rate=(tuned + ties / 2) / n if n else None,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
    )


def task_from_comparison(store: Store, actor: str, comparison_id: int, assignee: str, *, note: str = "") -> Task:
    """Send a comparison the tuned model lost (or answered badly) back to an author as a task."""
    comparison = get_comparison(store, comparison_id)
    question = "\n".join(m["content"] for m in comparison.messages if m["role"] == "user")
    reason = note.strip() or f"the tuned model of {comparison.run_id} answered this poorly in the blind comparison"
    task = create_task(
        store,
        actor,
        question,
        assignee,
        note=f"comparison {comparison_id}: {reason}",
        source=f"eval:{comparison.run_id}",
        source_id=str(comparison_id),
        action="judge_models",
    )
    with store.write():
        store.db.execute("UPDATE votes SET task_id = ? WHERE comparison_id = ? AND task_id IS NULL", [task.id, comparison_id])
    return task
