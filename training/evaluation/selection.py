"""Choosing on evidence: candidate base models before training, finished runs after.

`compare_models` scores each candidate base model on a snapshot's eval split, on this machine:
its eval loss on the reference answers, a few of its answers, its parameters, the memory its
weights took to load and the tokens per second it generates. It loads models, so it runs as a job
(`start_model_comparison`; `run_model_comparison` waits: `goldsmith models compare`).

`leaderboard` ranks the finished runs on one snapshot by their evaluations: the judge's win rate,
the eval loss, the canary change, and which run is best at each category.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from curation.errors import GoldsmithError, InvalidInput
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store
from schemas import Job
from schemas.evaluation import CandidateModel, Leaderboard, LeaderboardRow, ModelComparison, SampleAnswer
from schemas.jobs import CompareModelsJobParams
from schemas.training import EvaluationReport, Run
from training.data import read_split
from training.evaluation.blind import evaluation
from training.evaluation.generation import generate_batched
from training.evaluation.promotion import current_promotion
from training.evaluation.scoring import eval_loss, load_base
from training.jobs import start_job
from training.runs import get_run, list_runs


def _resident_mb() -> float:
    """This process's resident memory now (Linux), in MB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _memory_mb() -> float:
    import torch

    return torch.cuda.memory_allocated() / 2**20 if torch.cuda.is_available() else _resident_mb()


def _score(name: str, records: list[dict[str, Any]], params: CompareModelsJobParams) -> CandidateModel:
    """One candidate on the eval records; a model that cannot load or score is reported with why."""
    from training.evaluate import prompt_and_reference

    gc.collect()
    before, started = _memory_mb(), time.perf_counter()
    try:
        model, tokenizer, path = load_base(name)
    except GoldsmithError as error:
        return CandidateModel(base_model=name, error=str(error))
    loaded = time.perf_counter() - started
    memory = _memory_mb() - before
    try:
        loss = eval_loss(model, tokenizer, records, params.max_seq_length)
        shown = records[: max(params.samples, 2)]  # at least two answers, for the speed
        pairs = [prompt_and_reference(r["messages"]) for r in shown]
        generated = generate_batched(model, tokenizer, [p for p, _ in pairs], max_new_tokens=params.max_new_tokens)
        samples = [
            SampleAnswer(prompt=prompt[-1]["content"], reference=reference, answer=answer)
            for (prompt, reference), answer in zip(pairs, generated.answers, strict=True)
        ][: params.samples]
        return CandidateModel(
            base_model=name,
            path=path,
            parameters=sum(p.numel() for p in model.parameters()),
            load_memory_mb=round(memory, 1),
            load_seconds=round(loaded, 2),
            eval_loss=loss,
            tokens_per_s=generated.new_tokens / generated.seconds if generated.seconds else None,
            samples=samples,
        )
    finally:
        del model
        gc.collect()


def compare_models(
    store: Store,
    actor: str,
    snapshot_key: str,
    base_models: Sequence[str],
    *,
    limit: int | None = None,
    samples: int = 3,
    max_new_tokens: int = 96,
    max_seq_length: int = 1024,
) -> ModelComparison:
    """Score candidate base models on the snapshot's eval split (leads), in this process, one after another.

    Raises:
        PermissionDenied: the actor is not a lead.
        NotFound: no such snapshot.
        InvalidInput: no model named, or the snapshot has no eval examples.
    """
    import torch

    params = _params(store, actor, snapshot_key, base_models, limit, samples, max_new_tokens, max_seq_length)
    snapshot = store.get_snapshot(params.snapshot_id)
    records = read_split(Path(snapshot.path) / "eval.jsonl")[: params.limit]
    candidates = [_score(name, records, params) for name in params.base_models]
    return ModelComparison(
        snapshot_id=snapshot.id,
        examples=len(records),
        device="cuda" if torch.cuda.is_available() else "cpu",
        candidates=candidates,
    )


def _params(
    store: Store,
    actor: str,
    snapshot_key: str,
    base_models: Sequence[str],
    limit: int | None,
    samples: int,
    max_new_tokens: int,
    max_seq_length: int,
) -> CompareModelsJobParams:
    require(acting_user(store, actor), "launch_training")
    names = list(dict.fromkeys(m.strip() for m in base_models if m.strip()))
    if not names:
        raise InvalidInput("name at least one candidate with --base-model (e.g. --base-model smollm2-135m)")
    snapshot = store.get_snapshot(snapshot_key)
    if snapshot.eval == 0:
        raise InvalidInput(f"snapshot {snapshot.id} has no eval examples to score models on; cut one with --eval-fraction")
    return CompareModelsJobParams(
        snapshot_id=snapshot.id,
        base_models=names,
        limit=limit,
        samples=samples,
        max_new_tokens=max_new_tokens,
        max_seq_length=max_seq_length,
    )


def start_model_comparison(
    store: Store,
    actor: str,
    snapshot_key: str,
    base_models: Sequence[str],
    *,
    limit: int | None = None,
    samples: int = 3,
    max_new_tokens: int = 96,
    wait: bool = False,
    output: TextIO | None = None,
) -> Job:
    """Compare base models as a job in its own process (leads); arguments as `compare_models`."""
    params = _params(store, actor, snapshot_key, base_models, limit, samples, max_new_tokens, 1024)
    return start_job(store, actor, "compare_models", params.model_dump(mode="json"), wait=wait, output=output)


def run_model_comparison(
    store: Store, actor: str, snapshot_key: str, base_models: Sequence[str], *, output: TextIO | None = None, **options: Any
) -> ModelComparison:
    """Compare base models as a job and wait for it (`goldsmith models compare`).

    Raises:
        GoldsmithError: the comparison failed or died (the message says why).
    """
    job = start_model_comparison(store, actor, snapshot_key, base_models, wait=True, output=output, **options)
    if job.status != "completed" or job.result is None:
        raise GoldsmithError(f"the model comparison {job.status}: {job.error or 'no result'} (job {job.id})")
    return ModelComparison.model_validate(job.result)


# ---------------------------------------------------------------------------- the leaderboard of runs


def _row(run: Run, report: EvaluationReport | None, promoted: str | None) -> LeaderboardRow:
    result = run.result
    if report is None:
        return LeaderboardRow(
            run_id=run.id,
            name=run.name,
            base_model=run.base_model,
            evaluated=False,
            base_eval_loss=result.get("base_eval_loss"),
            eval_loss=result.get("final_eval_loss"),
            eval_loss_drop=result.get("eval_loss_drop"),
            promoted=run.id == promoted,
        )
    judge = report.judge
    return LeaderboardRow(
        run_id=run.id,
        name=run.name,
        base_model=run.base_model,
        evaluated=True,
        base_eval_loss=report.base.eval_loss,
        eval_loss=report.tuned.eval_loss,
        eval_loss_drop=report.eval_loss_drop,
        judge_method=judge.method if judge else None,
        judge_win_rate=judge.win_rate if judge else None,
        judge_interval=judge.interval if judge else None,
        canary_change=report.canary.change if report.canary else None,
        promoted=run.id == promoted,
    )


def leaderboard(store: Store, run_ids: Sequence[str] = (), *, snapshot: str | None = None) -> Leaderboard:
    """Finished runs on one snapshot, best first: the named runs, or every completed run on `snapshot`.

    Raises:
        NotFound: a run or the snapshot does not exist.
        InvalidInput: nothing to rank, or the runs were trained on different snapshots.
    """
    if run_ids:
        runs = [get_run(store, r) for r in dict.fromkeys(run_ids)]
    elif snapshot:
        runs = [r for r in list_runs(store, snapshot_id=store.get_snapshot(snapshot).id) if r.status == "completed"]
    else:
        raise InvalidInput("name the runs to compare, or a snapshot with --snapshot")
    if not runs:
        raise InvalidInput(f"snapshot {snapshot} has no completed run to rank yet")
    snapshots = {r.snapshot_id for r in runs}
    if len(snapshots) > 1:
        raise InvalidInput(
            f"the runs were trained on different snapshots ({', '.join(sorted(snapshots))}); their eval splits differ, "
            "so compare runs of one snapshot"
        )
    unfinished = [r.id for r in runs if r.status != "completed"]
    if unfinished:
        raise InvalidInput(f"only finished runs are ranked; {', '.join(unfinished)} has not completed")
    promotion = current_promotion(store)
    reports = {r.id: evaluation(store, r.id) for r in runs}
    best = _best_by_category(reports)
    rows = [
        _row(r, reports[r.id], promotion.run_id if promotion else None).model_copy(
            update={"best_categories": sorted(c for c, run_id in best.items() if run_id == r.id)}
        )
        for r in runs
    ]
    rows.sort(key=lambda row: (not row.evaluated, -(row.judge_win_rate or 0.0), row.eval_loss or float("inf")))
    return Leaderboard(snapshot_id=runs[0].snapshot_id, rows=rows, best_by_category=best)


def _best_by_category(reports: dict[str, EvaluationReport | None]) -> dict[str, str]:
    """category -> the run with the highest judge win rate there (then the lowest tuned loss)."""
    best: dict[str, tuple[float, float, str]] = {}
    for run_id, report in reports.items():
        for c in report.by_category if report else []:
            key = (c.judge_win_rate if c.judge_win_rate is not None else -1.0, -(c.tuned_loss or float("inf")), run_id)
            if c.category not in best or key[:2] > best[c.category][:2]:
                best[c.category] = key
    return {category: key[2] for category, key in sorted(best.items())}
