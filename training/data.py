"""Data preparation: chat template, assistant-only labels, truncation, and padding-free batches.

Each conversation is rendered with the model's own chat template. The characters of every
assistant turn (its text and the template's end-of-turn marker, so the model learns to stop)
are found by rendering the conversation up to that turn, and only tokens inside those spans
carry loss. System and user tokens are context only, and so is an assistant turn of weight 0
(OpenAI's `weight`, LLaMA-Factory's `loss_weight`).

Batches are padding-free by default: the examples of a micro-batch are packed into short rows,
`position_ids` restart at each example, and transformers builds a block-diagonal causal
mask (SDPA, eager and FlashAttention alike), so no compute goes to padding and no example sees
another. Only the positions that predict an assistant token are sent through the LM head.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curation.errors import InvalidInput


@dataclass(frozen=True)
class Encoded:
    """One tokenised conversation: ids, and which tokens carry loss."""

    example_id: int | None
    input_ids: tuple[int, ...]
    label_mask: tuple[bool, ...]
    truncated: bool

    @property
    def label_count(self) -> int:
        # Position t predicts token t + 1, so the first token never counts.
        return sum(self.label_mask[1:])


@dataclass
class EncodeStats:
    examples: int = 0
    tokens: int = 0
    label_tokens: int = 0
    truncated: int = 0
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "tokens": self.tokens,
            "label_tokens": self.label_tokens,
            "truncated": self.truncated,
            "skipped": len(self.skipped),
            "skipped_reasons": self.skipped[:20],
        }


def read_split(path: Path) -> list[dict[str, Any]]:
    """A snapshot split (train.jsonl / eval.jsonl): one {"id", "messages", ...} per line."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                record["messages"]
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise InvalidInput(f"{path}:{number} is not a snapshot record ({error}); re-cut the snapshot") from error
            records.append(record)
    return records


def _render(tokenizer: Any, messages: Sequence[dict[str, Any]], *, generation_prompt: bool = False) -> str:
    chat = [{"role": m["role"], "content": m["content"]} for m in messages]  # a template sees nothing else of a turn
    return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans of its learned assistant turns (a turn of weight 0 is context only)."""
    text = _render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight") == 0:
            continue
        before = _render(tokenizer, messages[:i], generation_prompt=True)
        through = _render(tokenizer, messages[: i + 1])
        if not (text.startswith(through) and through.startswith(before)):
            raise InvalidInput(
                "the model's chat template renders a conversation differently from its prefixes, so assistant "
                "tokens cannot be located; use a model whose template is prefix-stable (ChatML, Llama 3, ...)"
            )
        spans.append((len(before), len(through)))
    return text, spans


def encode_conversation(
    tokenizer: Any, messages: Sequence[dict[str, Any]], max_length: int, example_id: int | None = None
) -> Encoded:
    """Tokenise one conversation with its loss mask, truncated to `max_length` tokens."""
    text, spans = assistant_spans(tokenizer, messages)
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
    mask = [any(start <= begin < end for start, end in spans) for begin, _ in offsets]
    truncated = len(ids) > max_length
    return Encoded(example_id, tuple(ids[:max_length]), tuple(mask[:max_length]), truncated)


def encode_records(tokenizer: Any, records: Sequence[dict[str, Any]], max_length: int) -> tuple[list[Encoded], EncodeStats]:
    """Encode a split; examples left with no assistant token after truncation are skipped and counted."""
    stats, items = EncodeStats(), []
    for record in records:
        item = encode_conversation(tokenizer, record["messages"], max_length, record.get("id"))
        stats.truncated += item.truncated
        if item.label_count == 0:
            stats.skipped.append(f"example {item.example_id}: no assistant tokens within {max_length} tokens")
            continue
        items.append(item)
        stats.examples += 1
        stats.tokens += len(item.input_ids)
        stats.label_tokens += item.label_count
    return items, stats


def epoch_batches(count: int, batch_size: int, seed: int, epoch: int, *, rank: int = 0, world_size: int = 1) -> list[list[int]]:
    """This process's micro-batches for one epoch: a seeded shuffle, cut into batches, dealt round-robin.

    Every process computes the same order; each takes every world_size-th batch, and all get the
    same number (a remainder of fewer than world_size batches waits for the next epoch's shuffle).
    """
    order = list(range(count))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    batches = [order[i : i + batch_size] for i in range(0, count, batch_size)]
    per_rank = len(batches) // world_size
    return batches[rank::world_size][:per_rank]


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: item indices grouped into rows of at most `capacity` tokens."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def collate(
    items: Sequence[Encoded], *, packing: bool, pad_id: int, row_tokens: int = 512, static_shapes: bool = False
) -> dict[str, Any]:
    """Tensors for one micro-batch, and which positions predict which assistant tokens.

    With packing, examples are packed into rows of about `row_tokens` (first-fit decreasing;
    a longer example gets a row of its own), `position_ids` restart at each example and there
    is no attention mask, so transformers builds a block-diagonal causal mask. Rows stay short
    because attention cost grows with the square of the row. Without packing, each example
    has its own row, padded, with an attention mask.

    With `static_shapes` (for a compiled model), rows are padded to a multiple of `row_tokens`
    and there are at least two, so shapes repeat and the compiler does not recompile.

    Returns `inputs` (the body's keyword arguments), `rows`/`cols` (the positions whose hidden
    state predicts an assistant token), `targets` (those tokens) and `tokens` (real tokens).
    """
    import torch

    lengths = [len(item.input_ids) for item in items]
    layout = pack_rows(lengths, max(row_tokens, max(lengths))) if packing else [[i] for i in range(len(items))]
    width = max(sum(lengths[i] for i in row) for row in layout)
    if static_shapes:  # few distinct shapes for a compiled model: rows a multiple of row_tokens long, never one row alone
        width = -(-width // row_tokens) * row_tokens
        layout = layout + [[]] * (len(layout) < 2)
    ids = torch.full((len(layout), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(layout), width), dtype=torch.long)
    attention = torch.zeros((len(layout), width), dtype=torch.long)
    rows, cols, targets = [], [], []
    for r, row in enumerate(layout):
        offset = 0
        for i in row:
            item, n = items[i], lengths[i]
            ids[r, offset : offset + n] = torch.tensor(item.input_ids)
            positions[r, offset : offset + n] = torch.arange(n)
            attention[r, offset : offset + n] = 1
            for t in range(n - 1):
                if item.label_mask[t + 1]:
                    rows.append(r)
                    cols.append(offset + t)
                    targets.append(item.input_ids[t + 1])
            offset += n
        positions[r, offset:] = torch.arange(width - offset)  # the padding is a sequence of its own
    inputs = {"input_ids": ids, "position_ids": positions} if packing else {"input_ids": ids, "attention_mask": attention}
    return {
        "inputs": inputs,
        "rows": torch.tensor(rows, dtype=torch.long),
        "cols": torch.tensor(cols, dtype=torch.long),
        "targets": torch.tensor(targets, dtype=torch.long),
        "tokens": sum(lengths),
        "padded_tokens": int(ids.numel()),
    }


def loss_model(peft_model: Any) -> Any:
    """Wrap a causal LM so that forward(batch) returns the summed assistant-token loss.

    Only the positions that predict an assistant token go through the LM head, so prompt
    positions never pay for the vocabulary projection. The wrapper is what DDP wraps, so
    gradients synchronise as usual.
    """
    import torch

    class _LossModel(torch.nn.Module):
        def __init__(self, lm: Any):
            super().__init__()
            self.lm = lm

        def forward(self, inputs: dict[str, Any], rows: Any, cols: Any, targets: Any) -> Any:
            causal = self.lm.get_base_model()
            hidden = causal.model(**inputs, use_cache=False).last_hidden_state
            logits = causal.lm_head(hidden[rows, cols])
            return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")

    return _LossModel(peft_model)
