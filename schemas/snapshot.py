"""Snapshots: immutable, content-addressed training sets cut from approved examples."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class Snapshot(BaseModel):
    """A snapshot as recorded in the store; its files live in `path`."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    path: str
    created_by: str
    created_at: datetime
    seed: int
    eval_fraction: float
    filter: dict[str, Any]
    train: int
    eval: int
    schema_version: int
    manifest_sha256: str
