"""The LoRA training loop: one entry point for one CPU, one GPU, or many processes (DDP or FSDP2).

Run by `training.worker` (directly, or under torchrun / `accelerate launch`). Rank 0 owns the
store: it holds the run's lock, beats the heartbeat, writes metrics and events, and saves
checkpoints; every rank trains on its share of each step's micro-batches.

`_loop` reads top to bottom: `_setup` builds a `_Session` (data, model, optimizer), `_resume`
gives the `TrainState` (fresh, or a checkpoint's), then each optimizer step is `_train_step`,
`_record_step`, `_evaluate_and_keep_best` when one is due, and `_checkpoint_or_stop`.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from curation.store import Store
from schemas import Snapshot
from schemas.training import Run, TrainConfig
from training import runs
from training.checkpoints import complete_checkpoints, gather_trainable, load_checkpoint, save_checkpoint
from training.data import Encoded, EncodeStats, collate, encode_records, epoch_batches, loss_model, read_split
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
        self.previous: dict[int, Any] = {}

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


@dataclass
class TrainState:
    """What the loop carries from step to step; a checkpoint's state.json is `as_dict()`."""

    step: int = 0
    base_eval_loss: float | None = None
    best_eval_loss: float | None = None
    best_step: int | None = None
    evals_since_best: int = 0
    train_tokens: int = 0
    train_seconds: float = 0.0
    # Absent from state.json until first set (None here): the latest eval loss, and the totals of
    # the steps after WARMUP_STEPS (checkpoints older than steady_* load without them).
    last_eval_loss: float | None = None
    steady_tokens: int | None = None
    steady_seconds: float | None = None

    _LEFT_OUT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("last_eval_loss", "steady_tokens", "steady_seconds")

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k not in self._LEFT_OUT_WHEN_NONE}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainState:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def add_step(self, tokens: int, seconds: float) -> None:
        """Count one optimizer step of `tokens` (all ranks) that took `seconds`."""
        self.step += 1
        self.train_tokens += tokens
        self.train_seconds += seconds
        if self.step > WARMUP_STEPS:  # the first steps pay for kernel loading and allocator growth
            self.steady_tokens = (self.steady_tokens or 0) + tokens
            self.steady_seconds = (self.steady_seconds or 0.0) + seconds

    def add_eval(self, loss: float) -> bool:
        """Record an eval loss at the current step; True when it is the best so far (never at step 0)."""
        at_step = self.step
        self.last_eval_loss = loss
        if self.base_eval_loss is None and at_step == 0:
            self.base_eval_loss = loss
        if at_step > 0 and (self.best_eval_loss is None or loss < self.best_eval_loss):
            self.best_eval_loss, self.best_step, self.evals_since_best = loss, at_step, 0
        elif at_step > 0:
            self.evals_since_best += 1
        return self.best_step == at_step and at_step > 0


class _Metrics:
    """Metric rows, written by rank 0 in batches: when FLUSH_S has passed since the last write, or when forced."""

    def __init__(self, store: Store, main: bool):
        self.store, self.main = store, main
        self.rows: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()

    def add(self, row: dict[str, Any]) -> None:
        if self.main:  # only rank 0 writes; the other ranks' rows would pile up unwritten
            self.rows.append(row)

    def flush(self, force: bool = False) -> None:
        if self.main and self.rows and (force or time.monotonic() - self.last_flush > FLUSH_S):
            runs.log_metrics(self.store, self.rows)
            self.rows = []
            self.last_flush = time.monotonic()


@dataclass
class _Session:
    """Everything a run's loop works with that does not change from step to step."""

    accelerator: Any
    store: Store
    run: Run
    snapshot: Snapshot
    model_path: str
    precision: str
    tokenizer: Any
    train_items: list[Encoded]
    train_stats: EncodeStats
    eval_items: list[Encoded]
    eval_stats: EncodeStats
    steps_per_epoch: int
    total_steps: int
    model: Any  # what forward and backward run on: DDP-wrapped, FSDP2-sharded, or the bare loss model
    inner: Any  # the peft model: what adapters and (unsharded) checkpoints are saved from
    trainable: list[Any]
    optimizer: Any
    scheduler: Any
    amp_dtype: Any  # None: no autocast
    sharded: bool
    compiled: bool
    metrics: _Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = _Metrics(self.store, self.main)

    @property
    def config(self) -> TrainConfig:
        return self.run.config

    @property
    def main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    @property
    def world(self) -> int:
        return int(self.accelerator.num_processes)

    @property
    def device_type(self) -> str:
        return str(self.accelerator.device.type)

    @property
    def run_dir(self) -> Path:
        return Path(self.run.run_dir)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    def autocast(self) -> Any:
        import torch

        return torch.autocast(self.device_type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()

    def batch(self, items: list[Encoded]) -> dict[str, Any]:
        """One micro-batch's tensors, on this rank's device."""
        config = self.config
        return _to(
            collate(
                items, packing=config.packing, pad_id=self.pad_id, row_tokens=config.pack_row_tokens, static_shapes=self.compiled
            ),
            self.accelerator.device,
        )


@dataclass(frozen=True)
class _StepFigures:
    """One optimizer step, summed over all ranks."""

    loss_sum: float
    labels: float
    tokens: float
    seconds: float  # the mean of the ranks' step times


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
        beat = _Heartbeat(db, run_id, stop) if main else None  # rank 0's alone
        if beat:
            beat.start()
        try:
            status, result = _loop(accelerator, store, run, stop, beat)
        except BaseException as error:
            if beat:
                message = f"{type(error).__name__}: {error}".strip()
                status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
                runs.finish(store, run_id, status, error=message, step=beat.step, total_steps=beat.total)
            raise
        finally:
            if beat:
                beat.done.set()
                beat.join()
        if beat:
            runs.finish(store, run_id, status, result=result, step=beat.step, total_steps=beat.total)
    accelerator.wait_for_everyone()
    return status


def _loop(accelerator: Any, store: Store, run: Run, stop: _Stop, beat: _Heartbeat | None) -> tuple[str, dict[str, Any]]:
    session = _setup(accelerator, store, run)
    state = _resume(session)
    _announce(session, beat)
    if state.step == 0:
        _evaluate_and_keep_best(session, state)  # LoRA starts as the identity: this is the base model's eval loss
    session.model.train()
    config, early_stopped = session.config, False
    while state.step < session.total_steps:
        figures = _train_step(session, state.step)
        state.add_step(int(figures.tokens), figures.seconds)
        _record_step(session, state, figures, beat)
        if state.step % config.eval_every == 0 or state.step == session.total_steps:
            _evaluate_and_keep_best(session, state)
            if config.early_stopping_patience and state.evals_since_best >= config.early_stopping_patience:
                early_stopped = True
                break
        stopped = _checkpoint_or_stop(session, state, stop)
        if stopped:
            return stopped, {"step": state.step}
    return "completed", _finish(session, state, early_stopped)


# Setup: the data, the model and its optimizer, built the same way on every rank.


def _setup(accelerator: Any, store: Store, run: Run) -> _Session:
    import torch
    from transformers import get_scheduler

    config, main, device_type = run.config, accelerator.is_main_process, accelerator.device.type
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
    steps_per_epoch, total_steps = plan_steps(len(train_items), config, accelerator.num_processes)
    model, sharded, compiled = build_model(accelerator, config, model_path, precision)
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
    return _Session(
        accelerator=accelerator,
        store=store,
        run=run,
        snapshot=snapshot,
        model_path=model_path,
        precision=precision,
        tokenizer=tokenizer,
        train_items=train_items,
        train_stats=train_stats,
        eval_items=eval_items,
        eval_stats=eval_stats,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        model=model,
        inner=inner,
        trainable=trainable,
        optimizer=optimizer,
        scheduler=scheduler,
        amp_dtype={"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision),
        sharded=sharded,
        compiled=compiled,
    )


def plan_steps(count: int, config: TrainConfig, world: int) -> tuple[int, int]:
    """(steps per epoch, total steps) for `count` training examples dealt to `world` processes."""
    per_rank = len(epoch_batches(count, config.batch_size, config.seed, 0, rank=0, world_size=world))
    if per_rank == 0:
        raise ValueError(f"{count} examples make fewer micro-batches than the {world} processes; lower batch_size")
    steps_per_epoch = math.ceil(per_rank / config.gradient_accumulation_steps)
    return steps_per_epoch, config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))


def build_model(accelerator: Any, config: TrainConfig, model_path: str, precision: str) -> tuple[Any, bool, bool]:
    """The loss model around the peft LoRA model, sharded and compiled as configured: (model, sharded, compiled)."""
    import torch
    from peft import LoraConfig, get_peft_model

    device_type = accelerator.device.type
    weights_dtype = torch.bfloat16 if precision == "bf16" and device_type == "cuda" else torch.float32
    if precision == "fp16":
        weights_dtype = torch.float16
    model = load_model(model_path, dtype=weights_dtype, attn_implementation=attention_for(config, device_type))
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,  # peft annotates int; a float scales the same
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
    return model, sharded, compiled


def _shard(model: Any, device: Any) -> None:
    """Shard every decoder layer, then the rest, across all processes (FSDP2; gloo on CPUs, NCCL on GPUs)."""
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    for layer in model.lm.get_base_model().model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)


def _resume(s: _Session) -> TrainState:
    """A fresh state, or the newest complete checkpoint's (its weights, optimizer and scheduler loaded)."""
    checkpoints = complete_checkpoints(s.run_dir)
    if not checkpoints:
        return TrainState()
    values = load_checkpoint(checkpoints[0], s.model if s.sharded else s.inner, s.optimizer, s.scheduler, sharded=s.sharded)
    if s.main:
        runs.log_event(s.store, s.run.id, "checkpoint_loaded", f"resumed from {checkpoints[0].name}")
    return TrainState.from_dict(values)


def _announce(s: _Session, beat: _Heartbeat | None) -> None:
    """Rank 0 writes data_stats.json and the `data` event, and gives the heartbeat the step count."""
    if beat is None:
        return
    beat.total = s.total_steps
    train, evals = s.train_stats, s.eval_stats
    summary = {"train": train.as_dict(), "eval": evals.as_dict(), "precision": s.precision, "device": str(s.accelerator.device)}
    (s.run_dir / "data_stats.json").write_text(json.dumps(summary, indent=1))
    runs.log_event(
        s.store,
        s.run.id,
        "data",
        f"{train.examples} train / {evals.examples} eval examples, "
        f"{train.truncated + evals.truncated} truncated, "
        f"{len(train.skipped) + len(evals.skipped)} skipped; "
        f"{s.total_steps} steps, {s.precision} on {s.device_type}"
        + (f", sharded (FSDP) over {s.world} processes" if s.sharded else ""),
    )


# One optimizer step.


def _train_step(s: _Session, step: int) -> _StepFigures:
    """Optimizer step `step` + 1 on this rank's micro-batches of it; the figures are all ranks' together."""
    import torch

    group = _micro_batches(s, step)
    labels = sum(item.label_count for b in group for item in b)
    # Every rank divides by the loss tokens of all ranks (times the world size, which DDP's
    # gradient average divides out): the step's gradient is the mean over all its tokens.
    scale = s.world / _all_sum(s.accelerator, [float(labels)])[0]
    torch.manual_seed(s.config.seed + 7919 * step + s.accelerator.process_index)  # resume replays the same dropout
    started = time.perf_counter()
    loss_sum, tokens = 0.0, 0
    for j, items in enumerate(group):
        batch = s.batch(items)
        # FSDP reduces each micro-batch's gradient shards as it goes; DDP syncs once per step
        sync = nullcontext() if s.sharded or j == len(group) - 1 else s.accelerator.no_sync(s.model)
        with sync:
            with s.autocast():
                loss = _forward(s.model, batch)
            s.accelerator.backward(loss * scale)
        loss_sum += float(loss.detach())
        tokens += batch["tokens"]
    if s.sharded:
        torch.nn.utils.clip_grad_norm_(s.trainable, s.config.max_grad_norm)  # DTensor-aware: the norm of the whole
    else:
        s.accelerator.clip_grad_norm_(s.trainable, s.config.max_grad_norm)
    s.optimizer.step()
    s.scheduler.step()
    s.optimizer.zero_grad(set_to_none=True)
    if s.device_type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    loss_all, labels_all, tokens_all, seconds = _all_sum(s.accelerator, [loss_sum, labels, tokens, elapsed])
    if s.world > 1:
        seconds = seconds / s.world  # mean step time across ranks
    return _StepFigures(loss_all, labels_all, tokens_all, seconds)


def _micro_batches(s: _Session, step: int) -> list[list[Encoded]]:
    """This rank's micro-batches of optimizer step `step` + 1 (of its epoch's seeded shuffle)."""
    epoch, k = divmod(step, s.steps_per_epoch)
    batches = epoch_batches(
        len(s.train_items), s.config.batch_size, s.config.seed, epoch, rank=s.accelerator.process_index, world_size=s.world
    )
    accumulation = s.config.gradient_accumulation_steps
    return [[s.train_items[i] for i in b] for b in batches[k * accumulation : (k + 1) * accumulation]]


def _record_step(s: _Session, state: TrainState, figures: _StepFigures, beat: _Heartbeat | None) -> None:
    """The step's metrics row (written every FLUSH_S), the heartbeat's step, and a progress line on stderr."""
    loss = figures.loss_sum / figures.labels
    s.metrics.add(
        {
            "run_id": s.run.id,
            "step": state.step,
            "kind": "train",
            "epoch": state.step / s.steps_per_epoch,
            "loss": loss,
            "learning_rate": s.scheduler.get_last_lr()[0],
            "tokens_per_s": figures.tokens / figures.seconds if figures.seconds else None,
            "memory_mb": peak_memory_mb(s.device_type),
        }
    )
    if beat is not None:
        beat.step = state.step
        print(
            f"step {state.step}/{s.total_steps} loss {loss:.4f} {figures.tokens / figures.seconds:.0f} tok/s",
            file=sys.stderr,
            flush=True,
        )
    s.metrics.flush()


# Evaluation.


def _evaluate_and_keep_best(s: _Session, state: TrainState) -> None:
    """Evaluate at the state's step; a new best eval loss publishes the adapter to best/."""
    loss = _evaluate(s.model, s.eval_items, s.config, s.accelerator, s.autocast, s.pad_id, s.compiled)
    if loss is None:
        return
    improved = state.add_eval(loss)
    weights = gather_trainable(s.model)[0] if s.sharded and improved else None  # every rank takes part
    if s.main and improved:
        save_adapter(s.inner, s.tokenizer, s.run_dir / "best", weights)
    release_freed_memory()
    at_step = state.step
    s.metrics.add({"run_id": s.run.id, "step": at_step, "kind": "eval", "epoch": at_step / s.steps_per_epoch, "eval_loss": loss})
    s.metrics.flush(force=True)


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
    total_all, count_all = _all_sum(accelerator, [total, count])
    model.train()
    return total_all / count_all if count_all else None


# Checkpoints, stops and the end of a run.


def _checkpoint_or_stop(s: _Session, state: TrainState, stop: _Stop) -> str | None:
    """Save a checkpoint when one is due or a stop was asked for; the stop's status (cancelled, interrupted), else None."""
    stopping = _all_sum(s.accelerator, [float(stop.signal.is_set() or stop.cancel.is_set())])[0] > 0
    if stopping or (state.step % s.config.save_every == 0 and state.step < s.total_steps):
        _save_checkpoint(s, state)
    if not stopping:
        return None
    if s.main and runs.heartbeat(s.store, s.run.id, step=state.step):  # cancel_run's SIGTERM can beat the heartbeat thread
        stop.cancel.set()
    cancelled = _all_sum(s.accelerator, [float(stop.cancel.is_set())])[0] > 0
    s.metrics.flush(force=True)
    if s.main:
        message = f"stopped at step {state.step}; resume with `goldsmith runs resume {s.run.id}`"
        runs.log_event(s.store, s.run.id, "checkpoint_saved", message)
    return "cancelled" if cancelled else "interrupted"


def _save_checkpoint(s: _Session, state: TrainState) -> None:
    s.metrics.flush(force=True)  # every step up to a checkpoint is in the store before the checkpoint exists
    gathered = gather_trainable(s.model, s.optimizer) if s.sharded else None  # every rank takes part
    if s.main:
        save_checkpoint(
            s.run_dir,
            state.step,
            s.inner,
            s.optimizer,
            s.scheduler,
            state.as_dict(),
            keep=s.config.keep_checkpoints,
            gathered=gathered,
        )
    s.accelerator.wait_for_everyone()


def _finish(s: _Session, state: TrainState, early_stopped: bool) -> dict[str, Any]:
    """Publish the adapter (best/'s when early stopping chose it), the merged model, lineage and result."""
    s.metrics.flush(force=True)
    extra = {
        "data": {"train": s.train_stats.as_dict(), "eval": s.eval_stats.as_dict()},
        "peak_memory_mb": peak_memory_mb(s.device_type),
    }
    weights = gather_trainable(s.model)[0] if s.sharded and not early_stopped else None  # every rank takes part
    return finish_run(
        s.accelerator,
        s.inner,
        s.tokenizer,
        s.run,
        s.snapshot,
        state.as_dict(),
        s.model_path,
        s.precision,
        s.total_steps,
        early_stopped,
        extra,
        weights,
    )


# Helpers.


def _all_sum(accelerator: Any, values: list[float]) -> list[float]:
    import torch

    if accelerator.num_processes == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=accelerator.device)
    return accelerator.reduce(tensor, reduction="sum").tolist()


def _to(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    moved = dict(batch)
    moved["inputs"] = {k: v.to(device) for k, v in batch["inputs"].items()}
    for key in ("rows", "cols", "targets"):
        moved[key] = batch[key].to(device)
    return moved


def _forward(model: Any, batch: dict[str, Any]) -> Any:
    return model(batch["inputs"], batch["rows"], batch["cols"], batch["targets"])
