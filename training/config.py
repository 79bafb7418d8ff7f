"""TrainConfig from YAML plus command-line overrides, with messages that say what to fix."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from curation.errors import InvalidInput, explain
from schemas.training import TrainConfig

FIELDS = tuple(TrainConfig.model_fields)


def _unknown_keys(data: dict[str, Any]) -> None:
    for key in data:
        if key not in FIELDS:
            close = difflib.get_close_matches(key, FIELDS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known settings: {', '.join(FIELDS)}"
            raise InvalidInput(f"unknown training setting {key!r}; {hint}")


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`key=value` strings (values read as YAML: 3, 1e-4, true, [q_proj, v_proj]) into a dict."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"override {pair!r} must look like key=value, e.g. learning_rate=1e-4")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as error:
            raise InvalidInput(f"override {pair!r}: cannot read the value ({error})") from error
    return out


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The file's settings (if any), then the overrides on top; None overrides are ignored."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise InvalidInput(f"cannot read config {path}: {error.strerror or error}") from error
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise InvalidInput(f"{path} is not valid YAML: {error}") from error
        if loaded is not None and not isinstance(loaded, dict):
            raise InvalidInput(f"{path} must hold a mapping of settings (key: value), not {type(loaded).__name__}")
        data.update(loaded or {})
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    _unknown_keys(data)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as error:
        where = f" in {path}" if path else ""
        raise InvalidInput(f"invalid training config{where}: {explain(error)}") from error


def save_config(config: TrainConfig, path: Path) -> None:
    data = config.model_dump(mode="json")
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
