"""Every record shape import reads, each on a small file written in that shape, as its documentation defines it.

OpenAI chat fine-tuning (content parts, per-turn `weight`, preference `preferred_output`), TRL
(prompt/completion, implicit and explicit preference, KTO `label`), LLaMA-Factory (alpaca, sharegpt
and v1 messages with `value` parts, `loss_weight`, `chosen`/`rejected`, `kto_tag`), Dolly
(`context`), and what import tells people about files it cannot read as they are.
"""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from curation.datasets.importing import import_file
from curation.errors import InvalidInput
from schemas import ExampleFilter

runner = CliRunner()
Q, A = "How do I reset my password?", "Use 'Forgot password' on the sign-in page."


def jsonl(path: Path, *records: dict) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def reasons(report) -> list[str]:
    return [r.reason for r in report.rejected]


def only_example(store):
    [example] = store.list_examples(ExampleFilter(page_size=10)).items
    return example


# ---------------------------------------------------------------------------------------- content parts


def test_openai_text_parts_are_joined_in_order(team, tmp_path):
    parts = [{"type": "text", "text": "First paragraph."}, {"type": "text", "text": "Second paragraph."}]
    path = jsonl(
        tmp_path / "parts.jsonl", {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": A}]}
    )
    report = import_file(team, "amy", path)
    assert (report.imported, report.rejected) == (1, [])
    assert only_example(team).messages[0].content == "First paragraph.\nSecond paragraph."


def test_a_non_text_part_rejects_the_record_naming_the_part_type(team, tmp_path):
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    record = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": Q}, image]}, {"role": "assistant", "content": A}]
    }
    report = import_file(team, "amy", jsonl(tmp_path / "img.jsonl", record))
    assert report.imported == 0
    assert "image_url part (part 2)" in reasons(report)[0] and "text conversations only" in reasons(report)[0]


def test_llama_factory_v1_value_parts_and_loss_weight(team, tmp_path):
    record = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "value": "Hi"}], "loss_weight": 0.0},
            {"role": "assistant", "content": [{"type": "text", "value": "Hello."}], "loss_weight": 0.0},
            {"role": "user", "content": [{"type": "text", "value": Q}], "loss_weight": 0.0},
            {"role": "assistant", "content": [{"type": "text", "value": A}], "loss_weight": 1.0},
        ]
    }
    report = import_file(team, "amy", jsonl(tmp_path / "v1.jsonl", record))
    assert (report.imported, report.rejected) == (1, [])
    messages = only_example(team).messages
    assert [m.content for m in messages] == ["Hi", "Hello.", Q, A]
    assert [m.weight for m in messages] == [None, 0, None, 1]


# ---------------------------------------------------------------------------------------- per-turn weights


def test_openai_weight_zero_is_kept_and_weight_one_on_a_user_turn_is_refused(team, tmp_path):
    muted = {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Wrong answer.", "weight": 0},
            {"role": "user", "content": Q},
            {"role": "assistant", "content": A, "weight": 1},
        ]
    }
    odd = {"messages": [{"role": "user", "content": "q", "weight": 1}, {"role": "assistant", "content": "a"}]}
    half = {"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2", "weight": 0.5}]}
    report = import_file(team, "amy", jsonl(tmp_path / "w.jsonl", muted, odd, half))
    assert report.imported == 1
    assert "user turn with weight 1" in reasons(report)[0]
    assert "weight 0.5" in reasons(report)[1] and "0 (not learned) or 1" in reasons(report)[1]
    assert [m.weight for m in only_example(team).messages] == [None, 0, None, 1]


# ---------------------------------------------------------------------------------------- KTO


def test_kto_label_false_is_stored_rejected_with_the_reason_and_never_approved(team, tmp_path):
    good = {"messages": [{"role": "user", "content": Q}, {"role": "assistant", "content": A}], "label": True}
    bad = {
        "messages": [{"role": "user", "content": Q}, {"role": "assistant", "content": "Email us your password."}],
        "label": False,
    }
    trl = {
        "prompt": [{"role": "user", "content": "q3"}],
        "completion": [{"role": "assistant", "content": "a3"}],
        "label": "false",
    }
    report = import_file(team, "lee", jsonl(tmp_path / "kto.jsonl", good, bad), status="approved")
    assert (report.imported, report.imported_as_rejected) == (2, 1)
    report = import_file(team, "lee", jsonl(tmp_path / "trl.jsonl", trl), status="approved")  # TRL's unpaired shape
    assert (report.imported, report.imported_as_rejected) == (1, 1)
    by_answer = {e.response: e for e in team.list_examples(ExampleFilter(page_size=10)).items}
    assert by_answer[A].status == "approved"
    assert by_answer["Email us your password."].status == "rejected" and by_answer["a3"].status == "rejected"
    note = team.history("example", by_answer["a3"].id)[0].after
    assert "KTO label marks this answer as bad" in note["reason"]


def test_llama_factory_kto_tag(team, tmp_path):
    turns = [{"from": "human", "value": Q}, {"from": "gpt", "value": A}]
    report = import_file(
        team,
        "amy",
        jsonl(tmp_path / "k.json", {"conversations": turns, "kto_tag": False}, {"conversations": turns[:1], "kto_tag": "maybe"}),
    )
    assert (report.imported, report.imported_as_rejected) == (1, 1)
    assert "kto_tag must be true or false" in reasons(report)[0]


# ---------------------------------------------------------------------------------------- preference pairs

PAIR_SHAPES = {
    "TRL explicit prompt": {"prompt": Q, "chosen": A, "rejected": "Email us."},
    "TRL implicit prompt": {
        "chosen": [{"role": "user", "content": Q}, {"role": "assistant", "content": A}],
        "rejected": [{"role": "user", "content": Q}, {"role": "assistant", "content": "Email us."}],
    },
    "LLaMA-Factory alpaca": {"instruction": Q, "input": "", "chosen": A, "rejected": "Email us."},
    "LLaMA-Factory sharegpt": {
        "conversations": [{"from": "human", "value": Q}],
        "chosen": {"from": "gpt", "value": A},
        "rejected": {"from": "gpt", "value": "Email us."},
    },
    "LLaMA-Factory v1": {
        "chosen_messages": [{"role": "user", "content": Q}, {"role": "assistant", "content": A}],
        "rejected_messages": [{"role": "user", "content": Q}, {"role": "assistant", "content": "Email us."}],
    },
    "OpenAI preference": {
        "input": {"messages": [{"role": "user", "content": Q}]},
        "preferred_output": [{"role": "assistant", "content": A}],
        "non_preferred_output": [{"role": "assistant", "content": "Email us."}],
    },
}


@pytest.mark.parametrize("shape", PAIR_SHAPES)
def test_a_preference_pair_is_refused_naming_the_format_and_the_option(team, tmp_path, shape):
    report = import_file(team, "amy", jsonl(tmp_path / "p.jsonl", PAIR_SHAPES[shape]))
    assert report.imported == 0
    reason = reasons(report)[0]
    assert "preference pair" in reason and shape.split()[0] in reason and "--preference chosen" in reason


@pytest.mark.parametrize("shape", PAIR_SHAPES)
def test_with_preference_chosen_the_chosen_answer_is_imported_and_the_rejected_kept(team, tmp_path, shape):
    report = import_file(team, "amy", jsonl(tmp_path / "p.jsonl", PAIR_SHAPES[shape]), preference="chosen")
    assert (report.imported, report.rejected) == (1, [])
    example = only_example(team)
    assert (example.prompt, example.response) == (Q, A)
    rejected = example.metadata["rejected_answer"]
    assert "Email us." in json.dumps(rejected)


# ---------------------------------------------------------------------------------------- context fields


def test_dolly_context_stays_apart_and_reaches_the_model(team, tmp_path):
    record = {
        "instruction": "When was the policy last changed?",
        "context": "The policy was last changed in March 2024.",
        "response": "In March 2024.",
        "category": "closed_qa",
    }
    report = import_file(team, "amy", jsonl(tmp_path / "dolly.jsonl", record))
    assert (report.format, report.imported) == ("dolly", 1)
    example = only_example(team)
    user = example.messages[0]
    assert (user.content, user.context) == (record["instruction"], record["context"])
    assert user.text == f"{record['instruction']}\n\n{record['context']}"  # CONTEXT_TEMPLATE: what a model sees
    assert example.metadata == {"dolly_category": "closed_qa"} and example.tags.category is None


# ---------------------------------------------------------------------------------------- multimodal


def test_multimodal_records_are_refused_with_a_reason(team, tmp_path):
    record = {
        "messages": [{"role": "user", "content": "<image>What is in the picture?"}, {"role": "assistant", "content": "A cat."}],
        "images": ["cat.png"],
    }
    report = import_file(team, "amy", jsonl(tmp_path / "mm.jsonl", record))
    assert report.imported == 0 and "has images (1)" in reasons(report)[0]


# ---------------------------------------------------------------------------------------- reports that tell the truth


def test_json_array_positions_are_indexes_with_their_lines(team, tmp_path):
    ok = {"messages": [{"role": "user", "content": Q}, {"role": "assistant", "content": A}]}
    path = tmp_path / "a.json"
    path.write_text("[\n" + json.dumps(ok) + ",\n" + json.dumps({"messages": None}) + "\n]\n")
    report = import_file(team, "amy", path)
    [rejection] = report.rejected
    assert (rejection.index, rejection.line, rejection.place) == (1, 3, "record [1] (line 3)")
    assert "not null" in rejection.reason and "NoneType" not in rejection.reason


def test_a_trailing_comma_is_reported_and_nothing_is_lost(team, tmp_path):
    ok = {"messages": [{"role": "user", "content": Q}, {"role": "assistant", "content": A}]}
    path = tmp_path / "a.json"
    path.write_text("[\n" + json.dumps(ok) + ",\n]\n")
    report = import_file(team, "amy", path)
    assert (report.imported, report.rejected) == (1, [])
    assert [w.reason for w in report.warnings] == ["a comma after the last record; JSON does not allow it (nothing was lost)"]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (
            "object.json",
            json.dumps({"messages": [{"role": "user", "content": Q}]}, indent=2).encode(),
            "one JSON object spread over",
        ),
        ("utf16.jsonl", '{"prompt": "q", "response": "a"}\n'.encode("utf-16"), "is UTF-16 text"),
        ("utf16-nobom.jsonl", '{"prompt": "q", "response": "a"}\n'.encode("utf-16-le"), "looks like UTF-16"),
        ("empty.jsonl", b"\n\n", "holds no records"),
    ],
)
def test_files_that_are_not_records_get_their_own_message(team, tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(InvalidInput, match=message):
        import_file(team, "amy", path)


def test_a_folder_is_named_as_a_folder(team, tmp_path):
    with pytest.raises(InvalidInput, match="is a folder, not a file"):
        import_file(team, "amy", tmp_path)


def test_a_one_record_file_with_a_bad_byte_names_the_byte(team, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_bytes(b'{"prompt": "caf\xe9", "response": "ok"}\n')
    report = import_file(team, "amy", path)
    assert report.imported == 0 and report.rejected[0].line == 1
    assert "not valid UTF-8 (byte 0xe9 at column 16)" in report.rejected[0].reason


def test_the_cli_report_reads_as_english(team, db_path, tmp_path):
    path = jsonl(tmp_path / "one.jsonl", {"prompt": Q, "response": A}, {"prompt": Q, "response": "x", "score": None, "bad": []})
    path.write_text(path.read_text() + '{"messages": [}\n')
    result = runner.invoke(app, ["import", str(path), "--as", "amy", "--db", str(db_path)])
    assert result.exit_code == 1
    assert "Imported 2 examples" in result.stdout and "0 duplicates skipped; 1 record rejected." in result.stdout
    assert "line 3: malformed JSON (expecting value at column 15)" in result.stderr
    assert "at at" not in result.stderr and "NoneType" not in result.stderr
