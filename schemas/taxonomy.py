"""The taxonomy: the tag values examples may use, and target counts per cell."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.example import Tags


class Target(BaseModel):
    """How many approved examples a (category, response_type) cell should hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str
    response_type: str
    target: int = Field(ge=0)


class Taxonomy(BaseModel):
    """Allowed tag values. An empty list leaves that tag free."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: tuple[str, ...] = ()
    response_types: tuple[str, ...] = ()
    knowledge_areas: tuple[str, ...] = ()
    targets: tuple[Target, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Taxonomy:
        for name in ("categories", "response_types", "knowledge_areas"):
            values = getattr(self, name)
            if any(not v.strip() for v in values):
                raise ValueError(f"{name} contains an empty value; remove it")
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"{name} lists {', '.join(dupes)} more than once")
        cells = set()
        for t in self.targets:
            if self.categories and t.category not in self.categories:
                raise ValueError(f"target names category {t.category!r}, which is not in categories")
            if self.response_types and t.response_type not in self.response_types:
                raise ValueError(f"target names response_type {t.response_type!r}, which is not in response_types")
            if (t.category, t.response_type) in cells:
                raise ValueError(f"target for ({t.category}, {t.response_type}) is given twice")
            cells.add((t.category, t.response_type))
        return self

    def tag_problems(self, tags: Tags) -> list[str]:
        """Sentences naming each tag value the taxonomy does not allow."""
        problems = []
        for key, allowed in (
            ("category", self.categories),
            ("response_type", self.response_types),
            ("knowledge_area", self.knowledge_areas),
        ):
            value = getattr(tags, key)
            if value is not None and allowed and value not in allowed:
                problems.append(f"{key} {value!r} is not in the taxonomy; choose one of: {', '.join(allowed)}")
        return problems
