"""Examples: the chat-shaped prompt/response records authors write and reviewers judge."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Role = Literal["system", "user", "assistant"]
Status = Literal["draft", "submitted", "approved", "rejected", "changes_requested", "archived"]
STATUSES: tuple[str, ...] = get_args(Status)
TAG_KEYS = ("category", "response_type", "knowledge_area")
DEFAULT_MAX_TOKENS = 2048  # the target model's context limit that drafts and snapshots are checked against


CONTEXT_TEMPLATE = "{content}\n\n{context}"  # how a user turn's context joins it in the text a model sees


class Message(BaseModel):
    """One turn of a conversation, in the chat `messages` shape TRL and OpenAI share.

    Two optional fields keep what real files say about a turn:
    - `weight` (assistant turns): 0 means the model does not learn this turn (OpenAI's `weight`,
      LLaMA-Factory's `loss_weight`); 1, or none, means it does.
    - `context` (user turns): a passage the question needs, kept apart from the question itself
      (Alpaca's `input`, Dolly's `context`); the text a model sees is `CONTEXT_TEMPLATE` (`turn_text`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str
    weight: Literal[0, 1] | None = Field(default=None, exclude_if=lambda v: v is None)
    context: str | None = Field(default=None, exclude_if=lambda v: v is None)

    @field_validator("role", mode="before")
    @classmethod
    def _lower_role(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message content is empty; write the text of the turn")
        return value

    @field_validator("weight", mode="before")
    @classmethod
    def _binary_weight(cls, value: Any) -> Any:
        if isinstance(value, bool) or value is None:
            return value if value is None else int(value)
        if isinstance(value, int | float) and value in (0, 1):
            return int(value)
        raise ValueError(f"weight must be 0 (do not learn this turn) or 1, got {value!r}")

    @field_validator("context")
    @classmethod
    def _context_text(cls, value: str | None) -> str | None:
        return value if value is None or value.strip() else None

    @model_validator(mode="after")
    def _fields_fit_the_role(self) -> Message:
        if self.weight is not None and self.role != "assistant":
            raise ValueError(f"a {self.role} turn has a weight; only assistant turns are learned, so only they take one")
        if self.context is not None and self.role != "user":
            raise ValueError(f"a {self.role} turn has a context; only user turns take one (the passage a question needs)")
        return self

    @property
    def text(self) -> str:
        """The text a model sees for this turn: the content, and the context when there is one."""
        return self.content if self.context is None else CONTEXT_TEMPLATE.format(content=self.content, context=self.context)


class Tags(BaseModel):
    """The taxonomy tags of an example plus free labels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str | None = None
    response_type: str | None = None
    knowledge_area: str | None = None
    labels: tuple[str, ...] = ()

    @field_validator("category", "response_type", "knowledge_area", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @field_validator("labels", mode="before")
    @classmethod
    def _split_labels(cls, value: Any) -> Any:
        # Friendly input ("a; b", "a,b", a list with blanks) becomes one canonical tuple.
        if value is None:
            return ()
        if isinstance(value, str):
            value = value.replace(";", ",").split(",")
        if isinstance(value, (list, tuple)):
            seen: dict[str, None] = {}
            for item in value:
                if not isinstance(item, str):
                    raise ValueError(f"labels must be text, got {item!r}")
                if item.strip():
                    seen.setdefault(item.strip(), None)
            return tuple(seen)
        return value


def check_conversation(messages: list[Message] | tuple[Message, ...]) -> None:
    """Raise ValueError unless messages form a trainable conversation.

    An optional system prompt first, then user and assistant turns alternating,
    starting with a user turn and ending with an assistant turn.
    """
    if not messages:
        raise ValueError("an example needs at least one user turn and one assistant turn")
    turns = list(messages)
    if turns[0].role == "system":
        turns = turns[1:]
    offset = len(messages) - len(turns)
    for i, message in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if message.role != expected:
            where = f"message {i + offset + 1}"
            if message.role == "system":
                raise ValueError(f"{where} is a system prompt; only the first message may be one")
            raise ValueError(
                f"{where} has role '{message.role}' but '{expected}' was expected: "
                "after an optional system prompt, turns alternate user, assistant"
            )
    if not turns:
        raise ValueError("an example needs at least one user turn and one assistant turn")
    if turns[-1].role != "assistant":
        raise ValueError("the conversation must end with an assistant turn (the response to train on)")


def content_hash(messages: list[Message] | tuple[Message, ...]) -> str:
    """sha256 of the conversation's roles and texts (a turn's context included), exactly as written."""
    canonical = json.dumps([[m.role, m.text] for m in messages], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# Letters, digits and whitespace are kept, apostrophes dropped, anything else becomes a space. ASCII
# bytes go through one bytes.translate (other bytes are left as they are); the runs of other
# characters that remain are folded by the same rule, remembered per character.
_ASCII_FOLD = bytes(c if chr(c).isalnum() or chr(c).isspace() else 32 for c in range(128)) + bytes(range(128, 256))
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


class _Fold(dict[int, str]):
    def __missing__(self, code: int) -> str:
        char = chr(code)
        value = char if char.isalnum() or char.isspace() else "" if char in "'’`" else " "
        self[code] = value
        return value


_FOLD = _Fold()


def _fold_run(match: re.Match[str]) -> str:
    return match.group().translate(_FOLD)


def normalise_text(text: str, *, punctuation: bool = True) -> str:
    """Lower-case, collapse whitespace and (by default) drop punctuation: the text exact duplicates share.

    Apostrophes vanish ("didn't" = "didnt"); every other character that is neither alphanumeric
    nor whitespace separates words. (A character-by-character loop cost 40% of an import.)
    """
    text = text.casefold()
    if punctuation:
        text = text.encode("utf-8", "surrogatepass").translate(_ASCII_FOLD, b"'`").decode("utf-8", "surrogatepass")
        if not text.isascii():
            text = _NON_ASCII.sub(_fold_run, text)
    return " ".join(text.split())


def one_line(text: str, width: int = 90) -> str:
    """Text on one line (whitespace collapsed), cut to `width` characters with an ellipsis (tables, lists, errors)."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def prompt_text(messages: list[Message] | tuple[Message, ...]) -> str:
    """The system and user turns (with their context), in order, a blank line between (the store's prompt_text)."""
    return "\n\n".join(m.text for m in messages if m.role in ("system", "user"))


def response_text(messages: list[Message] | tuple[Message, ...]) -> str:
    """The assistant turns, in order, a blank line between (the store's response_text column)."""
    return "\n\n".join(m.content for m in messages if m.role == "assistant")


def similarity_text(messages: list[Message] | tuple[Message, ...]) -> str:
    """What near and semantic duplicates compare: the prompt, a newline, the response.

    One definition for batch dedup, the live check and the snapshot's leak check, so they agree
    on whether two conversations match.
    """
    return f"{prompt_text(messages)}\n{response_text(messages)}"


def estimate_tokens(texts: list[str] | tuple[str, ...]) -> int:
    """A conservative token count without a tokenizer: one token per 3 characters of the joined texts."""
    return -(-len("\n".join(texts)) // 3)


def normalised_hash(messages: list[Message] | tuple[Message, ...], *, punctuation: bool = True) -> str:
    """sha256 of the conversation with case, whitespace (and punctuation) folded; roles still count."""
    canonical = json.dumps([[m.role, normalise_text(m.text, punctuation=punctuation)] for m in messages], ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ExampleContent(BaseModel):
    """What an author writes: the conversation and its tags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: tuple[Message, ...]
    tags: Tags = Field(default_factory=Tags)

    @model_validator(mode="after")
    def _trainable(self) -> ExampleContent:
        check_conversation(self.messages)
        return self

    @classmethod
    def from_pair(cls, prompt: str, response: str, *, system: str | None = None, tags: Tags | None = None) -> ExampleContent:
        """Build a single-turn example from a prompt and a response."""
        messages = [{"role": "system", "content": system}] if system and system.strip() else []
        messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        return cls.model_validate({"messages": messages, "tags": tags or Tags()})

    @property
    def system(self) -> str | None:
        return self.messages[0].content if self.messages[0].role == "system" else None

    @property
    def prompt(self) -> str:
        """The first user turn."""
        return next(m.content for m in self.messages if m.role == "user")

    @property
    def response(self) -> str:
        """The final assistant turn."""
        return self.messages[-1].content

    @property
    def content_hash(self) -> str:
        return content_hash(self.messages)


class Example(ExampleContent):
    """An example as stored: content plus workflow state and provenance."""

    id: int
    source: str = "manual"
    source_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    status: Status = "draft"
    author: str
    version: int = Field(default=1, ge=1)
    created_at: datetime
    updated_at: datetime

    @property
    def drafted_by(self) -> dict[str, Any] | None:
        """The provenance of a model-drafted example (`metadata["drafted_by"]`: model, run, the draft), else None."""
        mark = self.metadata.get("drafted_by")
        return mark if isinstance(mark, dict) else None

    @property
    def draft_untouched(self) -> bool:
        """A model draft whose response no person has edited (whitespace aside) or accepted yet: it cannot be submitted."""
        mark = self.drafted_by
        if mark is None or self.metadata.get("draft_accepted"):
            return False
        return " ".join(self.response.split()) == " ".join(str(mark.get("draft", "")).split())
