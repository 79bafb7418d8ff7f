"""The real base model (SmolLM2-135M-Instruct, converted from the bundled GGUF on first use): a short
LoRA run, the blind side-by-side evaluation, votes, the win rate and a task from a lost comparison."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError

from curation.errors import Conflict, InvalidInput, PermissionDenied
from curation.store import Store
from schemas.training import TrainConfig, VoteInput
from tiny_lm import AUTHOR, LEAD, REVIEWER, DemoTemplate, copy_demo, demo_template, train_here  # noqa: F401
from training import runs
from training.data import read_split
from training.evaluate import evaluate_run, evaluating, prompt_and_reference
from training.evaluation.blind import evaluation, get_comparison, next_comparison, task_from_comparison, vote, win_rate
from training.evaluation.judge import wilson

SECOND_REVIEWER = "priya"


@pytest.mark.parametrize(
    ("successes", "n", "confidence", "expected"),
    [
        # textbook Wilson score intervals (e.g. Newcombe 1998, and statsmodels' proportion_confint)
        (0, 10, 0.95, (0.0, 0.2775)),
        (1, 10, 0.95, (0.0179, 0.4042)),
        (5, 10, 0.95, (0.2366, 0.7634)),
        (8, 10, 0.95, (0.4902, 0.9433)),
        (10, 10, 0.95, (0.7225, 1.0)),
        (81, 263, 0.95, (0.2553, 0.3662)),
        (5, 10, 0.99, (0.1842, 0.8158)),
    ],
)
def test_wilson_interval_known_values(successes, n, confidence, expected):
    low, high = wilson(successes, n, confidence)
    assert (low, high) == pytest.approx(expected, abs=1e-4)


def test_wilson_interval_edges():
    assert wilson(0, 0) == (0.0, 1.0)  # no votes: anything is possible
    low, high = wilson(1.5, 3)  # a tie counts half
    assert 0 < low < 0.5 < high < 1 and low == pytest.approx(1 - high)  # symmetric around one half
    assert wilson(50, 100)[1] - wilson(50, 100)[0] < wilson(5, 10)[1] - wilson(5, 10)[0]  # more votes, narrower


def test_prompt_and_reference_take_the_last_assistant_turn():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Is hail covered?"},
        {"role": "assistant", "content": "Yes, under comprehensive."},
    ]
    assert prompt_and_reference(messages) == (messages[:4], "Yes, under comprehensive.")


@dataclass
class Trained:
    store: Store
    run_id: str


@pytest.fixture(scope="module")
def smollm2_run(tmp_path_factory, demo_template: DemoTemplate):  # noqa: F811
    """Three LoRA steps of SmolLM2 on the small snapshot (3 eval examples), trained in this process."""
    db = copy_demo(demo_template, tmp_path_factory.mktemp("smollm2"))
    store = Store(db)
    config = TrainConfig(
        base_model="smollm2-135m",
        max_steps=3,
        batch_size=2,
        max_seq_length=256,
        eval_every=100,
        save_every=100,
        lora_r=8,
        learning_rate=1e-3,
        warmup_ratio=0.0,
        precision="fp32",
    )
    run = runs.create_run(store, LEAD, demo_template.small_id, config)
    assert train_here(db, run.id) == "completed"
    yield Trained(store, run.id)
    store.close()


@pytest.mark.slow
def test_smollm2_trains_a_few_steps(smollm2_run: Trained):
    run = runs.get_run(smollm2_run.store, smollm2_run.run_id)
    assert run.status == "completed" and run.result["steps"] == 3
    assert Path(run.result["adapter"], "adapter_model.safetensors").is_file()
    lineage = json.loads((Path(run.run_dir) / "lineage.json").read_text())
    assert lineage["base_model"] == "smollm2-135m" and Path(lineage["base_model_path"], "config.json").is_file()
    evals = runs.metrics(smollm2_run.store, run.id, kind="eval")
    assert [p.step for p in evals] == [0, 3]
    assert all(math.isfinite(p.eval_loss) and 0 < p.eval_loss < 10 for p in evals)  # an instruct model, not noise
    assert run.result["base_eval_loss"] == pytest.approx(evals[0].eval_loss)
    train = runs.metrics(smollm2_run.store, run.id, kind="train")
    assert [p.step for p in train] == [1, 2, 3] and all(math.isfinite(p.loss) for p in train)


@pytest.mark.slow
def test_smollm2_blind_comparison_votes_win_rate_and_task(smollm2_run: Trained, demo_template: DemoTemplate):  # noqa: F811
    store, run_id = smollm2_run.store, smollm2_run.run_id
    with pytest.raises(PermissionDenied):
        evaluate_run(store, REVIEWER, run_id, max_new_tokens=16, limit=2)
    report = evaluate_run(store, LEAD, run_id, max_new_tokens=16, limit=2)
    assert report.examples == report.comparisons == 2
    for side in ("base", "tuned"):
        figures = getattr(report, side)
        assert figures.eval_loss is not None and math.isfinite(figures.eval_loss)
        assert figures.perplexity == pytest.approx(math.exp(figures.eval_loss))
    generation = report.generation
    assert (generation.max_new_tokens, generation.decoding, generation.engine) == (16, "greedy", "transformers")
    assert generation.answers_per_s > 0
    assert report.judge.wins + report.judge.losses + report.judge.ties == 2 and report.canary.examples >= 100
    assert report.canary.base_loss < 4  # an instruct model reads general text well: its canary loss is low
    assert evaluation(store, run_id) == report
    kinds = [e.kind for e in runs.events(store, run_id)]
    assert kinds[-2:] == ["evaluation_started", "evaluated"] and evaluating(runs.get_run(store, run_id)) is None

    records = read_split(demo_template.small_path / "eval.jsonl")[:2]
    first = next_comparison(store, REVIEWER, run_id)
    second = get_comparison(store, first.id + 1)
    for comparison, record in zip((first, second), records, strict=True):
        prompt, reference = prompt_and_reference(record["messages"])
        assert comparison.run_id == run_id and comparison.example_id == record["id"]
        assert list(comparison.messages) == prompt and comparison.reference == reference
        assert comparison.tuned_is in ("a", "b") and comparison.answer_a.strip() and comparison.answer_b.strip()

    with pytest.raises(PermissionDenied):
        vote(store, AUTHOR, first.id, VoteInput(choice="a"))
    assert vote(store, REVIEWER, first.id, VoteInput(choice=first.tuned_is, rubric={"accuracy": 4})).winner == "tuned"
    assert vote(store, SECOND_REVIEWER, first.id, VoteInput(choice="tie", comment=" same ")).comment == "same"
    base_side = "b" if second.tuned_is == "a" else "a"
    assert vote(store, REVIEWER, second.id, VoteInput(choice=base_side)).winner == "base"
    with pytest.raises(Conflict, match=f"{REVIEWER} already judged comparison {first.id}"):
        vote(store, REVIEWER, first.id, VoteInput(choice="tie"))
    with pytest.raises(ValidationError, match="rubric score accuracy=6 must be between 1 and 5"):
        VoteInput(choice="a", rubric={"accuracy": 6})
    assert next_comparison(store, REVIEWER, run_id) is None
    assert next_comparison(store, SECOND_REVIEWER, run_id) == second

    rate = win_rate(store, run_id)
    assert (rate.votes, rate.tuned_wins, rate.base_wins, rate.ties) == (3, 1, 1, 1)
    assert rate.win_rate == pytest.approx(0.5)  # (1 + 1/2) / 3: the tie counts half
    assert (rate.ci_low, rate.ci_high) == pytest.approx(wilson(1.5, 3))
    assert 0 <= rate.ci_low < rate.win_rate < rate.ci_high <= 1
    assert win_rate(store, "run-without-votes").win_rate is None

    with pytest.raises(Conflict, match="already has 3 blind votes; pass --force"):
        evaluate_run(store, LEAD, run_id, max_new_tokens=16, limit=2)

    task = task_from_comparison(store, LEAD, second.id, AUTHOR, note="the tuned answer missed the deductible")
    question = " ".join(m["content"] for m in second.messages if m["role"] == "user")
    assert task.assignee == AUTHOR and task.status == "open" and task.question == " ".join(question.split())
    assert task.note == f"comparison {second.id}: the tuned answer missed the deductible"
    linked = [r["task_id"] for r in store.db.query("SELECT task_id FROM votes WHERE comparison_id = ?", [second.id])]
    assert linked == [task.id]
    source = store.db.execute("SELECT source, source_id FROM questions WHERE id = ?", [task.question_id]).fetchone()
    assert tuple(source) == (f"eval:{run_id}", str(second.id))  # coverage sees where the question came from


def test_evaluate_refuses_a_run_that_has_not_completed(tmp_path, demo_template: DemoTemplate):  # noqa: F811
    store = Store(copy_demo(demo_template, tmp_path))
    run = runs.create_run(store, LEAD, demo_template.small_id, TrainConfig(max_steps=1))
    with pytest.raises(InvalidInput, match=f"run {run.id} is queued; only a completed run can be evaluated"):
        evaluate_run(store, LEAD, run.id, max_new_tokens=4)
    store.close()
