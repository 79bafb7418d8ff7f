"""Drafts from a model: what a draft records about its origin, and how much people changed drafts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Generation(BaseModel):
    """The decoding settings a draft was generated with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int
    temperature: float
    do_sample: bool
    top_p: float | None = None


class DraftProvenance(BaseModel):
    """Where a model-drafted response came from; stored as the example's `metadata["drafted_by"]`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    model: str
    adapter: str | None = None
    run_id: str | None = None
    generation: Generation
    draft: str  # the model's text, as it wrote it
    drafted_at: str

    @field_validator("draft")
    @classmethod
    def _has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the provenance holds no draft text; get one from draft_response first")
        return value

    @property
    def label(self) -> str:
        """`smollm2-135m` or `smollm2-135m + run abc123`: which model wrote the draft."""
        return f"{self.model} + run {self.run_id}" if self.run_id else self.model


class Draft(BaseModel):
    """A model's draft of a response, with its provenance."""

    model_config = ConfigDict(frozen=True)

    text: str
    provenance: DraftProvenance


class DraftedShare(BaseModel):
    """Approved examples that started as a model's draft, and how much people changed them."""

    model_config = ConfigDict(frozen=True)

    approved: int
    drafted: int  # approved and model-drafted
    share: float | None  # drafted / approved (None without approved examples)
    accepted_unchanged: int  # final response equal to the draft, whitespace aside
    unchanged_share: float | None
    mean_edit_distance: float | None  # mean normalised edit distance draft -> final response (0: unchanged)
    by_model: dict[str, int] = Field(default_factory=dict)
