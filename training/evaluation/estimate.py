"""What a run would cost, worked out before it starts: its data, steps, time and memory on this machine.

`estimate_run` tokenises the snapshot with the base model's own tokenizer and chat template, plans
the steps and packed rows exactly as the trainer would, then measures a short probe: the LoRA
model built as the trainer builds it, on the device the run would use (the GPU when there is one),
one warm-up micro-batch and `probe_steps` timed ones (forward, backward, optimizer step), the
largest micro-batch of the run among them so the peak memory is the run's worst case. The time
is the run's tokens at the probe's speed, plus its evaluations (a forward costs about a third of a
training step). `start_estimate` runs it as a job (the Training page's Estimate button),
`run_estimate` starts one and waits (`goldsmith train ... --dry-run`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

from curation.errors import GoldsmithError, InvalidInput
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store
from schemas import Job
from schemas.evaluation import CostEstimate
from schemas.jobs import EstimateJobParams
from schemas.training import TrainConfig
from training.data import Encoded, collate, encode_records, epoch_batches, pack_rows, read_split
from training.jobs import latest_job, start_job

FORWARD_SHARE = 1 / 3  # an evaluation forward against a training step (forward + backward)


def _plan(config: TrainConfig, items: list[Encoded]) -> tuple[int, int, int, list[list[list[Encoded]]]]:
    """(steps per epoch, total steps, packed rows over the run, each step's micro-batches), as the trainer plans one process."""
    from training.trainer import plan_steps

    steps_per_epoch, total_steps = plan_steps(len(items), config, 1)
    accumulation = config.gradient_accumulation_steps
    plan, rows = [], 0
    for step in range(total_steps):
        epoch, k = divmod(step, steps_per_epoch)
        batches = epoch_batches(len(items), config.batch_size, config.seed, epoch)
        group = [[items[i] for i in b] for b in batches[k * accumulation : (k + 1) * accumulation]]
        for micro in group:
            lengths = [len(item.input_ids) for item in micro]
            rows += len(pack_rows(lengths, max(config.pack_row_tokens, max(lengths)))) if config.packing else len(micro)
        plan.append(group)
    return steps_per_epoch, total_steps, rows, plan


def _probe(
    config: TrainConfig, model_path: str, micro_batches: list[list[Encoded]], pad_id: int
) -> tuple[int, float, float, str, str]:
    """Time training micro-batches (the first one is a warm-up); (tokens, seconds, peak MB, device, precision)."""
    import torch
    from accelerate import Accelerator

    from training.hardware import peak_memory_mb, resolve_precision
    from training.trainer import build_model

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    device_type = accelerator.device.type
    precision = resolve_precision(config, device_type)
    model, _, compiled = build_model(accelerator, config, model_path, precision)
    model.to(accelerator.device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    model.train()
    tokens, seconds = 0, 0.0
    for n, micro in enumerate(micro_batches):
        batch = collate(micro, packing=config.packing, pad_id=pad_id, row_tokens=config.pack_row_tokens, static_shapes=compiled)
        inputs = {k: v.to(accelerator.device) for k, v in batch["inputs"].items()}
        rows, cols, targets = (batch[k].to(accelerator.device) for k in ("rows", "cols", "targets"))
        started = time.perf_counter()
        with torch.autocast(device_type, dtype=amp) if amp else torch.enable_grad():
            loss = model(inputs, rows, cols, targets)
        (loss / max(1, int(targets.numel()))).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device_type == "cuda":
            torch.cuda.synchronize()
        if n:  # the first one pays for kernel loading and allocator growth
            tokens += batch["tokens"]
            seconds += time.perf_counter() - started
    return tokens, seconds, peak_memory_mb(device_type), str(accelerator.device), precision


def estimate_run(store: Store, actor: str, snapshot_key: str, config: TrainConfig, *, probe_steps: int = 2) -> CostEstimate:
    """What training `config` on the snapshot would do and cost here, from a measured probe (leads), in this process.

    Raises:
        PermissionDenied: the actor is not a lead.
        NotFound: no such snapshot.
        InvalidInput: the snapshot has no training example that fits, or the base model cannot load.
    """
    from training.models import load_tokenizer, resolve_base_model

    require(acting_user(store, actor), "launch_training")
    snapshot = store.get_snapshot(snapshot_key)
    model_path = resolve_base_model(config.base_model)
    tokenizer = load_tokenizer(model_path)
    items, stats = encode_records(tokenizer, read_split(Path(snapshot.path) / "train.jsonl"), config.max_seq_length)
    if not items:
        raise InvalidInput(f"no training example of snapshot {snapshot.id} fits in {config.max_seq_length} tokens")
    evals, _ = encode_records(tokenizer, read_split(Path(snapshot.path) / "eval.jsonl"), config.max_seq_length)
    steps_per_epoch, total_steps, rows, plan = _plan(config, items)
    micro = [m for group in plan for m in group]
    largest = max(micro, key=lambda m: sum(len(i.input_ids) for i in m))
    probe = [micro[0], largest, *micro[1:probe_steps]][: probe_steps + 1]
    probe_tokens, probe_seconds, peak, device, precision = _probe(config, model_path, probe, tokenizer.pad_token_id)
    speed = probe_tokens / probe_seconds if probe_seconds else 0.0
    trained = sum(len(i.input_ids) for m in micro for i in m)
    evaluations = total_steps // config.eval_every + 1 + (total_steps % config.eval_every != 0)
    eval_tokens = sum(len(i.input_ids) for i in evals) * evaluations
    seconds = (trained + eval_tokens * FORWARD_SHARE) / speed if speed else 0.0
    notes = [f"{stats.truncated} examples are cut to {config.max_seq_length} tokens"] if stats.truncated else []
    if device == "cpu":
        notes.append("no GPU here: measured on the CPU; a GPU run is estimated by running this on the GPU machine")
    return CostEstimate(
        snapshot_id=snapshot.id,
        base_model=config.base_model,
        config_hash=config.config_hash(),
        examples=stats.examples,
        skipped=len(stats.skipped),
        truncated=stats.truncated,
        tokens=stats.tokens,
        label_tokens=stats.label_tokens,
        rows=rows,
        steps=total_steps,
        epochs=round(total_steps / steps_per_epoch, 3),
        trained_tokens=trained,
        device=device,
        precision=precision,
        probe_tokens=probe_tokens,
        probe_seconds=round(probe_seconds, 3),
        tokens_per_s=speed,
        estimated_seconds=seconds,
        peak_memory_mb=peak,
        notes=notes,
    )


def start_estimate(
    store: Store,
    actor: str,
    snapshot_key: str,
    config: TrainConfig,
    *,
    probe_steps: int = 2,
    wait: bool = False,
    output: TextIO | None = None,
) -> Job:
    """Estimate a run as a job in its own process (leads): it loads the model, so a page never does it itself.

    Raises:
        PermissionDenied: the actor is not a lead.
        NotFound: no such snapshot.
        Conflict: the same estimate is already being worked out.
    """
    require(acting_user(store, actor), "launch_training")
    snapshot = store.get_snapshot(snapshot_key)
    params = EstimateJobParams(snapshot_id=snapshot.id, config=config, probe_steps=probe_steps)
    return start_job(store, actor, "estimate", params.model_dump(mode="json"), wait=wait, output=output)


def run_estimate(
    store: Store, actor: str, snapshot_key: str, config: TrainConfig, *, probe_steps: int = 2, output: TextIO | None = None
) -> CostEstimate:
    """Estimate a run as a job and wait for it (`goldsmith train ... --dry-run`).

    Raises:
        GoldsmithError: the estimate failed or died (the message says why).
    """
    job = start_estimate(store, actor, snapshot_key, config, probe_steps=probe_steps, wait=True, output=output)
    if job.status != "completed" or job.result is None:
        raise GoldsmithError(f"the estimate {job.status}: {job.error or 'no result'} (job {job.id})")
    return CostEstimate.model_validate(job.result)


def latest_estimate(store: Store, snapshot_key: str, config: TrainConfig) -> tuple[Job | None, CostEstimate | None]:
    """The newest estimate job for this snapshot and config, and its estimate once it completed."""
    snapshot = store.get_snapshot(snapshot_key)
    job = latest_job(store, "estimate", f"{snapshot.id}:{config.config_hash()}")
    done = job is not None and job.status == "completed" and job.result is not None
    return job, CostEstimate.model_validate(job.result) if done and job is not None and job.result else None
