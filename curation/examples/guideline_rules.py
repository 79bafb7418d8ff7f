"""Guideline checks a draft gets on every save: the compliance rules that wording alone can reveal.

These are warnings for the author and the reviewer, not verdicts: a rule names the turn, the
phrase that tripped it and the fix. They mirror the sample team's guidelines (never promise a
claim outcome, never ask for full card numbers, CVV, SSN or passwords, no legal advice, do not
confirm coverage without the policy details).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas import ExampleContent


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    fix: str


RULES = (
    Rule(
        "promises an outcome",
        re.compile(
            r"\b(?:definitely|certainly|guaranteed?|for sure|100%)\b[^.!?\n]{0,60}"
            r"\b(?:covered|approved|paid|pay(?:s|out)?|reimburs\w*)\b"
            r"|\bwill (?:definitely |certainly )?be (?:fully )?(?:covered|approved|paid in full)\b"
            r"|\bpaid in full\b",
            re.IGNORECASE,
        ),
        "never promise a claim outcome or payout; say what the adjuster reviews and point to the policy",
    ),
    Rule(
        "gives legal advice",
        re.compile(
            r"\byou should (?:sue|file a lawsuit|take (?:them|him|her|the other driver) to court)\b|\bsue (?:the|your|them)\b",
            re.IGNORECASE,
        ),
        "do not give legal advice; the customer may talk to their own attorney, and we escalate legal questions",
    ),
    Rule(
        "confirms coverage without the policy",
        re.compile(
            r"\b(?:yes|sure)[,!]? (?:that'?s|that is|it'?s|it is|you'?re|you are) (?:definitely |fully )?covered\b", re.IGNORECASE
        ),
        "do not confirm coverage without the policy details; ask, or point to the declarations page",
    ),
)


_SECRET = re.compile(
    r"\b(?:full (?:16-digit )?(?:card|credit card|debit card) number|16-digit card number|cvv|security code"
    r"|(?:full )?social security number|ssn|your (?:current )?password)\b",
    re.IGNORECASE,
)
_REQUEST = re.compile(r"\b(?:type|send|share|give|provide|enter|reply|tell me|read me)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:don'?t|do not|never|not|no need|won'?t|will not|avoid)\b", re.IGNORECASE)
SECRETS_FIX = "never ask for full card numbers, CVV, SSN or passwords in chat; point to the secure portal (last 4 digits at most)"


def _asks_for_secret(text: str) -> str | None:
    """The secret a turn asks the customer to hand over in chat, unless the request is negated."""
    for found in _SECRET.finditer(text):
        before = text[max(0, found.start() - 160) : found.start()]
        requests = list(_REQUEST.finditer(before))
        request = requests[-1] if requests else None  # the nearest request before the secret
        if request is not None and not _NEGATION.search(before[max(0, request.start() - 40) :]):
            return found.group(0)
    return None


def guideline_warnings(content: ExampleContent) -> list[str]:
    """One sentence per rule an assistant turn breaks: the rule, the phrase, and the fix."""
    warnings = []
    for n, message in enumerate(content.messages, start=1):
        if message.role != "assistant":
            continue
        for rule in RULES:
            found = rule.pattern.search(message.content)
            if found:
                warnings.append(f'Turn {n} {rule.name} ("{found.group(0).strip()}"): {rule.fix}.')
        secret = _asks_for_secret(message.content)
        if secret:
            warnings.append(f'Turn {n} asks for secrets in chat ("{secret}"): {SECRETS_FIX}.')
    return warnings
