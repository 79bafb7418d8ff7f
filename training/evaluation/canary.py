"""The forgetting check: the loss of base and tuned on general text outside the team's domain.

SFT on a narrow set can erase general ability. The canary set is a chat JSONL of general
knowledge and everyday instructions (`sample_data/canary.jsonl`, written for the project; any
file of `{"messages": [...]}` lines can replace it). Every evaluation scores both models on it;
a rise of the tuned model's loss beyond the threshold is flagged on the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curation.errors import InvalidInput
from schemas.evaluation import CanaryFigures

CANARY_FILE = "canary.jsonl"
DEFAULT_THRESHOLD = 0.05


def default_canary() -> Path:
    """The bundled canary set."""
    from curation.demo import bundled_sample_dir

    return bundled_sample_dir() / CANARY_FILE


def read_canary(path: str | Path | None = None) -> tuple[Path, list[dict[str, Any]]]:
    """The canary file's path and its records (each with `messages` ending in an assistant turn).

    Raises:
        InvalidInput: the file is missing, or a line is not a conversation with an assistant turn.
    """
    source = Path(path).expanduser() if path else default_canary()
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InvalidInput(
            f"cannot read the canary file {source}: {error.strerror or error}; pass another with --canary"
        ) from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            messages = record["messages"]
            if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
                raise ValueError("no assistant turn")
        except (ValueError, KeyError, TypeError) as error:
            raise InvalidInput(
                f"{source}:{number} is not a canary conversation ({error}); each line needs "
                '{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}'
            ) from None
        records.append({"messages": messages})
    if not records:
        raise InvalidInput(f"the canary file {source} holds no conversation")
    return source, records


def canary_figures(
    source: Path, examples: int, base_loss: float | None, tuned_loss: float | None, threshold: float = DEFAULT_THRESHOLD
) -> CanaryFigures:
    """The canary's figures: the change of the loss, and whether it rose beyond the threshold."""
    change = (tuned_loss - base_loss) / base_loss if base_loss and tuned_loss is not None else None
    return CanaryFigures(
        source=str(source),
        examples=examples,
        base_loss=base_loss,
        tuned_loss=tuned_loss,
        change=change,
        threshold=threshold,
        flagged=change is not None and change > threshold,
    )
