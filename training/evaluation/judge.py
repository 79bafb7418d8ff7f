"""The automatic judge: which of two answers to an eval prompt is better, base's or tuned's.

Two judges, one verdict shape (`Verdict`: tuned, base or tie, with the scores behind it):

- `offline_verdicts` is always available: each answer's cosine similarity to the approved
  reference answer (MiniLM, through the store's embedding cache), after a sanity check that
  sinks an empty, refusing (when the reference does not refuse), looping, far too short or far
  too long answer. A difference under TIE_MARGIN is a tie.
- `llm_verdicts` asks a language model: any model Goldsmith loads here (`base:NAME`, a run id)
  or any OpenAI-compatible endpoint (`goldsmith serve-model`, vLLM, a hosted API). It gets the
  team's rubric and guidelines, the prompt, the reference and the two answers in a seeded random
  order, and answers with per-criterion scores for A and B and a verdict, as JSON.

`agreement` compares a judge's verdicts with people's blind votes on the same comparisons
(share agreed and Cohen's kappa), so a lead can see whether to trust it; `summarise` turns
verdicts into a win rate with a Wilson interval, as people's votes are.
"""

from __future__ import annotations

import json
import math
import random
import re
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from curation.errors import InvalidInput
from curation.store import Store
from schemas.evaluation import Agreement, JudgeSummary, Winner
from schemas.review import RUBRIC

TIE_MARGIN = 0.02  # cosine similarities closer than this are a tie
SANITY_PENALTY = 1.0  # subtracted from a failing answer's similarity: it loses to any sane answer
# A refusal declines to help; an apology alone ("I'm sorry, that sounds stressful") is empathy, not a refusal.
_DECLINED = r"(?:help|assist|provide|answer|do that|share|give|discuss)"
REFUSALS = re.compile(
    rf"\b(?:as an ai\b|i (?:cannot|can't|can not|won't be able to) {_DECLINED}|i(?: am|'m) (?:unable|not able) to {_DECLINED}"
    r"|i do not have access|i don't have access)",
    re.IGNORECASE,
)
LLM_TIMEOUT_S = 120


@dataclass(frozen=True)
class Verdict:
    """One eval prompt's verdict, and the scores and checks behind it."""

    winner: Winner
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Item:
    """What a judge sees of one eval prompt."""

    prompt: Sequence[dict[str, str]]
    reference: str
    base: str
    tuned: str


def wilson(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (successes may be fractional: ties count half)."""
    if n == 0:
        return (0.0, 1.0)
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def win_figures(winners: Sequence[Winner]) -> tuple[float | None, tuple[float, float] | None]:
    """Win rate (ties count half) and its 95% Wilson interval; (None, None) for no verdicts."""
    if not winners:
        return None, None
    counts = Counter(winners)
    score = counts["tuned"] + counts["tie"] / 2
    return score / len(winners), wilson(score, len(winners))


def summarise(method: str, verdicts: Sequence[Verdict]) -> JudgeSummary:
    """The judge's verdicts as wins, losses and ties of the tuned model, with the win rate's interval."""
    counts = Counter(v.winner for v in verdicts)
    rate, interval = win_figures([v.winner for v in verdicts])
    failed = Counter(side for v in verdicts for side in v.detail.get("failed", {}))
    return JudgeSummary(
        method=method,
        wins=counts["tuned"],
        losses=counts["base"],
        ties=counts["tie"],
        win_rate=rate,
        interval=interval,
        failed_sanity=dict(sorted(failed.items())),
    )


# ---------------------------------------------------------------------------- the offline judge


def sanity_problem(answer: str, reference: str) -> str | None:
    """Why an answer cannot be a good one whatever it resembles, or None."""
    words, ref_words = answer.split(), reference.split()
    if not words:
        return "empty"
    if REFUSALS.search(answer) and not REFUSALS.search(reference):
        return "refuses"
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    if len(trigrams) >= 12 and len(set(trigrams)) / len(trigrams) < 0.5:
        return "repeats itself"
    if ref_words and len(words) < max(3, len(ref_words) // 8):
        return "far too short"
    if ref_words and len(words) > 4 * len(ref_words) + 60:
        return "far too long"
    return None


def offline_verdicts(store: Store, items: Sequence[Item], *, model: str | None = None) -> tuple[str, list[Verdict]]:
    """Judge by similarity to the reference answer (MiniLM, cached in the store); (method, verdicts)."""
    from curation.similarity.cache import embeddings
    from curation.similarity.embeddings import get_embedder

    texts = [t for item in items for t in (item.reference, item.base, item.tuned)]
    matrix, _ = embeddings(store, texts, model)
    verdicts = []
    for n, item in enumerate(items):
        reference, base, tuned = matrix[3 * n], matrix[3 * n + 1], matrix[3 * n + 2]
        scores = {"base": float(base @ reference), "tuned": float(tuned @ reference)}
        failed = {}
        for side, answer in (("base", item.base), ("tuned", item.tuned)):
            problem = sanity_problem(answer, item.reference)
            if problem:
                failed[side] = problem
                scores[side] -= SANITY_PENALTY
        gap = scores["tuned"] - scores["base"]
        winner: Winner = "tie" if abs(gap) < TIE_MARGIN else ("tuned" if gap > 0 else "base")
        detail: dict[str, Any] = {"similarity": {k: round(v, 4) for k, v in scores.items()}}
        if failed:
            detail["failed"] = failed
        verdicts.append(Verdict(winner, detail))
    return f"offline:{get_embedder(model).model_name}", verdicts


# ---------------------------------------------------------------------------- the LLM judge

JUDGE_SYSTEM = (
    "You are a strict evaluator of a support team's assistant. Compare two answers to the same customer "
    "conversation against the team's rubric, its guidelines and the approved reference answer. Score each "
    "answer from 1 (poor) to 5 (excellent) on every criterion, then give a verdict. Reply with JSON only, "
    'shaped like {"scores": {"A": {CRITERION: N, ...}, "B": {CRITERION: N, ...}}, "verdict": "A" | "B" | "tie"}.'
)


def judge_prompt(item: Item, first: str, second: str, guidelines: str) -> list[dict[str, str]]:
    """The judge's chat: rubric and guidelines, the conversation, the reference, answers A and B."""
    conversation = "\n".join(f"[{m['role']}] {m['content']}" for m in item.prompt)
    criteria = ", ".join(RUBRIC)
    user = (
        f"Rubric criteria: {criteria}.\n\nGuidelines:\n{guidelines.strip() or '(none)'}\n\n"
        f"Conversation:\n{conversation}\n\nReference answer (approved by the team):\n{item.reference}\n\n"
        f"Answer A:\n{first}\n\nAnswer B:\n{second}\n\n"
        f'Score A and B on {criteria} (1-5) and give the verdict ("A", "B" or "tie") as JSON.'
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_judgement(text: str) -> tuple[str, dict[str, Any]]:
    """The verdict (A, B or tie) and the scores in a judge's reply; a reply without one is a tie, noted."""
    match = re.search(r"\{.*\}", text, flags=re.S)
    data: Any = None
    if match:
        try:
            data = json.loads(match.group(0))
        except json.JSONDecodeError:
            data = None
    if not isinstance(data, dict):
        said = re.search(r"verdict\W+(A|B|tie)\b", text, flags=re.I)
        return (said.group(1).upper() if said else "TIE"), {"unparsed": text[:300]}
    raw = str(data.get("verdict", "tie")).strip().upper()
    verdict = raw if raw in ("A", "B") else "TIE"
    scores = data.get("scores") if isinstance(data.get("scores"), dict) else {}
    return verdict, {"scores": scores}


Ask = Callable[[list[list[dict[str, str]]]], list[str]]


def endpoint_asker(url: str, model: str, *, api_key: str | None = None, max_tokens: int = 256) -> Ask:
    """Ask an OpenAI-compatible endpoint (`url` ends in /v1) one chat completion per prompt, greedy."""
    target = url.rstrip("/") + "/chat/completions"
    if not target.startswith(("http://", "https://")):
        raise InvalidInput(f"--judge-url must be an http(s) URL such as http://127.0.0.1:8000/v1, got {url!r}")

    def ask(chats: list[list[dict[str, str]]]) -> list[str]:
        replies = []
        for chat in chats:
            body = json.dumps({"model": model, "messages": chat, "temperature": 0, "max_tokens": max_tokens}).encode()
            headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
            request = urllib.request.Request(target, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=LLM_TIMEOUT_S) as response:
                    reply = json.loads(response.read())
            except (urllib.error.URLError, OSError, ValueError) as error:
                reason = getattr(error, "reason", error)
                raise InvalidInput(
                    f"the judge endpoint {target} did not answer ({reason}); start it (e.g. `goldsmith serve-model`) "
                    "or check --judge-url and --judge-model"
                ) from None
            try:
                replies.append(str(reply["choices"][0]["message"]["content"] or ""))
            except (KeyError, IndexError, TypeError):
                raise InvalidInput(f"the judge endpoint {target} sent no chat completion: {str(reply)[:200]}") from None
        return replies

    return ask


def local_asker(model: Any, tokenizer: Any, *, max_tokens: int = 256) -> Ask:
    """Ask a model loaded here (batched generation, greedy)."""
    from training.evaluation.generation import generate

    def ask(chats: list[list[dict[str, str]]]) -> list[str]:
        return generate(model, tokenizer, chats, max_new_tokens=max_tokens)

    return ask


def llm_verdicts(items: Sequence[Item], ask: Ask, *, guidelines: str = "", seed: int = 0) -> list[Verdict]:
    """Judge with a language model: answers in a seeded random order, verdicts mapped back to tuned/base."""
    order = random.Random(f"judge:{seed}")
    sides = [order.choice("ab") for _ in items]  # which letter the tuned answer gets
    chats = [
        judge_prompt(item, *((item.tuned, item.base) if side == "a" else (item.base, item.tuned)), guidelines)
        for item, side in zip(items, sides, strict=True)
    ]
    verdicts = []
    for side, reply in zip(sides, ask(chats), strict=True):
        letter, detail = parse_judgement(reply)
        tuned_letter = side.upper()
        winner: Winner = "tie" if letter == "TIE" else ("tuned" if letter == tuned_letter else "base")
        verdicts.append(Verdict(winner, {**detail, "tuned_was": tuned_letter}))
    return verdicts


# ---------------------------------------------------------------------------- agreement with people


def agreement(pairs: Sequence[tuple[Winner, Winner]]) -> Agreement | None:
    """Share agreed and Cohen's kappa over (judge, person) verdict pairs; None without pairs."""
    if not pairs:
        return None
    n = len(pairs)
    agreed = sum(1 for judge, person in pairs if judge == person)
    judge_counts = Counter(j for j, _ in pairs)
    person_counts = Counter(p for _, p in pairs)
    chance = sum(judge_counts[k] * person_counts[k] for k in ("tuned", "base", "tie")) / (n * n)
    observed = agreed / n
    kappa = (observed - chance) / (1 - chance) if chance < 1 else (1.0 if observed == 1 else None)
    return Agreement(votes=n, agreed=agreed, share=observed, kappa=kappa)
