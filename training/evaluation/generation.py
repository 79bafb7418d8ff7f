"""Answers to chat prompts, fast: batched with left padding, sorted by length, on the KV cache; or vLLM.

`generate` is what evaluation, the playground and drafting call. With transformers it sorts the
prompts by length (a batch of similar lengths wastes little on padding), pads each batch on the
left (so every row's next token is at the end), and lets `generate` keep the KV cache, then puts
the answers back in the prompts' order. `generate_one_at_a_time` is the plain loop the benchmark
measures it against. `vllm_generate` runs the same prompts through vLLM's offline engine, the
run's adapter as a LoRA module, when vLLM is installed and a GPU is present (`vllm_available`).
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

GENERATION_BATCH = 8
Prompt = Sequence[dict[str, str]]


@dataclass(frozen=True)
class Generated:
    """Answers in the prompts' order, what made them and how fast."""

    answers: list[str]
    engine: str
    seconds: float
    new_tokens: int

    @property
    def answers_per_s(self) -> float:
        return len(self.answers) / self.seconds if self.seconds else 0.0


def _sampling(temperature: float) -> dict[str, Any]:
    return {"do_sample": True, "temperature": temperature, "top_p": 0.95} if temperature > 0 else {"do_sample": False}


def _texts(tokenizer: Any, prompts: Sequence[Prompt]) -> list[str]:
    return [tokenizer.apply_chat_template(list(p), tokenize=False, add_generation_prompt=True) for p in prompts]


def generate_batched(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    batch_size: int = GENERATION_BATCH,
) -> Generated:
    """Answers to chat prompts with transformers, `batch_size` at a time, sorted by prompt length."""
    import torch

    started = time.perf_counter()
    texts = _texts(tokenizer, prompts)
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    answers: list[str] = [""] * len(texts)
    device = next(model.parameters()).device
    tokenizer.padding_side = "left"
    new_tokens = 0
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = tokenizer([texts[i] for i in chunk], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                use_cache=True,
                **_sampling(temperature),
            )
        for i, row in zip(chunk, out[:, batch["input_ids"].shape[1] :], strict=True):
            kept = row[row != tokenizer.pad_token_id] if tokenizer.pad_token_id is not None else row
            new_tokens += int(kept.numel())
            answers[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    return Generated(answers, "transformers", time.perf_counter() - started, new_tokens)


def generate_one_at_a_time(
    model: Any, tokenizer: Any, prompts: Sequence[Prompt], *, max_new_tokens: int, temperature: float = 0.0
) -> Generated:
    """The baseline: one `generate` call per prompt, in the given order."""
    import torch

    started = time.perf_counter()
    answers, new_tokens = [], 0
    device = next(model.parameters()).device
    for text in _texts(tokenizer, prompts):
        batch = tokenizer([text], return_tensors="pt", add_special_tokens=False).to(device)
        with torch.no_grad():
            out = model.generate(
                **batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **_sampling(temperature)
            )
        row = out[0, batch["input_ids"].shape[1] :]
        new_tokens += int(row.numel())
        answers.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return Generated(answers, "transformers-one-at-a-time", time.perf_counter() - started, new_tokens)


def generate(
    model: Any, tokenizer: Any, prompts: Sequence[Prompt], *, max_new_tokens: int, temperature: float = 0.0
) -> list[str]:
    """Answers to chat prompts (batched, sorted by length); greedy unless a temperature is given."""
    return generate_batched(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature).answers


# ---------------------------------------------------------------------------- vLLM


def vllm_available() -> bool:
    """vLLM is installed and a GPU is present (vLLM's offline engine needs one here)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


class VllmEngine:
    """vLLM's offline engine on a base model folder, with LoRA enabled for a run's adapter."""

    def __init__(self, base_path: str, *, max_lora_rank: int = 16, max_model_len: int = 4096):
        from vllm import LLM  # type: ignore[import-not-found]

        rank = next(r for r in (8, 16, 32, 64, 128, 256, 512) if r >= max_lora_rank)  # vLLM takes these ranks
        self.llm = LLM(
            model=base_path,
            enable_lora=True,
            max_lora_rank=rank,
            max_loras=1,
            dtype="bfloat16",
            max_model_len=max_model_len,
            gpu_memory_utilization=0.5,
        )

    def generate(
        self, prompts: Sequence[Prompt], *, max_new_tokens: int, adapter: str | None = None, temperature: float = 0.0
    ) -> Generated:
        """Answers to chat prompts; with `adapter` (a peft adapter folder) through it as a LoRA module."""
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest  # type: ignore[import-not-found]

        started = time.perf_counter()
        sampling = SamplingParams(temperature=temperature, top_p=0.95 if temperature > 0 else 1.0, max_tokens=max_new_tokens)
        lora = LoRARequest("adapter", 1, adapter) if adapter else None
        outputs = self.llm.chat([list(p) for p in prompts], sampling, lora_request=lora, use_tqdm=False)
        answers = [o.outputs[0].text.strip() for o in outputs]
        new_tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
        return Generated(answers, "vllm", time.perf_counter() - started, new_tokens)
