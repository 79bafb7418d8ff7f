"""Word-level differences between two versions of a conversation, as a reviewer reads them.

Turns are compared in order (the system prompt, then each user and assistant turn, then the
tags); inside a turn, words (with the spaces and punctuation between them) are kept, added or
removed. No `@@` hunks and no line-oriented `+`/`-`: long paragraphs change a word at a time.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from schemas import DiffSegment, DiffTurn, Message, TextDiff

# A word (or a run of punctuation) with the spaces after it: two versions are aligned word by word, so a
# changed phrase reads as one removed run and one added run, not as words interleaved around kept spaces.
_TOKENS = re.compile(r"\w+\s*|[^\w\s]+\s*|\s+")


def word_segments(before: str, after: str) -> list[DiffSegment]:
    """`after` against `before` as runs of kept, added and removed words (whitespace and punctuation included)."""
    old, new = _TOKENS.findall(before), _TOKENS.findall(after)
    segments: list[DiffSegment] = []

    def add(op: Literal["same", "added", "removed"], tokens: Sequence[str]) -> None:
        text = "".join(tokens)
        if not text:
            return
        if segments and segments[-1].op == op:
            segments[-1] = DiffSegment(op=segments[-1].op, text=segments[-1].text + text)
        else:
            segments.append(DiffSegment(op=op, text=text))

    # compared without their trailing spaces ("dog" = "dog "), shown as the new version spaces them
    matcher = difflib.SequenceMatcher(None, [t.rstrip() or t for t in old], [t.rstrip() or t for t in new], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            add("same", new[j1:j2])
        else:
            add("removed", old[i1:i2])
            add("added", new[j1:j2])
    return segments


def _turns(messages: Iterable[Message | dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, text) per turn: 'System prompt', 'User, turn 1', 'Assistant, turn 1', ..."""
    out, number = [], 0
    for m in messages:
        role, text = (m.role, m.text) if isinstance(m, Message) else (m["role"], _text(m))
        if role == "user":
            number += 1
        label = "System prompt" if role == "system" else f"{role.capitalize()}, turn {max(number, 1)}"
        out.append((label, text))
    return out


def _text(message: dict[str, Any]) -> str:
    return Message.model_validate(message).text if message.get("context") else str(message["content"])


def tags_text(tags: dict[str, Any] | None) -> str:
    """Tags on one line, as a reviewer reads them: 'category claims · response type how to · labels a, b'."""
    if not tags:
        return ""
    parts = []
    for key in ("category", "response_type", "knowledge_area"):
        if tags.get(key):
            parts.append(f"{key.replace('_', ' ')} {tags[key]}")
    if tags.get("labels"):
        parts.append("labels " + ", ".join(tags["labels"]))
    return " · ".join(parts)


def conversation_diff(
    before: Iterable[Message | dict[str, Any]],
    after: Iterable[Message | dict[str, Any]],
    *,
    before_title: str,
    after_title: str,
    before_tags: dict[str, Any] | None = None,
    after_tags: dict[str, Any] | None = None,
) -> TextDiff:
    """Two versions of a conversation (and their tags), turn by turn and word by word."""
    old, new = _turns(before), _turns(after)
    turns = []
    for n in range(max(len(old), len(new))):
        label = (new[n] if n < len(new) else old[n])[0]
        was = old[n][1] if n < len(old) else ""
        now = new[n][1] if n < len(new) else ""
        turns.append(DiffTurn(label=label, segments=word_segments(was, now)))
    if before_tags is not None or after_tags is not None:
        turns.append(DiffTurn(label="Tags", segments=word_segments(tags_text(before_tags), tags_text(after_tags))))
    return TextDiff(before=before_title, after=after_title, turns=turns)
