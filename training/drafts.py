"""Drafts from a model: a model may draft, only a person approves.

An author asks a base model or a completed run's adapter (a playground model reference:
`base:NAME` or a run id) for a draft response to the prompt they are writing; a lead drafts an
answer to every question of a gap topic at once, each saved as a draft example of one author.
A drafted example carries its provenance in `metadata["drafted_by"]` (model, adapter, run,
generation settings, the original text, when); curation.examples.drafts saves it and
curation.examples.workflow refuses to submit it until a person has edited the text or accepted
it as is, and it is then reviewed like any example.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from curation.errors import GoldsmithError, InvalidInput
from curation.examples.drafts import create_drafted_example, redraft_example
from curation.insight.tasks import gap_topic_work
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store, now
from schemas import Example, Job, Tags
from schemas.drafts import Draft, DraftProvenance
from schemas.jobs import DraftGapJobParams
from training.jobs import start_job
from training.playground import BASE_PREFIX, chat

TOP_P = 0.95  # what training.evaluation.generation.generate samples with when the temperature is above 0
GAP_SOURCE = "gap_draft"  # the source of a gap topic's drafted examples; source_id is the question id


def _model_of(store: Store, model_ref: str) -> dict[str, Any]:
    """The provenance fields that name the model: base model, adapter folder, run id."""
    if model_ref.startswith(BASE_PREFIX):
        return {"model": model_ref[len(BASE_PREFIX) :].strip(), "adapter": None, "run_id": None}
    from training.runs import get_run

    run = get_run(store, model_ref)
    return {"model": run.config.base_model, "adapter": str(Path(run.run_dir) / "adapter"), "run_id": run.id}


def draft_response(
    store: Store,
    actor: str,
    model_ref: str,
    messages: list[dict[str, str]],
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
) -> Draft:
    """A model's draft of the response to a conversation that ends with the user's turn.

    Args:
        store: the store (runs are looked up there).
        actor: who asks (authors and leads: the create_example permission).
        model_ref: `base:NAME` (e.g. base:smollm2-135m or base:/path/to/model) or a completed run's id.
        messages: the conversation so far, `[{"role", "content"}]`, ending with a user turn.
        max_new_tokens: the longest draft, in tokens.
        temperature: 0 for greedy decoding; above 0 samples (top-p 0.95).

    Returns:
        The draft's text and its provenance (model, adapter, run, generation settings, the text,
        when), which `metadata["drafted_by"]` of a drafted example records.

    Raises:
        InvalidInput: a bad conversation, setting or model reference, or an empty answer.
    """
    require(acting_user(store, actor), "create_example")
    text = chat(store, actor, model_ref, messages, max_new_tokens=max_new_tokens, temperature=temperature).strip()
    if not text:
        raise InvalidInput("the model's draft is empty; try another model or a temperature above 0, or write the response")
    generation: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "do_sample": temperature > 0,
        "top_p": TOP_P if temperature > 0 else None,
    }
    provenance = DraftProvenance.model_validate(
        {**_model_of(store, model_ref), "generation": generation, "draft": text, "drafted_at": now()}
    )
    return Draft(text=text, provenance=provenance)


def draft_example(
    store: Store,
    actor: str,
    model_ref: str,
    messages: list[dict[str, str]],
    *,
    tags: Tags | None = None,
    example_id: int | None = None,
    expected_version: int | None = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
) -> Example:
    """Draft the response to a conversation and save it as a model-drafted example, in one call.

    Args:
        store: the store.
        actor: the author (or a lead).
        model_ref: `base:NAME` or a completed run's id.
        messages: the conversation up to the user's turn the model answers.
        tags: the example's tags (default: a new example's none, an existing one's own).
        example_id: an editable draft to replace the conversation of; None writes a new example.
        expected_version: the version of `example_id` the author read.
        max_new_tokens, temperature: as draft_response takes them.

    Raises:
        InvalidInput: the conversation does not end with a user turn, or the draft is empty.
    """
    if not messages or messages[-1].get("role") != "user" or not str(messages[-1].get("content", "")).strip():
        raise InvalidInput("write the last user message first; the model drafts the response to it")
    draft = draft_response(store, actor, model_ref, messages, max_new_tokens=max_new_tokens, temperature=temperature)
    if example_id is None:
        return create_drafted_example(store, actor, messages, draft.provenance, tags=tags)
    return redraft_example(store, actor, example_id, expected_version, messages, draft.provenance, tags=tags)


def draft_gap_topic(
    store: Store,
    actor: str,
    gap_topic_id: int,
    model_ref: str,
    assignee: str,
    *,
    limit: int | None = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    on_drafted: Callable[[Example], None] | None = None,
) -> list[Example]:
    """Draft an answer to each question of a gap topic, as draft examples of one author (leads), in this process.

    A drafting job's worker runs this; `start_gap_drafting` starts one (the Dashboard's "Draft
    answers"), `run_gap_drafting` starts one and waits (`goldsmith draft-gap`).

    Questions already drafted, or open as an authoring task, are skipped. Each draft is saved as
    soon as it is generated (a long batch can be stopped without losing the finished ones), and
    the model runs outside any write transaction, so authors keep working meanwhile.

    Args:
        store: the store.
        actor: the lead (manage_coverage).
        gap_topic_id: the gap topic (`goldsmith coverage` lists them).
        model_ref: `base:NAME` or a completed run's id.
        assignee: the author whose Drafts queue receives the examples.
        limit: draft at most this many of the topic's questions (in the topic's order).
        max_new_tokens, temperature: as draft_response takes them.
        on_drafted: called with each draft example as soon as it is saved (a job records its progress).

    Returns:
        The new draft examples.
    """
    author, question_ids = gap_topic_work(store, actor, gap_topic_id, assignee, limit)
    created: list[Example] = []
    for qid in question_ids:
        if _taken(store, qid):
            continue
        question = store.db.table("questions").get(qid)["text"]
        prompt = [{"role": "user", "content": question}]
        draft = draft_response(store, actor, model_ref, prompt, max_new_tokens=max_new_tokens, temperature=temperature)
        with store.write():
            if _taken(store, qid):  # drafted meanwhile by another batch
                continue
            example = create_drafted_example(
                store,
                actor,
                prompt,
                draft.provenance,
                author=author,
                source=GAP_SOURCE,
                source_id=str(qid),
                metadata={"question_id": qid, "gap_topic_id": gap_topic_id},
            )
        created.append(example)
        if on_drafted is not None:
            on_drafted(example)
    return created


def _check_model_ref(store: Store, model_ref: str) -> None:
    """Refuse a model reference that cannot draft, before a job starts: an empty base name, or a run not completed."""
    if model_ref.startswith(BASE_PREFIX):
        if not model_ref[len(BASE_PREFIX) :].strip():
            raise InvalidInput("name the base model after 'base:', e.g. base:smollm2-135m")
        return
    from training.runs import get_run

    run = get_run(store, model_ref)
    if run.status != "completed":
        raise InvalidInput(f"run {run.id} is {run.status}; only a completed run has an adapter to draft with")


def start_gap_drafting(
    store: Store,
    actor: str,
    gap_topic_id: int,
    model_ref: str,
    assignee: str,
    *,
    limit: int | None = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    wait: bool = False,
    output: TextIO | None = None,
) -> Job:
    """Draft a gap topic's questions as a job in its own process (leads); arguments as `draft_gap_topic`.

    Who asks, for whom, which topic and which model are checked here, so a refusal is immediate.
    The job's result holds `example_ids`, the drafts saved so far, while it runs and after.

    Args:
        wait: stay attached until it ends; else return at once with the job queued.
        output: with `wait`, where the worker's output goes.

    Raises:
        PermissionDenied: the actor is not a lead, or the assignee cannot write examples.
        NotFound: no such gap topic, user or run.
        InvalidInput: a bad limit or model reference.
        Conflict: the topic is already being drafted.
    """
    author, _ = gap_topic_work(store, actor, gap_topic_id, assignee, limit)
    _check_model_ref(store, model_ref)
    params = DraftGapJobParams(
        gap_topic_id=gap_topic_id,
        model=model_ref,
        assignee=author,
        limit=limit,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
    )
    return start_job(store, actor, "draft_gap", params.model_dump(), wait=wait, output=output)


def run_gap_drafting(
    store: Store,
    actor: str,
    gap_topic_id: int,
    model_ref: str,
    assignee: str,
    *,
    limit: int | None = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    output: TextIO | None = None,
) -> list[Example]:
    """Draft a gap topic as a job and wait for it (`goldsmith draft-gap`); the drafts it saved.

    A batch stopped with Ctrl+C returns the drafts it saved before it stopped.

    Raises:
        GoldsmithError: the batch failed or died (the drafts it saved are kept; the message counts them).
    """
    job = start_gap_drafting(
        store,
        actor,
        gap_topic_id,
        model_ref,
        assignee,
        limit=limit,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        wait=True,
        output=output,
    )
    ids = (job.result or {}).get("example_ids", [])
    if job.status in ("failed", "died"):
        raise GoldsmithError(
            f"drafting gap topic {gap_topic_id} {job.status} after {len(ids)} drafts: {job.error} (job {job.id})"
        )
    return [store.get_example(example_id) for example_id in ids]


def _taken(store: Store, question_id: int) -> bool:
    """Whether a question already has a drafted example or an open authoring task."""
    drafted = store.db.table("examples").count_where("source = ? AND source_id = ?", [GAP_SOURCE, str(question_id)])
    return bool(drafted or store.db.table("tasks").count_where("question_id = ? AND status = 'open'", [question_id]))
