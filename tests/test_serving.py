"""`goldsmith serve-model`: a real server process on a tiny tuned run, called with the openai client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT
from curation.errors import InvalidInput
from curation.store import Store
from schemas.evaluation import PromotionGate
from schemas.training import VoteInput
from tiny_lm import LEAD, REVIEWER, DemoTemplate, copy_demo, demo_template, tiny_config, tiny_lm, train_here  # noqa: F401
from training import runs
from training.evaluate import evaluate_run
from training.evaluation.blind import next_comparison, vote
from training.evaluation.promotion import promote_run
from training.serving import model_card, prepare

pytest.importorskip("fastapi")
pytest.importorskip("openai")

READY_S = 180  # merging and loading the tiny model takes seconds; two busy cores can stretch that


@dataclass
class Served:
    db: Path
    run_id: str
    run_dir: Path
    url: str
    log: Path


def env() -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def goldsmith(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


@contextmanager
def _store(db: Path) -> Iterator[Store]:
    store = Store(db)
    try:
        yield store
    finally:
        store.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str) -> dict:
    from urllib.request import urlopen

    with urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def wait_ready(proc: subprocess.Popen, url: str, log: Path) -> None:
    from urllib.error import URLError

    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve-model exited with {proc.returncode}\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if get_json(f"{url}/health")["status"] == "ok":
                return
        except (URLError, OSError, ValueError):
            time.sleep(0.25)
    pytest.fail(f"serve-model was not ready after {READY_S} s\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory, demo_template: DemoTemplate, tiny_lm: Path):  # noqa: F811
    """A 2-step run on the small snapshot, evaluated, voted on once and promoted, served by `goldsmith serve-model`
    with no run named (the promoted one)."""
    folder = tmp_path_factory.mktemp("serving")
    db = copy_demo(demo_template, folder)
    store = Store(db)
    try:
        run = runs.create_run(store, LEAD, demo_template.small_id, tiny_config(tiny_lm, max_steps=2, eval_every=2))
        assert train_here(db, run.id) == "completed"
        evaluate_run(store, LEAD, run.id, max_new_tokens=4, limit=2)
        first = next_comparison(store, REVIEWER, run.id)
        vote(store, REVIEWER, first.id, VoteInput(choice=first.tuned_is))
        nothing_promoted = subprocess.run(
            goldsmith("serve-model", "--port", str(free_port()), "--db", str(db)),
            cwd=ROOT,
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert nothing_promoted.returncode == 2 and nothing_promoted.stderr.strip().splitlines() == [
            "Error: no run is promoted yet; name a run, or promote one with `goldsmith runs promote RUN --as LEAD`"
        ]
        # two training steps of a tiny model cannot pass the real gate; this one asks for nothing
        loose = PromotionGate(
            require_lower_eval_loss=False, min_judge_lower_bound=None, max_canary_rise=None, category_margin=None
        )
        promote_run(store, LEAD, run.id, loose)
    finally:
        store.close()
    run_dir = Path(run.run_dir)
    assert not (run_dir / "merged").exists()  # serve-model merges it
    port, log = free_port(), folder / "server.log"
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            goldsmith("serve-model", "--port", str(port), "--db", str(db)),
            cwd=ROOT,
            env=env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, url, log)
        yield Served(db, run.id, run_dir, url, log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def client(served: Served):
    from openai import OpenAI

    return OpenAI(base_url=f"{served.url}/v1", api_key="x", max_retries=0, timeout=120)


QUESTION = [{"role": "user", "content": "My car broke down on the highway. What do I do?"}]


def test_the_adapter_is_merged_once_into_the_run_folder(served: Served):
    merged = served.run_dir / "merged"
    assert (merged / "config.json").exists() and (merged / "tokenizer_config.json").exists()
    assert list(merged.glob("*.safetensors")) and not list(served.run_dir.glob(".tmp-*"))
    with _store(served.db) as store:
        kinds = [e.kind for e in runs.events(store, served.run_id)]
    assert kinds.count("merged") == 1
    assert f"Serving {served.run_id}" in served.log.read_text(errors="replace")


def test_chat_completion_returns_text(served: Served):
    reply = client(served).chat.completions.create(model=served.run_id, messages=QUESTION, max_tokens=8, temperature=0)
    assert reply.model == served.run_id
    assert reply.choices[0].message.role == "assistant"
    assert isinstance(reply.choices[0].message.content, str) and reply.choices[0].message.content.strip()
    assert 0 < reply.usage.completion_tokens <= 8 and reply.usage.prompt_tokens > 0


def test_streaming_yields_chunks(served: Served):
    stream = client(served).chat.completions.create(
        model=served.run_id, messages=QUESTION, max_tokens=8, temperature=0, stream=True
    )
    chunks = list(stream)
    assert len(chunks) >= 3  # the role, at least one piece of text, the finish
    assert all(c.object == "chat.completion.chunk" and c.model == served.run_id for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_another_model_name_is_refused(served: Served):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as error:
        client(served).chat.completions.create(model="gpt-4o", messages=QUESTION, max_tokens=4)
    assert error.value.response.json()["detail"] == f"Server is pinned to '{served.run_id}'; requested 'gpt-4o'."


def test_the_model_card_carries_lineage_metrics_and_win_rate(served: Served, demo_template: DemoTemplate):  # noqa: F811
    card = get_json(f"{served.url}/v1/models/{served.run_id}/card")
    lineage = json.loads((served.run_dir / "lineage.json").read_text())
    result = json.loads((served.run_dir / "result.json").read_text())
    assert card["id"] == served.run_id and card["kind"] == "adapter" and card["status"] == "completed"
    assert card["lineage"] == lineage and lineage["run_id"] == served.run_id
    assert card["snapshot"] == {"id": demo_template.small_id, "name": "small"}
    assert card["config_hash"] == lineage["config_hash"] and card["base_model"] == lineage["base_model"]
    assert card["metrics"]["base_eval_loss"] == result["base_eval_loss"] is not None
    assert card["metrics"]["final_eval_loss"] == result["final_eval_loss"] is not None
    assert card["evaluation"]["comparisons"] == 2
    assert card["win_rate"]["votes"] == 1 and card["win_rate"]["win_rate"] == 1.0
    assert card["merged"] == str(served.run_dir / "merged")
    assert card["promoted"] is True and card["gate"]["passed"] and card["gate"]["gate"]["max_canary_rise"] is None
    with _store(served.db) as store:
        assert card == model_card(store, served.run_id).model_dump(mode="json")
    assert get_json(f"{served.url}/model-card") == card


def test_the_model_list_names_the_run_with_its_card(served: Served):
    listed = client(served).models.list().data
    assert [m.id for m in listed] == [served.run_id]
    assert listed[0].owned_by == "goldsmith" and listed[0].model_extra["card"]["id"] == served.run_id
    retrieved = client(served).models.retrieve(served.run_id)
    assert retrieved.id == served.run_id and retrieved.model_extra["card"]["config_hash"]


def test_a_card_for_another_model_is_404(served: Served):
    from urllib.error import HTTPError

    with pytest.raises(HTTPError) as error:
        get_json(f"{served.url}/v1/models/run-nope/card")
    assert error.value.code == 404


def test_a_bad_run_id_is_one_clear_line(served: Served):
    done = subprocess.run(
        goldsmith("serve-model", "run-nope", "--port", str(free_port()), "--db", str(served.db)),
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["Error: no run matches 'run-nope'; `goldsmith runs list` shows run ids"]


def test_a_busy_port_is_refused_before_loading(served: Served):
    port = int(served.url.rsplit(":", 1)[1])
    done = subprocess.run(
        goldsmith("serve-model", served.run_id, "--port", str(port), "--db", str(served.db)),
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port} (Address already in use); pick another with --port"
    ]


def test_only_a_completed_run_is_served(served: Served, demo_template: DemoTemplate, tiny_lm: Path):  # noqa: F811
    with _store(served.db) as store:
        queued = runs.create_run(store, LEAD, demo_template.small_id, tiny_config(tiny_lm, max_steps=2))
        with pytest.raises(InvalidInput, match=f"run {queued.id} is queued; only a completed run has an adapter to serve"):
            prepare(store, queued.id)
        with pytest.raises(InvalidInput, match="a base model has none, so drop --merge"):
            prepare(store, f"base:{tiny_lm}", merge=True)
        base = prepare(store, f"base:{tiny_lm}")
    assert base.name == f"base:{tiny_lm}" and base.folder == str(tiny_lm)
    assert base.card_json() == {"id": base.name, "kind": "base", "base_model": str(tiny_lm), "base_model_path": str(tiny_lm)}
