"""Evaluation of a completed run: base against tuned, overall and per scenario, judged automatically,
with the forgetting check, and the blind comparisons people vote on.

`evaluate_run` (run by an evaluation job's worker: `start_evaluation` starts one, `run_evaluation`
starts one and waits) scores both models on the snapshot's eval split (the loss on the reference
answers, per example, so it adds up per category and response type) and on the canary set
(general text: a rise means the tuned model forgot something); generates both models' answers to
every eval prompt (batched, or vLLM on a GPU); has the automatic judge pick the better answer of
each pair (the offline reference judge, or an LLM judge); and writes one blind comparison per eval
prompt, the two answers in a seeded random order, for reviewers to vote on
(training.evaluation.blind).
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from curation.errors import Conflict, GoldsmithError, InvalidInput
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store, now
from schemas import Job, Snapshot
from schemas.evaluation import CanaryFigures, CategoryFigures, JudgeSummary, ResponseTypeFigures
from schemas.jobs import EvaluateJobParams
from schemas.training import EvaluationReport, GenerationSettings, LossFigures, Run
from training.data import read_split
from training.evaluation.blind import UNTAGGED
from training.evaluation.canary import canary_figures, read_canary
from training.evaluation.generation import Generated, VllmEngine, generate_batched, vllm_available
from training.evaluation.judge import (
    Item,
    Verdict,
    endpoint_asker,
    llm_verdicts,
    local_asker,
    offline_verdicts,
    summarise,
    win_figures,
)
from training.evaluation.scoring import ExampleLoss, example_losses, load_base, load_tuned, mean_loss
from training.jobs import start_job
from training.runs import get_run, lock_holder, log_event, run_lock

EVAL_LOCK = "eval.lock"  # held by the process evaluating a run


def prompt_and_reference(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], str]:
    """The conversation up to its last assistant turn, and that turn's text (the reference answer)."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last], messages[last]["content"]


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


def _checked_params(store: Store, params: EvaluateJobParams) -> None:
    """Refuse judge and canary settings that cannot work, before anything loads."""
    if params.judge_url and not params.judge_model:
        raise InvalidInput("--judge-url needs --judge-model: the model name the endpoint serves")
    if params.judge_model and not params.judge_url and not params.judge_model.startswith("base:"):
        judge_run = get_run(store, params.judge_model)
        if judge_run.status != "completed":
            raise InvalidInput(f"judge run {judge_run.id} is {judge_run.status}; name a completed run or base:NAME")
    read_canary(params.canary)


def evaluate_run(
    store: Store,
    actor: str,
    run_id: str,
    *,
    max_new_tokens: int = 256,
    limit: int | None = None,
    seed: int = 0,
    force: bool = False,
    judge_model: str | None = None,
    judge_url: str | None = None,
    canary: str | None = None,
    canary_threshold: float = 0.05,
) -> EvaluationReport:
    """Evaluate a completed run (leads), in this process; `start_evaluation` runs it as a job.

    Raises:
        PermissionDenied, InvalidInput, Conflict: as `start_evaluation`; Conflict also when another
        process is evaluating the run.
    """
    run, snapshot, records = _evaluable(store, actor, run_id, force=force, limit=limit)
    params = EvaluateJobParams(
        run_id=run.id,
        max_new_tokens=max_new_tokens,
        limit=limit,
        seed=seed,
        force=force,
        judge_model=judge_model,
        judge_url=judge_url,
        canary=canary,
        canary_threshold=canary_threshold,
    )
    _checked_params(store, params)
    # One evaluation of a run at a time, however it was started.
    with run_lock(Path(run.run_dir), EVAL_LOCK, "is already being evaluated", "wait for it to finish"):
        log_event(store, run.id, "evaluation_started", f"pid {os.getpid()}: {len(records)} eval prompts, by {actor}")
        try:
            report = _evaluate_run(store, actor, run, snapshot, records, params)
        except BaseException as error:
            log_event(store, run.id, "evaluation_failed", f"{type(error).__name__}: {error}"[:500])
            raise
        log_event(store, run.id, "evaluated", _summary_line(report))
        if report.canary is not None and report.canary.flagged:
            log_event(
                store,
                run.id,
                "canary_flagged",
                f"the canary loss rose {report.canary.change:.1%} (threshold {report.canary.threshold:.0%}): "
                "the tuned model may have lost general ability",
            )
    return report


def _summary_line(report: EvaluationReport) -> str:
    parts = [f"{report.comparisons} blind comparisons"]
    if report.eval_loss_drop is not None:
        parts.append(f"eval loss {report.eval_loss_drop:.1%} lower")
    if report.judge is not None and report.judge.win_rate is not None:
        parts.append(f"judge win rate {report.judge.win_rate:.0%}")
    if report.canary is not None and report.canary.change is not None:
        parts.append(f"canary {report.canary.change:+.1%}")
    return "; ".join(parts)


def start_evaluation(
    store: Store,
    actor: str,
    run_id: str,
    *,
    max_new_tokens: int = 256,
    limit: int | None = None,
    force: bool = False,
    judge_model: str | None = None,
    judge_url: str | None = None,
    canary: str | None = None,
    canary_threshold: float = 0.05,
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
        judge_model: an LLM judge: the model name at `judge_url`, or base:NAME / a run id loaded here;
            None: the offline judge (similarity to the reference answer).
        judge_url: an OpenAI-compatible endpoint for the LLM judge (http://host:port/v1).
        canary: a canary file (chat JSONL) instead of the bundled general-text set.
        canary_threshold: a canary loss rise beyond this share is flagged on the run.
        wait: stay attached until it ends; else return at once with the job queued.
        output: with `wait`, where the worker's output goes.

    Raises:
        PermissionDenied: the actor is not a lead.
        InvalidInput: the run is not completed, has no adapter, there is nothing to evaluate on, or
            the judge or canary settings cannot work.
        Conflict: reviewers already voted (without `force`), or the run is already being evaluated.
    """
    run, _, _ = _evaluable(store, actor, run_id, force=force, limit=limit)
    params = EvaluateJobParams(
        run_id=run.id,
        max_new_tokens=max_new_tokens,
        limit=limit,
        force=force,
        judge_model=judge_model,
        judge_url=judge_url,
        canary=str(Path(canary).expanduser().resolve()) if canary else None,  # the worker may run elsewhere
        canary_threshold=canary_threshold,
    )
    _checked_params(store, params)
    return start_job(store, actor, "evaluate", params.model_dump(), wait=wait, output=output)


def run_evaluation(store: Store, actor: str, run_id: str, *, output: TextIO | None = None, **options: Any) -> EvaluationReport:
    """Evaluate a completed run as a job and wait for its report (`goldsmith eval`); options as `start_evaluation`.

    Raises:
        GoldsmithError: the evaluation failed, died or was stopped (the message says why).
    """
    job = start_evaluation(store, actor, run_id, wait=True, output=output, **options)
    if job.status != "completed" or job.result is None:
        raise GoldsmithError(f"the evaluation of run {job.target} {job.status}: {job.error or 'no report'} (job {job.id})")
    return EvaluationReport.model_validate(job.result)


def evaluating(run: Run) -> str | None:
    """The pid of the process evaluating the run now, or None."""
    return lock_holder(Path(run.run_dir), EVAL_LOCK)


# ---------------------------------------------------------------------------- the work


def _answers(
    run: Run, model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], max_new_tokens: int
) -> tuple[Generated, Generated]:
    """Both models' answers: vLLM with the adapter as a LoRA module on a GPU where installed, else batched transformers."""
    if vllm_available():
        from training.models import resolve_base_model

        engine = VllmEngine(resolve_base_model(run.config.base_model), max_lora_rank=run.config.lora_r)
        base = engine.generate(prompts, max_new_tokens=max_new_tokens)
        return base, engine.generate(prompts, max_new_tokens=max_new_tokens, adapter=str(Path(run.run_dir) / "adapter"))
    with model.disable_adapter():
        base = generate_batched(model, tokenizer, prompts, max_new_tokens=max_new_tokens)
    return base, generate_batched(model, tokenizer, prompts, max_new_tokens=max_new_tokens)


def _judge(store: Store, items: list[Item], params: EvaluateJobParams) -> tuple[str, list[Verdict]]:
    """The automatic judge's verdicts: the LLM judge when one is named, else the offline reference judge."""
    if not params.judge_model:
        return offline_verdicts(store, items)
    from curation.examples.taxonomy import get_guidelines

    guidelines = get_guidelines(store)[0] or ""
    if params.judge_url:
        ask = endpoint_asker(params.judge_url, params.judge_model)
        method = f"llm:{params.judge_model}@{params.judge_url}"
    else:
        if params.judge_model.startswith("base:"):
            model, tokenizer, _ = load_base(params.judge_model.removeprefix("base:"))
        else:
            model, tokenizer = load_tuned(get_run(store, params.judge_model))
        ask = local_asker(model, tokenizer)
        method = f"llm:{params.judge_model}"
    return method, llm_verdicts(items, ask, guidelines=guidelines, seed=params.seed)


def _groups(
    records: Sequence[dict[str, Any]], key: str, base: list[ExampleLoss], tuned: list[ExampleLoss], verdicts: list[Verdict]
) -> dict[str, dict[str, Any]]:
    """Per value of a tag (category, response_type): examples, both losses and the judge's win rate."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        members[(record.get("tags") or {}).get(key) or UNTAGGED].append(i)
    figures = {}
    for name, idx in members.items():
        rate, interval = win_figures([verdicts[i].winner for i in idx])
        figures[name] = {
            "examples": len(idx),
            "base_loss": mean_loss(base[i] for i in idx),
            "tuned_loss": mean_loss(tuned[i] for i in idx),
            "judge_win_rate": rate,
            "judge_interval": interval,
        }
    return figures


def _worst_first(item: Any) -> tuple[float, float]:
    """Sort key: the lowest judge win rate first, then the biggest rise of the loss."""
    return (item.judge_win_rate if item.judge_win_rate is not None else 1.0, -(item.loss_change or 0.0))


def _losses(
    model: Any, tokenizer: Any, records: Sequence[dict[str, Any]], max_length: int
) -> tuple[list[ExampleLoss], list[ExampleLoss]]:
    """(base, tuned) per-example losses."""
    with model.disable_adapter():
        base = example_losses(model, tokenizer, records, max_length)
    return base, example_losses(model, tokenizer, records, max_length)


def _evaluate_run(
    store: Store, actor: str, run: Run, snapshot: Snapshot, records: list[dict[str, Any]], params: EvaluateJobParams
) -> EvaluationReport:
    model, tokenizer = load_tuned(run)
    max_length = run.config.max_seq_length
    base_losses, tuned_losses = _losses(model, tokenizer, records, max_length)
    canary_source, canary_records = read_canary(params.canary)
    canary_base, canary_tuned = _losses(model, tokenizer, canary_records, max_length)
    canary = canary_figures(
        canary_source, len(canary_records), mean_loss(canary_base), mean_loss(canary_tuned), params.canary_threshold
    )
    prompts, references = (list(x) for x in zip(*(prompt_and_reference(r["messages"]) for r in records), strict=True))
    base_answers, tuned_answers = _answers(run, model, tokenizer, prompts, params.max_new_tokens)
    items = [
        Item(p, r, b, t) for p, r, b, t in zip(prompts, references, base_answers.answers, tuned_answers.answers, strict=True)
    ]
    method, verdicts = _judge(store, items, params)
    report = _report(
        run,
        snapshot,
        records,
        params,
        (base_losses, tuned_losses),
        canary,
        (base_answers, tuned_answers),
        summarise(method, verdicts),
        verdicts,
    )
    _write(store, actor, run, records, items, verdicts, report, params.seed)
    return report


def _report(
    run: Run,
    snapshot: Snapshot,
    records: list[dict[str, Any]],
    params: EvaluateJobParams,
    losses: tuple[list[ExampleLoss], list[ExampleLoss]],
    canary: CanaryFigures,
    answers: tuple[Generated, Generated],
    judge: JudgeSummary,
    verdicts: list[Verdict],
) -> EvaluationReport:
    base_loss, tuned_loss = mean_loss(losses[0]), mean_loss(losses[1])
    categories = [
        CategoryFigures(category=name, **values) for name, values in _groups(records, "category", *losses, verdicts).items()
    ]
    kinds = [
        ResponseTypeFigures(response_type=name, **values)
        for name, values in _groups(records, "response_type", *losses, verdicts).items()
    ]
    seconds = answers[0].seconds + answers[1].seconds
    return EvaluationReport(
        run_id=run.id,
        snapshot_id=snapshot.id,
        examples=len(records),
        base=LossFigures(eval_loss=base_loss, perplexity=math.exp(base_loss) if base_loss is not None else None),
        tuned=LossFigures(eval_loss=tuned_loss, perplexity=math.exp(tuned_loss) if tuned_loss is not None else None),
        generation=GenerationSettings(
            max_new_tokens=params.max_new_tokens,
            decoding="greedy",
            engine=answers[1].engine,
            answers_per_s=2 * len(records) / seconds if seconds else None,
        ),
        eval_loss_drop=(base_loss - tuned_loss) / base_loss if base_loss and tuned_loss is not None else None,
        comparisons=len(records),
        by_category=sorted(categories, key=_worst_first),
        by_response_type=sorted(kinds, key=_worst_first),
        judge=judge,
        canary=canary,
    )


def _write(
    store: Store,
    actor: str,
    run: Run,
    records: list[dict[str, Any]],
    items: list[Item],
    verdicts: list[Verdict],
    report: EvaluationReport,
    seed: int,
) -> None:
    """Replace the run's comparisons (and their votes) and its evaluation report, in one transaction."""
    order = random.Random(f"{run.id}:{seed}")
    with store.write():
        store.db.execute("DELETE FROM votes WHERE comparison_id IN (SELECT id FROM comparisons WHERE run_id = ?)", [run.id])
        store.db.execute("DELETE FROM comparisons WHERE run_id = ?", [run.id])
        for record, item, verdict in zip(records, items, verdicts, strict=True):
            tuned_is = order.choice("ab")
            tags = record.get("tags") or {}
            store.db.table("comparisons").insert(
                {
                    "run_id": run.id,
                    "example_id": record.get("id"),
                    "messages": json.dumps(list(item.prompt), ensure_ascii=False),
                    "reference": item.reference,
                    "answer_a": item.tuned if tuned_is == "a" else item.base,
                    "answer_b": item.base if tuned_is == "a" else item.tuned,
                    "tuned_is": tuned_is,
                    "category": tags.get("category"),
                    "response_type": tags.get("response_type"),
                    "judge_winner": verdict.winner,
                    "judge_detail": json.dumps(verdict.detail, ensure_ascii=False),
                    "created_at": now(),
                }
            )
        store.db.table("evaluations").upsert(
            {"run_id": run.id, "created_at": now(), "created_by": actor, "report": report.model_dump_json()}, pk="run_id"
        )
        store.add_history(
            "run",
            run.id,
            "evaluate_run",
            actor,
            None,
            {
                "comparisons": len(records),
                "eval_loss_drop": report.eval_loss_drop,
                "judge_win_rate": report.judge.win_rate if report.judge else None,
                "canary_change": report.canary.change if report.canary else None,
            },
        )
