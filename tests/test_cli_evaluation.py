"""The evaluation commands through typer's runner, each long one as a real job (a worker process):
`eval --json` (the JSON contract), `train --dry-run --json`, `models compare`, `runs compare`,
`runs promote` and `judge winrate --by category`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curation.store import Store
from tiny_lm import LEAD, REVIEWER, DemoTemplate, build_tiny_lm, copy_demo, demo_template, tiny_config  # noqa: F401
from training import runs

pytestmark = pytest.mark.slow  # the jobs' workers import torch and load models

LOSS_KEYS = {"run_id", "snapshot_id", "examples", "base", "tuned", "generation", "eval_loss_drop", "comparisons"}


@pytest.fixture(autouse=True)
def one_thread_per_worker(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("cli-eval-lm") / "tiny-llama", tied=False)


@contextmanager
def opened(db: Path) -> Iterator[Store]:
    store = Store(db)
    try:
        yield store
    finally:
        store.close()


def cli(db: Path, *args: str):
    from app.cli import app

    return CliRunner().invoke(app, [*args, "--db", str(db)])


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, demo_template: DemoTemplate, lm: Path):  # noqa: F811
    """A completed run (an untrained adapter) on the small snapshot, evaluated with `goldsmith eval --json`."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    db = copy_demo(demo_template, tmp_path_factory.mktemp("cli-eval"))
    with opened(db) as store:
        run = runs.create_run(store, LEAD, demo_template.small_id, tiny_config(lm, max_steps=2))
        adapter = Path(run.run_dir) / "adapter"
        get_peft_model(AutoModelForCausalLM.from_pretrained(lm), LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(
            adapter
        )
        AutoTokenizer.from_pretrained(lm).save_pretrained(adapter)
        runs.finish(store, run.id, "completed", result={"base_eval_loss": 6.0, "final_eval_loss": 5.0})
    done = cli(db, "eval", run.id, "--json", "--max-new-tokens", "4", "--as", LEAD)
    assert done.exit_code == 0, done.output
    return db, run.id, json.loads(done.stdout)


def test_eval_json_keeps_its_keys_and_adds_the_scenarios_the_judge_and_the_canary(evaluated):
    _, run_id, report = evaluated
    assert set(report) >= LOSS_KEYS and report["run_id"] == run_id
    assert report["by_category"] and set(report["by_category"][0]) >= {
        "category",
        "examples",
        "base_loss",
        "tuned_loss",
        "judge_win_rate",
    }
    assert sum(c["examples"] for c in report["by_category"]) == report["examples"]
    assert set(report["judge"]) >= {"method", "wins", "losses", "ties", "win_rate", "interval", "agreement"}
    assert report["judge"]["method"].startswith("offline:") and len(report["judge"]["interval"]) == 2
    assert set(report["canary"]) >= {"base_loss", "tuned_loss", "change"}
    # an untrained adapter is the identity: the tuned model is the base, on the canary too
    assert report["canary"]["change"] == pytest.approx(0.0, abs=1e-6) and report["canary"]["flagged"] is False
    assert report["judge"]["ties"] == report["examples"]  # the same answers twice: every verdict a tie


def test_the_text_report_and_the_winrate_by_category(evaluated):
    db, run_id, report = evaluated
    with opened(db) as store:
        from schemas.training import VoteInput
        from training.evaluation.blind import next_comparison, vote

        first = next_comparison(store, REVIEWER, run_id)
        vote(store, REVIEWER, first.id, VoteInput(choice=first.tuned_is))
    shown = cli(db, "judge", "winrate", run_id, "--by", "category")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith(f"{first.category}: Tuned wins 1, base wins 0, ties 0 over 1 votes")
    assert cli(db, "judge", "winrate", run_id, "--by", "author").exit_code == 2


def test_runs_compare_and_a_refused_promotion(evaluated):
    db, run_id, report = evaluated
    board = cli(db, "runs", "compare", run_id, "--json")
    assert board.exit_code == 0, board.output
    row = json.loads(board.stdout)["rows"][0]
    assert row["run_id"] == run_id and row["judge_win_rate"] == report["judge"]["win_rate"]
    text = cli(db, "runs", "compare", run_id)
    assert "JUDGE WIN RATE" in text.stdout and run_id in text.stdout
    refused = cli(db, "runs", "promote", run_id, "--as", LEAD)
    # the identity adapter's eval loss equals the base's, and its judge ties everything: two conditions fail
    assert refused.exit_code == 1
    assert "does not pass the promotion gate: eval_loss:" in refused.output and "judge_win_rate:" in refused.output
    assert cli(db, "runs", "promote", run_id, "--as", REVIEWER).exit_code == 1  # permission denied


def test_train_dry_run_prints_the_estimate_and_trains_nothing(tmp_path, demo_template: DemoTemplate, lm: Path):  # noqa: F811
    db = copy_demo(demo_template, tmp_path)
    done = cli(
        db,
        "train",
        "small",
        "--base-model",
        str(lm),
        "--max-steps",
        "3",
        "--set",
        "batch_size=4",
        "--dry-run",
        "--json",
        "--as",
        LEAD,
    )
    assert done.exit_code == 0, done.output
    estimate = json.loads(done.stdout)
    assert {"examples", "tokens", "steps", "estimated_seconds", "peak_memory_mb"} <= set(estimate)
    assert estimate["steps"] == 3 and estimate["examples"] > 0 and estimate["estimated_seconds"] > 0
    with opened(db) as store:
        assert runs.list_runs(store) == []  # nothing was trained
    text = cli(
        db, "train", "small", "--base-model", str(lm), "--max-steps", "3", "--set", "batch_size=4", "--dry-run", "--as", LEAD
    )
    assert text.exit_code == 0 and "nothing was trained" in text.stdout and "3 optimizer steps" in text.stdout


def test_models_compare_runs_as_a_job(tmp_path, demo_template: DemoTemplate, lm: Path):  # noqa: F811
    db = copy_demo(demo_template, tmp_path)
    done = cli(
        db,
        "models",
        "compare",
        "small",
        "--base-model",
        str(lm),
        "--base-model",
        str(tmp_path / "nope"),
        "--samples",
        "1",
        "--max-new-tokens",
        "4",
        "--as",
        LEAD,
    )
    assert done.exit_code == 0, done.output
    assert "BASE MODEL" in done.stdout and "does not exist" in done.stdout
    refused = cli(db, "models", "compare", "small", "--base-model", str(lm), "--as", REVIEWER)
    assert refused.exit_code == 1 and "cannot launch training; that needs the lead role" in refused.output
