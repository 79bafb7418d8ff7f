"""The Training, Compare and Playground pages through AppTest, and the playground's chat service.

Runs, metrics and comparisons are written straight into a real store (no model is trained here).
What the pages start runs for real: a train job whose worker fails on a missing base model, and
evaluation jobs on a tiny Llama (built in a tmp folder) with an untrained adapter. The chat
service is checked with the same tiny Llama.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from app_helpers import app, assert_no_exception, one, texts
from conftest import make_example
from curation.datasets.snapshots import create_snapshot
from curation.errors import Conflict, InvalidInput, PermissionDenied
from curation.store import now
from schemas.training import TrainConfig
from training import jobs, runs
from training.evaluate import start_evaluation
from training.evaluation.blind import evaluation

# ------------------------------------------------------------------------------------------ helpers


@pytest.fixture
def app_store(team, db_path, monkeypatch):
    monkeypatch.setenv("GOLDSMITH_DB", str(db_path))
    return team


@pytest.fixture
def snapshot(app_store):
    make_example(app_store, "approved", category="claims")
    make_example(app_store, "approved", prompt="When is my bill due?", response="On the first of the month.", category="billing")
    make_example(app_store, "approved", prompt="Is hail covered?", response="Under comprehensive cover.", category="claims")
    return create_snapshot(app_store, "lee", "v1", eval_fraction=0.3, validate=False)


@pytest.fixture
def locks():
    with ExitStack() as stack:
        yield stack


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def new_run(store, snapshot, **config):
    return runs.create_run(store, "lee", snapshot.id, TrainConfig(**{"max_steps": 10, **config}))


def running_run(store, snapshot, locks):
    """A run that looks alive: its lock is held here, its pid is a finished process (so cancel signals nobody)."""
    run = new_run(store, snapshot)
    locks.enter_context(runs.run_lock(run.run_dir))
    runs.claim(store, run.id, world_size=1)
    store.db["runs"].update(run.id, {"pid": dead_pid()})
    runs.heartbeat(store, run.id, step=3, total_steps=10)
    runs.log_metrics(
        store,
        [
            {"run_id": run.id, "step": 0, "kind": "eval", "epoch": 0.0, "eval_loss": 2.5},
            *(
                {
                    "run_id": run.id,
                    "step": s,
                    "kind": "train",
                    "epoch": s / 10,
                    "loss": 3 - s / 5,
                    "learning_rate": 2e-4,
                    "tokens_per_s": 900.0,
                }
                for s in (1, 2, 3)
            ),
            {"run_id": run.id, "step": 3, "kind": "eval", "epoch": 0.3, "eval_loss": 2.1},
        ],
    )
    return run


def completed_run(store, snapshot, **config):
    run = new_run(store, snapshot, **config)
    result = {"base_eval_loss": 2.5, "final_eval_loss": 2.0, "eval_loss_drop": 0.2, "tokens_per_s": 1000.0, "steps": 10}
    runs.finish(store, run.id, "completed", result=result)
    return run


def add_comparisons(store, run, tuned_is=("a", "b")) -> list[int]:
    """What evaluate_run writes: one evaluation report and one blind comparison per eval prompt."""
    report = {"run_id": run.id, "snapshot_id": run.snapshot_id, "examples": len(tuned_is), "comparisons": len(tuned_is)}
    report |= {"base": {"eval_loss": 2.5, "perplexity": 12.2}, "tuned": {"eval_loss": 2.0, "perplexity": 7.4}}
    report |= {"generation": {"max_new_tokens": 16, "decoding": "greedy"}, "eval_loss_drop": 0.2}
    store.db["evaluations"].insert({"run_id": run.id, "created_at": now(), "created_by": "lee", "report": json.dumps(report)})
    ids = []
    for n, side in enumerate(tuned_is):
        tuned, base = f"Tuned answer {n}: file it online.", f"Base answer {n}: I am not sure."
        row = {
            "run_id": run.id,
            "example_id": None,
            "messages": json.dumps([{"role": "user", "content": f"Question {n}: how do I file a claim?"}]),
            "reference": "Use the portal.",
            "answer_a": tuned if side == "a" else base,
            "answer_b": base if side == "a" else tuned,
            "tuned_is": side,
            "created_at": now(),
        }
        ids.append(store.db["comparisons"].insert(row).last_pk)
    return ids


def with_adapter(run, model_folder: Path) -> None:
    """Give a run an untrained LoRA adapter on `model_folder` (what a completed run leaves in adapter/)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = Path(run.run_dir) / "adapter"
    lora = get_peft_model(
        AutoModelForCausalLM.from_pretrained(model_folder), LoraConfig(r=2, target_modules=["q_proj", "v_proj"])
    )
    lora.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(model_folder).save_pretrained(adapter)


def job_ended(store, job_id: str, timeout: float = 300):
    """Poll the job service (as the page does) until the job's worker process has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get_job(store, job_id)
        if not job.active:
            return job
        time.sleep(0.1)
    log = Path(job.log_path)
    pytest.fail(f"job {job_id} still {job.status} after {timeout} s\n{log.read_text()[-3000:] if log.exists() else ''}")


# ------------------------------------------------------------------------------------------ training


def test_training_page_lists_runs_and_draws_live_curves(app_store, snapshot, locks):
    run = running_run(app_store, snapshot, locks)
    at = app(app_store, "lee", "pages/training.py")
    assert_no_exception(at)
    table = at.dataframe[0].value
    assert list(table["id"]) == [run.id] and list(table["status"]) == ["running"] and list(table["step"]) == ["3 / 10"]
    assert list(table["snapshot"]) == ["v1"] and list(table["config hash"]) == [run.config_hash]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Status"] == "running" and metrics["Step"] == "3 / 10" and metrics["Heartbeat"].endswith("s ago")
    assert len(at.get("vega_lite_chart")) == 3  # loss (train + eval), learning rate, tokens/s
    assert "started" in list(at.dataframe[-1].value["event"])
    assert not [b for b in at.button if b.label.startswith("Resume")]
    one(at.button, "Cancel the run").click().run()
    assert_no_exception(at)
    assert runs.get_run(app_store, run.id).cancel_requested
    assert "Cancel requested" in texts(at)


def test_training_page_refuses_a_non_lead(app_store, snapshot):
    at = app(app_store, "rita", "pages/training.py")
    assert "this page is not for that role" in at.error[0].value
    assert not at.dataframe and not [b for b in at.button if b.label == "Launch"]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("schedule: [linear", "not valid YAML"),
        ("- just a list", "must be `key: value` lines"),
        ("learning_rat: 0.001", "did you mean 'learning_rate'"),
        ("warmup_ratio: 2", "warmup_ratio"),
    ],
)
def test_bad_settings_show_an_error_and_launch_nothing(app_store, snapshot, yaml_text, message):
    at = app(app_store, "lee", "pages/training.py")
    one(at.text_area, "More settings (YAML, optional)").input(yaml_text)
    one(at.button, "Launch").click().run()
    assert_no_exception(at)
    assert at.error and message in at.error[0].value
    assert runs.list_runs(app_store) == [] and jobs.list_jobs(app_store) == []


def test_launch_creates_the_run_and_starts_its_train_job(app_store, snapshot, tmp_path):
    missing = tmp_path / "no-such-model"  # the real worker starts, then fails on it: a quick, real end
    at = app(app_store, "lee", "pages/training.py")
    one(at.text_input, "Base model").input(str(missing))
    one(at.number_input, "Max steps (0: use epochs)").set_value(5)
    one(at.number_input, "LoRA r").set_value(4)
    one(at.text_area, "More settings (YAML, optional)").input("schedule: linear\nlora_r: 8")
    one(at.button, "Launch").click().run()
    assert_no_exception(at)
    [run] = runs.list_runs(app_store)
    assert (run.config.max_steps, run.config.lora_r, run.config.schedule) == (5, 8, "linear")
    [job] = jobs.list_jobs(app_store)
    assert (job.kind, job.target, job.created_by, job.params) == ("train", run.id, "lee", {"run_id": run.id, "processes": 1})
    assert f"Run {run.id} launched (worker pid {job.pid})" in at.success[0].value
    assert one(at.button, "Launch").key is not None
    assert job.log_path == str(Path(run.run_dir) / "worker.log") and f"Worker log: `{job.log_path}`" in texts(at)
    done = job_ended(app_store, job.id)
    assert done.status == "failed" and "does not exist" in done.error
    at.run()
    assert_no_exception(at)
    assert {m.label: m.value for m in at.metric}["Status"] == "failed" and "does not exist" in at.error[0].value
    assert one(at.button, "Resume from the last checkpoint")


def test_a_dead_run_is_resumed_through_resume_run(app_store, snapshot, tmp_path):
    run = new_run(app_store, snapshot, base_model=str(tmp_path / "no-such-model"))
    app_store.db["runs"].update(run.id, {"status": "running", "pid": dead_pid()})  # its worker is gone, the lock is free
    at = app(app_store, "lee", "pages/training.py")
    assert {m.label: m.value for m in at.metric}["Status"] == "died"
    assert "resume with `goldsmith runs resume" in at.error[0].value
    one(at.button, "Resume from the last checkpoint").click().run()
    assert_no_exception(at)
    job = jobs.latest_job(app_store, "train", run.id)
    assert job is not None and job.created_by == "lee" and f"Run {run.id} resumed (worker pid {job.pid})" in at.success[0].value
    assert [e.kind for e in runs.events(app_store, run.id)][-1] == "launched"
    assert job_ended(app_store, job.id).status == "failed"
    assert runs.get_run(app_store, run.id).status == "failed"  # the worker claimed the run and recorded why it stopped


def test_a_completed_run_is_evaluated_by_a_job_and_shows_the_report(app_store, snapshot, tiny_lm):
    run = completed_run(app_store, snapshot, base_model=str(tiny_lm))
    with_adapter(run, tiny_lm)
    at = app(app_store, "lee", "pages/training.py")
    metrics = {m.label: m.value for m in at.metric}
    assert (
        metrics["Base eval loss"] == "2.5000" and metrics["Final eval loss"] == "2.0000" and metrics["Eval loss drop"] == "20.0%"
    )
    assert "Not evaluated yet" in texts(at)
    assert not at.checkbox  # nothing to regenerate yet
    one(at.number_input, "Longest answer (new tokens)").set_value(16)
    one(at.number_input, "Eval prompts (0: all)").set_value(1)
    one(at.button, "Evaluate").click().run()
    assert_no_exception(at)
    job = jobs.latest_job(app_store, "evaluate", run.id)
    assert job.params == {
        "run_id": run.id,
        "max_new_tokens": 16,
        "limit": 1,
        "force": False,
        "seed": 0,
        "judge_model": None,
        "judge_url": None,
        "canary": None,
        "canary_threshold": 0.05,
    }
    assert f"Evaluation of {run.id} started (job {job.id})" in at.success[0].value
    assert f"Evaluating in the background (job {job.id}" in texts(at) and not [b for b in at.button if b.label == "Evaluate"]
    done = job_ended(app_store, job.id)
    assert done.status == "completed", done.error
    at.run()
    assert_no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Eval examples"] == "1" and metrics["Tuned eval loss"] != "n/a"
    assert done.result["comparisons"] == 1 and done.result == evaluation_of(app_store, run.id)
    assert at.checkbox and one(at.button, "Evaluate")  # it can be run again, regenerating


def evaluation_of(store, run_id: str) -> dict:
    return evaluation(store, run_id).model_dump(mode="json")


def test_an_evaluation_that_fails_shows_its_error_and_log(app_store, snapshot, tiny_lm):
    run = completed_run(app_store, snapshot, base_model=str(tiny_lm))
    adapter = Path(run.run_dir) / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")  # passes the quick check; the worker cannot load it
    job = start_evaluation(app_store, "lee", run.id)
    done = job_ended(app_store, job.id)
    assert done.status == "failed" and done.error
    at = app(app_store, "lee", "pages/training.py")
    assert_no_exception(at)
    assert "The last evaluation" in at.error[0].value and "failed" in at.error[0].value
    assert f"Full log: `{done.log_path}`" in texts(at) and one(at.button, "Evaluate")


def test_an_evaluation_is_seen_from_any_session_and_a_died_one_is_reported(app_store, snapshot, tiny_lm):
    run = completed_run(app_store, snapshot, base_model=str(tiny_lm))
    with_adapter(run, tiny_lm)
    job = start_evaluation(app_store, "lee", run.id)
    os.kill(job.pid, signal.SIGSTOP)  # frozen where it is: alive and at work, as far as anyone can tell
    try:
        with pytest.raises(Conflict, match=f"run {run.id} is already being evaluated by job {job.id}"):
            start_evaluation(app_store, "lee", run.id)
        at = app(app_store, "lee", "pages/training.py")  # a session that did not start it
        assert_no_exception(at)
        assert f"Evaluating in the background (job {job.id}" in texts(at) and f"pid {job.pid}" in texts(at)
        assert not [b for b in at.button if b.label == "Evaluate"]
    finally:
        os.kill(job.pid, signal.SIGKILL)  # the evaluating process dies without a word
        os.waitpid(job.pid, 0)
    at = app(app_store, "lee", "pages/training.py")
    assert_no_exception(at)
    assert "stopped without finishing" in at.warning[0].value and f"pid {job.pid}) is gone" in at.warning[0].value
    assert one(at.button, "Evaluate") and jobs.get_job(app_store, job.id).status == "died"


# ------------------------------------------------------------------------------------------ compare


def test_compare_shows_a_blind_pair_records_a_vote_and_reveals(app_store, snapshot):
    run = completed_run(app_store, snapshot)
    first, second = add_comparisons(app_store, run, ("a", "b"))
    at = app(app_store, "rita", "pages/compare.py")
    assert_no_exception(at)
    shown = texts(at)
    assert f"Comparison {first}" in shown and "Question 0" in shown
    assert "Tuned answer 0" in shown and "Base answer 0" in shown
    assert "was the tuned model" not in shown and "revealed" not in shown
    assert {m.label: m.value for m in at.metric}["Tuned model win rate"] == "n/a"
    one(at.radio, "Which answer is better?").set_value("b")  # the base model's answer
    one(at.slider, "Accuracy").set_value(2)
    one(at.button, "Record vote").click().run()
    assert_no_exception(at)
    [vote] = app_store.db["votes"].rows
    assert (vote["comparison_id"], vote["reviewer"], vote["choice"]) == (first, "rita", "b")
    assert json.loads(vote["rubric"])["accuracy"] == 2
    shown = texts(at)
    assert f"Comparison {first} revealed:** answer A was the tuned model" in shown and "the base model won" in shown
    assert f"Comparison {second}" in shown  # the next pair
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tuned model win rate"] == "0%" and metrics["Votes"] == "1" and metrics["95% interval"].startswith("0% – ")


def test_compare_sends_a_loss_to_an_author_as_a_task(app_store, snapshot):
    run = completed_run(app_store, snapshot)
    first, _ = add_comparisons(app_store, run)
    at = app(app_store, "lee", "pages/compare.py")
    one(at.radio, "Which answer is better?").set_value("b")
    one(at.button, "Record vote").click().run()
    one(at.selectbox, "Author").select("al")
    one(at.text_input, "Note for the author (optional)").input("it guessed")
    one(at.button, "Send to an author as a task").click().run()
    assert_no_exception(at)
    [task] = app_store.db["tasks"].rows
    assert task["assignee"] == "al" and f"comparison {first}: it guessed" == task["note"]
    assert f"Sent to al as task {task['id']}" in texts(at)
    assert app_store.db["votes"].get(1)["task_id"] == task["id"]


def test_compare_without_a_choice_records_nothing_and_authors_are_refused(app_store, snapshot):
    add_comparisons(app_store, completed_run(app_store, snapshot))
    at = app(app_store, "rob", "pages/compare.py")
    one(at.button, "Record vote").click().run()
    assert "Pick A, B or tie" in at.error[0].value and app_store.db["votes"].count == 0
    at = app(app_store, "amy", "pages/compare.py")
    assert "this page is not for that role" in at.error[0].value


def test_compare_says_when_there_is_nothing_to_judge(app_store, snapshot):
    completed_run(app_store, snapshot)
    at = app(app_store, "rita", "pages/compare.py")
    assert "No run has blind comparisons yet" in at.info[0].value


# ------------------------------------------------------------------------------------------ playground


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    """A 1-layer Llama with a byte-level BPE tokenizer and a ChatML template, saved to a folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-lm")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|im_start|>", "<|im_end|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(["How do I file a claim? Use the portal. Hello there, user and assistant."], trainer)
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|im_end|>", chat_template=template
    )
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_playground_page_renders_for_an_author(app_store):
    at = app(app_store, "amy", "pages/playground.py")
    assert_no_exception(at)
    assert [t.value for t in at.title] == ["Playground"]
    assert one(at.sidebar.text_input, "Base model").value == "smollm2-135m"
    assert at.chat_input and "Talking to smollm2-135m" in at.info[0].value
    at = app(app_store, "ada", "pages/playground.py")
    assert "this page is not for that role" in at.error[0].value


def test_playground_chats_with_a_tiny_base_model_and_clears(app_store, tiny_lm):
    at = app(app_store, "amy", "pages/playground.py")
    one(at.sidebar.text_input, "Base model").input(str(tiny_lm))
    one(at.sidebar.slider, "Longest answer (new tokens)").set_value(16)
    at.chat_input[0].set_value("How do I file a claim?").run()
    assert_no_exception(at)
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert at.session_state["pg_messages"][0]["content"] == "How do I file a claim?"
    one(at.sidebar.button, "Clear the conversation").click().run()
    assert not at.chat_message and at.session_state["pg_messages"] == []


def test_playground_shows_an_error_for_a_missing_model(app_store, tmp_path):
    at = app(app_store, "amy", "pages/playground.py")
    one(at.sidebar.text_input, "Base model").input(str(tmp_path / "nope"))
    at.chat_input[0].set_value("Hello?").run()
    assert_no_exception(at)
    assert "does not exist" in at.error[0].value and at.session_state["pg_messages"] == []


def test_chat_answers_with_a_base_model_and_a_runs_adapter(app_store, snapshot, tiny_lm):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.playground import base_ref, chat

    question = [{"role": "user", "content": "How do I file a claim?"}]
    answer = chat(app_store, "amy", base_ref(str(tiny_lm)), question, max_new_tokens=4)
    assert isinstance(answer, str)
    run = new_run(app_store, snapshot, base_model=str(tiny_lm))
    with pytest.raises(InvalidInput, match="only a completed run"):
        chat(app_store, "amy", run.id, question)
    adapter = Path(run.run_dir) / "adapter"
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_lm), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    lora.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(tiny_lm).save_pretrained(adapter)
    runs.finish(app_store, run.id, "completed", result={})
    assert isinstance(chat(app_store, "rita", run.id, question, max_new_tokens=4, temperature=0.7), str)


def test_chat_checks_the_role_and_the_conversation(app_store, tiny_lm):
    from training.playground import base_ref, chat

    ref = base_ref(str(tiny_lm))
    with pytest.raises(PermissionDenied, match="use playground"):
        chat(app_store, "ada", ref, [{"role": "user", "content": "hi"}])
    with pytest.raises(InvalidInput, match="end with a user message"):
        chat(app_store, "amy", ref, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    with pytest.raises(InvalidInput, match="has role 'robot'"):
        chat(app_store, "amy", ref, [{"role": "robot", "content": "hi"}])
    with pytest.raises(InvalidInput, match="max_new_tokens"):
        chat(app_store, "amy", ref, [{"role": "user", "content": "hi"}], max_new_tokens=0)
    with pytest.raises(InvalidInput, match="name the base model"):
        chat(app_store, "amy", "base:", [{"role": "user", "content": "hi"}])


# ------------------------------------------------------------------------------------------ evaluation that decides


def full_report(run, **changes) -> dict:
    """An evaluation report with scenarios, the judge and the canary (what evaluate_run writes)."""
    categories = [
        {
            "category": "billing",
            "examples": 4,
            "base_loss": 2.6,
            "tuned_loss": 2.7,
            "judge_win_rate": 0.25,
            "judge_interval": [0.05, 0.7],
        },
        {
            "category": "claims",
            "examples": 8,
            "base_loss": 2.5,
            "tuned_loss": 1.9,
            "judge_win_rate": 0.875,
            "judge_interval": [0.53, 0.98],
        },
    ]
    return {
        "run_id": run.id,
        "snapshot_id": run.snapshot_id,
        "examples": 12,
        "comparisons": 12,
        "base": {"eval_loss": 2.53, "perplexity": 12.6},
        "tuned": {"eval_loss": 2.17, "perplexity": 8.8},
        "generation": {"max_new_tokens": 16, "decoding": "greedy"},
        "eval_loss_drop": 0.14,
        "by_category": categories,
        "by_response_type": [{"response_type": "explanation", "examples": 12, "base_loss": 2.53, "tuned_loss": 2.17}],
        "judge": {
            "method": "offline:all-MiniLM-L6-v2",
            "wins": 8,
            "losses": 3,
            "ties": 1,
            "win_rate": 0.708,
            "interval": [0.45, 0.88],
        },
        "canary": {
            "source": "canary.jsonl",
            "examples": 132,
            "base_loss": 2.0,
            "tuned_loss": 2.2,
            "change": 0.1,
            "threshold": 0.05,
            "flagged": True,
        },
        **changes,
    }


def test_training_page_draws_the_scenarios_the_gate_and_the_leaderboard(app_store, snapshot):
    run = completed_run(app_store, snapshot)
    other = completed_run(app_store, snapshot)
    app_store.db["evaluations"].insert(
        {"run_id": run.id, "created_at": now(), "created_by": "lee", "report": json.dumps(full_report(run))}
    )
    at = app(app_store, "lee", "pages/training.py")
    one(at.selectbox, "Open a run").select(run.id).run()
    assert_no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Judge win rate"] == "71%" and metrics["Judge 95% interval"] == "45% – 88%"
    assert metrics["Canary loss change"] == "+10.0%" and metrics["Judge agrees with people"] == "no votes yet"
    assert "the tuned model may have lost general ability" in at.warning[0].value
    [chart] = at.get("vega_lite_chart")  # the per-category chart (this run logged no training metrics)
    spec = chart.proto.spec
    assert "Judge win rate by category (worst first)" in spec and spec.index('"billing"') < spec.index('"claims"')
    shown = texts(at)
    assert "Promotion gate** (does not pass)" in shown and "judge_win_rate: judge win rate 71%, interval from 45.0%" in shown
    assert "categories whose tuned eval loss is above the base's by more than 0%: billing +3.8%" in shown
    assert one(at.button, "Promote to the team's current model").disabled
    board = at.dataframe[-1].value
    assert set(board["run"]) == {run.id, other.id} and list(board["run"])[0] == run.id
    assert list(board["judge win rate"])[0] == "71%" and list(board["best at"])[0] == "billing, claims"


def test_a_run_that_passes_the_gate_is_promoted_from_the_page(app_store, snapshot):
    run = completed_run(app_store, snapshot)
    good = full_report(run)
    good["by_category"][0] |= {"tuned_loss": 2.5, "judge_win_rate": 0.75}
    good["judge"]["interval"] = [0.55, 0.88]
    good["canary"] |= {"tuned_loss": 2.04, "change": 0.02, "flagged": False}
    app_store.db["evaluations"].insert({"run_id": run.id, "created_at": now(), "created_by": "lee", "report": json.dumps(good)})
    at = app(app_store, "lee", "pages/training.py")
    assert "Promotion gate** (passes)" in texts(at) and not at.warning
    one(at.button, "Promote to the team's current model").click().run()
    assert_no_exception(at)
    from training.evaluation.promotion import current_promotion

    assert current_promotion(app_store).run_id == run.id and current_promotion(app_store).promoted_by == "lee"
    assert f"Run {run.id} is the team's current model" in at.success[0].value
    assert list(at.dataframe[-1].value["promoted"]) == ["yes"]


def test_the_cost_estimate_is_worked_out_by_a_job_and_shown_before_launch(app_store, snapshot, tiny_lm):
    at = app(app_store, "lee", "pages/training.py")
    assert "Estimate the cost before launching" in texts(at)
    one(at.text_input, "Base model").input(str(tiny_lm))
    one(at.number_input, "Max steps (0: use epochs)").set_value(3)
    one(at.button, "Estimate the cost").click().run()
    assert_no_exception(at)
    [job] = jobs.list_jobs(app_store, kind="estimate")
    assert job.created_by == "lee" and job.target.startswith(snapshot.id) and runs.list_runs(app_store) == []
    assert "Estimating (job" in texts(at)
    done = job_ended(app_store, job.id)
    assert done.status == "completed", done.error
    at.run()
    assert_no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Steps"] == "3" and metrics["Examples"] == str(done.result["examples"])
    assert metrics["Estimated time"].endswith(" min") and metrics["Peak memory"].endswith(" MB")
    assert runs.list_runs(app_store) == []  # estimating trains nothing


def test_compare_splits_the_blind_win_rate_by_category(app_store, snapshot):
    run = completed_run(app_store, snapshot)
    ids = add_comparisons(app_store, run, ("a", "b", "a"))
    for comparison_id, category in zip(ids, ("claims", "claims", "billing"), strict=True):
        app_store.db["comparisons"].update(comparison_id, {"category": category, "judge_winner": "tuned"})
    report = json.loads(app_store.db["evaluations"].get(run.id)["report"])
    report["judge"] = full_report(run)["judge"]
    app_store.db["evaluations"].update(run.id, {"report": json.dumps(report)})
    from schemas.training import VoteInput
    from training.evaluation.blind import vote

    vote(app_store, "rob", ids[0], VoteInput(choice="a"))  # claims: tuned
    vote(app_store, "rob", ids[1], VoteInput(choice="a"))  # claims: base
    vote(app_store, "rob", ids[2], VoteInput(choice="b"))  # billing: base
    at = app(app_store, "rita", "pages/compare.py")
    assert_no_exception(at)
    table = at.dataframe[0].value
    assert list(table["category"]) == ["billing", "claims"]  # worst first
    assert list(table["win rate"]) == ["0%", "50%"] and list(table["votes"]) == [1, 2]
    assert "agrees with people on 33% of 3 votes" in texts(at)
