"""Evaluation answers per second: batched generation (sorted by length, left padding, KV cache) against one
`generate` call per prompt, on the same prompts, greedy; and vLLM's offline engine where it is installed
on a GPU machine.

The prompts are the sample data's first questions (system prompt and user turn, from
sample_data/examples/claims_billing.jsonl). On the development machine the model is SmolLM2-135M-Instruct
(`smollm2-135m`, converted from the bundled GGUF); on a GPU machine, where the converted checkpoint does
not travel, `--random-weights FOLDER` builds SmolLM2-135M's architecture from its config.json with random
bf16 weights (answers then run to max_new_tokens: the same work on both sides). Writes a table to
bench/results/generation_<device>.md.

Run: .venv/bin/python bench/bench_generate.py [--prompts 24] [--max-new-tokens 64] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.evaluation.generation import (  # noqa: E402  (needs only torch and transformers: travels alone)
    VllmEngine,
    generate_batched,
    generate_one_at_a_time,
    vllm_available,
)


def prompts(count: int) -> list[list[dict[str, str]]]:
    found = []
    for line in (ROOT / "sample_data" / "examples" / "claims_billing.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            messages = json.loads(line)["messages"]
            first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
            found.append(messages[:first])
    return found[:count]


def load(args: argparse.Namespace) -> tuple[Any, Any, str, str]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if args.random_weights:
        folder = args.random_weights
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=dtype)
        label = "SmolLM2-135M architecture, random weights"
    else:
        from training.models import resolve_base_model

        folder = resolve_base_model(args.model)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        label = args.model
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer, device, label


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--random-weights", help="a folder with config.json and a tokenizer: random weights of that architecture")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import torch

    load_before = Path("/proc/loadavg").read_text().split()[:3]
    model, tokenizer, device, label = load(args)
    chats = prompts(args.prompts)
    generate_batched(model, tokenizer, chats[:2], max_new_tokens=4)  # warm-up: kernels, allocator
    single = generate_one_at_a_time(model, tokenizer, chats, max_new_tokens=args.max_new_tokens)
    batched = generate_batched(model, tokenizer, chats, max_new_tokens=args.max_new_tokens, batch_size=args.batch)
    same = sum(a == b for a, b in zip(single.answers, batched.answers, strict=True))
    rows = [
        ("one `generate` per prompt (baseline)", single),
        (f"batched {args.batch}, sorted by length, left padding, KV cache", batched),
    ]
    vllm_line = "vLLM: not installed here, so not measured."
    if vllm_available() and args.random_weights is None:
        engine = VllmEngine(str(model.name_or_path))
        engine.generate(chats[:2], max_new_tokens=4)
        rows.append(("vLLM offline engine", engine.generate(chats, max_new_tokens=args.max_new_tokens)))
        vllm_line = ""
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else None
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")), "?"
    )
    lines = [
        f"# Evaluation answers per second ({'GPU' if gpu else 'CPU'})",
        "",
        f"Machine: {gpu or cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}. "
        f"Load average before / after: {' '.join(load_before)} / {' '.join(load_after)}. "
        f"Recorded {time.strftime('%Y-%m-%d')} by `bench/bench_generate.py`.",
        "",
        f"Model: {label} ({'bf16' if device == 'cuda' else 'fp32'}). {len(chats)} prompts from the sample data "
        f"(system prompt + customer question), greedy, at most {args.max_new_tokens} new tokens each.",
        "",
        "| generation | seconds | answers/s | new tokens/s | speed-up |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {g.seconds:.1f} | {g.answers_per_s:.2f} | {g.new_tokens / g.seconds:.0f} | "
            f"{single.seconds / g.seconds:.2f}x |"
            for name, g in rows
        ),
        "",
        f"Batched answers identical to one-at-a-time answers: {same} of {len(chats)} (greedy; left padding changes "
        "the float sums slightly, which can flip a near tie late in an answer).",
    ]
    if vllm_line:
        lines += ["", vllm_line]
    text = "\n".join(lines) + "\n"
    out = args.out or ROOT / "bench" / "results" / f"generation_{'gpu' if gpu else 'cpu'}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
