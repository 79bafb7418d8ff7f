"""History: one row per change, who made it, when, and what it was before and after."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Entity = Literal["example", "user", "settings", "snapshot", "task", "questions", "prod_logs", "run", "comparison", "job"]


class HistoryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int
    entity: Entity
    entity_id: str
    action: str
    actor: str
    at: datetime
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
