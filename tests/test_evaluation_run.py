"""Evaluation that decides, on a tiny Llama and the demo's snapshots: per-scenario figures, the offline
judge on the real MiniLM, the canary, agreement with people's votes, the promotion gate, the
leaderboard, batched generation, the cost estimate against a real run, and base-model comparison."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_evaluation_judge import FakeOpenAI, fake_endpoint  # noqa: F401

from curation.errors import InvalidInput, PermissionDenied
from curation.store import Store, now
from schemas.evaluation import CategoryFigures, PromotionGate
from schemas.training import EvaluationReport, GenerationSettings, LossFigures, VoteInput
from tiny_lm import LEAD, REVIEWER, DemoTemplate, build_tiny_lm, copy_demo, demo_template, tiny_config, train_here  # noqa: F401
from training import runs
from training.data import collate, encode_records, loss_model, read_split
from training.evaluate import evaluate_run, prompt_and_reference
from training.evaluation.blind import evaluation, next_comparison, vote, win_rate_by
from training.evaluation.canary import read_canary
from training.evaluation.generation import generate_batched, generate_one_at_a_time
from training.evaluation.promotion import GateNotPassed, check_gate, current_promotion, promote_run
from training.evaluation.scoring import eval_loss, example_losses, load_tuned
from training.evaluation.selection import compare_models, leaderboard

pytestmark = pytest.mark.slow  # loads models

SECOND_REVIEWER = "priya"


@pytest.fixture(scope="module")
def untied_lm(tmp_path_factory) -> Path:
    """A tiny untied Llama (a tied random one answers blanks)."""
    return build_tiny_lm(tmp_path_factory.mktemp("eval-lm") / "tiny-llama", tied=False)


def noisy_adapter(run, model_folder: Path, scale: float = 40.0) -> None:
    """Give a run a LoRA adapter with large random weights (on the LM head too): it predicts every text worse."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    lora = get_peft_model(
        AutoModelForCausalLM.from_pretrained(model_folder),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj", "lm_head"], init_lora_weights=False),
    )
    with torch.no_grad():
        for name, weight in lora.named_parameters():
            if "lora_B" in name:
                weight.mul_(scale)
    adapter = Path(run.run_dir) / "adapter"
    lora.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(model_folder).save_pretrained(adapter)


def completed_run(store, snapshot_id, model_folder, **result):
    run = runs.create_run(store, LEAD, snapshot_id, tiny_config(model_folder, max_steps=2))
    noisy_adapter(run, model_folder)
    runs.finish(store, run.id, "completed", result={"base_eval_loss": 2.5, "final_eval_loss": 2.0, **result})
    return runs.get_run(store, run.id)


@dataclass
class Evaluated:
    store: Store
    db: Path
    run_id: str
    report: EvaluationReport
    records: list


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, demo_template: DemoTemplate, untied_lm: Path):  # noqa: F811
    db = copy_demo(demo_template, tmp_path_factory.mktemp("evaluated"))
    store = Store(db)
    run = completed_run(store, demo_template.snapshot_id, untied_lm)
    report = evaluate_run(store, LEAD, run.id, max_new_tokens=8, canary_threshold=0.05)
    records = read_split(demo_template.snapshot_path / "eval.jsonl")
    yield Evaluated(store, db, run.id, report, records)
    store.close()


def test_the_report_splits_base_and_tuned_by_category_and_response_type(evaluated: Evaluated):
    report, records = evaluated.report, evaluated.records
    assert report.examples == report.comparisons == len(records) >= 10
    categories = {r["tags"]["category"] for r in records}
    assert {c.category for c in report.by_category} == categories and len(categories) >= 3
    assert sum(c.examples for c in report.by_category) == sum(t.examples for t in report.by_response_type) == len(records)
    assert {t.response_type for t in report.by_response_type} == {r["tags"]["response_type"] for r in records}
    rates = [c.judge_win_rate for c in report.by_category]
    assert rates == sorted(rates)  # worst category first
    # every figure is the token-weighted mean of its examples' losses, scored here independently
    model, tokenizer = load_tuned(runs.get_run(evaluated.store, evaluated.run_id))
    max_length = runs.get_run(evaluated.store, evaluated.run_id).config.max_seq_length
    tuned = example_losses(model, tokenizer, records, max_length)
    with model.disable_adapter():
        base = example_losses(model, tokenizer, records, max_length)
    for figures in report.by_category:
        idx = [i for i, r in enumerate(records) if r["tags"]["category"] == figures.category]
        assert figures.examples == len(idx)
        assert figures.tuned_loss == pytest.approx(sum(tuned[i].loss_sum for i in idx) / sum(tuned[i].tokens for i in idx))
        assert figures.base_loss == pytest.approx(sum(base[i].loss_sum for i in idx) / sum(base[i].tokens for i in idx))
    assert report.tuned.eval_loss == pytest.approx(sum(t.loss_sum for t in tuned) / sum(t.tokens for t in tuned))
    assert report.tuned.eval_loss > report.base.eval_loss  # a noisy adapter makes things worse, and it shows
    assert report.eval_loss_drop < 0


def test_per_example_losses_agree_with_the_trainers_packed_loss(evaluated: Evaluated):
    import torch

    run = runs.get_run(evaluated.store, evaluated.run_id)
    model, tokenizer = load_tuned(run)
    items, _ = encode_records(tokenizer, evaluated.records, run.config.max_seq_length)
    batch = collate(items, packing=True, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        packed = (
            float(loss_model(model)(batch["inputs"], batch["rows"], batch["cols"], batch["targets"])) / batch["targets"].numel()
        )
    assert eval_loss(model, tokenizer, evaluated.records, run.config.max_seq_length) == pytest.approx(packed, rel=1e-4)


def test_the_offline_judge_figures_and_the_canary_flag(evaluated: Evaluated):
    report = evaluated.report
    judge = report.judge
    assert judge.method == "offline:all-MiniLM-L6-v2" and judge.wins + judge.losses + judge.ties == report.examples
    assert judge.win_rate == pytest.approx((judge.wins + judge.ties / 2) / report.examples)
    assert 0 <= judge.interval[0] <= judge.win_rate <= judge.interval[1] <= 1
    assert judge.agreement is None  # nobody has voted yet
    canary = report.canary
    _, canary_records = read_canary()
    assert canary.examples == len(canary_records) >= 100 and canary.source.endswith("canary.jsonl")
    assert canary.change == pytest.approx((canary.tuned_loss - canary.base_loss) / canary.base_loss)
    assert canary.change > canary.threshold and canary.flagged  # the noisy adapter forgot general text too
    kinds = [e.kind for e in runs.events(evaluated.store, evaluated.run_id)]
    assert kinds[-3:] == ["evaluation_started", "evaluated", "canary_flagged"]
    assert report.generation.engine == "transformers" and report.generation.answers_per_s > 0


def test_comparisons_carry_the_scenario_and_the_judges_hidden_verdict(evaluated: Evaluated):
    store, run_id = evaluated.store, evaluated.run_id
    rows = list(store.db.query("SELECT * FROM comparisons WHERE run_id = ? ORDER BY id", [run_id]))
    assert [r["category"] for r in rows] == [r["tags"]["category"] for r in evaluated.records]
    assert [r["response_type"] for r in rows] == [r["tags"]["response_type"] for r in evaluated.records]
    winners = [r["judge_winner"] for r in rows]
    judge = evaluated.report.judge
    assert (winners.count("tuned"), winners.count("base"), winners.count("tie")) == (judge.wins, judge.losses, judge.ties)
    assert all("similarity" in json.loads(r["judge_detail"]) for r in rows)
    from typer.testing import CliRunner

    from app.cli import app

    shown = CliRunner().invoke(app, ["judge", "next", run_id, "--json", "--as", REVIEWER, "--db", str(evaluated.db)])
    assert shown.exit_code == 0, shown.output
    assert {"tuned_is", "judge_winner", "judge_detail"}.isdisjoint(json.loads(shown.output))


def test_the_judges_agreement_with_people_and_the_blind_win_rate_by_category(evaluated: Evaluated):
    store, run_id = evaluated.store, evaluated.run_id
    pairs = []
    for _ in range(4):  # the reviewer agrees with the judge on the first three, then picks the other side
        comparison = next_comparison(store, REVIEWER, run_id)
        judge_side = {"tuned": comparison.tuned_is, "base": "b" if comparison.tuned_is == "a" else "a", "tie": "tie"}
        if len(pairs) < 3:
            choice = judge_side[comparison.judge_winner]
        else:
            choice = judge_side["base" if comparison.judge_winner == "tuned" else "tuned"]
        winner = vote(store, REVIEWER, comparison.id, VoteInput(choice=choice)).winner
        pairs.append((comparison.judge_winner, winner, comparison.category))
    agreement = evaluation(store, run_id).judge.agreement
    assert agreement.votes == 4 and agreement.agreed == 3 and agreement.share == pytest.approx(0.75)
    by_category = win_rate_by(store, run_id, "category")
    assert sum(r.votes for r in by_category.values()) == 4
    for category, rate in by_category.items():
        mine = [w for _, w, c in pairs if c == category]
        assert rate.votes == len(mine) and rate.tuned_wins == mine.count("tuned") and rate.ties == mine.count("tie")
    assert [r.win_rate for r in by_category.values()] == sorted(r.win_rate for r in by_category.values())
    with pytest.raises(ValueError, match="category or response_type"):
        win_rate_by(store, run_id, "author")


def test_the_gate_refuses_the_noisy_run_and_says_which_conditions_failed(evaluated: Evaluated):
    store, run_id = evaluated.store, evaluated.run_id
    with pytest.raises(PermissionDenied):
        promote_run(store, REVIEWER, run_id)
    with pytest.raises(GateNotPassed, match="eval_loss: tuned eval loss .* against the base's") as refused:
        promote_run(store, LEAD, run_id)
    assert "canary: canary loss change +" in str(refused.value) and current_promotion(store) is None
    loose = PromotionGate(require_lower_eval_loss=False, min_judge_lower_bound=None, max_canary_rise=None, category_margin=None)
    promotion = promote_run(store, LEAD, run_id, loose)
    assert promotion.run_id == run_id and promotion.gate.passed and promotion.gate.checks == []
    assert current_promotion(store) == promotion
    assert runs.events(store, run_id)[-1].kind == "promoted"


def report_with(**changes) -> EvaluationReport:
    from schemas.evaluation import CanaryFigures, JudgeSummary

    base = {
        "run_id": "run-x",
        "snapshot_id": "s",
        "examples": 20,
        "base": LossFigures(eval_loss=3.0, perplexity=20.1),
        "tuned": LossFigures(eval_loss=2.5, perplexity=12.2),
        "generation": GenerationSettings(max_new_tokens=8),
        "comparisons": 20,
        "by_category": [
            CategoryFigures(category="claims", examples=10, base_loss=3.0, tuned_loss=2.4),
            CategoryFigures(category="billing", examples=10, base_loss=3.0, tuned_loss=2.6),
        ],
        "judge": JudgeSummary(method="offline:m", wins=16, losses=3, ties=1, win_rate=0.825, interval=(0.6, 0.93)),
        "canary": CanaryFigures(
            source="c", examples=5, base_loss=2.0, tuned_loss=2.04, change=0.02, threshold=0.05, flagged=False
        ),
    }
    return EvaluationReport(**{**base, **changes})


def test_check_gate_names_each_failing_condition():
    assert check_gate(report_with()).passed
    from schemas.evaluation import CanaryFigures, JudgeSummary

    worse = report_with(
        tuned=LossFigures(eval_loss=3.1, perplexity=22.0),
        judge=JudgeSummary(method="m", wins=11, losses=8, ties=1, win_rate=0.575, interval=(0.36, 0.77)),
        canary=CanaryFigures(source="c", examples=5, base_loss=2.0, tuned_loss=2.2, change=0.1, threshold=0.05, flagged=True),
        by_category=[CategoryFigures(category="claims", examples=10, base_loss=3.0, tuned_loss=3.09)],
    )
    result = check_gate(worse)
    assert not result.passed and [c.name for c in result.failed] == ["eval_loss", "judge_win_rate", "canary", "categories"]
    assert "claims +3.0%" in result.failed[-1].detail and "interval from 36.0%" in result.failed[1].detail
    assert check_gate(
        worse, PromotionGate(require_lower_eval_loss=False, min_judge_lower_bound=0.3, max_canary_rise=0.2, category_margin=0.05)
    ).passed
    assert not check_gate(report_with(judge=None)).passed  # no judge, no promotion (unless the gate drops it)


def test_the_leaderboard_ranks_runs_of_one_snapshot(evaluated: Evaluated, demo_template: DemoTemplate, untied_lm: Path):  # noqa: F811
    store = evaluated.store
    other = completed_run(store, demo_template.snapshot_id, untied_lm)
    better = report_with(
        run_id=other.id,
        snapshot_id=demo_template.snapshot_id,
        by_category=[
            CategoryFigures(category=c.category, examples=c.examples, base_loss=3.0, tuned_loss=2.0, judge_win_rate=1.0)
            for c in evaluated.report.by_category
        ],
    )
    store.db["evaluations"].insert(
        {"run_id": other.id, "created_at": now(), "created_by": LEAD, "report": better.model_dump_json()}
    )
    board = leaderboard(store, [evaluated.run_id, other.id])
    assert [r.run_id for r in board.rows] == [other.id, evaluated.run_id]
    assert board.rows[0].judge_win_rate == pytest.approx(0.825) and board.rows[0].canary_change == pytest.approx(0.02)
    assert set(board.best_by_category.values()) == {other.id} and board.rows[0].best_categories == sorted(board.best_by_category)
    assert board.rows[1].promoted  # promoted by the gate test above
    assert leaderboard(store, snapshot=demo_template.snapshot_id).rows[0].run_id == other.id
    elsewhere = completed_run(store, demo_template.small_id, untied_lm)
    with pytest.raises(InvalidInput, match="different snapshots"):
        leaderboard(store, [evaluated.run_id, elsewhere.id])
    with pytest.raises(InvalidInput, match="name the runs"):
        leaderboard(store)


def test_batched_generation_gives_the_one_at_a_time_answers_in_order(untied_lm: Path, demo_template: DemoTemplate):  # noqa: F811
    from training.evaluation.scoring import load_base

    model, tokenizer, _ = load_base(str(untied_lm))
    records = read_split(demo_template.snapshot_path / "eval.jsonl")[:9]
    prompts = [prompt_and_reference(r["messages"])[0] for r in records]
    assert len({len(str(p)) for p in prompts}) > 3  # prompts of different lengths: the batch sorts and pads them
    batched = generate_batched(model, tokenizer, prompts, max_new_tokens=6, batch_size=4)
    single = generate_one_at_a_time(model, tokenizer, prompts, max_new_tokens=6)
    assert batched.answers == single.answers and any(batched.answers)
    assert batched.engine == "transformers" and batched.new_tokens > 0


def test_the_estimate_plans_what_the_trainer_then_does(tmp_path, demo_template: DemoTemplate, untied_lm: Path):  # noqa: F811
    from training.evaluation.estimate import estimate_run

    store = Store(copy_demo(demo_template, tmp_path))
    config = tiny_config(untied_lm, epochs=2, eval_every=3, save_every=100, batch_size=2, gradient_accumulation_steps=2)
    estimate = estimate_run(store, LEAD, demo_template.small_id, config)
    from training.models import load_tokenizer

    tokenizer_items = encode_records(
        load_tokenizer(str(untied_lm)), read_split(demo_template.small_path / "train.jsonl"), config.max_seq_length
    )[1]
    assert (estimate.examples, estimate.tokens, estimate.skipped) == (tokenizer_items.examples, tokenizer_items.tokens, 1)
    assert estimate.estimated_seconds > 0 and estimate.peak_memory_mb > 0 and estimate.tokens_per_s > 0
    assert estimate.device == "cpu" and estimate.rows >= estimate.steps
    run = runs.create_run(store, LEAD, demo_template.small_id, config)
    assert train_here(store.path, run.id) == "completed"
    result = runs.get_run(store, run.id).result
    assert (estimate.steps, estimate.trained_tokens) == (result["total_steps"], result["train_tokens"])
    assert estimate.epochs == pytest.approx(2.0)
    with pytest.raises(PermissionDenied):
        estimate_run(store, REVIEWER, demo_template.small_id, config)
    store.close()


def test_models_compare_scores_each_candidate_and_reports_one_that_cannot_load(tmp_path, demo_template, untied_lm):  # noqa: F811
    store = Store(copy_demo(demo_template, tmp_path))
    result = compare_models(store, LEAD, "small", [str(untied_lm), str(tmp_path / "missing")], samples=2, max_new_tokens=4)
    good, missing = result.candidates
    records = read_split(demo_template.small_path / "eval.jsonl")
    assert result.examples == len(records) and result.device == "cpu"
    from training.evaluation.scoring import load_base

    model, tokenizer, _ = load_base(str(untied_lm))
    assert good.eval_loss == pytest.approx(eval_loss(model, tokenizer, records, 1024))
    assert good.parameters == sum(p.numel() for p in model.parameters())
    assert good.tokens_per_s > 0 and good.load_seconds > 0 and len(good.samples) == 2
    assert good.samples[0].reference == prompt_and_reference(records[0]["messages"])[1]
    assert missing.eval_loss is None and "does not exist" in missing.error
    with pytest.raises(InvalidInput, match="at least one candidate"):
        compare_models(store, LEAD, "small", [" "])
    assert math.isfinite(good.eval_loss)
    store.close()


def test_an_llm_judge_at_an_openai_compatible_endpoint_judges_every_prompt(
    tmp_path,
    demo_template,  # noqa: F811
    untied_lm,
    fake_endpoint,  # noqa: F811
):
    store = Store(copy_demo(demo_template, tmp_path))
    run = completed_run(store, demo_template.small_id, untied_lm)
    with pytest.raises(InvalidInput, match="--judge-url needs --judge-model"):
        evaluate_run(store, LEAD, run.id, max_new_tokens=4, judge_url=fake_endpoint)
    report = evaluate_run(store, LEAD, run.id, max_new_tokens=4, judge_model="judge-1", judge_url=fake_endpoint)
    assert report.judge.method == f"llm:judge-1@{fake_endpoint}"
    assert len(FakeOpenAI.requests) == report.examples == 3 and all(r["body"]["model"] == "judge-1" for r in FakeOpenAI.requests)
    details = [
        json.loads(r["judge_detail"]) for r in store.db.query("SELECT judge_detail FROM comparisons WHERE run_id = ?", [run.id])
    ]
    assert all(d["tuned_was"] in ("A", "B") and set(d["scores"]) == {"A", "B"} for d in details)
    # the tiny model never mentions the portal, so the fake judge calls every pair a tie
    assert (report.judge.wins, report.judge.losses, report.judge.ties) == (0, 0, 3)
    store.close()


def test_a_local_model_can_be_the_judge(tmp_path, demo_template, untied_lm):  # noqa: F811
    store = Store(copy_demo(demo_template, tmp_path))
    run = completed_run(store, demo_template.small_id, untied_lm)
    report = evaluate_run(store, LEAD, run.id, max_new_tokens=4, limit=2, judge_model=f"base:{untied_lm}")
    assert report.judge.method == f"llm:base:{untied_lm}" and report.judge.wins + report.judge.losses + report.judge.ties == 2
    rows = list(store.db.query("SELECT judge_winner, judge_detail FROM comparisons WHERE run_id = ?", [run.id]))
    # a random tiny model writes no JSON: its replies are kept, unparsed, and count as ties
    assert all(r["judge_winner"] == "tie" and "unparsed" in json.loads(r["judge_detail"]) for r in rows)
    queued = runs.create_run(store, LEAD, demo_template.small_id, tiny_config(untied_lm, max_steps=2))
    with pytest.raises(InvalidInput, match=f"judge run {queued.id} is queued"):
        evaluate_run(store, LEAD, run.id, max_new_tokens=4, judge_model=queued.id, force=True)
    store.close()
