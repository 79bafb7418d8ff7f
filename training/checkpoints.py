"""Crash-safe checkpoints: written to a temporary folder, fsynced, renamed, then marked complete.

A checkpoint folder is `checkpoints/step-00000040/` holding the adapter weights, the optimizer
and scheduler states and `state.json`; `COMPLETE` is written last, inside the temporary folder,
before the rename. A kill at any moment leaves either the previous complete checkpoints or a
`.tmp-*` folder that the next save removes; resume only ever reads complete ones.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from curation.osutil import fsync_dir

MARKER = "COMPLETE"
_NAME = re.compile(r"^step-(\d{8})$")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def save_adapter_weights(model: Any, folder: Path) -> None:
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in get_peft_model_state_dict(model).items()}
    save_file(state, folder / "adapter.safetensors")


def load_adapter_weights(model: Any, folder: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    result = set_peft_model_state_dict(model, load_file(folder / "adapter.safetensors"))
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise RuntimeError(f"checkpoint {folder} does not match the model (unexpected keys {unexpected[:3]})")


def publish_folder(tmp: Path, final: Path) -> None:
    """fsync every file in tmp, then atomically replace final with it."""
    for path in tmp.rglob("*"):
        if path.is_file():
            _fsync_file(path)
    fsync_dir(tmp)
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    fsync_dir(final.parent)


def save_checkpoint(
    run_dir: Path, step: int, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any], *, keep: int
) -> Path:
    import torch

    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    tmp.mkdir()
    save_adapter_weights(model, tmp)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=1, sort_keys=True))
    files = sorted(p.name for p in tmp.iterdir())
    (tmp / MARKER).write_text(json.dumps({"step": step, "files": files}))
    final = root / f"step-{step:08d}"
    publish_folder(tmp, final)
    for old in complete_checkpoints(run_dir)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, newest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _NAME.match(path.name)
        if not match or not (path / MARKER).is_file():
            continue
        try:
            marker = json.loads((path / MARKER).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if all((path / f).is_file() for f in marker.get("files", [])):
            found.append((int(match.group(1)), path))
    return [p for _, p in sorted(found, reverse=True)]


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    import torch

    load_adapter_weights(model, path)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu", weights_only=True))
    return json.loads((path / "state.json").read_text())
