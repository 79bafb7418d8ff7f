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

from curation.datasets.spreadsheet import GOLDSMITH_CSV, neutralise
from curation.errors import InvalidInput
from curation.store import Store
from schemas import Example, ExampleFilter, Message

EXPORT_FORMATS = ("openai", "alpaca", "sharegpt", "hf", "csv")
_PAGE = 500


def iter_examples(store: Store, flt: ExampleFilter) -> Iterator[Example]:
    """Every example matching the filter, in id order, a page of whole rows at a time (memory stays flat)."""
    last = 0
    while True:
        page = store.examples_after(flt, last, _PAGE)
        if not page:
            return
        yield from page
        last = page[-1].id


def record_id(example: Example) -> str:
    """The id an exported record carries: the one it was imported with, else Goldsmith's own."""
    return example.source_id or f"goldsmith-{example.id}"


def _tags(example: Example) -> dict[str, Any]:
    return example.tags.model_dump(mode="json", exclude_defaults=True)


def _metadata(example: Example, record: dict[str, Any]) -> dict[str, Any]:
    """The example's other fields, written back at the top of the record (they came from there)."""
    return {k: v for k, v in sorted(example.metadata.items()) if k not in record and k != "message_fields"}


def chat_message(
    message: Message, extras: dict[str, Any] | None = None, *, names: dict[str, str] | None = None
) -> dict[str, Any]:
    """A turn as trainers read it: the text the model sees (context included) in `content`/`value`.

    The turn's `weight` and `context` ride along, so Goldsmith reads the same turn back (a user
    turn's content then ends with its context, which an import splits off again).
    """
    turn: dict[str, Any] = (
        {"from": names[message.role], "value": message.text} if names else {"role": message.role, "content": message.text}
    )
    if message.context is not None:
        turn["context"] = message.context
    if message.weight is not None:
        turn["weight"] = message.weight
    return turn | (extras or {})


def to_openai(example: Example) -> dict[str, Any]:
    extras = example.metadata.get("message_fields", {})  # per-turn fields kept at import (e.g. "name")
    messages = [chat_message(m, extras.get(str(i))) for i, m in enumerate(example.messages, start=1)]
    record = {"id": record_id(example), "messages": messages, "tags": _tags(example)}
    return record | _metadata(example, record)


def to_sharegpt(example: Example) -> dict[str, Any]:
    names = {"user": "human", "assistant": "gpt"}
    record: dict[str, Any] = {"id": record_id(example)}
    if example.system is not None:
        record["system"] = example.system
    record["conversations"] = [chat_message(m, names=names) for m in example.messages if m.role != "system"]
    record["tags"] = _tags(example)
    return record | _metadata(example, record)


def to_alpaca(example: Example) -> dict[str, Any]:
    """The last user turn as instruction and input (its context), the last answer as output, the rest as history."""
    turns = [m for m in example.messages if m.role != "system"]
    last = turns[-2]
    record: dict[str, Any] = {
        "id": record_id(example),
        "instruction": last.content,
        "input": last.context or "",
        "output": turns[-1].content,
    }
    if example.system is not None:
        record["system"] = example.system
    if len(turns) > 2:
        record["history"] = [[turns[i].text, turns[i + 1].content] for i in range(0, len(turns) - 2, 2)]
    weights = [m.weight for m in turns if m.role == "assistant"]
    if any(w is not None for w in weights):
        record["loss_weights"] = weights  # Alpaca has no place for them; Goldsmith reads them back
    record["tags"] = _tags(example)
    return record | _metadata(example, record)


def _labels_cell(labels: tuple[str, ...]) -> str:
    """`a;b`, or a JSON list when a label holds a separator or the cell would start like one (so it reads back the same)."""
    if any("," in label or ";" in label for label in labels) or (labels and labels[0].startswith("[")):
        return json.dumps(list(labels), ensure_ascii=False)
    return ";".join(labels)


def to_csv_row(example: Example) -> list[str]:
    """One row of Goldsmith's CSV (columns: spreadsheet.GOLDSMITH_CSV), every cell formula-guarded."""
    users = [m for m in example.messages if m.role == "user"]
    whole = len(users) > 1 or any(m.weight is not None for m in example.messages)
    metadata = {k: v for k, v in example.metadata.items()}
    cells = {
        "id": record_id(example),
        "prompt": users[0].content,
        "context": users[0].context or "",
        "response": example.response,
        "system": example.system or "",
        "category": example.tags.category or "",
        "response_type": example.tags.response_type or "",
        "knowledge_area": example.tags.knowledge_area or "",
        "labels": _labels_cell(example.tags.labels),
        "messages": json.dumps([m.model_dump() for m in example.messages], ensure_ascii=False) if whole else "",
        "metadata": json.dumps(metadata, ensure_ascii=False, sort_keys=True) if metadata else "",
    }
    return [neutralise(cells[column]) for column in GOLDSMITH_CSV]


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
                writer.writerow(GOLDSMITH_CSV)
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
    turn = {"role": Value("string"), "content": Value("string"), "context": Value("string"), "weight": Value("int8")}
    features = Features(
        {
            "id": Value("string"),
            "messages": List(turn),
            "category": Value("string"),
            "response_type": Value("string"),
            "knowledge_area": Value("string"),
            "labels": List(Value("string")),
            "metadata": Value("string"),  # JSON: the fields a record brought that Goldsmith does not use
        }
    )

    def rows() -> Iterator[dict[str, Any]]:
        for e in iter_examples(store, flt):
            yield {
                "id": record_id(e),
                "messages": [{"role": m.role, "content": m.text, "context": m.context, "weight": m.weight} for m in e.messages],
                "category": e.tags.category,
                "response_type": e.tags.response_type,
                "knowledge_area": e.tags.knowledge_area,
                "labels": list(e.tags.labels),
                "metadata": json.dumps(e.metadata, ensure_ascii=False, sort_keys=True),
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
