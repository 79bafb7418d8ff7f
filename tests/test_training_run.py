"""A LoRA run on the tiny model, in this process: what training must change, what it records, and resume."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from curation.errors import InvalidInput, PermissionDenied
from curation.store import Store
from schemas.training import TrainConfig
from tiny_lm import LEAD, REVIEWER, DemoTemplate, copy_demo, demo_db, demo_template, tiny_config, tiny_lm, train_here  # noqa: F401
from training import runs
from training.checkpoints import MARKER, complete_checkpoints
from training.data import encode_records, read_split
from training.models import load_tokenizer

pytestmark = pytest.mark.slow  # each test trains (or inspects a run trained for it) in this process

CHECKPOINT_FILES = ["adapter.safetensors", "optimizer.pt", "scheduler.pt", "state.json"]
# The small snapshot's training examples (8; 7 fit in 128 tokens) make one micro-batch, so every step sees the same data
# and the training loss can only fall for a reason: the adapter learned it.
COMPLETED = {"max_steps": 12, "eval_every": 4, "save_every": 3, "keep_checkpoints": 2, "merge": True}


@dataclass
class Completed:
    store: Store
    db: Path
    run_id: str
    status: str
    config: TrainConfig
    base_digests: dict[str, str]

    @property
    def run(self):
        return runs.get_run(self.store, self.run_id)

    @property
    def run_dir(self) -> Path:
        return Path(self.run.run_dir)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path)


@pytest.fixture(scope="module")
def completed(tmp_path_factory, demo_template: DemoTemplate, tiny_lm: Path):  # noqa: F811
    """One finished 12-step run on the small snapshot, shared by the tests that inspect it."""
    db = copy_demo(demo_template, tmp_path_factory.mktemp("completed"))
    store = Store(db)
    base_digests = digests(tiny_lm)
    config = tiny_config(tiny_lm, **COMPLETED)
    run = runs.create_run(store, LEAD, demo_template.small_id, config)
    status = train_here(db, run.id)
    yield Completed(store, db, run.id, status, config, base_digests)
    store.close()


def test_the_run_completes_with_its_lineage(completed: Completed, demo_template: DemoTemplate):  # noqa: F811
    run = completed.run
    assert completed.status == run.status == "completed"
    assert run.error is None and run.started_at <= run.finished_at
    assert run.world_size == 1 and run.snapshot_id == demo_template.small_id
    assert run.config == completed.config and run.config_hash == completed.config.config_hash()
    assert run.code_version == runs.code_version() and run.code_version.startswith("0.1.0")

    lineage = json.loads((completed.run_dir / "lineage.json").read_text())
    assert lineage == {
        "run_id": run.id,
        "snapshot_id": demo_template.small_id,
        "snapshot_name": "small",
        "snapshot_path": str(demo_template.small_path),
        "base_model": completed.config.base_model,
        "base_model_path": str(Path(completed.config.base_model).resolve()),
        "config_hash": run.config_hash,
        "code_version": run.code_version,
        "created_by": LEAD,
        "world_size": 1,
    }
    assert [h.action for h in completed.store.history("run", run.id)] == ["create_run"]

    result = run.result
    assert result["steps"] == result["total_steps"] == 12 and result["early_stopped"] is False
    assert result["precision"] == "fp32" and result["train_tokens"] > 0 and result["tokens_per_s"] > 0
    assert result["data"]["train"]["examples"] == 7 and result["data"]["eval"]["examples"] == 3
    assert result["data"]["train"]["skipped"] == 1  # one example's prompt outlasts 128 tokens
    assert result["adapter"] == str(completed.run_dir / "adapter") and result["peak_memory_mb"] > 0
    stats = json.loads((completed.run_dir / "data_stats.json").read_text())
    assert stats["train"] == result["data"]["train"] and stats["device"] == "cpu"


def test_result_json_matches_the_record(completed: Completed):
    result = json.loads((completed.run_dir / "result.json").read_text())
    assert result == json.loads(json.dumps(completed.run.result))  # the file beside the adapter says what the store says


def test_the_record_ends_at_the_last_step(completed: Completed):
    run = completed.run
    assert run.total_steps == 12
    assert run.step == 12  # where training ended, not the last heartbeat before it


def test_the_adapter_and_merged_model_are_written(completed: Completed):
    adapter = completed.run_dir / "adapter"
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "chat_template.jinja"} <= set(digests(adapter))
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    assert adapter_config["r"] == 8 and adapter_config["lora_alpha"] == 32
    assert adapter_config["base_model_name_or_path"] == str(Path(completed.config.base_model).resolve())
    assert (completed.run_dir / "merged" / "config.json").is_file()
    assert not list(completed.run_dir.glob(".tmp-*")) and not list(completed.run_dir.glob(".old-*"))


def test_training_loss_falls_and_eval_loss_ends_below_the_base(completed: Completed):
    train = runs.metrics(completed.store, completed.run_id, kind="train")
    assert [p.step for p in train] == list(range(1, 13))
    losses = [p.loss for p in train]
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.02
    assert min(losses[-3:]) < losses[0]

    evals = runs.metrics(completed.store, completed.run_id, kind="eval")
    assert [p.step for p in evals] == [0, 4, 8, 12]
    base, final = evals[0].eval_loss, evals[-1].eval_loss
    assert final < base - 0.02
    result = completed.run.result
    assert result["base_eval_loss"] == pytest.approx(base) and result["final_eval_loss"] == pytest.approx(final)
    assert result["eval_loss_drop"] == pytest.approx((base - final) / base) and result["eval_loss_drop"] > 0


def test_the_saved_adapter_scores_what_training_measured(completed: Completed, demo_template: DemoTemplate):  # noqa: F811
    from training.evaluation.scoring import eval_loss, load_tuned

    model, tokenizer = load_tuned(completed.run)
    records = read_split(demo_template.small_path / "eval.jsonl")
    tuned = eval_loss(model, tokenizer, records, completed.config.max_seq_length)
    with model.disable_adapter():
        base = eval_loss(model, tokenizer, records, completed.config.max_seq_length)
    result = completed.run.result
    assert tuned == pytest.approx(result["final_eval_loss"], rel=1e-4)
    assert base == pytest.approx(result["base_eval_loss"], rel=1e-4)
    assert tuned < base


def test_lora_weights_moved_and_base_weights_did_not(completed: Completed, tiny_lm: Path):  # noqa: F811
    assert digests(tiny_lm) == completed.base_digests  # the base folder is never written to

    adapter = tensors(completed.run_dir / "adapter" / "adapter_model.safetensors")
    pairs = sorted({k.removesuffix(".lora_A.weight") for k in adapter if k.endswith(".lora_A.weight")})
    assert len(pairs) == 2 * 7  # two layers, seven projections each
    assert all("lora_" in k for k in adapter)  # the adapter holds LoRA weights only
    for prefix in pairs:
        assert adapter[f"{prefix}.lora_B.weight"].abs().max() > 0  # B starts at zero: it moved

    # A checkpoint three steps before the end holds different LoRA weights: they kept moving.
    earlier = tensors(completed.run_dir / "checkpoints" / "step-00000009" / "adapter.safetensors")
    assert set(earlier) == set(adapter)
    assert any(not earlier[k].equal(adapter[k]) for k in adapter)

    # The merged model is the base plus scale * B @ A exactly where LoRA sits, and the base
    # everywhere else: the frozen weights came through training unchanged.
    base = tensors(tiny_lm / "model.safetensors")
    merged = tensors(completed.run_dir / "merged" / "model.safetensors")
    scale = completed.config.lora_alpha / completed.config.lora_r
    lora_targets = set()
    for prefix in pairs:
        name = prefix.removeprefix("base_model.model.") + ".weight"
        lora_targets.add(name)
        delta = scale * adapter[f"{prefix}.lora_B.weight"] @ adapter[f"{prefix}.lora_A.weight"]
        assert merged[name].sub(base[name]).sub(delta).abs().max() < 1e-5
        assert delta.abs().max() > 1e-4
    for name in set(merged) - lora_targets:
        assert merged[name].equal(base[name]), name


def test_metrics_rows_and_events(completed: Completed, demo_template: DemoTemplate, tiny_lm: Path):  # noqa: F811
    points = runs.metrics(completed.store, completed.run_id)
    train = [p for p in points if p.kind == "train"]
    assert all(p.learning_rate is not None and p.tokens_per_s > 0 and p.memory_mb > 0 for p in train)
    assert all(p.epoch == p.step for p in train)  # one micro-batch per epoch here
    assert train[0].learning_rate == pytest.approx(completed.config.learning_rate, rel=0.05)  # cosine, no warmup
    assert train[-1].learning_rate < train[0].learning_rate / 10
    assert all(p.eval_loss is None for p in train) and all(p.loss is None for p in points if p.kind == "eval")
    assert runs.metrics(completed.store, completed.run_id, kind="train", after_step=10) == train[10:]

    events = runs.events(completed.store, completed.run_id)
    assert [e.kind for e in events] == ["created", "started", "data", "completed"]
    tokenizer = load_tokenizer(str(tiny_lm))
    counted = [encode_records(tokenizer, read_split(demo_template.small_path / f), 128)[1] for f in ("train.jsonl", "eval.jsonl")]
    assert counted[0].skipped  # the data event reports examples left out, and how many were cut
    assert events[2].message == (
        f"{counted[0].examples} train / {counted[1].examples} eval examples, "
        f"{counted[0].truncated + counted[1].truncated} truncated, {len(counted[0].skipped) + len(counted[1].skipped)} skipped; "
        "12 steps, fp32 on cpu"
    )


def test_checkpoints_are_complete_and_only_the_newest_are_kept(completed: Completed):
    root = completed.run_dir / "checkpoints"
    # saved at steps 3, 6 and 9 (not at 12: the run ended there); keep_checkpoints=2
    assert sorted(p.name for p in root.iterdir()) == ["step-00000006", "step-00000009"]
    assert complete_checkpoints(completed.run_dir) == [root / "step-00000009", root / "step-00000006"]
    for folder, step in ((root / "step-00000006", 6), (root / "step-00000009", 9)):
        marker = json.loads((folder / MARKER).read_text())
        assert marker == {"step": step, "files": CHECKPOINT_FILES}
        assert sorted(p.name for p in folder.iterdir()) == sorted([*CHECKPOINT_FILES, MARKER])
        state = json.loads((folder / "state.json").read_text())
        assert state["step"] == step and state["base_eval_loss"] is not None


def test_resume_skips_incomplete_checkpoints_and_replays_exactly(completed: Completed, demo_template: DemoTemplate):  # noqa: F811
    """A second run with the same settings, handed the first one's step-9 checkpoint and some debris."""
    store = completed.store
    run = runs.create_run(store, LEAD, demo_template.small_id, completed.config, name="resumed")
    root = Path(run.run_dir) / "checkpoints"
    root.mkdir()
    shutil.copytree(completed.run_dir / "checkpoints" / "step-00000009", root / "step-00000009")
    # debris a kill can leave: a half-written folder (even with a marker), a folder whose marker
    # was never written, and one whose marker names a file that is gone
    shutil.copytree(root / "step-00000009", root / ".tmp-step-00000011-99999")
    (root / ".tmp-step-00000011-99999" / MARKER).write_text(json.dumps({"step": 11, "files": CHECKPOINT_FILES}))
    shutil.copytree(root / "step-00000009", root / "step-00000010")
    (root / "step-00000010" / MARKER).unlink()
    shutil.copytree(root / "step-00000009", root / "step-00000011")
    (root / "step-00000011" / "optimizer.pt").unlink()
    assert complete_checkpoints(run.run_dir) == [root / "step-00000009"]

    assert train_here(completed.db, run.id) == "completed"
    events = runs.events(store, run.id)
    assert ("checkpoint_loaded", "resumed from step-00000009") in [(e.kind, e.message) for e in events]
    assert [p.step for p in runs.metrics(store, run.id, kind="train")] == [10, 11, 12]  # 1-9 are not redone
    assert [p.step for p in runs.metrics(store, run.id, kind="eval")] == [12]
    resumed = runs.get_run(store, run.id)
    assert resumed.result["steps"] == 12 and resumed.result["base_eval_loss"] == completed.run.result["base_eval_loss"]

    # Same data order, optimizer and scheduler state: the resumed adapter is the uninterrupted one.
    ours = tensors(Path(run.run_dir) / "adapter" / "adapter_model.safetensors")
    theirs = tensors(completed.run_dir / "adapter" / "adapter_model.safetensors")
    assert set(ours) == set(theirs)
    for key in ours:
        assert (ours[key] - theirs[key]).abs().max() < 1e-6, key
    assert resumed.result["final_eval_loss"] == pytest.approx(completed.run.result["final_eval_loss"], rel=1e-5)


def test_a_completed_run_is_not_trained_again(completed: Completed):
    with pytest.raises(InvalidInput, match="already completed; start a new run"):
        train_here(completed.db, completed.run_id)
    assert completed.run.status == "completed"


def test_early_stopping_keeps_the_best_adapter(demo_db: Path, demo_template: DemoTemplate, tiny_lm: Path):  # noqa: F811
    # A learning rate of 1e-30 moves the LoRA weights far below float32 resolution of the
    # activations they add to, so the eval loss cannot improve after the first evaluation.
    store = Store(demo_db)
    config = tiny_config(tiny_lm, learning_rate=1e-30, max_steps=10, eval_every=1, early_stopping_patience=2, save_every=100)
    run = runs.create_run(store, LEAD, demo_template.small_id, config)
    assert train_here(demo_db, run.id) == "completed"
    result = runs.get_run(store, run.id).result
    assert result["early_stopped"] is True
    assert result["steps"] == result["best_step"] + config.early_stopping_patience < config.max_steps
    assert [p.step for p in runs.metrics(store, run.id, kind="train")] == list(range(1, result["steps"] + 1))
    assert [p.step for p in runs.metrics(store, run.id, kind="eval")] == list(range(0, result["steps"] + 1))
    assert result["final_eval_loss"] == result["best_eval_loss"]
    run_dir = Path(run.run_dir)
    assert digests(run_dir / "adapter") == digests(run_dir / "best")  # the best adapter, not the last
    store.close()


def test_a_run_with_nothing_to_train_on_fails_and_says_why(demo_db: Path, demo_template: DemoTemplate, tiny_lm: Path):  # noqa: F811
    store = Store(demo_db)
    # 16 tokens end inside every example's system prompt: no assistant token survives truncation
    run = runs.create_run(store, LEAD, demo_template.small_id, tiny_config(tiny_lm, max_seq_length=16, max_steps=2))
    with pytest.raises(ValueError, match="no trainable example"):
        train_here(demo_db, run.id)
    failed = runs.get_run(store, run.id)
    assert failed.status == "failed" and "no trainable example" in failed.error and "within 16 tokens" in failed.error
    assert runs.events(store, run.id)[-1].kind == "failed"
    assert not (Path(run.run_dir) / "adapter").exists()
    store.close()


def test_the_seed_decides_the_lora_initialisation(demo_db: Path, demo_template: DemoTemplate, tiny_lm: Path):  # noqa: F811
    """Two runs with one config hash must train alike, whatever else used the random generator before."""
    import torch

    store = Store(demo_db)
    adapters = []
    for name, noise, seed in (("first", 1, 42), ("second", 2, 42), ("other-seed", 1, 7)):
        torch.manual_seed(noise)  # the process's random state differs before each run
        run = runs.create_run(store, LEAD, demo_template.small_id, tiny_config(tiny_lm, max_steps=1, seed=seed), name=name)
        assert train_here(demo_db, run.id) == "completed"
        adapters.append(tensors(Path(run.run_dir) / "adapter" / "adapter_model.safetensors"))
    first, second, other = adapters
    assert all(first[k].equal(second[k]) for k in first)
    assert any(not first[k].equal(other[k]) for k in first if "lora_A" in k)
    store.close()


def test_gradient_checkpointing_trains_the_same_steps(
    demo_db: Path,  # noqa: F811
    demo_template: DemoTemplate,  # noqa: F811
    tiny_lm: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    """Checkpointing recomputes activations in the backward pass instead of keeping them: same losses, same adapter."""
    import transformers.modeling_utils as modeling

    calls = []
    real = modeling.checkpoint
    monkeypatch.setattr(modeling, "checkpoint", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    store = Store(demo_db)
    losses, adapters = [], []
    for checkpointing in (False, True):
        config = tiny_config(tiny_lm, max_steps=3, eval_every=3, gradient_checkpointing=checkpointing)
        run = runs.create_run(store, LEAD, demo_template.small_id, config, name=f"checkpointing-{checkpointing}")
        assert train_here(demo_db, run.id) == "completed"
        assert bool(calls) == checkpointing  # the decoder layers went through torch's checkpoint only when asked
        losses.append([p.loss for p in runs.metrics(store, run.id, kind="train")])
        adapters.append(tensors(Path(run.run_dir) / "adapter" / "adapter_model.safetensors"))
    assert len(losses[0]) == 3 and losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert all((adapters[0][k] - adapters[1][k]).abs().max() < 1e-5 for k in adapters[0])
    store.close()


def test_cancel_needs_a_lead_and_a_live_run(completed: Completed):
    with pytest.raises(PermissionDenied):
        runs.cancel_run(completed.store, REVIEWER, completed.run_id)
    with pytest.raises(InvalidInput, match=f"run {completed.run_id} is completed, not running; nothing to cancel"):
        runs.cancel_run(completed.store, LEAD, completed.run_id)


def test_cancelling_a_run_that_never_started_ends_it(demo_db: Path, demo_template: DemoTemplate, tiny_lm: Path):  # noqa: F811
    """No worker will ever read the request of a run that was created but never launched."""
    store = Store(demo_db)
    run = runs.create_run(store, LEAD, demo_template.small_id, tiny_config(tiny_lm, max_steps=1))
    assert run.status == "queued" and run.pid is None
    cancelled = runs.cancel_run(store, LEAD, run.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert runs.events(store, run.id)[-1].kind == "cancelled"
    store.close()
