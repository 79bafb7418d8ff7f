"""The record shapes teams bring, read into Goldsmith's conversations, each as its documentation defines it.

- openai: `{"messages": [{"role", "content"}]}` (OpenAI chat fine-tuning, TRL conversational,
  LLaMA-Factory v1). `content` is text or a list of parts: text parts (`{"type": "text", "text"}`,
  LLaMA-Factory's `{"type": "text", "value"}`) are joined in order with a newline; any other part
  (image, audio, video, file) refuses the record. An assistant turn's `weight` (OpenAI) or
  `loss_weight` (LLaMA-Factory) of 0 means it is not learned.
- sharegpt: `{"conversations": [{"from", "value"}], "system"}` (LLaMA-Factory, FastChat).
- alpaca: `{"instruction", "input", "output", "system", "history"}`; `input` stays apart as the
  last user turn's context.
- dolly: `{"instruction", "context", "response", "category"}` (databricks-dolly-15k); `context`
  stays apart, `category` (Dolly's task type, not a taxonomy tag) is kept as `dolly_category`.
- pairs: `{"prompt", "response"}` and its synonyms, TRL's prompt/completion (text or message lists).
- csv: Goldsmith's spreadsheet columns, or any CSV with a prompt and a response column.

Across shapes: preference pairs (TRL `chosen`/`rejected`, LLaMA-Factory's alpaca, sharegpt and v1
`chosen_messages`, OpenAI's `preferred_output`/`non_preferred_output`) are refused unless the user
asks for the chosen answer (`preference="chosen"`; the rejected one stays in metadata); KTO labels
(TRL `label`, LLaMA-Factory `kto_tag`) mark a record's answer good or bad (`Parsed.verdict`);
multimodal records (`images`, `videos`, `audios`) are refused: Goldsmith keeps text conversations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from curation.datasets.containers import (
    Raw,
    RecordError,
    check_file,
    check_text,
    csv_header,
    describe,
    is_csv,
    loads,
    records,
)
from curation.datasets.spreadsheet import GOLDSMITH_CSV, unneutralise
from curation.errors import InvalidInput, explain
from schemas import CONTEXT_TEMPLATE, TAG_KEYS, ExampleContent

FORMATS = ("openai", "alpaca", "sharegpt", "dolly", "csv", "pairs")
PREFERENCES = ("refuse", "chosen")
DEFAULT_MAX_CHARS = 200_000
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_TOOL_ROLES = {"function_call", "observation", "tool", "function", "tool_call", "tool_calls", "ipython"}
_PROMPT_KEYS = ("prompt", "question", "instruction", "input")
_RESPONSE_KEYS = ("response", "answer", "completion", "output")
_MEDIA_KEYS = ("images", "videos", "audios")
_TEXT_PARTS = {"text": ("text", "value"), "input_text": ("text",), "output_text": ("text",), "refusal": ("refusal",)}


@dataclass(frozen=True)
class Parsed:
    """One record of a file: `content` when it is good, `error` when it is not (or a file `warning`)."""

    line: int | None
    index: int | None = None
    content: ExampleContent | None = None
    source_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    verdict: str | None = None  # a KTO label: "good" or "bad"
    warning: str | None = None


# ---------------------------------------------------------------------------------------- text and turns


def text_of(content: Any, where: str) -> str:
    """A turn's text: a string, or the text parts of a content list joined with a newline."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list) or not content:
        raise RecordError(f"{where} has no text content (it is {describe(content)}); write the text of the turn")
    texts = []
    for k, part in enumerate(content, start=1):
        kind = part.get("type") if isinstance(part, dict) else None
        keys = _TEXT_PARTS.get(str(kind)) if kind else ("text", "value")
        if keys is None:
            raise RecordError(
                f"{where} has a {kind} part (part {k}); Goldsmith keeps text conversations only, so this record "
                "cannot be imported: drop the non-text parts, or import such data into a multimodal tool"
            )
        text = next((part[key] for key in keys if isinstance(part, dict) and isinstance(part.get(key), str)), None)
        if text is None:
            raise RecordError(f"{where} part {k} is a text part without text (expected a {' or '.join(keys)} field)")
        texts.append(text)
    return "\n".join(texts)


def _weight(message: dict[str, Any], role: str, where: str) -> int | None:
    """A turn's loss weight (OpenAI `weight`, LLaMA-Factory `loss_weight`): kept on assistant turns."""
    raw = message.get("weight", message.get("loss_weight"))
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw not in (0, 1):
        raise RecordError(f"{where} has weight {raw!r}; a turn's weight is 0 (not learned) or 1 (learned)")
    if role == "assistant":
        return int(raw)
    if raw == 1:
        raise RecordError(f"{where} is a {role} turn with weight 1; Goldsmith learns assistant turns only (give it 0 or none)")
    return None  # 0 on a user or system turn is what it means anyway


def _turn(role: str, text: str, *, weight: int | None = None, context: Any = None, joined: bool = False) -> dict[str, Any]:
    """A turn; `joined`: a chat turn whose text may already end with its context (Goldsmith's chat exports write it so)."""
    turn: dict[str, Any] = {"role": role, "content": text}
    if weight is not None:
        turn["weight"] = weight
    if isinstance(context, str) and context.strip():
        suffix = CONTEXT_TEMPLATE.format(content="", context=context)
        if joined and role == "user" and text.endswith(suffix) and len(text) > len(suffix):
            turn["content"] = text[: -len(suffix)]
        turn["context"] = context
    return turn


def chat_turns(messages: Any, where: str = "message") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`[{"role", "content", ...}]` as turns, and any other per-turn fields (kept as metadata)."""
    if not isinstance(messages, list):
        raise RecordError(f'{where}s must be a list of {{"role", "content"}} objects, not {describe(messages)}')
    turns, extras = [], {}
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, dict):
            raise RecordError(f"{where} {i} is {describe(m)}, not an object with role and content")
        role = str(m.get("role", "")).strip().lower()
        if role in _TOOL_ROLES or m.get("tool_calls") or m.get("function_call"):
            raise RecordError(
                f"{where} {i} is a tool or function-call turn ({role or 'tool_calls'}); "
                "Goldsmith supports system, user and assistant turns only"
            )
        if role not in _ROLES:
            raise RecordError(f"{where} {i} has unknown role {m.get('role')!r}; use system, user or assistant")
        role = _ROLES[role]
        text, weight = text_of(m.get("content"), f"{where} {i}"), _weight(m, role, f"{where} {i}")
        turns.append(_turn(role, text, weight=weight, context=m.get("context"), joined=True))
        rest = {k: v for k, v in m.items() if k not in ("role", "content", "weight", "loss_weight", "context")}
        if rest:
            extras[str(i)] = rest
    return turns, extras


# ---------------------------------------------------------------------------------------- shapes


def _require(record: dict[str, Any], key: str) -> Any:
    if key not in record:
        raise RecordError(f"has no '{key}' field (it has {', '.join(sorted(record)) or 'no fields'}); is it in another format?")
    return record.pop(key)


def _openai(record: dict[str, Any], preference: str) -> list[dict[str, Any]]:
    if "chosen_messages" in record or "rejected_messages" in record:  # LLaMA-Factory v1 preference
        chosen, _ = chat_turns(_preferred(record, "chosen_messages", "rejected_messages", "LLaMA-Factory v1", preference))
        return chosen
    if "preferred_output" in record or "non_preferred_output" in record:  # OpenAI preference fine-tuning
        shape = "OpenAI preference (preferred_output / non_preferred_output)"
        answer = _preferred(record, "preferred_output", "non_preferred_output", shape, preference)
        source = record.pop("input", None)
        prompt, _ = chat_turns(source.get("messages") if isinstance(source, dict) else source, "input message")
        chosen, _ = chat_turns(answer, "preferred_output message")
        return prompt + chosen
    turns, extras = chat_turns(_require(record, "messages"))
    if extras:
        record["message_fields"] = extras  # e.g. a turn's "name": kept, exported again
    return turns


def _sharegpt(record: dict[str, Any], preference: str) -> list[dict[str, Any]]:
    turns = _require(record, "conversations")
    if not isinstance(turns, list):
        raise RecordError(f'conversations must be a list of {{"from", "value"}} objects, not {describe(turns)}')
    if "chosen" in record or "rejected" in record:  # LLaMA-Factory's sharegpt preference: one more turn each
        turns = [*turns, _preferred(record, "chosen", "rejected", "LLaMA-Factory sharegpt", preference)]
    out = _system(record)
    for i, t in enumerate(turns, start=1):
        if not isinstance(t, dict):
            raise RecordError(f"turn {i} is {describe(t)}, not an object with from and value")
        who = str(t.get("from", t.get("role", ""))).strip().lower()
        if who in _TOOL_ROLES:
            raise RecordError(f"turn {i} is a '{who}' turn (tool use); Goldsmith supports system, human and gpt turns only")
        if who not in _SHAREGPT_ROLES:
            raise RecordError(f"turn {i} comes from unknown role {t.get('from')!r}; use human, gpt or system")
        role = _SHAREGPT_ROLES[who]
        text = text_of(t.get("value", t.get("content")), f"turn {i}")
        out.append(_turn(role, text, weight=_weight(t, role, f"turn {i}"), context=t.get("context"), joined=True))
    return out


def _alpaca(record: dict[str, Any], preference: str) -> list[dict[str, Any]]:
    if "chosen" in record or "rejected" in record:  # LLaMA-Factory's alpaca preference
        record["output"] = _preferred(record, "chosen", "rejected", "LLaMA-Factory alpaca", preference)
    instruction, context, output = record.pop("instruction", None), record.pop("input", None), record.pop("output", None)
    return _instruction_turns(record, instruction, context, output, "output")


def _dolly(record: dict[str, Any], preference: str) -> list[dict[str, Any]]:
    instruction, context, response = record.pop("instruction", None), record.pop("context", None), record.pop("response", None)
    return _instruction_turns(record, instruction, context, response, "response")


def _instruction_turns(record: dict[str, Any], instruction: Any, context: Any, answer: Any, name: str) -> list[dict[str, Any]]:
    if not isinstance(instruction, str) or not instruction.strip():
        raise RecordError("instruction (the prompt) is missing or empty")
    if not isinstance(answer, str) or not answer.strip():
        raise RecordError(f"{name} (the response) is missing or empty")
    if context is not None and not isinstance(context, str):
        raise RecordError(f"the context of the instruction must be text, not {describe(context)}")
    out = _system(record)
    for i, pair in enumerate(record.pop("history", None) or [], start=1):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise RecordError(f"history entry {i} must be [user text, assistant text]")
        out += [_turn("user", pair[0]), _turn("assistant", pair[1])]
    out += [_turn("user", instruction, context=context), _turn("assistant", answer)]
    return _apply_weights(out, record.pop("loss_weights", None))


def _apply_weights(turns: list[dict[str, Any]], weights: Any) -> list[dict[str, Any]]:
    """Goldsmith's Alpaca export writes the assistant turns' weights as `loss_weights` (Alpaca has no place for them)."""
    if weights is None:
        return turns
    answers = [t for t in turns if t["role"] == "assistant"]
    if not isinstance(weights, list) or len(weights) != len(answers):
        raise RecordError(f"loss_weights must list one weight per assistant turn ({len(answers)}), got {weights!r}")
    for turn, weight in zip(answers, weights, strict=True):
        if weight is not None:
            turn["weight"] = _weight({"weight": weight}, "assistant", "loss_weights")
    return turns


def _pairs(record: dict[str, Any], preference: str) -> list[dict[str, Any]]:
    if "chosen" in record or "rejected" in record:  # TRL preference: with a prompt, or implicit in the chats
        record["completion"] = _preferred(record, "chosen", "rejected", "TRL preference", preference)
    prompt = next((record.pop(k) for k in _PROMPT_KEYS if k in record and record[k] not in (None, "")), None)
    response = next((record.pop(k) for k in _RESPONSE_KEYS if k in record and record[k] not in (None, "")), None)
    if isinstance(response, list):  # TRL conversational: message lists
        head, _ = chat_turns(prompt, "prompt message") if prompt is not None else ([], {})
        tail, _ = chat_turns(response, "completion message")
        return head + tail
    if isinstance(prompt, list):
        raise RecordError("the prompt is a list of messages but the completion is not; give both as lists (TRL conversational)")
    if not isinstance(prompt, str) or not prompt.strip():
        raise RecordError("prompt is missing or empty")
    if not isinstance(response, str) or not response.strip():
        raise RecordError("response is missing or empty")
    return [*_system(record), _turn("user", prompt, context=record.pop("context", None)), _turn("assistant", response)]


def _csv(record: dict[str, Any], preference: str) -> list[dict[str, Any]]:
    """A CSV row: prompt/response columns, or a `messages` column (JSON) for a conversation.

    Goldsmith's own CSV adds `context` (the first question's), `metadata` (`_metadata_column`) and a
    `labels` column that is `a;b`, or a JSON list when a label has a separator.
    """
    raw = record.pop("messages", None)
    if not raw:
        return _pairs(record, preference)
    try:
        messages = loads(raw)
    except ValueError as exc:
        raise RecordError(f"the messages column is not valid JSON ({exc})") from None
    for key in ("prompt", "response", "system", "context"):
        record.pop(key, None)  # the conversation column is the whole truth; these repeat it
    turns, _ = chat_turns(messages)
    return turns


def _metadata_column(record: dict[str, Any]) -> None:
    """A CSV's `metadata` column (JSON: the fields a record brought that Goldsmith does not use) back as fields."""
    extra = record.pop("metadata", None)
    if not extra:
        return
    try:
        fields = loads(extra)
    except ValueError as exc:
        raise RecordError(f"the metadata column is not valid JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise RecordError(f"the metadata column must be a JSON object, not {describe(fields)}")
    record.update({k: v for k, v in fields.items() if k not in record})


def _system(record: dict[str, Any]) -> list[dict[str, Any]]:
    system = record.pop("system", None)
    return [_turn("system", system)] if isinstance(system, str) and system.strip() else []


_SHAPES: dict[str, Callable[[dict[str, Any], str], list[dict[str, Any]]]] = {
    "openai": _openai,
    "sharegpt": _sharegpt,
    "alpaca": _alpaca,
    "dolly": _dolly,
    "pairs": _pairs,
    "csv": _csv,
}


# ---------------------------------------------------------------------------------------- preference and KTO


def _preferred(record: dict[str, Any], good: str, bad: str, shape: str, preference: str) -> Any:
    """The chosen side of a preference pair (the rejected side goes to metadata), or a refusal naming the shape."""
    if preference != "chosen":
        raise RecordError(
            f"is a preference pair ({shape}: '{good}' and '{bad}' answers); Goldsmith stores one approved answer per "
            f"example: import with --preference chosen to keep the chosen answer (the rejected one stays in the "
            "example's metadata), or leave preference data to a DPO tool"
        )
    if good not in record:
        raise RecordError(f"is a preference record without a '{good}' answer (it has '{bad}' only)")
    rejected = record.pop(bad, None)
    if rejected is not None:
        record["rejected_answer"] = rejected
    return record.pop(good)


def _verdict(record: dict[str, Any]) -> str | None:
    """A KTO record's label as "good" or "bad" (TRL's boolean `label`, LLaMA-Factory's `kto_tag`), else None.

    A `label` that is not true or false is some other field of the record (kept as metadata).
    """
    for key in ("kto_tag", "label"):
        if key not in record:
            continue
        value = record[key]
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            value = value.strip().lower() == "true"
        if isinstance(value, bool):
            return "good" if value else "bad"
        if key == "kto_tag":
            raise RecordError(f"kto_tag must be true or false (a KTO label: was the answer good?), got {value!r}")
    return None


# ---------------------------------------------------------------------------------------- detecting and reading


def _format_of(record: dict[str, Any]) -> str | None:
    keys = set(record)
    if keys & {"messages", "chosen_messages", "preferred_output"}:
        return "openai"
    if "conversations" in keys:
        return "sharegpt"
    if {"instruction", "response"} <= keys and "output" not in keys:
        return "dolly"
    if "instruction" in keys and keys & {"output", "chosen"}:
        return "alpaca"
    if (keys & set(_PROMPT_KEYS) and keys & set(_RESPONSE_KEYS)) or {"chosen", "rejected"} <= keys:
        return "pairs"
    return None


def detect_format(path: Path, *, sample: int = 1000) -> str | None:
    """The format, from the extension or the first records whose keys say it.

    None when the first records are all unreadable (the import then reports each one).

    Raises:
        InvalidInput: the file cannot be read at all, holds no records, or its records are in no
            shape Goldsmith knows.
    """
    check_file(path)
    if is_csv(path):
        return "csv"
    seen: list[str] = []
    values: list[Any] = []
    count = 0
    for count, raw in enumerate(records(path), start=1):
        if count > sample:
            break
        if raw.error or raw.warning:
            continue
        if not isinstance(raw.record, dict):
            values.append(raw.record)
            continue
        fmt = _format_of(raw.record)
        if fmt:
            return fmt
        seen.append(", ".join(sorted(raw.record)) or "none")
    if seen:
        raise InvalidInput(
            f"cannot tell the format of {path.name} from its records (keys: {seen[0]}); pass --format {'|'.join(FORMATS)}"
        )
    if count == 0:
        raise InvalidInput(f"{path.name} holds no records; it is empty (or only blank lines)")
    if values:
        raise InvalidInput(
            f"{path.name} holds no records: its first one is {describe(values[0])}, not an object with fields "
            "such as messages, or prompt and response"
        )
    return None


def read_records(
    path: Path, fmt: str = "auto", *, max_chars: int = DEFAULT_MAX_CHARS, preference: str = "refuse"
) -> Iterator[Parsed]:
    """Parse every record of a file, in order (and the file's warnings where they occur).

    Args:
        path: the file.
        fmt: one of FORMATS, or "auto" to detect it.
        max_chars: the longest message text accepted; longer records are rejected.
        preference: what to do with a preference pair: refuse it, or keep the chosen answer.

    Raises:
        InvalidInput: the file as a whole cannot be read (missing, a folder, UTF-16, no CSV header).
    """
    resolved = detect_format(path) if fmt == "auto" else fmt
    check_file(path)
    if resolved is not None and resolved not in _SHAPES:
        raise InvalidInput(f"unknown format {fmt!r}; use one of auto, {', '.join(FORMATS)}")
    if preference not in PREFERENCES:
        raise InvalidInput(f"preference must be {' or '.join(PREFERENCES)}, got {preference!r}")
    goldsmith_csv = resolved == "csv" and _check_csv_header(path)
    seen: dict[str, str] = {}
    for raw in records(path):
        if raw.warning or raw.error:
            yield Parsed(raw.line, raw.index, error=raw.error, warning=raw.warning)
            continue
        try:
            record = unneutralise(raw.record) if goldsmith_csv else raw.record
            yield _parse(record, resolved, max_chars, preference, seen, raw)
        except RecordError as exc:
            yield Parsed(raw.line, raw.index, error=str(exc))
        except ValidationError as exc:
            yield Parsed(raw.line, raw.index, error=explain(exc))


def _check_csv_header(path: Path) -> bool:
    """Whether the CSV is Goldsmith's own (its cells were neutralised on export); InvalidInput when it has no
    prompt and response columns and no messages column."""
    header = csv_header(path)
    if not header:
        raise InvalidInput(f"{path.name} is empty; a CSV needs a header row such as prompt,response")
    has_pair = any(k in header for k in _PROMPT_KEYS) and any(k in header for k in _RESPONSE_KEYS)
    if not has_pair and "messages" not in header:
        raise InvalidInput(
            f"{path.name} has columns {', '.join(header)}; it needs a prompt column and a response column "
            "(or a messages column holding each conversation as JSON)"
        )
    return header == list(GOLDSMITH_CSV)


def _parse(value: Any, fmt: str | None, max_chars: int, preference: str, seen: dict[str, str], raw: Raw) -> Parsed:
    if not isinstance(value, dict):
        raise RecordError(f"is {describe(value)}, not an object with the fields of a record")
    if not raw.clean:
        check_text(value, "record")
    record = dict(value)
    fmt = fmt or _format_of(record)
    if fmt is None:
        raise RecordError(f"is in no shape Goldsmith reads (keys: {', '.join(sorted(record)) or 'none'})")
    media = [k for k in _MEDIA_KEYS if record.get(k)]
    if media:
        count = len(record[media[0]]) if isinstance(record[media[0]], list) else 1
        raise RecordError(f"has {media[0]} ({count}): Goldsmith keeps text conversations only; leave it to a multimodal tool")
    if fmt == "csv":
        _metadata_column(record)
    raw_id = record.pop("id", None)
    source_id = None if raw_id in (None, "") else str(raw_id)
    if fmt == "dolly" and record.get("category") not in (None, ""):
        record["dolly_category"] = record.pop("category")  # Dolly's task type (open_qa ...), not a taxonomy tag
    tags = _tags_of(record)
    verdict = _verdict(record)
    messages = _SHAPES[fmt](record, preference)
    for i, m in enumerate(messages, start=1):
        for part in ("content", "context"):
            size = len(m.get(part) or "")
            if size > max_chars:
                what = f"message {i}" if part == "content" else f"the context of message {i}"
                raise RecordError(f"{what} is {size:,} characters; the limit is {max_chars:,} (raise it with --max-chars)")
    content = ExampleContent.model_validate({"messages": messages, "tags": tags})
    if source_id is not None:
        if source_id in seen:
            raise RecordError(f"id {source_id!r} already appeared at {seen[source_id]}; ids must be unique in a file")
        seen[source_id] = raw.place
    metadata = {k: v for k, v in record.items() if v not in (None, "")}
    return Parsed(raw.line, raw.index, content=content, source_id=source_id, metadata=metadata, verdict=verdict)


def _tags_of(record: dict[str, Any]) -> dict[str, Any]:
    tags = record.pop("tags", None)
    if tags is None:
        tags = {}
    elif not isinstance(tags, dict):
        raise RecordError('tags must be an object like {"category": "claims"}')
    for key in (*TAG_KEYS, "labels"):  # flat columns (CSV) work too
        if key in record:
            value = record.pop(key)
            if value not in (None, ""):
                tags.setdefault(key, value)
    labels = tags.get("labels")
    if isinstance(labels, str) and labels.startswith("["):  # Goldsmith's CSV: a JSON list when a label has a separator
        with suppress(ValueError):  # not JSON after all: the text is the labels
            tags["labels"] = loads(labels)
    return tags


# ---------------------------------------------------------------------------------------- question logs

_QUESTION_KEYS = ("question", "prompt", "text", "query", "instruction")


def read_questions(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(location, {"text", "id", "received_at"}, error) per question of a log: JSONL, a JSON array, CSV or plain text."""
    from curation.datasets.containers import text_lines

    check_file(path)
    if path.suffix.lower() == ".txt":
        for number, text, error in text_lines(path):
            yield number, None if error or text is None else {"text": text.strip()}, error
        return
    for raw in records(path):
        where = raw.index if raw.index is not None else raw.line or 0
        if raw.warning:
            continue
        if raw.error:
            yield where, None, raw.error
            continue
        try:
            yield where, _question(raw.record), None
        except RecordError as exc:
            yield where, None, str(exc)


def _question(record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise RecordError(f"is {describe(record)}, not an object with a question")
    check_text(record, "record")
    text = next((record[k] for k in _QUESTION_KEYS if isinstance(record.get(k), str) and record[k].strip()), None)
    if text is None and isinstance(record.get("messages"), list):  # a chat log: its first user turn
        text = next((m.get("content") for m in record["messages"] if isinstance(m, dict) and m.get("role") == "user"), None)
    if not isinstance(text, str) or not text.strip():
        raise RecordError(f"has no question text (looked for {', '.join(_QUESTION_KEYS)})")
    return {
        "text": text.strip(),
        "id": None if record.get("id") is None else str(record["id"]),
        "received_at": record.get("received_at"),
    }
