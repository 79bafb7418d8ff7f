"""Reading example files: OpenAI/TRL chat JSONL, Alpaca, ShareGPT, CSV and prompt/response JSONL.

Files are streamed record by record, so memory stays flat on huge files. Every record comes out
either as a validated example or as a rejection that names its line (JSONL, CSV) or index (JSON
array) and the reason; a bad record never costs the good ones.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from curation.errors import InvalidInput, explain
from schemas import TAG_KEYS, ExampleContent

FORMATS = ("openai", "alpaca", "sharegpt", "csv", "pairs")
DEFAULT_MAX_CHARS = 200_000
_CHUNK = 1 << 20
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_TOOL_ROLES = {"function_call", "observation", "tool", "function", "tool_call", "tool_calls", "ipython"}
_PROMPT_KEYS = ("prompt", "question", "instruction", "input")
_RESPONSE_KEYS = ("response", "answer", "completion", "output", "chosen")


@dataclass(frozen=True)
class Parsed:
    """One record of a file: `content` when it is good, `error` when it is not."""

    location: int  # 1-based line (JSONL, CSV) or 0-based index (JSON array)
    where: str = "line"  # which of the two `location` is
    content: ExampleContent | None = None
    source_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class _RecordError(ValueError):
    """A reason to reject one record."""


def _no_constants(name: str) -> float:
    raise _RecordError(f"{name} is not a number JSON allows; write null or a real value")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_no_constants)


def _check_text(value: Any, where: str) -> None:
    """Reject lone surrogates and NaN floats anywhere in a decoded record."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            bad = value[error.start]
            if "\udc80" <= bad <= "\udcff":  # an undecodable byte, kept by surrogateescape
                raise _RecordError(
                    f"{where} is not valid UTF-8 (byte 0x{ord(bad) - 0xDC00:02x}); re-save the file as UTF-8"
                ) from None
            raise _RecordError(f"{where} holds a lone surrogate (\\u{ord(bad):04x}), which is not text; fix the escape") from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise _RecordError(f"{where} holds {value}, which is not a number JSON allows")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(k, where)
            _check_text(v, f"{where}.{k}" if where != "record" else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_text(v, f"{where}[{i}]")


# ---------------------------------------------------------------------------------------- containers


def _open_text_lines(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text, error) per non-blank line; BOM and CRLF handled, bad UTF-8 reported per line."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield (
                    number,
                    None,
                    f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1}); re-save the file as UTF-8",
                )
                continue
            if text.strip():
                yield number, text.rstrip("\r\n"), None


def _jsonl_records(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    for number, text, error in _open_text_lines(path):
        if error or text is None:
            yield number, None, error
            continue
        try:
            yield number, _loads(text), None
        except json.JSONDecodeError as exc:
            yield number, None, f"malformed JSON ({exc.msg} at column {exc.colno})"
        except _RecordError as exc:
            yield number, None, str(exc)


def _json_array_records(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Stream the elements of a top-level JSON array without loading the whole file."""
    decoder = json.JSONDecoder(parse_constant=_no_constants)
    with path.open("rb") as raw:
        reader = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        buffer, pos, eof, index = reader.read(_CHUNK), 0, False, 0

        def skip(chars: str) -> None:
            nonlocal buffer, pos, eof
            while True:
                while pos < len(buffer) and buffer[pos] in chars:
                    pos += 1
                if pos < len(buffer) or eof:
                    return
                more = reader.read(_CHUNK)
                eof = not more
                buffer, pos = buffer[pos:] + more, 0

        skip(" \t\r\n")
        if buffer[pos : pos + 1] != "[":
            raise InvalidInput(f"{path.name} does not start with a JSON array ('['); use JSONL or an array of records")
        pos += 1
        while True:
            skip(" \t\r\n,")
            if pos >= len(buffer):
                yield index, None, "the file ends here without its closing ']'; it looks cut short, so later records are missing"
                return
            if buffer[pos] == "]":
                return
            try:
                value, end = decoder.raw_decode(buffer, pos)
            except json.JSONDecodeError as exc:
                if not eof:
                    more = reader.read(_CHUNK)
                    eof = not more
                    buffer, pos = buffer[pos:] + more, 0
                    continue
                line = buffer.count("\n", 0, exc.pos) + 1
                yield (
                    index,
                    None,
                    f"malformed JSON ({exc.msg}); the records after it cannot be read (near line {line} of the rest)",
                )
                return
            except _RecordError as exc:
                yield index, None, str(exc)
                return
            pos = end
            yield index, value, None
            index += 1
            if pos > _CHUNK:  # keep the buffer small
                buffer, pos = buffer[pos:], 0


def _csv_records(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    with path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise InvalidInput(f"{path.name} is empty; a CSV needs a header row such as prompt,response")
        header = [h.strip().lower() for h in reader.fieldnames]
        reader.fieldnames = header
        if not any(k in header for k in _PROMPT_KEYS) or not any(k in header for k in _RESPONSE_KEYS):
            raise InvalidInput(f"{path.name} has columns {', '.join(header)}; it needs a prompt column and a response column")
        start = 2
        try:
            for row in reader:
                extra = row.pop(None, None)  # a row with more cells than the header
                if extra:
                    yield (
                        start,
                        None,
                        f"has {len(header) + len(extra)} cells but the header has {len(header)}; quote cells with commas",
                    )
                else:
                    yield start, row, None
                start = reader.line_num + 1
        except csv.Error as exc:
            yield start, None, f"malformed CSV ({exc}); the rows after it cannot be read"


# ---------------------------------------------------------------------------------------- formats


def _format_of(keys: set[str]) -> str | None:
    if "messages" in keys:
        return "openai"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if keys & set(_PROMPT_KEYS) and keys & set(_RESPONSE_KEYS):
        return "pairs"
    return None


def detect_format(path: Path, *, sample: int = 100) -> str:
    """Guess the format from the extension, or from the first records whose keys say it (a broken first line is skipped)."""
    if path.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    seen: list[str] = []
    for n, (_, record, error) in enumerate(_container(path)):
        if n >= sample:
            break
        if error or not isinstance(record, dict):
            continue
        fmt = _format_of(set(record))
        if fmt:
            return fmt
        seen.append(", ".join(sorted(record)) or "none")
    if seen:
        raise InvalidInput(
            f"cannot tell the format of {path.name} from its records (keys: {seen[0]}); pass --format {'|'.join(FORMATS)}"
        )
    raise InvalidInput(f"{path.name} holds no records Goldsmith can read (no JSON objects or CSV rows)")


def is_json_array(path: Path) -> bool:
    """Whether the file is one JSON array (records are then counted by index, not line)."""
    if path.suffix.lower() in (".csv", ".tsv"):
        return False
    with path.open("rb") as handle:
        return handle.read(4096).lstrip(codecs.BOM_UTF8).lstrip().startswith(b"[")


def _container(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    if path.suffix.lower() in (".csv", ".tsv"):
        return _csv_records(path)
    return _json_array_records(path) if is_json_array(path) else _jsonl_records(path)


def _tags_of(record: dict[str, Any]) -> dict[str, Any]:
    tags = record.pop("tags", None)
    if tags is None:
        tags = {}
    elif not isinstance(tags, dict):
        raise _RecordError('tags must be an object like {"category": "claims"}')
    for key in (*TAG_KEYS, "labels"):  # flat columns (CSV) work too
        if key in record:
            value = record.pop(key)
            if value not in (None, ""):
                tags.setdefault(key, value)
    return tags


def _require(record: dict[str, Any], key: str) -> Any:
    if key not in record:
        raise _RecordError(f"has no '{key}' field (it has {', '.join(sorted(record)) or 'no fields'}); is it in another format?")
    return record.pop(key)


def _openai(record: dict[str, Any]) -> list[dict[str, Any]]:
    messages = _require(record, "messages")
    if not isinstance(messages, list):
        raise _RecordError('messages must be a list of {"role", "content"} objects')
    out, extras = [], {}
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, dict):
            raise _RecordError(f"message {i} is not an object with role and content")
        role = str(m.get("role", "")).strip().lower()
        if role in _TOOL_ROLES or m.get("tool_calls") or m.get("function_call"):
            raise _RecordError(
                f"message {i} is a tool or function-call turn ({role or 'tool_calls'}); "
                "Goldsmith supports system, user and assistant turns only"
            )
        if role not in ("system", "user", "assistant"):
            raise _RecordError(f"message {i} has unknown role {m.get('role')!r}; use system, user or assistant")
        if not isinstance(m.get("content"), str):
            raise _RecordError(f"message {i} has no text content")
        out.append({"role": role, "content": m["content"]})
        if set(m) - {"role", "content"}:
            extras[str(i)] = {k: v for k, v in m.items() if k not in ("role", "content")}
    if extras:
        record["message_fields"] = extras  # e.g. OpenAI's per-turn "weight": kept, not lost
    return out


def _sharegpt(record: dict[str, Any]) -> list[dict[str, Any]]:
    turns = _require(record, "conversations")
    if not isinstance(turns, list):
        raise _RecordError('conversations must be a list of {"from", "value"} objects')
    out = []
    system = record.pop("system", None)
    if isinstance(system, str) and system.strip():
        out.append({"role": "system", "content": system})
    for i, t in enumerate(turns, start=1):
        if not isinstance(t, dict):
            raise _RecordError(f"turn {i} is not an object with from and value")
        who = str(t.get("from", t.get("role", ""))).strip().lower()
        if who in _TOOL_ROLES:
            raise _RecordError(f"turn {i} is a '{who}' turn (tool use); Goldsmith supports system, human and gpt turns only")
        if who not in _SHAREGPT_ROLES:
            raise _RecordError(f"turn {i} comes from unknown role {t.get('from')!r}; use human, gpt or system")
        value = t.get("value", t.get("content"))
        if not isinstance(value, str):
            raise _RecordError(f"turn {i} has no text value")
        out.append({"role": _SHAREGPT_ROLES[who], "content": value})
    return out


def _alpaca(record: dict[str, Any]) -> list[dict[str, Any]]:
    instruction, extra, output = record.pop("instruction", None), record.pop("input", "") or "", record.pop("output", None)
    if not isinstance(instruction, str) or not instruction.strip():
        raise _RecordError("instruction (the prompt) is missing or empty")
    if not isinstance(output, str) or not output.strip():
        raise _RecordError("output (the response) is missing or empty")
    out = []
    system = record.pop("system", None)
    if isinstance(system, str) and system.strip():
        out.append({"role": "system", "content": system})
    for i, pair in enumerate(record.pop("history", None) or [], start=1):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise _RecordError(f"history entry {i} must be [user text, assistant text]")
        out += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    prompt = f"{instruction}\n\n{extra}" if isinstance(extra, str) and extra.strip() else instruction
    return out + [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]


def _pairs(record: dict[str, Any]) -> list[dict[str, Any]]:
    prompt = next((record.pop(k) for k in _PROMPT_KEYS if k in record and record[k] not in (None, "")), None)
    response = next((record.pop(k) for k in _RESPONSE_KEYS if k in record and record[k] not in (None, "")), None)
    if not isinstance(prompt, str) or not prompt.strip():
        raise _RecordError("prompt is missing or empty")
    if not isinstance(response, str) or not response.strip():
        raise _RecordError("response is missing or empty")
    system = record.pop("system", None)
    head = [{"role": "system", "content": system}] if isinstance(system, str) and system.strip() else []
    return head + [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def _csv(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A CSV row: prompt/response columns, or a `messages` column (JSON) for a multi-turn example."""
    raw = record.pop("messages", None)
    if not raw:
        return _pairs(record)
    try:
        messages = _loads(raw)
    except (json.JSONDecodeError, _RecordError) as exc:
        raise _RecordError(f"the messages column is not valid JSON ({exc})") from None
    for key in ("prompt", "response", "system"):
        record.pop(key, None)  # the conversation column is the whole truth; these repeat it
    return _openai({"messages": messages})


_NORMALISERS = {"openai": _openai, "sharegpt": _sharegpt, "alpaca": _alpaca, "pairs": _pairs, "csv": _csv}


def read_records(path: Path, fmt: str = "auto", *, max_chars: int = DEFAULT_MAX_CHARS) -> Iterator[Parsed]:
    """Parse every record of a file, in order.

    Args:
        path: the file.
        fmt: one of FORMATS, or "auto" to detect it.
        max_chars: the longest message text accepted; longer records are rejected.

    Raises:
        InvalidInput: the file as a whole cannot be read (missing, wrong container, no header).
    """
    if not path.is_file():
        raise InvalidInput(f"no file at {path}; check the path")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in _NORMALISERS:
        raise InvalidInput(f"unknown format {fmt!r}; use one of auto, {', '.join(FORMATS)}")
    normalise = _NORMALISERS[fmt]
    where = "index" if is_json_array(path) else "line"
    seen: dict[str, int] = {}
    for location, record, error in _container(path):
        if error:
            yield Parsed(location, where, error=error)
            continue
        try:
            if not isinstance(record, dict):
                raise _RecordError(f"is a JSON {type(record).__name__}, not an object")
            _check_text(record, "record")
            record = dict(record)
            raw_id = record.pop("id", None)
            source_id = None if raw_id in (None, "") else str(raw_id)
            tags = _tags_of(record)
            messages = normalise(record)
            for i, m in enumerate(messages, start=1):
                if len(m["content"]) > max_chars:
                    raise _RecordError(
                        f"message {i} is {len(m['content']):,} characters; the limit is {max_chars:,} (raise it with --max-chars)"
                    )
            content = ExampleContent.model_validate({"messages": messages, "tags": tags})
            if source_id is not None:
                if source_id in seen:
                    raise _RecordError(
                        f"id {source_id!r} already appeared at {where} {seen[source_id]}; ids must be unique in a file"
                    )
                seen[source_id] = location
            yield Parsed(
                location, content=content, source_id=source_id, metadata={k: v for k, v in record.items() if v not in (None, "")}
            )
        except _RecordError as exc:
            yield Parsed(location, where, error=str(exc))
        except ValidationError as exc:
            yield Parsed(location, where, error=explain(exc))


_QUESTION_KEYS = ("question", "prompt", "text", "query", "instruction")


def read_questions(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(location, {"text", "id", "received_at"}, error) per question of a log: JSONL, a JSON array, CSV or plain text."""
    if not path.is_file():
        raise InvalidInput(f"no file at {path}; check the path")
    if path.suffix.lower() == ".txt":
        for number, text, error in _open_text_lines(path):
            yield number, None if error or text is None else {"text": text.strip()}, error
        return
    for location, record, error in _container(path):
        if error:
            yield location, None, error
            continue
        if not isinstance(record, dict):
            yield location, None, f"is a JSON {type(record).__name__}, not an object with a question"
            continue
        try:
            _check_text(record, "record")
        except _RecordError as exc:
            yield location, None, str(exc)
            continue
        text = next((record[k] for k in _QUESTION_KEYS if isinstance(record.get(k), str) and record[k].strip()), None)
        if text is None and isinstance(record.get("messages"), list):  # a chat log: its first user turn
            text = next((m.get("content") for m in record["messages"] if isinstance(m, dict) and m.get("role") == "user"), None)
        if not isinstance(text, str) or not text.strip():
            yield location, None, f"has no question text (looked for {', '.join(_QUESTION_KEYS)})"
            continue
        yield (
            location,
            {
                "text": text.strip(),
                "id": None if record.get("id") is None else str(record["id"]),
                "received_at": record.get("received_at"),
            },
            None,
        )
