"""Guideline checks on save: the sample answer key's wording violations are found, clean examples are not flagged."""

import json

import pytest

from conftest import SAMPLE_DATA
from curation.datasets.formats import read_records
from curation.examples.guideline_rules import guideline_warnings
from schemas import ExampleContent


def sample() -> dict[str, ExampleContent]:
    return {p.source_id: p.content for f in sorted((SAMPLE_DATA / "examples").glob("*")) for p in read_records(f)}


def test_planted_violations_are_flagged_and_clean_examples_are_not():
    planted = {
        i
        for f in (SAMPLE_DATA / "planted").glob("*.json")
        for item in json.loads(f.read_text())
        if item["kind"] == "guideline_violation"
        for i in item["ids"]
    }
    flagged = {key for key, content in sample().items() if guideline_warnings(content)}
    assert flagged <= planted  # no clean example is flagged (172 of them)
    # every planted wording violation is found; disclosing another customer's policy (co-018) needs a person
    assert planted - flagged == {"co-018"}


@pytest.mark.parametrize(
    ("response", "rule"),
    [
        ("Don't worry, your claim will definitely be covered.", "promises an outcome"),
        ("Please reply with your full card number and the CVV so I can pay it.", "asks for secrets"),
        ("Honestly you should sue the other driver.", "gives legal advice"),
        ("Yes, that's covered under your policy.", "confirms coverage"),
    ],
)
def test_each_rule_names_the_phrase_and_the_fix(response, rule):
    warnings = guideline_warnings(ExampleContent.from_pair("q", response))
    assert len(warnings) == 1 and rule in warnings[0] and warnings[0].startswith("Turn 2")


def test_refusals_and_user_turns_are_not_flagged():
    refusal = "Please don't type your full card number or CVV here; use the secure portal instead."
    assert guideline_warnings(ExampleContent.from_pair("Can I give you my card number?", refusal)) == []
    assert (
        guideline_warnings(ExampleContent.from_pair("Will it definitely be covered? you should sue them", "Let me check.")) == []
    )
