"""The files records come in: JSONL, a JSON array (streamed) and CSV, each record with where it is.

A record's place is its line (JSONL, CSV: the line it starts on) or, in a JSON array, its index
(0-based) and the line its element starts on. Files are streamed, so memory stays flat on huge
files. A file that cannot be read at all (missing, a folder, UTF-16, one pretty-printed JSON
object, no CSV header) raises InvalidInput naming what it is and what to do; a bad record is
reported on its own and never costs the good ones; what is odd but harmless (a trailing comma in
an array) comes back as a warning.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curation.errors import InvalidInput

_CHUNK = 1 << 20
_CUT_SHORT = "the file ends without its closing ']'; it looks cut short, so any later records are missing"
CSV_FIELD_LIMIT = 1 << 26  # 64 Mi characters: Python's default (131,072) is below what import accepts per message
_UTF16_32 = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}


@dataclass(frozen=True)
class Raw:
    """One record as its container gave it: the decoded value, or why it could not be read."""

    line: int | None
    index: int | None = None  # position in a JSON array (0-based); None elsewhere
    record: Any = None
    error: str | None = None
    warning: str | None = None  # not a record: something odd about the file at this place
    clean: bool = False  # its JSON text holds nothing check_text refuses (no surrogate escape, NaN or bad byte)

    @property
    def place(self) -> str:
        """`line 12`, `record [3] (line 40)`: where a person finds it (an array's index counts from 0)."""
        if self.index is None:
            return f"line {self.line}"
        return f"record [{self.index}]" + (f" (line {self.line})" if self.line is not None else "")


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def is_clean(text: str) -> bool:
    """Whether decoded JSON text cannot hold what check_text refuses (so a record need not be walked):
    no NaN or Infinity token, no escaped surrogate, no undecodable byte (kept by surrogateescape)."""
    if "NaN" in text or "Infinity" in text or ("\\u" in text and _SURROGATE_ESCAPE.search(text)):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class RecordError(ValueError):
    """A reason to reject one record."""


def loads(text: str) -> Any:
    """JSON as Python reads it (NaN and Infinity come back as floats, which check_text then refuses per record)."""
    return json.loads(text)


def json_error(exc: json.JSONDecodeError) -> str:
    """`malformed JSON (expecting ',' delimiter at column 17)`."""
    message = exc.msg[:1].lower() + exc.msg[1:]
    where = f" column {exc.colno}" if message.endswith(" at") else f" at column {exc.colno}"
    return f"malformed JSON ({message}{where})"


def check_text(value: Any, where: str) -> None:
    """Reject lone surrogates, undecodable bytes and NaN floats anywhere in a decoded record."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            bad = value[error.start]
            if "\udc80" <= bad <= "\udcff":  # an undecodable byte, kept by surrogateescape
                raise RecordError(
                    f"{where} is not valid UTF-8 (byte 0x{ord(bad) - 0xDC00:02x}); re-save the file as UTF-8"
                ) from None
            raise RecordError(f"{where} holds a lone surrogate (\\u{ord(bad):04x}), which is not text; fix the escape") from None
    elif isinstance(value, float) and not math.isfinite(value):
        spelled = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        raise RecordError(f"{where} holds {spelled}, which is not a number JSON allows; write null or a number")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k, where)
            check_text(v, f"{where}.{k}" if where != "record" else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_text(v, f"{where}[{i}]")


def describe(value: Any) -> str:
    """How a JSON value reads in a message: `null`, `a number`, `a list`, `text`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return {int: "a number", float: "a number", str: "text", list: "a list", dict: "an object"}.get(type(value), "a value")


# ---------------------------------------------------------------------------------------- the file


def check_file(path: Path) -> None:
    """InvalidInput unless `path` is a file Goldsmith can read as text (UTF-8)."""
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder, not a file; give the path of one file in it")
    if not path.is_file():
        raise InvalidInput(f"no file at {path}; check the path")
    with path.open("rb") as handle:
        head = handle.read(4096)
    for bom, name in _UTF16_32.items():
        if head.startswith(bom):
            raise InvalidInput(
                f"{path.name} is {name} text; Goldsmith reads UTF-8: re-save it as UTF-8 (UTF-8 with a BOM is fine)"
            )
    if len(head) >= 8 and any(half.count(0) > len(half) * 0.9 for half in (head[0::2], head[1::2])):
        raise InvalidInput(f"{path.name} looks like UTF-16 text (every other byte is 0); re-save it as UTF-8")


def is_csv(path: Path) -> bool:
    return path.suffix.lower() in (".csv", ".tsv")


def is_json_array(path: Path) -> bool:
    """Whether the file is one JSON array (records are then counted by index, not line)."""
    if is_csv(path):
        return False
    with path.open("rb") as handle:
        return handle.read(4096).lstrip(codecs.BOM_UTF8).lstrip().startswith(b"[")


def records(path: Path) -> Iterator[Raw]:
    """Every record of a checked file, in order: JSON array, CSV, or JSONL."""
    if is_csv(path):
        return csv_records(path)
    return json_array_records(path) if is_json_array(path) else jsonl_records(path)


# ---------------------------------------------------------------------------------------- JSONL


def text_lines(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text, error) per non-blank line; BOM and CRLF handled, bad UTF-8 reported per line."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                column = error.start + 1
                yield (
                    number,
                    None,
                    f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column {column}); re-save the file as UTF-8",
                )
                continue
            if text.strip():
                yield number, text.rstrip("\r\n"), None


def jsonl_records(path: Path) -> Iterator[Raw]:
    first = True
    for number, text, error in text_lines(path):
        if error or text is None:
            yield Raw(number, error=error)
            continue
        try:
            yield Raw(number, record=loads(text), clean=is_clean(text))
        except json.JSONDecodeError as exc:
            if first:
                _one_object(path, text)  # raises when the whole file is one pretty-printed object
            yield Raw(number, error=json_error(exc))
        first = False


def _one_object(path: Path, first_line: str) -> None:
    """InvalidInput when a file that is not an array or JSONL is one JSON object over several lines."""
    if not first_line.lstrip().startswith("{") or path.stat().st_size > 64 << 20:
        return
    try:
        value = loads(path.read_text(encoding="utf-8-sig"))
    except ValueError:
        return
    if isinstance(value, dict):
        keys = ", ".join(sorted(value)[:8]) or "none"
        raise InvalidInput(
            f"{path.name} holds one JSON object spread over several lines (keys: {keys}), not records: "
            "put each record on its own line (JSONL), or the records in a JSON array [ ... ]"
        )


# ---------------------------------------------------------------------------------------- JSON array


class _ArrayReader:
    """The elements of a top-level JSON array, streamed in chunks, each with its index and start line."""

    def __init__(self, reader: io.TextIOBase, name: str):
        self.reader, self.name = reader, name
        self.decoder = json.JSONDecoder()
        self.buffer, self.pos, self.eof = reader.read(_CHUNK), 0, False
        self.lines_before = 0  # newlines in the text dropped from the front of the buffer
        self.counted, self.counted_lines = 0, 0  # newlines in buffer[:counted]
        self.clean = False  # whether the last value's text is_clean

    def more(self) -> bool:
        if self.eof:
            return False
        chunk = self.reader.read(_CHUNK)
        self.eof = not chunk
        self.buffer += chunk
        return bool(chunk)

    def skip_space(self) -> str:
        """The next non-space character ('' at the end of the file)."""
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buffer) or not self.more():
                return self.buffer[self.pos : self.pos + 1]

    def line(self) -> int:
        """The 1-based file line of the current position."""
        self.counted_lines += self.buffer.count("\n", self.counted, self.pos)
        self.counted = self.pos
        return self.lines_before + self.counted_lines + 1

    def trim(self) -> None:
        if self.pos > _CHUNK:  # keep the buffer small
            self.line()
            self.lines_before += self.counted_lines
            self.buffer, self.pos, self.counted, self.counted_lines = self.buffer[self.pos :], 0, 0, 0

    def value(self) -> tuple[Any, str | None]:
        """Decode the value at the current position (reading more when it runs past the buffer)."""
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buffer, self.pos)
                self.clean = is_clean(self.buffer[self.pos : end])
            except json.JSONDecodeError as exc:
                if self.more():
                    continue
                if exc.pos >= len(self.buffer.rstrip()):
                    return None, _CUT_SHORT
                return None, json_error(exc) + "; the records after it cannot be read"
            self.pos = end
            return value, None


def json_array_records(path: Path) -> Iterator[Raw]:
    """Stream the elements of a top-level JSON array without loading the whole file."""
    with path.open("rb") as raw:
        reader = _ArrayReader(io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline=""), path.name)
        reader.skip_space()
        reader.pos += 1  # the '[' is_json_array saw
        yield from _elements(reader)


def _elements(reader: _ArrayReader) -> Iterator[Raw]:
    index = 0
    first = reader.skip_space()
    if first == "]":
        return
    if first == "":
        yield Raw(reader.line(), 0, error=_CUT_SHORT)
        return
    while True:
        line = reader.line()
        value, error = reader.value()
        yield Raw(line, index, record=value, error=error, clean=not error and reader.clean)
        if error:
            return
        index += 1
        reader.trim()
        after = reader.skip_space()
        if after == "]":
            return
        if after == ",":
            reader.pos += 1
            following = reader.skip_space()
            if following == "]":
                yield Raw(reader.line(), warning="a comma after the last record; JSON does not allow it (nothing was lost)")
                return
            if following:
                continue
        if after in ("", ","):
            yield Raw(reader.line(), index, error=_CUT_SHORT)
            return
        yield Raw(reader.line(), warning=f"no comma between records {index - 1} and {index}; JSON needs one (both were read)")


# ---------------------------------------------------------------------------------------- CSV


def csv_records(path: Path) -> Iterator[Raw]:
    """Rows as {column: text}, header names lower-cased; a row's line is the line it starts on."""
    csv.field_size_limit(CSV_FIELD_LIMIT)
    with path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise InvalidInput(f"{path.name} is empty; a CSV needs a header row such as prompt,response")
        header = [h.strip().lower() for h in reader.fieldnames]
        reader.fieldnames = header
        start = 2
        try:
            for row in reader:
                extra = row.pop(None, None)  # a row with more cells than the header
                if extra:
                    yield Raw(
                        start,
                        error=f"has {len(header) + len(extra)} cells but the header has {len(header)}; quote cells with commas",
                    )
                else:
                    yield Raw(start, record=row)
                start = reader.line_num + 1
        except csv.Error as exc:
            yield Raw(start, error=f"malformed CSV ({exc}); the rows after it cannot be read")


def csv_header(path: Path) -> list[str]:
    """The CSV's column names, lower-cased."""
    with path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        first = next(csv.reader(handle), [])
    return [h.strip().lower() for h in first]
