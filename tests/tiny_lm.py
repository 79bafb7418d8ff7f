"""A tiny Llama-architecture chat model and a demo snapshot, for training tests that run in seconds.

The tokenizer is a byte-level BPE trained here on the sample examples' texts and wrapped with
ChatML special tokens and a ChatML chat template (the shape of SmolLM2's), so it goes through
the same `training.models` loaders as a real base model. Import the fixtures into a test file:
`from tiny_lm import demo_db, tiny_lm  # noqa: F401`.
"""

from __future__ import annotations

import csv
import json
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import SAMPLE_DATA

IM_START, IM_END, PAD = "<|im_start|>", "<|im_end|>", "<|pad|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TINY_CONFIG = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
}
VOCAB_SIZE = 600
LEAD = "dana"  # the demo team's lead (sample_data/users.json)
REVIEWER = "rui"
AUTHOR = "maya"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def sample_texts() -> list[str]:
    """Every string of the sample example files (JSON, JSONL and CSV)."""
    texts: list[str] = []
    for path in sorted((SAMPLE_DATA / "examples").glob("*")):
        if path.suffix == ".jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    texts.extend(_strings(json.loads(line)))
        elif path.suffix == ".json":
            texts.extend(_strings(json.loads(path.read_text(encoding="utf-8"))))
        elif path.suffix == ".csv":
            with open(path, encoding="utf-8", newline="") as handle:
                for row in csv.reader(handle):
                    texts.extend(row)
    return [t for t in texts if t.strip()]


def train_tokenizer(vocab_size: int = VOCAB_SIZE) -> Any:
    """A byte-level BPE trained on the sample texts, as a PreTrainedTokenizerFast with ChatML."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(sample_texts(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=IM_END, pad_token=PAD, bos_token=IM_START)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_lm(folder: Path, *, seed: int = 0, tied: bool = True) -> Path:
    """Save a freshly initialised tiny Llama and its tokenizer into `folder` (a base model folder).

    tied=False gives the LM head its own weights (a tied tiny model's greedy answers can be blank).
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = train_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.convert_tokens_to_ids(IM_START),
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.pad_token_id,
        **{**TINY_CONFIG, "tie_word_embeddings": tied},
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a tiny Llama chat model (random weights, ~110k parameters, ChatML tokenizer)."""
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm") / "tiny-llama")


@dataclass(frozen=True)
class DemoTemplate:
    """A demo database file and its two snapshots (their folders sit beside it, read-only in use)."""

    db: Path
    snapshot_id: str  # every approved example (v1): 106 train / 12 eval
    snapshot_path: Path
    small_id: str  # the roadside-assistance examples only (small): 8 train / 3 eval
    small_path: Path


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> DemoTemplate:
    """The sample team loaded once (curation.demo) with snapshots of its approved examples."""
    from curation.datasets.snapshots import create_snapshot
    from curation.demo import load_demo
    from curation.store import Store
    from schemas import ExampleFilter

    folder = tmp_path_factory.mktemp("demo-template")
    store = Store(folder / "goldsmith.db")
    try:
        load_demo(store, SAMPLE_DATA, password="demo password")
        snapshot = create_snapshot(store, LEAD, "v1", eval_fraction=0.1, override_reason="the demo plants duplicates on purpose")
        # The training tests pin this split's contents (one over-long prompt in train), so it is cut
        # without duplicate groups; the grouping itself is tested in tests/test_snapshots.py.
        small = create_snapshot(
            store,
            LEAD,
            "small",
            eval_fraction=0.25,
            flt=ExampleFilter(category="roadside_assistance"),
            groups="none",
            validate=False,
        )
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()
    return DemoTemplate(folder / "goldsmith.db", snapshot.id, Path(snapshot.path), small.id, Path(small.path))


@pytest.fixture
def demo_db(demo_template: DemoTemplate, tmp_path: Path) -> Path:
    """A private copy of the demo database (runs go in tmp_path/runs); the snapshot folders are shared, read-only."""
    return copy_demo(demo_template, tmp_path)


def copy_demo(template: DemoTemplate, folder: Path) -> Path:
    """A private copy of the demo database in `folder` (for fixtures wider than one test)."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "goldsmith.db"
    shutil.copyfile(template.db, db)
    return db


# A run that takes seconds on two busy CPU cores: short rows, fp32 (bf16 autocast was slower here for
# a model this small), LoRA on the attention and MLP projections, no dropout so reruns replay exactly.
TINY_TRAINING: dict[str, Any] = {
    "batch_size": 16,
    "max_seq_length": 128,
    "pack_row_tokens": 512,
    "learning_rate": 2e-2,
    "warmup_ratio": 0.0,
    "lora_r": 8,
    "lora_dropout": 0.0,
    "precision": "fp32",
}


def tiny_config(model_folder: Path, **overrides: Any) -> Any:
    """A TrainConfig for the tiny model: TINY_TRAINING with `overrides` on top."""
    from schemas.training import TrainConfig

    return TrainConfig(base_model=str(model_folder), **{**TINY_TRAINING, **overrides})


@contextmanager
def sigterm_restored() -> Iterator[None]:
    """train() installs its own SIGTERM handler for good; put pytest's back after an in-process run."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train_here(db: Path, run_id: str) -> str:
    """training.trainer.train in this process, leaving the process's signal handling as it was."""
    from training.trainer import train

    with sigterm_restored():
        return train(str(db), run_id)
