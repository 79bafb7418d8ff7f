"""The automatic judge: the offline reference judge on the real MiniLM, the LLM judge against a fake
OpenAI-compatible server started here (a real HTTP server on a thread), and agreement with people."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from curation.errors import InvalidInput
from curation.similarity.embeddings import DEFAULT_MODEL
from schemas.review import RUBRIC
from training.evaluation.judge import (
    Item,
    agreement,
    endpoint_asker,
    llm_verdicts,
    offline_verdicts,
    parse_judgement,
    sanity_problem,
    summarise,
    wilson,
)

QUESTION = [{"role": "user", "content": "Is hail damage to my roof covered?"}]
REFERENCE = (
    "Hail damage to your roof is covered under your homeowners policy's dwelling coverage, minus your deductible. "
    "Take photos of the damage, prevent further leaks if it is safe, and start a claim in the Lakeshore app."
)
ON_TOPIC = (
    "Yes, roof damage from hail falls under the dwelling coverage of your home policy, after the deductible. "
    "Photograph the roof, cover any leaks if you safely can, and file the claim in the Lakeshore app."
)
OFF_TOPIC = "The French Revolution began in 1789 and transformed the political landscape of Europe for decades."


def test_the_offline_judge_prefers_the_answer_closer_to_the_reference(store):
    items = [
        Item(QUESTION, REFERENCE, base=OFF_TOPIC, tuned=ON_TOPIC),  # tuned wins
        Item(QUESTION, REFERENCE, base=ON_TOPIC, tuned=OFF_TOPIC),  # base wins
        Item(QUESTION, REFERENCE, base=ON_TOPIC, tuned=ON_TOPIC),  # the same answer: a tie
        Item(QUESTION, REFERENCE, base=ON_TOPIC, tuned="I'm sorry, I cannot help with that request about your roof."),
    ]
    method, verdicts = offline_verdicts(store, items)
    assert method == f"offline:{DEFAULT_MODEL}"
    assert [v.winner for v in verdicts] == ["tuned", "base", "tie", "base"]
    first = verdicts[0].detail["similarity"]
    assert first["tuned"] > 0.6 > 0.2 > first["base"]  # MiniLM: a paraphrase is close, an unrelated text is not
    assert verdicts[3].detail["failed"] == {"tuned": "refuses"}
    summary = summarise(method, verdicts)
    assert (summary.wins, summary.losses, summary.ties) == (1, 2, 1)
    assert summary.win_rate == pytest.approx(1.5 / 4) and summary.interval == pytest.approx(wilson(1.5, 4))
    assert summary.failed_sanity == {"tuned": 1}
    # the embeddings are cached in the store: the same texts are not embedded twice
    cached = store.db.execute("SELECT count(*) FROM embeddings").fetchone()[0]
    offline_verdicts(store, items)
    assert store.db.execute("SELECT count(*) FROM embeddings").fetchone()[0] == cached > 0


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("", "empty"),
        ("I'm sorry, but as an AI I cannot give advice on that.", "refuses"),
        ("Call us. " + "the roof the roof the roof " * 10, "repeats itself"),
        ("Yes.", "far too short"),
        (" ".join(["word"] * 10) + " " + " ".join(f"w{i}" for i in range(400)), "far too long"),
        (ON_TOPIC, None),
        ("I'm sorry, that sounds stressful. Here's what to do: photograph the roof and start a claim in the app.", None),
    ],
)
def test_the_sanity_check_names_what_is_wrong(answer, problem):
    assert sanity_problem(answer, REFERENCE) == problem


def test_a_refusal_is_no_fault_when_the_reference_refuses_too():
    reference = "I'm sorry, I can't share another customer's policy details. Ask them to call us themselves."
    assert sanity_problem("I'm sorry, I cannot share someone else's policy. They can call us directly.", reference) is None


@pytest.mark.parametrize(
    ("pairs", "share", "kappa"),
    [
        # Cohen's kappa by hand: po = 0.7; judge tuned 6/base 4, people tuned 5/base 5 -> pe = .3+.2 = 0.5 -> 0.4
        ([("tuned", "tuned")] * 4 + [("base", "base")] * 3 + [("tuned", "base")] * 2 + [("base", "tuned")], 0.7, 0.4),
        ([("tuned", "tuned"), ("base", "base"), ("tie", "tie")], 1.0, 1.0),
        ([("tuned", "base"), ("base", "tuned")], 0.0, -1.0),
        ([("tuned", "tuned"), ("tuned", "tuned")], 1.0, 1.0),  # everyone always says tuned: chance is 1
    ],
)
def test_agreement_share_and_cohens_kappa(pairs, share, kappa):
    found = agreement(pairs)
    assert found.votes == len(pairs) and found.share == pytest.approx(share) and found.kappa == pytest.approx(kappa)


def test_no_votes_no_agreement():
    assert agreement([]) is None


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ('{"scores": {"A": {"accuracy": 5}, "B": {"accuracy": 2}}, "verdict": "A"}', "A"),
        ('Sure! ```json\n{"verdict": "b", "scores": {}}\n```', "B"),
        ('{"verdict": "tie"}', "TIE"),
        ("I think the verdict: B is better.", "B"),
        ("no idea", "TIE"),
    ],
)
def test_a_judges_reply_is_read_leniently(reply, verdict):
    assert parse_judgement(reply)[0] == verdict


class FakeOpenAI(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that prefers the answer containing 'portal', as a judge model would."""

    requests: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.requests.append({"path": self.path, "body": body})
        prompt = body["messages"][-1]["content"]
        a, b = prompt.split("Answer A:\n", 1)[1].split("\n\nAnswer B:\n", 1)
        verdict = "A" if "portal" in a else ("B" if "portal" in b.split("\n\nScore A and B", 1)[0] else "tie")
        content = json.dumps({"scores": {"A": dict.fromkeys(RUBRIC, 4), "B": dict.fromkeys(RUBRIC, 2)}, "verdict": verdict})
        reply = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
            }
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(reply.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_endpoint():
    FakeOpenAI.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_the_llm_judge_sees_both_answers_in_random_order_and_its_verdicts_map_back(fake_endpoint):
    items = [Item(QUESTION, REFERENCE, base="Call us some day.", tuned=f"Use the portal, answer {n}.") for n in range(6)]
    items.append(Item(QUESTION, REFERENCE, base="Maybe.", tuned="Perhaps."))  # neither mentions the portal: a tie
    verdicts = llm_verdicts(items, endpoint_asker(fake_endpoint, "judge-model"), guidelines="Be warm. Never promise.", seed=3)
    assert [v.winner for v in verdicts] == ["tuned"] * 6 + ["tie"]
    letters = [v.detail["tuned_was"] for v in verdicts]
    assert set(letters) == {"A", "B"}  # the tuned answer was shown first in some prompts, second in others
    assert verdicts[0].detail["scores"]["A"] == dict.fromkeys(RUBRIC, 4)
    request = FakeOpenAI.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["body"]["model"] == "judge-model"
    assert request["body"]["temperature"] == 0
    prompt = request["body"]["messages"][-1]["content"]
    assert all(name in prompt for name in RUBRIC) and "Be warm. Never promise." in prompt and REFERENCE in prompt
    assert "Use the portal, answer 0." in prompt and "Call us some day." in prompt
    again = llm_verdicts(items, endpoint_asker(fake_endpoint, "judge-model"), seed=3)
    assert [v.detail["tuned_was"] for v in again] == letters  # the order is seeded


def test_an_unreachable_judge_endpoint_says_how_to_fix_it():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ask = endpoint_asker(f"http://127.0.0.1:{port}/v1", "m")
    with pytest.raises(InvalidInput, match="did not answer.*serve-model"):
        ask([[{"role": "user", "content": "hi"}]])
    with pytest.raises(InvalidInput, match="http"):
        endpoint_asker("127.0.0.1:8000", "m")
