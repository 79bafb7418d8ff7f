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


def _adapter_key(name: str, adapter: str = "default") -> str:
    """A trainable parameter's key in an adapter file: relative to the peft model, without the adapter name."""
    return name.removeprefix("lm.").replace(f".{adapter}", "")


def _trainable_names(model: Any) -> list[str]:
    """The trainable parameters' names in optimizer order (the optimizer was built from this order)."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def gather_trainable(model: Any, optimizer: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The full trainable weights and optimizer state of a sharded (FSDP2) model, on rank 0.

    Every rank must call it (it gathers the shards); rank 0 gets the weights keyed by parameter
    name and the optimizer state in torch's own index-keyed layout (what one process would save),
    the other ranks get empty dicts. Without an optimizer only the weights are gathered.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
    index = {n: i for i, n in enumerate(_trainable_names(model))}
    if optimizer is None:
        weights, optim = get_model_state_dict(model, options=options), {}
    else:
        weights, optim = get_state_dict(model, optimizer, options=options)
    weights = {k: v for k, v in weights.items() if k in index}  # a frozen weight tied to another can come along
    if not weights or not optim:
        return weights, {}
    return weights, {
        "state": {index[n]: s for n, s in optim["state"].items()},
        "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in optim["param_groups"]],
    }


def _load_sharded(path: Path, model: Any, optimizer: Any) -> None:
    """Load a checkpoint into a sharded (FSDP2) model and its optimizer; every rank calls it."""
    import torch
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    names = _trainable_names(model)
    by_key = {_adapter_key(n): n for n in names}
    weights = load_file(path / "adapter.safetensors")
    unexpected = sorted(set(weights) - set(by_key))
    if unexpected:
        raise RuntimeError(f"checkpoint {path} does not match the model (unexpected keys {unexpected[:3]})")
    optim = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
    set_state_dict(
        model,
        optimizer,
        model_state_dict={by_key[k]: v for k, v in weights.items()},
        optim_state_dict={
            "state": {names[i]: s for i, s in optim["state"].items()},
            "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in optim["param_groups"]],
        },
        options=StateDictOptions(full_state_dict=True, strict=False),
    )


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    state: dict[str, Any],
    *,
    keep: int,
    gathered: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> Path:
    """Write a complete checkpoint; `gathered` is gather_trainable's result for a sharded model.

    Sharded or not, the files are the same (adapter-file keys, index-keyed optimizer state), so a
    run can resume with either sharding.
    """
    import torch
    from safetensors.torch import save_file

    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    tmp.mkdir()
    if gathered is None:
        save_adapter_weights(model, tmp)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    else:
        weights, optim = gathered
        save_file({_adapter_key(k): v.contiguous() for k, v in weights.items()}, tmp / "adapter.safetensors")
        torch.save(optim, tmp / "optimizer.pt")
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


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any, *, sharded: bool = False) -> dict[str, Any]:
    """Load a checkpoint; `model` is the peft model, or with `sharded` the FSDP2-sharded root module."""
    import torch

    if sharded:
        _load_sharded(path, model, optimizer)
    else:
        load_adapter_weights(model, path)
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu", weights_only=True))
    return json.loads((path / "state.json").read_text())
