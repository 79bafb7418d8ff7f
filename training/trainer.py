"""The LoRA training loop: one entry point for one CPU, one GPU, or many processes (DDP or FSDP2).

Run by `training.worker` (directly, or under torchrun / `accelerate launch`). Rank 0 owns the
store: it holds the run's lock, beats the heartbeat, writes metrics and events, and saves
checkpoints; every rank trains on its share of each step's micro-batches.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from curation.store import Store
from schemas.training import Run, TrainConfig
from training import runs
from training.checkpoints import complete_checkpoints, gather_trainable, load_checkpoint, save_checkpoint
from training.data import collate, encode_records, epoch_batches, loss_model, read_split
from training.hardware import attention_for, peak_memory_mb, release_freed_memory, resolve_precision
from training.models import load_model, load_tokenizer, resolve_base_model
from training.outputs import finish_run, save_adapter

HEARTBEAT_S = 2.0
WARMUP_STEPS = 3  # left out of steady_tokens_per_s
FLUSH_S = 2.0


class _Stop:
    """SIGTERM and cancel requests, polled once per optimizer step."""

    def __init__(self) -> None:
        self.signal = threading.Event()
        self.cancel = threading.Event()

    def install(self) -> None:
        """SIGTERM (a scheduler, `kill`) and SIGINT (Ctrl+C) both save a checkpoint and stop."""
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, lambda *_: self.signal.set())

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class _Heartbeat(threading.Thread):
    def __init__(self, db: str, run_id: str, stop: _Stop):
        super().__init__(daemon=True, name="goldsmith-heartbeat")
        self.db, self.run_id, self.stop = db, run_id, stop
        self.step: int | None = None
        self.total: int | None = None
        self.done = threading.Event()

    def run(self) -> None:
        store = Store(self.db)
        try:
            while not self.done.wait(HEARTBEAT_S):
                try:
                    if runs.heartbeat(store, self.run_id, step=self.step, total_steps=self.total):
                        self.stop.cancel.set()
                except Exception:  # a busy store skips one beat; the next one retries
                    pass
        finally:
            store.close()


def train(db: str, run_id: str) -> str:
    """Train the run to completion (or to a stop); returns its final status."""
    import torch
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    store = Store(db)
    run = runs.get_run(store, run_id)
    stop = _Stop()
    stop.install()
    try:
        return _train(accelerator, store, run, stop)
    finally:
        stop.restore()
        store.close()


def _train(accelerator: Any, store: Store, run: Run, stop: _Stop) -> str:
    db, run_id, main = str(store.path), run.id, accelerator.is_main_process
    lock = runs.run_lock(Path(run.run_dir)) if main else nullcontext()
    with lock:
        if main:
            run = runs.claim(store, run_id, world_size=accelerator.num_processes)
        accelerator.wait_for_everyone()
        beat = _Heartbeat(db, run_id, stop) if main else None
        if beat:
            beat.start()
        try:
            status, result = _loop(accelerator, store, run, stop, beat)
        except BaseException as error:
            if main:
                message = f"{type(error).__name__}: {error}".strip()
                status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
                runs.finish(store, run_id, status, error=message, step=beat.step, total_steps=beat.total)
            raise
        finally:
            if beat:
                beat.done.set()
                beat.join()
        if main:
            runs.finish(store, run_id, status, result=result, step=beat.step, total_steps=beat.total)
    accelerator.wait_for_everyone()
    return status


def _shard(model: Any, device: Any) -> None:
    """Shard every decoder layer, then the rest, across all processes (FSDP2; gloo on CPUs, NCCL on GPUs)."""
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    for layer in model.lm.get_base_model().model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)


def _all_sum(accelerator: Any, values: list[float]) -> list[float]:
    import torch

    if accelerator.num_processes == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=accelerator.device)
    return accelerator.reduce(tensor, reduction="sum").tolist()


def _evaluate(
    model: Any, items: list, config: TrainConfig, accelerator: Any, autocast: Any, pad_id: int, compiled: bool = False
) -> float | None:
    import torch

    if not items:
        return None
    world, size = accelerator.num_processes, config.batch_size
    mine = items[accelerator.process_index :: world]
    # Every rank runs as many forwards (DDP syncs buffers and FSDP gathers weights in each one);
    # a rank short of examples repeats the first ones and does not count them.
    rounds = math.ceil(math.ceil(len(items) / world) / size)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for n in range(rounds):
            chunk = mine[n * size : (n + 1) * size]
            batch = _to(
                collate(
                    chunk or items[:size],
                    packing=config.packing,
                    pad_id=pad_id,
                    row_tokens=config.pack_row_tokens,
                    static_shapes=compiled,
                ),
                accelerator.device,
            )
            with autocast():
                loss = float(_forward(model, batch))
            if chunk:
                total += loss
                count += int(batch["targets"].numel())
    total, count = _all_sum(accelerator, [total, count])
    model.train()
    return total / count if count else None


def _to(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    moved = dict(batch)
    moved["inputs"] = {k: v.to(device) for k, v in batch["inputs"].items()}
    for key in ("rows", "cols", "targets"):
        moved[key] = batch[key].to(device)
    return moved


def _forward(model: Any, batch: dict[str, Any]) -> Any:
    return model(batch["inputs"], batch["rows"], batch["cols"], batch["targets"])


def _loop(accelerator: Any, store: Store, run: Run, stop: _Stop, beat: _Heartbeat | None) -> tuple[str, dict[str, Any]]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import get_scheduler

    config, main = run.config, accelerator.is_main_process
    run_dir = Path(run.run_dir)
    device_type = accelerator.device.type
    precision = resolve_precision(config, device_type)
    snapshot = store.get_snapshot(run.snapshot_id)
    model_path = resolve_base_model(config.base_model) if main else None
    accelerator.wait_for_everyone()  # rank 0 converts a short-named model once; the others then read it
    model_path = model_path or resolve_base_model(config.base_model)
    tokenizer = load_tokenizer(model_path)
    train_items, train_stats = encode_records(tokenizer, read_split(Path(snapshot.path) / "train.jsonl"), config.max_seq_length)
    eval_items, eval_stats = encode_records(tokenizer, read_split(Path(snapshot.path) / "eval.jsonl"), config.max_seq_length)
    if not train_items:
        raise ValueError(f"no trainable example in snapshot {snapshot.id}: {train_stats.skipped[:1]}")
    per_rank = len(
        epoch_batches(len(train_items), config.batch_size, config.seed, 0, rank=0, world_size=accelerator.num_processes)
    )
    if per_rank == 0:
        raise ValueError(
            f"{len(train_items)} examples make fewer micro-batches than the {accelerator.num_processes} "
            "processes; lower batch_size"
        )
    steps_per_epoch = math.ceil(per_rank / config.gradient_accumulation_steps)
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))

    weights_dtype = torch.bfloat16 if precision == "bf16" and device_type == "cuda" else torch.float32
    if precision == "fp16":
        weights_dtype = torch.float16
    model = load_model(model_path, dtype=weights_dtype, attn_implementation=attention_for(config, device_type))
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules) if config.target_modules != "all-linear" else "all-linear",
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(config.seed)  # the LoRA matrices start from the run's seed: one config hash, one training
    model = loss_model(get_peft_model(model, lora))
    if accelerator.distributed_type == "FSDP":
        raise ValueError(
            "accelerate's own FSDP (--use_fsdp) is not used here; launch without it and set sharding: fsdp in the "
            "run's config (`goldsmith train ... --processes N --set sharding=fsdp`)"
        )
    sharded = config.sharding == "fsdp" and accelerator.num_processes > 1
    if sharded:
        _shard(model, accelerator.device)
    compiled = config.compile == "on" or (config.compile == "auto" and device_type == "cuda")
    if compiled:
        # Layer by layer: the decoder layers share one compiled graph, so compiling costs one layer's time.
        for layer in model.lm.get_base_model().model.layers:
            layer.compile(dynamic=True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay, fused=device_type == "cuda"
    )
    scheduler = get_scheduler(
        config.schedule, optimizer, num_warmup_steps=round(total_steps * config.warmup_ratio), num_training_steps=total_steps
    )
    if sharded:  # accelerate's FSDP is for GPUs only; FSDP2 shards the same way on CPUs (gloo) and GPUs
        inner = model.lm
    else:
        model, optimizer = accelerator.prepare(model, optimizer)
        inner = accelerator.unwrap_model(model).lm
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def autocast() -> Any:
        return torch.autocast(device_type, dtype=amp_dtype) if amp_dtype else nullcontext()

    state: dict[str, Any] = {
        "step": 0,
        "base_eval_loss": None,
        "best_eval_loss": None,
        "best_step": None,
        "evals_since_best": 0,
        "train_tokens": 0,
        "train_seconds": 0.0,
    }
    checkpoints = complete_checkpoints(run_dir)
    if checkpoints:
        state = load_checkpoint(checkpoints[0], model if sharded else inner, optimizer, scheduler, sharded=sharded)
        if main:
            runs.log_event(store, run.id, "checkpoint_loaded", f"resumed from {checkpoints[0].name}")
    step = state["step"]
    pad_id = tokenizer.pad_token_id
    if main:
        beat.total = total_steps
        summary = {
            "train": train_stats.as_dict(),
            "eval": eval_stats.as_dict(),
            "precision": precision,
            "device": str(accelerator.device),
        }
        (run_dir / "data_stats.json").write_text(json.dumps(summary, indent=1))
        runs.log_event(
            store,
            run.id,
            "data",
            f"{train_stats.examples} train / {eval_stats.examples} eval examples, "
            f"{train_stats.truncated + eval_stats.truncated} truncated, "
            f"{len(train_stats.skipped) + len(eval_stats.skipped)} skipped; "
            f"{total_steps} steps, {precision} on {device_type}"
            + (f", sharded (FSDP) over {accelerator.num_processes} processes" if sharded else ""),
        )
    pending: list[dict[str, Any]] = []
    last_flush = time.monotonic()

    def flush(force: bool = False) -> None:
        nonlocal last_flush
        if main and pending and (force or time.monotonic() - last_flush > FLUSH_S):
            runs.log_metrics(store, pending)
            pending.clear()
            last_flush = time.monotonic()

    def evaluate(at_step: int) -> float | None:
        loss = _evaluate(model, eval_items, config, accelerator, autocast, pad_id, compiled)
        if loss is None:
            return None
        state["last_eval_loss"] = loss
        if state["base_eval_loss"] is None and at_step == 0:
            state["base_eval_loss"] = loss
        if at_step > 0 and (state["best_eval_loss"] is None or loss < state["best_eval_loss"]):
            state["best_eval_loss"], state["best_step"], state["evals_since_best"] = loss, at_step, 0
        elif at_step > 0:
            state["evals_since_best"] += 1
        improved = state["best_step"] == at_step and at_step > 0
        weights = gather_trainable(model)[0] if sharded and improved else None  # every rank takes part
        if main and improved:
            save_adapter(inner, tokenizer, run_dir / "best", weights)
        release_freed_memory()
        pending.append({"run_id": run.id, "step": at_step, "kind": "eval", "epoch": at_step / steps_per_epoch, "eval_loss": loss})
        flush(force=True)
        return loss

    if step == 0:
        evaluate(0)  # LoRA starts as the identity: this is the base model's eval loss
    model.train()
    status = "completed"
    early_stopped = False
    while step < total_steps:
        epoch, k = divmod(step, steps_per_epoch)
        batches = epoch_batches(
            len(train_items),
            config.batch_size,
            config.seed,
            epoch,
            rank=accelerator.process_index,
            world_size=accelerator.num_processes,
        )
        group = [
            [train_items[i] for i in b]
            for b in batches[k * config.gradient_accumulation_steps : (k + 1) * config.gradient_accumulation_steps]
        ]
        labels = sum(item.label_count for b in group for item in b)
        # Every rank divides by the loss tokens of all ranks (times the world size, which DDP's
        # gradient average divides out): the step's gradient is the mean over all its tokens.
        scale = accelerator.num_processes / _all_sum(accelerator, [float(labels)])[0]
        torch.manual_seed(config.seed + 7919 * step + accelerator.process_index)  # resume replays the same dropout
        started = time.perf_counter()
        loss_sum, tokens = 0.0, 0
        for j, items in enumerate(group):
            batch = _to(
                collate(items, packing=config.packing, pad_id=pad_id, row_tokens=config.pack_row_tokens, static_shapes=compiled),
                accelerator.device,
            )
            # FSDP reduces each micro-batch's gradient shards as it goes; DDP syncs once per step
            sync = nullcontext() if sharded or j == len(group) - 1 else accelerator.no_sync(model)
            with sync:
                with autocast():
                    loss = _forward(model, batch)
                accelerator.backward(loss * scale)
            loss_sum += float(loss.detach())
            tokens += batch["tokens"]
        if sharded:
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)  # DTensor-aware: the norm of the whole
        else:
            accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if device_type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
        loss_sum, labels_all, tokens_all, elapsed_max = _all_sum(accelerator, [loss_sum, labels, tokens, elapsed])
        if accelerator.num_processes > 1:
            elapsed_max = elapsed_max / accelerator.num_processes  # mean step time across ranks
        state["train_tokens"] += int(tokens_all)
        state["train_seconds"] += elapsed_max
        if step > WARMUP_STEPS:  # the first steps pay for kernel loading and allocator growth
            state["steady_tokens"] = state.get("steady_tokens", 0) + int(tokens_all)
            state["steady_seconds"] = state.get("steady_seconds", 0.0) + elapsed_max
        state["step"] = step
        pending.append(
            {
                "run_id": run.id,
                "step": step,
                "kind": "train",
                "epoch": step / steps_per_epoch,
                "loss": loss_sum / labels_all,
                "learning_rate": scheduler.get_last_lr()[0],
                "tokens_per_s": tokens_all / elapsed_max if elapsed_max else None,
                "memory_mb": peak_memory_mb(device_type),
            }
        )
        if main:
            beat.step = step
            print(
                f"step {step}/{total_steps} loss {loss_sum / labels_all:.4f} {tokens_all / elapsed_max:.0f} tok/s",
                file=sys.stderr,
                flush=True,
            )
        flush()
        if step % config.eval_every == 0 or step == total_steps:
            evaluate(step)
            if config.early_stopping_patience and state["evals_since_best"] >= config.early_stopping_patience:
                early_stopped = True
                break
        stopping = _all_sum(accelerator, [float(stop.signal.is_set() or stop.cancel.is_set())])[0] > 0
        if stopping or (step % config.save_every == 0 and step < total_steps):
            flush(force=True)  # every step up to a checkpoint is in the store before the checkpoint exists
            gathered = gather_trainable(model, optimizer) if sharded else None  # every rank takes part
            if main:
                save_checkpoint(
                    run_dir, step, inner, optimizer, scheduler, state, keep=config.keep_checkpoints, gathered=gathered
                )
            accelerator.wait_for_everyone()
        if stopping:
            if main and runs.heartbeat(store, run.id, step=step):  # cancel_run's SIGTERM can beat the heartbeat thread
                stop.cancel.set()
            cancelled = _all_sum(accelerator, [float(stop.cancel.is_set())])[0] > 0
            status = "cancelled" if cancelled else "interrupted"
            flush(force=True)
            if main:
                runs.log_event(store, run.id, "checkpoint_saved", f"stopped at step {step}; resume with --resume {run.id}")
            return status, {"step": step}
    flush(force=True)
    extra = {
        "data": {"train": train_stats.as_dict(), "eval": eval_stats.as_dict()},
        "peak_memory_mb": peak_memory_mb(device_type),
    }
    weights = gather_trainable(model)[0] if sharded and not early_stopped else None  # every rank takes part
    result = finish_run(
        accelerator, inner, tokenizer, run, snapshot, state, model_path, precision, total_steps, early_stopped, extra, weights
    )
    return status, result
