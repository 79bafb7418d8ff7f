"""What the hardware offers a run: precision, attention kernel, peak memory, freeing memory."""

from __future__ import annotations

import resource
import sys
from contextlib import suppress
from pathlib import Path

from schemas.training import TrainConfig


def resolve_precision(config: TrainConfig, device_type: str) -> str:
    """fp32 or bf16 for this device; `auto` picks bf16 where the hardware has bf16 units."""
    import torch

    if config.precision == "fp16":
        if device_type != "cuda":
            raise ValueError("fp16 needs a GPU; use precision bf16 or fp32 on the CPU")
        return "fp16"
    if config.precision != "auto":
        return config.precision
    if device_type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def cpu_has_bf16() -> bool:
    """AMX or AVX512-BF16 (bf16 matrix units): there bf16 autocast is ~1.7x faster than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def attention_for(config: TrainConfig, device_type: str) -> str:
    if config.attn_implementation != "auto":
        return config.attn_implementation
    if device_type == "cuda":
        import importlib.util

        if importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
    return "sdpa"


def peak_memory_mb(device_type: str) -> float:
    import torch

    if device_type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release_freed_memory() -> None:
    """Give freed heap pages back to the OS (glibc malloc_trim), after each evaluation.

    Micro-batches change shape every step, so glibc's heap fragments and resident memory creeps
    up over a long CPU run (14 GB by step 60 of SmolLM2-135M, against a 6 GB real peak). Serving
    big allocations with mmap instead stops that but halved CPU throughput (page faults on every
    step), so the heap is trimmed only now and then.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        with suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
