"""Exports for trainers (OpenAI/TRL JSONL, Alpaca, ShareGPT, a `datasets` folder) and spreadsheets (CSV).

The JSON formats are byte-stable (examples in id order, keys in a fixed order) and round-trip:
import -> export -> import gives the same examples, and exporting again gives the same bytes.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curation.errors import InvalidInput
from curation.store import Store
from schemas import Example, ExampleFilter

EXPORT_FORMATS = ("openai", "alpaca", "sharegpt", "hf", "csv")
CSV_COLUMNS = ("id", "prompt", "response", "system", "category", "response_type", "knowledge_area", "labels", "messages")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PAGE = 500


def iter_examples(store: Store, flt: ExampleFilter) -> Iterator[Example]:
    """Every example matching the filter, in id order, a page at a time (memory stays flat)."""
    last = 0
    while True:
        rows = list(store.db.query(*_page_sql(flt, last)))
        if not rows:
            return
        for row in rows:
            yield store.get_example(row["id"])
        last = rows[-1]["id"]


def _page_sql(flt: ExampleFilter, after: int) -> tuple[str, list[Any]]:
    where, params = Store.filter_sql(flt)
    where, params = ["examples.id > ?", *where], [after, *params]
    return f"SELECT id FROM examples WHERE {' AND '.join(where)} ORDER BY examples.id LIMIT {_PAGE}", params


def record_id(example: Example) -> str:
    """The id an exported record carries: the one it was imported with, else Goldsmith's own."""
    return example.source_id or f"goldsmith-{example.id}"


def _tags(example: Example) -> dict[str, Any]:
    return example.tags.model_dump(mode="json", exclude_defaults=True)


def to_openai(example: Example) -> dict[str, Any]:
    extras = example.metadata.get("message_fields", {})  # per-turn fields kept at import (e.g. "weight")
    messages = [m.model_dump() | extras.get(str(i), {}) for i, m in enumerate(example.messages, start=1)]
    record = {"id": record_id(example), "messages": messages, "tags": _tags(example)}
    return record | {k: v for k, v in sorted(example.metadata.items()) if k not in record and k != "message_fields"}


def to_sharegpt(example: Example) -> dict[str, Any]:
    names = {"user": "human", "assistant": "gpt"}
    record: dict[str, Any] = {"id": record_id(example)}
    if example.system is not None:
        record["system"] = example.system
    record["conversations"] = [{"from": names[m.role], "value": m.content} for m in example.messages if m.role != "system"]
    record["tags"] = _tags(example)
    return record | {k: v for k, v in sorted(example.metadata.items()) if k not in record and k != "message_fields"}


def to_alpaca(example: Example) -> dict[str, Any]:
    turns = [m.content for m in example.messages if m.role != "system"]
    record: dict[str, Any] = {"id": record_id(example), "instruction": turns[-2], "input": "", "output": turns[-1]}
    if example.system is not None:
        record["system"] = example.system
    if len(turns) > 2:
        record["history"] = [[turns[i], turns[i + 1]] for i in range(0, len(turns) - 2, 2)]
    record["tags"] = _tags(example)
    return record | {k: v for k, v in sorted(example.metadata.items()) if k not in record and k != "message_fields"}


def neutralise_formula(cell: str) -> str:
    """Stop spreadsheets from running a cell as a formula (CSV injection): prefix a quote."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def to_csv_row(example: Example) -> list[str]:
    users = [m.content for m in example.messages if m.role == "user"]
    multi_turn = len(users) > 1
    row = [
        record_id(example),
        users[0],
        example.response,
        example.system or "",
        example.tags.category or "",
        example.tags.response_type or "",
        example.tags.knowledge_area or "",
        ";".join(example.tags.labels),
        json.dumps([m.model_dump() for m in example.messages], ensure_ascii=False) if multi_turn else "",
    ]
    return [neutralise_formula(cell) for cell in row]


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def export_examples(store: Store, fmt: str, out: Path, flt: ExampleFilter | None = None) -> int:
    """Write the examples matching `flt` (default: approved) to `out`. Returns how many.

    The file (or folder, for hf) appears only when complete: it is written beside `out`
    and renamed into place, so a failed export never leaves a half file under that name.
    """
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    flt = flt or ExampleFilter(status="approved")
    if out.is_dir() and fmt != "hf":
        raise InvalidInput(f"{out} is a folder; give a file path such as {out / ('export.' + _suffix(fmt))}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        return _export_hf(store, out, flt)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            if fmt == "csv":
                writer = csv.writer(handle, lineterminator="\r\n")
                writer.writerow(CSV_COLUMNS)
                for example in iter_examples(store, flt):
                    writer.writerow(to_csv_row(example))
                    count += 1
            elif fmt == "openai":
                for example in iter_examples(store, flt):
                    handle.write(_line(to_openai(example)) + "\n")
                    count += 1
            else:  # a JSON array, one record per line, as LLaMA-Factory's files are read
                convert = to_alpaca if fmt == "alpaca" else to_sharegpt
                handle.write("[")
                for example in iter_examples(store, flt):
                    handle.write(("," if count else "") + "\n" + _line(convert(example)))
                    count += 1
                handle.write("\n]\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _suffix(fmt: str) -> str:
    return {"openai": "jsonl", "csv": "csv"}.get(fmt, "json")


def _export_hf(store: Store, out: Path, flt: ExampleFilter) -> int:
    """A folder that `datasets.load_from_disk` opens, with a `messages` column."""
    import shutil

    from datasets import Dataset, Features, List, Value

    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"{out} already exists and is not empty; choose a new folder for the dataset")
    features = Features(
        {
            "id": Value("string"),
            "messages": List({"role": Value("string"), "content": Value("string")}),
            "category": Value("string"),
            "response_type": Value("string"),
            "knowledge_area": Value("string"),
            "labels": List(Value("string")),
        }
    )

    def rows() -> Iterator[dict[str, Any]]:
        for e in iter_examples(store, flt):
            yield {
                "id": record_id(e),
                "messages": [m.model_dump() for m in e.messages],
                "category": e.tags.category,
                "response_type": e.tags.response_type,
                "knowledge_area": e.tags.knowledge_area,
                "labels": list(e.tags.labels),
            }

    records = list(rows())
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    Dataset.from_list(records, features=features).save_to_disk(str(tmp))
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    return len(records)


def export_bytes(store: Store, fmt: str, flt: ExampleFilter | None = None) -> bytes:
    """The export as bytes (for a download button); not for hf."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"export.{_suffix(fmt)}"
        export_examples(store, fmt, path, flt)
        return path.read_bytes()
