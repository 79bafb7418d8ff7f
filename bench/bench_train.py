"""Training throughput: Goldsmith's LoRA loop vs TRL's SFTTrainer with its defaults.

Both sides train the same LoRA (r 16, alpha 32, dropout 0 as in peft's and our defaults,
q/k/v/o/gate/up/down) on the same model, the same snapshot of the sample data (95 train / 23 eval
examples) and the same hardware, for
the same number of optimizer steps with 8 examples per step. TRL keeps every SFTConfig default
(bf16, gradient checkpointing, padding to the longest example, no packing, lr 2e-5); Goldsmith keeps
its TrainConfig defaults (bf16 where the hardware has bf16 units, no checkpointing, padding-free
packed rows, loss and LM head only on assistant tokens, lr 2e-4). Each side runs in its own process,
one after the other, so peak memory is its own.

Tokens/s counts real (non-padding) tokens, over the time inside optimizer steps after the first
three (no set-up, no evaluation, no first-step kernel loading) on both sides. Eval loss is the same
measure for both: mean loss per assistant token on the eval split, computed after training by
training.evaluation.scoring.eval_loss. MFU (GPU only) counts 4 x parameters FLOPs per token (forward 2N,
backward through frozen weights 2N; LoRA's own and attention FLOPs are left out), over the GPU's
dense bf16 peak.

Run: .venv/bin/python bench/bench_train.py [--steps 12] [--model smollm2-135m]
     -> writes bench/results/training_cpu.md (or training_gpu.md on a GPU)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LORA = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}


def setup(folder: Path) -> tuple[str, str]:
    """A demo store and a snapshot of its approved examples (validation skipped: the bench is about speed)."""
    from curation.datasets.snapshots import create_snapshot
    from curation.demo import load_demo
    from curation.store import Store

    db = folder / "bench.db"
    store = Store(db)
    load_demo(store, ROOT / "sample_data")
    snapshot = create_snapshot(store, "dana", "bench", eval_fraction=0.2, seed=0, validate=False)
    return str(db), snapshot.id


def side_goldsmith(db: str, snapshot: str, model: str, steps: int) -> dict:
    from curation.store import Store
    from training.config import load_config
    from training.runs import create_run, get_run, metrics
    from training.trainer import train

    store = Store(db)
    config = load_config(
        None, {"base_model": model, "max_steps": steps, "eval_every": steps, "save_every": steps, "batch_size": 8}
    )
    run = create_run(store, "dana", snapshot, config)
    train(db, run.id)
    result = get_run(store, run.id).result
    steps_seen = [(m.step, round(m.tokens_per_s)) for m in metrics(store, run.id, kind="train")]
    return {
        "tokens_per_s": result["steady_tokens_per_s"] or result["tokens_per_s"],
        "train_tokens": result["train_tokens"],
        "train_seconds": result["train_seconds"],
        "peak_memory_mb": result["peak_memory_mb"],
        "eval_loss": result["final_eval_loss"],
        "base_eval_loss": result["base_eval_loss"],
        "precision": result["precision"],
        "per_step_tokens_per_s": steps_seen,
    }


def side_trl(db: str, snapshot: str, model: str, steps: int) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from curation.store import Store
    from training.data import read_split
    from training.evaluation.scoring import eval_loss
    from training.hardware import peak_memory_mb
    from training.models import load_tokenizer, resolve_base_model
    from training.trainer import WARMUP_STEPS

    store = Store(db)
    folder = Path(store.get_snapshot(snapshot).path)
    path = resolve_base_model(model)
    train = [{"messages": r["messages"]} for r in read_split(folder / "train.jsonl")]
    evals = read_split(folder / "eval.jsonl")
    device = "cuda" if torch.cuda.is_available() else "cpu"

    class StepTimer(TrainerCallback):
        """Time inside optimizer steps after the warm-up steps, and the real tokens they trained on."""

        seconds = 0.0
        tokens = 0
        per_step: list = []

        def on_step_begin(self, args, state, control, **kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            self.started = time.perf_counter()
            self.tokens_before = trainer._total_train_tokens

        def on_step_end(self, args, state, control, **kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            if state.global_step > WARMUP_STEPS:
                StepTimer.seconds += time.perf_counter() - self.started
                StepTimer.tokens += trainer._total_train_tokens - self.tokens_before
            StepTimer.per_step.append(
                (
                    state.global_step,
                    round((trainer._total_train_tokens - self.tokens_before) / (time.perf_counter() - self.started)),
                )
            )

    with tempfile.TemporaryDirectory() as out:
        # use_cpu is required on a CPU: without it, the bf16 default refuses to start there.
        args = SFTConfig(output_dir=out, max_steps=steps, report_to="none", save_strategy="no", seed=42, use_cpu=device == "cpu")
        trainer = SFTTrainer(
            model=path,
            args=args,
            train_dataset=Dataset.from_list(train),
            processing_class=load_tokenizer(path),
            peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA),
            callbacks=[StepTimer()],
        )
        trainer.train()
        tokens = StepTimer.tokens
        model_ = trainer.model
        model_.eval()
        loss = eval_loss(model_, load_tokenizer(path), evals, 1024)
    return {
        "tokens_per_s": tokens / StepTimer.seconds,
        "train_tokens": trainer._total_train_tokens,
        "train_seconds": StepTimer.seconds,
        "peak_memory_mb": peak_memory_mb(device),
        "eval_loss": loss,
        "precision": "bf16" if args.bf16 else "fp32",
        "gradient_checkpointing": args.gradient_checkpointing,
        "learning_rate": args.learning_rate,
        "per_step_tokens_per_s": StepTimer.per_step,
    }


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")),
        platform.processor(),
    )
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} (CPU)"


def mfu(tokens_per_s: float, params: int) -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    return 4 * params * tokens_per_s / (peak * 1e12) if peak else None


def run_sides(model: str, steps: int) -> dict[str, dict]:
    """Each side in its own process on the same store and snapshot: what it measured, plus its wall time."""
    from training.models import resolve_base_model

    sides = {}
    with tempfile.TemporaryDirectory() as tmp:
        db, snapshot = setup(Path(tmp))
        resolve_base_model(model)  # convert once, outside the timed sides
        for side in ("goldsmith", "trl"):
            started = time.monotonic()
            command = [sys.executable, __file__, "--side", side, "--db", db, "--snapshot", snapshot]
            proc = subprocess.run([*command, "--model", model, "--steps", str(steps)], capture_output=True, text=True)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode or line is None:
                sys.exit(f"{side} failed:\n{proc.stderr[-4000:]}")
            sides[side] = {**json.loads(line[7:]), "wall_s": time.monotonic() - started}
            print(side, sides[side], flush=True)
    return sides


def parameters(model: str) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from training.models import resolve_base_model

    with torch.device("meta"):
        return sum(
            p.numel()
            for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(resolve_base_model(model))).parameters()
        )


def table_rows(ours: dict, base: dict, params: int, gpu: bool) -> list[tuple[str, str, str, str]]:
    speedup = ours["tokens_per_s"] / base["tokens_per_s"]
    memory = ours["peak_memory_mb"] / base["peak_memory_mb"]
    checkpointing = ", gradient checkpointing" if base.get("gradient_checkpointing") else ""
    rows = [
        ("tokens/s (real tokens, inside steps)", f"{ours['tokens_per_s']:.0f}", f"{base['tokens_per_s']:.0f}", f"{speedup:.2f}x"),
        ("peak memory (MB)", f"{ours['peak_memory_mb']:.0f}", f"{base['peak_memory_mb']:.0f}", f"{memory:.2f}x"),
        (
            "eval loss after training",
            f"{ours['eval_loss']:.4f}",
            f"{base['eval_loss']:.4f}",
            f"base model {ours['base_eval_loss']:.4f}",
        ),
        ("tokens trained", str(ours["train_tokens"]), str(base["train_tokens"]), ""),
        ("precision", ours["precision"], base["precision"] + checkpointing, ""),
    ]
    if gpu:
        ours_mfu, base_mfu = 100 * mfu(ours["tokens_per_s"], params), 100 * mfu(base["tokens_per_s"], params)
        rows.append(("MFU (4N FLOPs/token, dense bf16 peak)", f"{ours_mfu:.2f}%", f"{base_mfu:.2f}%", ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--side", choices=["goldsmith", "trl"])
    parser.add_argument("--db")
    parser.add_argument("--snapshot")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.side:
        fn = side_goldsmith if args.side == "goldsmith" else side_trl
        print("RESULT " + json.dumps(fn(args.db, args.snapshot, args.model, args.steps)), flush=True)
        return
    import torch

    sides = run_sides(args.model, args.steps)
    params = parameters(args.model)
    gpu = torch.cuda.is_available()
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / ("training_gpu.md" if gpu else "training_cpu.md")
    load = os.getloadavg()[0]
    text = [
        f"# Training throughput: Goldsmith vs TRL SFTTrainer defaults ({'GPU' if gpu else 'CPU'})",
        "",
        f"Machine: {machine()}. Load average at the end: {load:.2f}. Model: {args.model} ({params / 1e6:.0f}M parameters). "
        f"{args.steps} optimizer steps of 8 examples each on the sample data's snapshot. Run by `bench/bench_train.py` "
        f"on {time.strftime('%Y-%m-%d')}.",
        "",
        "| measure | Goldsmith | TRL SFTTrainer (defaults) | ratio |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in table_rows(sides["goldsmith"], sides["trl"], params, gpu)),
        "",
        "TRL 1.16 defaults: bf16, gradient checkpointing, padding to the longest example, loss on every token, lr 2e-5 "
        "(on a CPU with `use_cpu=True`, without which the bf16 default refuses to start). "
        "Goldsmith defaults: bf16 where supported, no gradient checkpointing, padding-free packed rows of about 512 tokens, "
        "loss and LM head only on assistant tokens, lr 2e-4. The learning rates differ because those are the defaults: "
        "the eval loss row shows what each default gets in the same number of steps.",
        "",
    ]
    out.write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
