"""Losses a model gives to reference answers: per example, so they can be summed by scenario.

A model here is a causal LM, or a peft model (inside `disable_adapter()` it scores as its base).
Each example's loss is summed over its assistant tokens and counted, so a group's mean loss is the
sum of its sums over the sum of its counts (the token-weighted mean the trainer reports).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curation.errors import InvalidInput
from schemas.training import Run
from training.data import collate, encode_records

SCORE_BATCH = 8


@dataclass(frozen=True)
class ExampleLoss:
    """One example's summed assistant-token loss and how many tokens it counts (skipped examples count 0)."""

    index: int
    loss_sum: float
    tokens: int


def mean_loss(losses: Iterable[ExampleLoss]) -> float | None:
    """The token-weighted mean loss of some examples (None when they count no token)."""
    total, count = 0.0, 0
    for item in losses:
        total += item.loss_sum
        count += item.tokens
    return total / count if count else None


def device_of(model: Any) -> Any:
    return next(model.parameters()).device


def example_losses(model: Any, tokenizer: Any, records: Sequence[dict[str, Any]], max_length: int) -> list[ExampleLoss]:
    """Each record's summed loss over its assistant tokens, in the records' order.

    Records whose assistant turn falls outside `max_length` tokens count 0 tokens. Batches are
    padded (one example a row), so every target position belongs to one known example.
    """
    import torch

    encoded: list[Any] = []
    for index, record in enumerate(records):
        items, _ = encode_records(tokenizer, [record], max_length)
        encoded.append((index, items[0]) if items else (index, None))
    scored = [(i, item) for i, item in encoded if item is not None]
    scored.sort(key=lambda pair: len(pair[1].input_ids))  # similar lengths share a batch: less padding
    sums = dict.fromkeys(range(len(records)), 0.0)
    counts = dict.fromkeys(range(len(records)), 0)
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    device = device_of(model)
    with torch.no_grad():
        for start in range(0, len(scored), SCORE_BATCH):
            chunk = scored[start : start + SCORE_BATCH]
            batch = collate([item for _, item in chunk], packing=False, pad_id=tokenizer.pad_token_id)
            inputs = {k: v.to(device) for k, v in batch["inputs"].items()}
            rows, cols, targets = (batch[k].to(device) for k in ("rows", "cols", "targets"))
            hidden = causal.model(**inputs, use_cache=False).last_hidden_state
            logits = causal.lm_head(hidden[rows, cols]).float()
            per_token = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
            row_sums = torch.zeros(len(chunk), dtype=torch.float64, device=device).index_add_(0, rows, per_token.double())
            row_counts = torch.bincount(rows, minlength=len(chunk))
            for r, (index, _) in enumerate(chunk):
                sums[index] = float(row_sums[r])
                counts[index] = int(row_counts[r])
    return [ExampleLoss(i, sums[i], counts[i]) for i in range(len(records))]


def eval_loss(model: Any, tokenizer: Any, records: Sequence[dict[str, Any]], max_length: int) -> float | None:
    """Mean loss per assistant token over the records (the model as it is: adapter on or off)."""
    return mean_loss(example_losses(model, tokenizer, records, max_length))


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


def load_base(name: str) -> tuple[Any, Any, str]:
    """A base model by name (short name, folder or cached hub id), its tokenizer and its folder, ready to score."""
    import torch

    from training.models import load_model, load_tokenizer, resolve_base_model

    path = resolve_base_model(name)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(path, dtype=torch.bfloat16 if device == "cuda" else torch.float32, device=device)
    model.eval()
    return model, load_tokenizer(path), path
