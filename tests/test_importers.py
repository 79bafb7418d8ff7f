"""Importers: every bad-input class is reported per record, and every good record still gets in."""

import json
from pathlib import Path

import pytest

from conftest import SAMPLE_DATA, SHARED_DATA, needs_shared_data
from curation.datasets.formats import detect_format, read_records
from curation.datasets.importing import import_file
from curation.errors import InvalidInput, PermissionDenied
from curation.examples import taxonomy
from schemas import ExampleFilter, Tags

GOOD = {
    "messages": [
        {"role": "user", "content": "How do I reset my password?"},
        {"role": "assistant", "content": "Use 'Forgot password'."},
    ]
}


def good(i: int, **extra) -> dict:
    return {
        "id": f"r{i}",
        "messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}],
    } | extra


def write_lines(path: Path, lines: list[str | bytes], newline: bytes = b"\n") -> Path:
    path.write_bytes(newline.join(x if isinstance(x, bytes) else x.encode() for x in lines) + newline)
    return path


def rejected(report) -> dict[int, str]:
    """Reasons by JSON array index, or by line where the file has no array."""
    return {r.index if r.index is not None else r.line: r.reason for r in report.rejected}


BAD_LINES = [
    ("malformed JSON", '{"messages": [', "malformed JSON"),
    ("NaN", '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "score": NaN}', "NaN"),
    (
        "lone surrogate",
        '{"messages": [{"role": "user", "content": "q\\ud800"}, {"role": "assistant", "content": "a"}]}',
        "lone surrogate",
    ),
    (
        "unknown role",
        '{"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a"}]}',
        "unknown role 'robot'",
    ),
    ("ends with user", '{"messages": [{"role": "user", "content": "q"}]}', "must end with an assistant turn"),
    (
        "empty response",
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]}',
        "content is empty",
    ),
    (
        "tool turn",
        '{"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "{}"}]}',
        "tool or function-call turn",
    ),
    (
        "tool_calls",
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [{}]}]}',
        "tool",
    ),
    ("not an object", "[1, 2, 3]", "not an object"),
    (
        "too long",
        json.dumps({"messages": [{"role": "user", "content": "q" * 500}, {"role": "assistant", "content": "a"}]}),
        "limit is 100",
    ),
]


@pytest.mark.parametrize(("name", "line", "reason"), BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_each_bad_record_is_rejected_with_its_line_and_the_good_ones_imported(team, tmp_path, name, line, reason):
    path = write_lines(tmp_path / "in.jsonl", [json.dumps(good(1)), line, json.dumps(good(3))])
    report = import_file(team, "amy", path, max_chars=100)
    assert report.imported == 2
    assert list(rejected(report)) == [2] and reason in rejected(report)[2]


def test_invalid_utf8_bom_crlf_and_blank_lines(team, tmp_path):
    lines = [b"\xef\xbb\xbf" + json.dumps(good(1)).encode(), b"", b'{"messages": "caf\xe9"}', json.dumps(good(4)).encode()]
    report = import_file(team, "amy", write_lines(tmp_path / "in.jsonl", lines, newline=b"\r\n"))
    assert report.imported == 2
    assert rejected(report) == {3: "not valid UTF-8 (byte 0xe9 at column 18); re-save the file as UTF-8"}
    assert {e.response for e in team.list_examples(ExampleFilter()).items} == {"answer 1", "answer 4"}  # no stray \r


def test_duplicate_ids_in_one_file_are_rejected_but_the_first_kept(team, tmp_path):
    path = write_lines(tmp_path / "in.jsonl", [json.dumps(good(1)), json.dumps(good(2) | {"id": "r1"})])
    report = import_file(team, "amy", path)
    assert report.imported == 1 and "id 'r1' already appeared at line 1" in rejected(report)[2]


def test_reimport_adds_nothing_and_counts_duplicates(team, tmp_path):
    path = write_lines(tmp_path / "in.jsonl", [json.dumps(good(i)) for i in range(5)] + [json.dumps(good(0) | {"id": "copy"})])
    first = import_file(team, "amy", path)
    assert (first.imported, first.duplicates) == (5, 1) and first.duplicate_of[0].model_dump() == {"line": 6, "example_id": 1}
    again = import_file(team, "al", path)
    assert (again.imported, again.duplicates, again.rejected) == (0, 6, [])
    assert team.db["examples"].count == 5


def test_ids_are_kept_unknown_fields_become_metadata_and_the_importer_is_the_author(team, tmp_path):
    record = good(1, source="forum", rating=4, tags={"category": "claims", "labels": ["x"]})
    record["messages"][1]["weight"] = 0
    report = import_file(team, "amy", write_lines(tmp_path / "in.jsonl", [json.dumps(record)]), tags=Tags(knowledge_area="auto"))
    assert report.imported == 1
    example = team.get_example(1)
    assert (example.source_id, example.author, example.status, example.source) == ("r1", "amy", "draft", "import:in.jsonl")
    assert example.metadata == {"source": "forum", "rating": 4}
    assert example.messages[1].weight == 0  # the turn's training weight is the message's own
    assert example.tags == Tags(category="claims", knowledge_area="auto", labels=["x"])  # --tag fills what the record lacks
    assert team.history("example", 1)[0].action == "import"


def test_approved_imports_are_for_leads_and_recorded(team, tmp_path):
    path = write_lines(tmp_path / "in.jsonl", [json.dumps(good(1))])
    with pytest.raises(PermissionDenied, match="only leads can import examples as approved"):
        import_file(team, "amy", path, status="approved")
    assert team.db["examples"].count == 0
    import_file(team, "lee", path, status="approved")
    entry = team.history("example", 1)[0]
    assert (entry.action, entry.actor, entry.after["status"]) == ("import", "lee", "approved")


def test_tag_values_outside_the_taxonomy_are_rejected_per_record(team, tmp_path):
    taxonomy.set_taxonomy(team, "ada", {"categories": ["claims"]}, 0)
    path = write_lines(
        tmp_path / "in.jsonl", [json.dumps(good(1, tags={"category": "claims"})), json.dumps(good(2, tags={"category": "clams"}))]
    )
    report = import_file(team, "amy", path)
    assert report.imported == 1 and "category 'clams' is not in the taxonomy" in rejected(report)[2]


def test_alpaca_sharegpt_csv_and_pairs(team, tmp_path):
    alpaca = tmp_path / "a.json"
    alpaca.write_text(
        json.dumps(
            [
                {
                    "instruction": "Summarise",
                    "input": "my policy",
                    "output": "It covers...",
                    "system": "Be brief",
                    "history": [["hi", "hello"]],
                },
                {"instruction": "", "output": "x"},
                {"instruction": "q", "input": "", "output": ""},
            ]
        )
    )
    report = import_file(team, "amy", alpaca)
    assert report.format == "alpaca" and report.imported == 1
    assert rejected(report) == {1: "instruction (the prompt) is missing or empty", 2: "output (the response) is missing or empty"}
    roles = [(m.role, m.content) for m in team.get_example(1).messages]
    assert roles == [
        ("system", "Be brief"),
        ("user", "hi"),
        ("assistant", "hello"),
        ("user", "Summarise"),
        ("assistant", "It covers..."),
    ]
    assert team.get_example(1).messages[3].context == "my policy"  # Alpaca's input stays apart from the instruction

    share = tmp_path / "s.json"
    share.write_text(
        json.dumps(
            [
                {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], "system": "S"},
                {"conversations": [{"from": "human", "value": "q2"}, {"from": "observation", "value": "{}"}]},
                {"conversations": [{"from": "alien", "value": "q3"}, {"from": "gpt", "value": "a"}]},
            ]
        )
    )
    report = import_file(team, "amy", share)
    assert report.format == "sharegpt" and report.imported == 1
    assert "'observation' turn (tool use)" in rejected(report)[1] and "unknown role 'alien'" in rejected(report)[2]

    csv_path = tmp_path / "c.csv"
    csv_path.write_text('prompt,response,category\n"multi\nline, with comma","ok",claims\n,"no prompt",\n"a","b","c","extra"\n')
    report = import_file(team, "amy", csv_path)
    assert report.format == "csv" and report.imported == 1
    assert rejected(report) == {4: "prompt is missing or empty", 5: "has 4 cells but the header has 3; quote cells with commas"}

    pairs = write_lines(tmp_path / "p.jsonl", ['{"prompt": "p1", "response": "r1"}', '{"question": "p2", "answer": "r2"}'])
    assert import_file(team, "amy", pairs).imported == 2


def test_a_cut_short_json_array_keeps_the_records_before_the_cut(team, tmp_path):
    path = tmp_path / "a.json"
    path.write_text("[" + json.dumps(good(1)) + "," + json.dumps(good(2)) + ",")
    report = import_file(team, "amy", path)
    assert report.imported == 2 and "cut short" in rejected(report)[2]


def test_a_broken_json_array_keeps_the_records_before_the_break(team, tmp_path):
    path = tmp_path / "a.json"
    path.write_text("[" + json.dumps(good(1)) + "," + json.dumps(good(2)) + ', {"messages": [}, ' + json.dumps(good(4)) + "]")
    report = import_file(team, "amy", path)
    assert report.imported == 2 and "malformed JSON" in rejected(report)[2] and report.rejected[0].index == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no records"),
        ('{"text": "hi"}\n', "cannot tell the format"),
        ("[1, 2", "holds no records"),
    ],
)
def test_files_that_cannot_be_read_at_all_raise_invalid_input(team, tmp_path, content, message):
    path = tmp_path / "x.jsonl"
    path.write_text(content)
    with pytest.raises(InvalidInput, match=message):
        import_file(team, "amy", path)
    assert team.db["examples"].count == 0


def test_csv_without_prompt_and_response_columns_is_refused(team, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InvalidInput, match="needs a prompt column and a response column"):
        import_file(team, "amy", path)


@needs_shared_data
def test_real_llama_factory_files(team):
    alpaca = import_file(team, "amy", SHARED_DATA / "alpaca_en_demo.json")
    assert (alpaca.format, alpaca.imported + alpaca.duplicates, alpaca.rejected) == ("alpaca", 999, [])
    glaive = import_file(team, "amy", SHARED_DATA / "glaive_toolcall_en_demo.json")
    assert glaive.format == "sharegpt" and glaive.imported + glaive.duplicates + len(glaive.rejected) == 300
    assert len(glaive.rejected) > 100 and all("function_call" in r.reason or "observation" in r.reason for r in glaive.rejected)
    tools = [
        e for e in team.list_examples(ExampleFilter(page_size=500)).items if e.source == "import:glaive_toolcall_en_demo.json"
    ]
    assert tools and all("tools" in e.metadata for e in tools)  # the tools field is kept, not lost


@pytest.mark.parametrize("path", sorted((SAMPLE_DATA / "examples").glob("*")), ids=lambda p: p.name)
def test_every_sample_file_is_detected_and_read_cleanly(path):
    assert detect_format(path) in {"openai", "alpaca", "sharegpt", "csv"}
    parsed = list(read_records(path))
    assert parsed and all(p.content is not None for p in parsed), [p.error for p in parsed if p.error]
