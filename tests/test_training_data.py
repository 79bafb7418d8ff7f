"""Data preparation: assistant-only loss masks, truncation, padding-free packing, and the batch order."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiny_lm import IM_END, DemoTemplate, demo_template, tiny_lm  # noqa: F401
from training.data import collate, encode_conversation, encode_records, epoch_batches, loss_model, pack_rows, read_split
from training.models import load_model, load_tokenizer, resolve_base_model

MULTI_TURN = [
    {"role": "system", "content": "You are Lakeshore Mutual's support assistant."},
    {"role": "user", "content": "My windshield cracked on the highway. Is that covered?"},
    {"role": "assistant", "content": "Comprehensive coverage usually pays for glass. Do you have it on this car?"},
    {"role": "user", "content": "Yes — I added it last spring."},
    {"role": "assistant", "content": "Then file a glass claim in the app; a repair shop can bill us directly."},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_lm: Path):  # noqa: F811
    return load_tokenizer(resolve_base_model(str(tiny_lm)))


@pytest.fixture(scope="module")
def records(demo_template: DemoTemplate) -> list[dict]:  # noqa: F811
    """The demo snapshot's training split: real approved examples, single and multi-turn."""
    return read_split(demo_template.snapshot_path / "train.jsonl")


def loss_runs(tokenizer, encoded) -> list[str]:
    """The text of each maximal run of loss-carrying tokens, in order."""
    runs, current = [], []
    for token, counts in zip(encoded.input_ids, encoded.label_mask, strict=True):
        if counts:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) for ids in runs]


def test_only_assistant_turns_and_their_end_marker_carry_loss(tokenizer):
    encoded = encode_conversation(tokenizer, MULTI_TURN, max_length=1024, example_id=7)
    assert encoded.example_id == 7 and not encoded.truncated
    assert loss_runs(tokenizer, encoded) == [
        MULTI_TURN[2]["content"] + IM_END + "\n",
        MULTI_TURN[4]["content"] + IM_END + "\n",
    ]
    context = [t for t, counts in zip(encoded.input_ids, encoded.label_mask, strict=True) if not counts]
    text = tokenizer.decode(context, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    for message in MULTI_TURN:
        assert (message["content"] in text) == (message["role"] != "assistant")
    assert encoded.label_count == sum(encoded.label_mask[1:]) > 0


def test_a_weight_zero_turn_carries_no_loss(tokenizer):
    muted = [dict(m) for m in MULTI_TURN]
    muted[2]["weight"] = 0  # OpenAI's "do not learn this turn": it stays in the context of the next one
    encoded = encode_conversation(tokenizer, muted, max_length=1024)
    assert loss_runs(tokenizer, encoded) == [MULTI_TURN[4]["content"] + IM_END + "\n"]
    batch = collate([encoded], packing=True, pad_id=tokenizer.pad_token_id, row_tokens=4096)
    learned = tokenizer.decode(batch["targets"].tolist(), skip_special_tokens=False, clean_up_tokenization_spaces=False)
    assert MULTI_TURN[2]["content"] not in learned and MULTI_TURN[4]["content"] in learned
    plain = encode_conversation(tokenizer, MULTI_TURN, max_length=1024)
    assert encoded.input_ids == plain.input_ids  # the model sees the same text; only the loss differs


def test_every_snapshot_example_is_masked_to_its_assistant_turns(tokenizer, records):
    multi_turn = 0
    for record in records:
        assistants = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
        multi_turn += len(assistants) > 1
        encoded = encode_conversation(tokenizer, record["messages"], max_length=100_000, example_id=record["id"])
        assert loss_runs(tokenizer, encoded) == [a + IM_END + "\n" for a in assistants], record["id"]
    assert multi_turn >= 5  # the demo data has multi-turn conversations; they must all have been checked


def test_truncation_is_counted_and_applied(tokenizer, records):
    limit = 64
    full_lengths = [
        len(tokenizer(tokenizer.apply_chat_template(r["messages"], tokenize=False), add_special_tokens=False)["input_ids"])
        for r in records
    ]
    items, stats = encode_records(tokenizer, records, limit)
    assert stats.truncated == sum(n > limit for n in full_lengths) > 0
    assert all(len(item.input_ids) == len(item.label_mask) <= limit for item in items)
    assert stats.tokens == sum(len(item.input_ids) for item in items)
    assert stats.label_tokens == sum(item.label_count for item in items)
    assert stats.as_dict()["truncated"] == stats.truncated


def test_examples_with_no_assistant_token_left_are_skipped_and_reported(tokenizer):
    encoded = encode_conversation(tokenizer, MULTI_TURN, max_length=1024)
    first_answer = encoded.label_mask.index(True)
    records = [{"id": 41, "messages": MULTI_TURN}, {"id": 42, "messages": MULTI_TURN[:3]}]

    # One assistant token left: the position before it predicts it, so the example still trains.
    items, stats = encode_records(tokenizer, records, first_answer + 1)
    assert [item.example_id for item in items] == [41, 42]
    assert [item.label_count for item in items] == [1, 1]
    assert stats.skipped == [] and stats.truncated == 2

    items, stats = encode_records(tokenizer, records, first_answer)
    assert items == [] and stats.examples == 0 and stats.truncated == 2
    assert len(stats.skipped) == 2 and "example 41" in stats.skipped[0] and "example 42" in stats.skipped[1]
    assert f"within {first_answer} tokens" in stats.skipped[0]
    report = stats.as_dict()
    assert report["skipped"] == 2 and report["skipped_reasons"] == stats.skipped


def test_a_template_that_is_not_prefix_stable_is_refused(tokenizer):
    from curation.errors import InvalidInput

    class Reordering:
        """A template that puts the newest turn first, so a prefix renders differently."""

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return "".join(f"[{m['role']}]{m['content']}" for m in reversed(messages)) + ("[assistant]" * add_generation_prompt)

    with pytest.raises(InvalidInput, match="prefix-stable"):
        encode_conversation(Reordering(), MULTI_TURN, max_length=100)


# ---------------------------------------------------------------------------- packing


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def wrapped(request, tiny_lm: Path):  # noqa: F811
    """The tiny model (LoRA on, still the identity) wrapped to return the summed assistant-token loss."""
    from peft import LoraConfig, get_peft_model

    model = load_model(resolve_base_model(str(tiny_lm)), attn_implementation=request.param)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    wrapper = loss_model(peft_model)
    wrapper.eval()
    return wrapper


def _loss(wrapped, batch):
    import torch

    with torch.no_grad():
        return float(wrapped(batch["inputs"], batch["rows"], batch["cols"], batch["targets"]))


def test_packed_loss_equals_the_sum_of_unpacked_losses(tokenizer, records, wrapped):
    items, _ = encode_records(tokenizer, records[:9], 96)
    pad = tokenizer.pad_token_id
    packed = collate(items, packing=True, pad_id=pad, row_tokens=200)
    rows = packed["inputs"]["input_ids"].shape[0]
    assert rows < len(items)  # examples really share rows
    assert "attention_mask" not in packed["inputs"]
    assert packed["tokens"] == sum(len(i.input_ids) for i in items)
    assert packed["targets"].numel() == sum(i.label_count for i in items)

    one_by_one = sum(_loss(wrapped, collate([item], packing=False, pad_id=pad)) for item in items)
    padded = _loss(wrapped, collate(items, packing=False, pad_id=pad))
    assert _loss(wrapped, packed) == pytest.approx(one_by_one, rel=1e-5)
    assert padded == pytest.approx(one_by_one, rel=1e-5)

    # The same rows with positions that do not restart: examples now attend to each other, and the
    # loss moves outside the tolerance above (else that comparison would prove nothing).
    import torch

    leaky = dict(packed)
    width = packed["inputs"]["input_ids"].shape[1]
    leaky["inputs"] = {**packed["inputs"], "position_ids": torch.arange(width).expand(rows, width).clone()}
    assert _loss(wrapped, leaky) != pytest.approx(one_by_one, rel=1e-5)


def test_static_shapes_pad_rows_without_changing_the_loss(tokenizer, records, wrapped):
    """For a compiled model rows are padded to a multiple of row_tokens, and a lone row gets an empty partner."""
    items, _ = encode_records(tokenizer, records[:3], 96)
    pad = tokenizer.pad_token_id
    plain = collate(items, packing=True, pad_id=pad, row_tokens=400)
    static = collate(items, packing=True, pad_id=pad, row_tokens=400, static_shapes=True)
    assert plain["inputs"]["input_ids"].shape[0] == 1 and static["inputs"]["input_ids"].shape == (2, 400)
    assert static["tokens"] == plain["tokens"] and static["targets"].tolist() == plain["targets"].tolist()
    assert static["padded_tokens"] == 800
    assert _loss(wrapped, static) == pytest.approx(_loss(wrapped, plain), rel=1e-5)


def test_collate_positions_predict_the_assistant_tokens(tokenizer):
    items = [encode_conversation(tokenizer, MULTI_TURN, 1024, 1), encode_conversation(tokenizer, MULTI_TURN[:3], 1024, 2)]
    batch = collate(items, packing=True, pad_id=tokenizer.pad_token_id, row_tokens=4096)
    ids = batch["inputs"]["input_ids"]
    assert ids.shape[0] == 1  # both fit one row
    # Each (row, col) is followed by its target in the row: the position predicts the next token.
    assert ids[batch["rows"], batch["cols"] + 1].tolist() == batch["targets"].tolist()
    positions = batch["inputs"]["position_ids"][0].tolist()
    first, second = len(items[0].input_ids), len(items[1].input_ids)
    assert positions[:first] == list(range(first)) and positions[first : first + second] == list(range(second))


@pytest.mark.parametrize(
    ("lengths", "capacity"), [([5, 3, 8, 1, 7, 2], 10), ([12, 3, 3], 10), ([4] * 9, 8), ([1], 16), ([9, 9, 9], 9)]
)
def test_pack_rows_places_every_item_once_within_capacity(lengths, capacity):
    rows = pack_rows(lengths, capacity)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    for row in rows:
        assert len(row) == 1 or sum(lengths[i] for i in row) <= capacity  # a longer item gets a row of its own
    assert len(rows) <= len(lengths)


# ---------------------------------------------------------------------------- batch order


@pytest.mark.parametrize(("count", "batch_size", "world_size"), [(10, 3, 1), (10, 3, 2), (17, 2, 4), (8, 2, 2), (5, 8, 1)])
def test_epoch_batches_are_deterministic_and_disjoint_across_ranks(count, batch_size, world_size):
    for epoch in range(3):
        shares = [epoch_batches(count, batch_size, 42, epoch, rank=r, world_size=world_size) for r in range(world_size)]
        assert shares == [epoch_batches(count, batch_size, 42, epoch, rank=r, world_size=world_size) for r in range(world_size)]
        assert len({len(s) for s in shares}) == 1  # every rank takes as many steps
        taken = [i for share in shares for batch in share for i in batch]
        assert len(taken) == len(set(taken)) and set(taken) <= set(range(count))
        all_batches = -(-count // batch_size)
        assert len(shares[0]) == all_batches // world_size
        if world_size == 1:
            assert sorted(taken) == list(range(count))
    orders = {tuple(i for b in epoch_batches(count, batch_size, 42, e) for i in b) for e in range(4)}
    assert len(orders) > 1  # each epoch reshuffles
    assert epoch_batches(count, batch_size, 1, 0) != epoch_batches(count, batch_size, 2, 0)  # and so does the seed
