"""Goldsmith's CSV: its columns, and the formula guard written on export and removed on import.

A spreadsheet runs a cell that starts with `= + - @` (or a tab or carriage return) as a formula,
so the export prefixes such a cell with `'` (OWASP's advice against CSV injection). To make
export -> import an identity for every text, a cell that already starts with quotes followed by
one of those characters gets one more quote, and the import of a Goldsmith CSV (recognised by
its exact header) removes one quote from every cell that carries the guard. A CSV from anywhere
else is read as it is.
"""

from __future__ import annotations

from typing import Any

GOLDSMITH_CSV = (
    "id",
    "prompt",
    "context",
    "response",
    "system",
    "category",
    "response_type",
    "knowledge_area",
    "labels",
    "messages",
    "metadata",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _guarded(cell: str) -> bool:
    """Whether a cell, its leading quotes aside, starts like a formula."""
    return cell.lstrip("'").startswith(_FORMULA_START)


def neutralise(cell: str) -> str:
    """Stop spreadsheets from running a cell as a formula: prefix a quote (reversible by `unneutralise_cell`)."""
    return "'" + cell if _guarded(cell) else cell


def unneutralise_cell(cell: str) -> str:
    """The cell as it was before `neutralise`."""
    return cell[1:] if cell.startswith("'") and _guarded(cell[1:]) else cell


def unneutralise(row: Any) -> Any:
    """A Goldsmith CSV row with the formula guard removed from every cell."""
    if not isinstance(row, dict):
        return row
    return {k: unneutralise_cell(v) if isinstance(v, str) else v for k, v in row.items()}
