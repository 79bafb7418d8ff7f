"""The CLI through typer's runner: happy paths, exit codes, and one-line errors (never a traceback)."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from app.cli import app
from conftest import PASSWORD, ROOT

runner = CliRunner()


def run(*args: str, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "cli.db"
    assert run("init", "--db", path).exit_code == 0
    assert run("user", "add", "ada", "--role", "admin", "--password-stdin", "--db", path, input=PASSWORD + "\n").exit_code == 0
    for name, role in (("amy", "author"), ("rita", "reviewer"), ("lee", "lead")):
        result = run("user", "add", name, "--role", role, "--db", path, "--as", "ada", "--json")
        assert result.exit_code == 0 and json.loads(result.stdout)["password"]
    return path


def test_write_submit_review_show_and_stats(db):
    result = run(
        "new",
        "--prompt",
        "Where do I send photos of the damage?",
        "--response",
        "Upload them in the Lakeshore app.",
        "--tag",
        "category=claims",
        "--label",
        "photos",
        "--as",
        "amy",
        "--db",
        db,
        "--json",
    )
    assert result.exit_code == 0, result.output
    example = json.loads(result.stdout)
    assert (example["status"], example["author"], example["tags"]["labels"]) == ("draft", "amy", ["photos"])
    assert run("submit", example["id"], "--as", "amy", "--db", db).exit_code == 0
    result = run(
        "review",
        example["id"],
        "--approve",
        "--accuracy",
        5,
        "--tone",
        4,
        "--compliance",
        5,
        "--completeness",
        5,
        "--as",
        "rita",
        "--db",
        db,
        "--json",
    )
    assert result.exit_code == 0 and json.loads(result.stdout)["rubric"]["tone"] == 4
    shown = json.loads(run("show", example["id"], "--db", db, "--json").stdout)
    assert shown["example"]["status"] == "approved"
    assert [h["action"] for h in shown["history"]] == ["create", "submit", "approve"]
    text = run("show", example["id"], "--db", db).stdout
    assert "Upload them in the Lakeshore app." in text and "Review by rita of version 2: approve" in text
    stats = json.loads(run("stats", "--db", db, "--json").stdout)
    assert stats["by_status"] == {"approved": 1} and stats["users_by_role"]["author"] == 1


def test_list_and_search_filter_and_page(db):
    for i in range(7):
        run(
            "new",
            "--prompt",
            f"billing question {i}",
            "--response",
            "answer",
            "--tag",
            f"category={'billing' if i % 2 else 'claims'}",
            "--as",
            "amy",
            "--db",
            db,
        )
    listing = json.loads(run("list", "--tag", "category=billing", "--page-size", 2, "--db", db, "--json").stdout)
    assert (listing["total"], listing["pages"], len(listing["items"])) == (3, 2, 2)
    found = json.loads(run("search", "question 3", "--db", db, "--json").stdout)
    assert found["items"][0]["messages"][0]["content"] == "billing question 3"
    assert "next page: --page 2" in run("list", "--page-size", 5, "--db", db).stdout


def test_multi_turn_from_a_file_and_edit_keeps_what_is_not_named(db, tmp_path):
    path = tmp_path / "ex.json"
    path.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "Tow?"},
                    {"role": "assistant", "content": "Call 1-800-555-0199."},
                ]
            }
        )
    )
    ex = json.loads(run("new", "--file", path, "--as", "amy", "--db", db, "--json").stdout)
    assert len(ex["messages"]) == 5
    edited = json.loads(
        run("edit", ex["id"], "--response", "Call roadside at 1-800-555-0199.", "--as", "amy", "--db", db, "--json").stdout
    )
    assert [m["content"] for m in edited["messages"]][:4] == ["Be brief.", "Hi", "Hello!", "Tow?"]
    assert edited["messages"][-1]["content"] == "Call roadside at 1-800-555-0199." and edited["version"] == 2
    assert (
        "unchanged" in run("edit", ex["id"], "--response", "Call roadside at 1-800-555-0199.", "--as", "amy", "--db", db).stdout
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["list"], 2, "no Goldsmith database at"),
        (["show", "99"], 2, "no example with id 99"),
        (["new", "--prompt", "x", "--as", "amy"], 2, "give --prompt and --response"),
        (["new", "--prompt", "x", "--response", " ", "--as", "amy"], 2, "content is empty"),
        (["new", "--prompt", "x", "--response", "y", "--tag", "colour=red", "--as", "amy"], 2, "--tag needs KEY=VALUE"),
        (["new", "--prompt", "x", "--response", "y"], 2, "say who is acting with --as USER"),
        (["new", "--prompt", "x", "--response", "y", "--as", "rita"], 1, "rita is a reviewer and cannot create example"),
        (["review", "1", "--approve", "--reject", "--as", "rita"], 2, "exactly one of"),
        (["withdraw", "99", "--as", "amy"], 2, "no example with id 99"),
        (["user", "set-role", "amy", "boss", "--as", "ada"], 2, "role 'boss' is not one of"),
        (["user", "add", "x", "--role", "author", "--as", "amy"], 1, "amy is an author and cannot manage users"),
        (["set-status", "published", "1", "--as", "lee"], 2, "not a status"),
    ],
)
def test_errors_are_one_sentence_with_the_right_exit_code(db, args, code, message):
    args = [*args, "--db", str(db) + (".missing" if args == ["list"] else "")]
    result = run(*args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1


def test_a_stale_version_is_reported_as_a_conflict(db):
    ex = json.loads(run("new", "--prompt", "a", "--response", "b", "--as", "amy", "--db", db, "--json").stdout)
    run("edit", ex["id"], "--response", "c", "--as", "amy", "--db", db)
    result = run("edit", ex["id"], "--response", "d", "--version", 1, "--as", "amy", "--db", db)
    assert result.exit_code == 1 and result.stderr.startswith("Error: Conflict: example 1 was changed by someone else")


def commands():
    """(name, command) for every leaf command of the CLI (typer ships its own click)."""
    import typer.main

    def leaves(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from leaves(sub, [*path, name])
        else:
            yield " ".join(path), cmd

    found = list(leaves(typer.main.get_command(app), []))
    assert len(found) > 15
    return found


def test_every_command_and_option_has_help_text():
    missing = [name for name, cmd in commands() if not (cmd.help or "").strip()]
    missing += [
        f"{name} {p.opts[0]}"
        for name, cmd in commands()
        for p in cmd.params
        if p.param_type_name == "option" and not (p.help or "").strip()
    ]
    assert not missing, f"commands or options without help: {missing}"


def test_every_command_takes_db():
    assert [name for name, cmd in commands() if not any("--db" in p.opts for p in cmd.params)] == []


def test_the_installed_command_starts_without_heavy_libraries_and_never_shows_a_traceback(tmp_path):
    # (pandas is not on the list: sqlite-utils itself imports it when present.)
    probe = (
        "import sys, app.cli; heavy = {'torch', 'transformers', 'sentence_transformers', 'great_expectations', 'peft',"
        " 'datasketch', 'streamlit'} & set(sys.modules); print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x00not sqlite" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "list", "--db", str(garbage)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 2 and "not a Goldsmith database" in result.stderr and "Traceback" not in result.stderr


def test_dedup_keep_punctuation(db):
    for prompt, response in (("Is hail covered?", "Yes, it is."), ("is hail covered", "yes it is")):
        assert run("new", "--prompt", prompt, "--response", response, "--db", db, "--as", "amy").exit_code == 0
    clusters = lambda *extra: json.loads(run("dedup", "--method", "exact", "--json", *extra, "--db", db).stdout)["clusters"]  # noqa: E731
    assert [c["ids"] for c in clusters()] == [[1, 2]]
    assert clusters("--keep-punctuation") == []


def test_a_command_built_alone_is_the_same_command_as_in_the_whole_tree():
    import typer.main

    from app import cli

    assert sorted(typer.main.get_group(app).commands) == sorted(cli.COMMANDS)  # nothing registered outside the table
    for name in cli.COMMANDS:
        alone = cli.build(name)
        assert list(typer.main.get_group(alone).commands) == [name]
        assert runner.invoke(alone, [name, "--help"]).stdout == runner.invoke(app, [name, "--help"]).stdout, name


def test_a_call_loads_only_the_module_of_its_command(db):
    probe = (
        "import sys; from app.cli import main\n"
        "try:\n    main()\nexcept SystemExit as done:\n    code = done.code\n"
        "print(code, sorted(m for m in sys.modules if m.startswith('app.cli_')), file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, "dedup", "--method", "exact", "--json", "--db", str(db)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert json.loads(result.stdout)["clusters"] == []
    assert result.stderr.strip() == "0 ['app.cli_common', 'app.cli_curation']"
    # --help (and an unknown name) show the whole tree
    result = subprocess.run([sys.executable, "-m", "app.cli", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and "serve-model" in result.stdout and "dedup" in result.stdout
    result = subprocess.run([sys.executable, "-m", "app.cli", "dedupe"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "No such command 'dedupe'" in result.stderr


def test_demo_command_loads_once_and_never_overwrites(tmp_path):
    db = tmp_path / "demo.db"
    result = run("demo", "--db", db, "--password", "demo password 1")
    assert result.exit_code == 0, result.output
    assert "dana" in result.stdout and "demo password 1" in result.stdout
    again = run("demo", "--db", db)
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert json.loads(run("stats", "--db", db, "--json").stdout)["examples"] >= 150


def test_training_commands_refuse_in_one_line_before_any_worker_starts(db):
    from conftest import make_example
    from curation.datasets.snapshots import create_snapshot
    from curation.store import Store
    from schemas.training import TrainConfig
    from training import runs

    store = Store(db)
    make_example(store, "approved", reviewer="rita")
    make_example(store, "approved", prompt="When is my bill due?", response="On the first.", reviewer="rita")
    snapshot = create_snapshot(store, "lee", "v1", eval_fraction=0.5, validate=False)
    run_id = runs.create_run(store, "lee", snapshot.id, TrainConfig(max_steps=1)).id
    cases = [
        (["train", snapshot.id, "--detach", "--as", "rita"], 1, "rita is a reviewer and cannot launch training"),
        (["runs", "resume", run_id, "--as", "lee"], 2, f"run {run_id} is queued; only interrupted, died, failed, cancelled"),
        (["runs", "resume", run_id, "--as", "amy"], 1, "amy is an author and cannot launch training"),
        (["eval", run_id, "--as", "lee"], 2, f"run {run_id} is queued; only a completed run can be evaluated"),
        (["eval", run_id, "--as", "rita"], 1, "rita is a reviewer and cannot launch training"),
    ]
    for args, code, message in cases:
        result = run(*args, "--db", db)
        assert result.exit_code == code, result.output
        assert result.stderr.startswith("Error: ") and message in result.stderr and result.stderr.count("\n") == 1
    runs.finish(store, run_id, "completed", result={})
    result = run("runs", "resume", run_id, "--as", "lee", "--db", db)
    assert result.exit_code == 2 and "is completed; only interrupted" in result.stderr and "start a new run" in result.stderr
    assert store.db.table("jobs").count == 0 and len(runs.list_runs(store)) == 1  # refused: nothing started
    store.close()
