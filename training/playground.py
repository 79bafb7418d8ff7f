"""The playground: chat with a base model or a finished run's adapter.

A model reference is `base:NAME` (a base model: a short name such as smollm2-135m, a local
folder, or a cached hub id) or a run id (the run's base model with its adapter on top). Loaded
models are kept per process (the two most recent), so the second message does not reload.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from curation.errors import InvalidInput
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store
from schemas.training import Run

BASE_PREFIX = "base:"
ROLES = ("system", "user", "assistant")
MAX_NEW_TOKENS = 2048

# Streamlit serves each browser session on its own thread: one generation at a time per process
# keeps two sessions from loading the same model twice or sharing a tokenizer mid-call.
_lock = threading.Lock()


def base_ref(name: str) -> str:
    """The model reference of a base model (`base:smollm2-135m`)."""
    return f"{BASE_PREFIX}{name.strip()}"


def chat(
    store: Store,
    actor: str,
    model_ref: str,
    messages: list[dict[str, str]],
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
) -> str:
    """The model's answer to a conversation whose last turn is the user's.

    Args:
        store: the store (runs are looked up there).
        actor: who asks (needs the use_playground permission: authors, reviewers, leads).
        model_ref: `base:NAME` for a base model, or a run id (a completed run's adapter).
        messages: the conversation so far, `[{"role", "content"}]`, ending with a user turn.
        max_new_tokens: the longest answer, in tokens.
        temperature: 0 for greedy decoding; above 0 samples (top-p 0.95).
    """
    require(acting_user(store, actor), "use_playground")
    turns = _checked(messages)
    if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise InvalidInput(f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS}, got {max_new_tokens}")
    if not 0 <= temperature <= 2:
        raise InvalidInput(f"temperature must be in [0, 2], got {temperature}")
    if model_ref.startswith(BASE_PREFIX):
        name = model_ref[len(BASE_PREFIX) :].strip()
        if not name:
            raise InvalidInput("name the base model after 'base:', e.g. base:smollm2-135m")
        key = ("base", name, "")
    else:
        from training.runs import get_run

        run = get_run(store, model_ref)
        if run.status != "completed":
            raise InvalidInput(f"run {run.id} is {run.status}; only a completed run has an adapter to chat with")
        key = ("run", run.id, run.model_dump_json())
    from training.evaluation.generation import generate

    with _lock:
        model, tokenizer = _loaded(*key)
        return generate(model, tokenizer, [turns], max_new_tokens=max_new_tokens, temperature=temperature)[0]


def _checked(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    turns = []
    for n, m in enumerate(messages, 1):
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise InvalidInput(f"turn {n} has role {role!r}; use one of {', '.join(ROLES)}")
        if not isinstance(content, str) or not content.strip():
            raise InvalidInput(f"turn {n} ({role}) is empty; write something or drop the turn")
        turns.append({"role": role, "content": content})
    if not turns or turns[-1]["role"] != "user":
        raise InvalidInput("the conversation must end with a user message for the model to answer")
    return turns


@functools.lru_cache(maxsize=2)
def _loaded(kind: str, ref: str, run_json: str) -> tuple[Any, Any]:
    """A model and its tokenizer, kept for the next message (the two most recent per process)."""
    if kind == "run":
        from training.evaluation.scoring import load_tuned

        return load_tuned(Run.model_validate_json(run_json))
    import torch

    from training.models import load_model, load_tokenizer, resolve_base_model

    path = resolve_base_model(ref)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(path, dtype=torch.bfloat16 if device == "cuda" else torch.float32, device=device)
    model.eval()
    return model, load_tokenizer(path)
