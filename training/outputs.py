"""What a finished run leaves in its folder: the adapter, the merged model, lineage and result."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from schemas.training import Run
from training.checkpoints import publish_folder
from training.models import merge_adapter


def save_adapter(model: Any, tokenizer: Any, target: Path, weights: dict[str, Any] | None = None) -> None:
    """Publish the peft model's adapter; `weights` are gather_trainable's (root-relative names) for a sharded model."""
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if weights is None:
        model.save_pretrained(tmp)
    else:
        model.save_pretrained(tmp, state_dict={k.removeprefix("lm."): v for k, v in weights.items()})
    tokenizer.save_pretrained(tmp)
    publish_folder(tmp, target)


def finish_run(
    accelerator: Any,
    model: Any,
    tokenizer: Any,
    run: Run,
    snapshot: Any,
    state: dict[str, Any],
    model_path: str,
    precision: str,
    total_steps: int,
    early_stopped: bool,
    extra: dict[str, Any],
    weights: dict[str, Any] | None = None,
) -> dict[str, Any]:
    run_dir = Path(run.run_dir)
    result: dict[str, Any] = {
        "steps": state["step"],
        "total_steps": total_steps,
        "early_stopped": early_stopped,
        "base_eval_loss": state["base_eval_loss"],
        "best_eval_loss": state["best_eval_loss"],
        "best_step": state["best_step"],
        "train_tokens": state["train_tokens"],
        "train_seconds": round(state["train_seconds"], 3),
        "tokens_per_s": state["train_tokens"] / state["train_seconds"] if state["train_seconds"] else None,
        "steady_tokens_per_s": state["steady_tokens"] / state["steady_seconds"] if state.get("steady_seconds") else None,
        "precision": precision,
        "adapter": str(run_dir / "adapter"),
        **extra,  # before result.json is written: the file and the store record must agree
    }
    if accelerator.is_main_process:
        source = run_dir / "best" if early_stopped and (run_dir / "best").exists() else None
        if source:
            shutil.copytree(source, run_dir / ".tmp-adapter", dirs_exist_ok=True)
            publish_folder(run_dir / ".tmp-adapter", run_dir / "adapter")
        else:
            save_adapter(model, tokenizer, run_dir / "adapter", weights)
    final_loss = state["best_eval_loss"] if early_stopped else state.get("last_eval_loss")
    result["final_eval_loss"] = final_loss
    if final_loss is not None and state["base_eval_loss"]:
        result["eval_loss_drop"] = (state["base_eval_loss"] - final_loss) / state["base_eval_loss"]
    if accelerator.is_main_process:
        if run.config.merge:
            result["merged"] = str(merge_adapter(model_path, run_dir / "adapter", run_dir / "merged"))
        lineage = {
            "run_id": run.id,
            "snapshot_id": snapshot.id,
            "snapshot_name": snapshot.name,
            "snapshot_path": snapshot.path,
            "base_model": run.config.base_model,
            "base_model_path": model_path,
            "config_hash": run.config_hash,
            "code_version": run.code_version,
            "created_by": run.created_by,
            "world_size": accelerator.num_processes,
        }
        (run_dir / "lineage.json").write_text(json.dumps(lineage, indent=1) + "\n")
        (run_dir / "result.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    return result
