"""import / export / snapshot through the CLI: JSON shapes and exit codes 0, 1, 2."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from app.cli import app
from conftest import ROOT, SHARED_DATA

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_import_json_report_and_exit_codes(team, db_path, tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n')
    result = run("import", good, "--as", "amy", "--db", db_path, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) | {"file": None} == {
        "file": None,
        "format": "openai",
        "status": "draft",
        "imported": 1,
        "imported_as_rejected": 0,
        "duplicates": 0,
        "duplicate_of": [],
        "rejected": [],
        "warnings": [],
    }
    again = json.loads(run("import", good, "--as", "amy", "--db", db_path, "--json").stdout)
    assert (again["imported"], again["duplicates"], again["duplicate_of"]) == (0, 1, [{"line": 1, "example_id": 1}])

    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]}\nnot json\n')
    result = run("import", mixed, "--as", "amy", "--db", db_path, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["rejected"] == [{"line": 2, "reason": "malformed JSON (expecting value at column 1)"}]

    if SHARED_DATA.exists():
        result = run("import", SHARED_DATA / "glaive_toolcall_en_demo.json", "--as", "amy", "--db", db_path)
        assert result.exit_code == 1 and "record [0] (line 2): turn 4 is a 'function_call' turn" in result.stderr

    for bad in (tmp_path / "missing.jsonl", tmp_path):
        result = run("import", bad, "--as", "amy", "--db", db_path)
        assert result.exit_code == 2 and result.stderr.startswith("Error: ")
    result = run("import", good, "--format", "yaml", "--as", "amy", "--db", db_path)
    assert result.exit_code == 2 and "unknown format 'yaml'" in result.stderr
    result = run("import", good, "--status", "approved", "--as", "amy", "--db", db_path)
    assert result.exit_code == 1 and "only leads" in result.stderr


def test_export_and_snapshot_commands(team, db_path, tmp_path):
    data = tmp_path / "vetted.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"v{i}",
                    "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
                    "tags": {"category": "claims" if i % 2 else "billing"},
                }
            )
            + "\n"
            for i in range(30)
        )
    )
    assert run("import", data, "--status", "approved", "--as", "lee", "--db", db_path).exit_code == 0
    out = tmp_path / "out" / "train.jsonl"
    result = run("export", "--format", "openai", "-o", out, "--db", db_path, "--json")
    assert json.loads(result.stdout) == {"exported": 30, "path": str(out), "format": "openai"}
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()][:2] == ["v0", "v1"]

    result = run(
        "snapshot", "create", "--name", "v1", "--eval-fraction", 0.2, "--seed", 3, "--db", db_path, "--as", "lee", "--json"
    )
    assert result.exit_code == 0, result.output
    snap = json.loads(result.stdout)
    assert set(snap) >= {"id", "path", "train", "eval"} and (snap["train"], snap["eval"]) == (24, 6)
    listed = json.loads(run("snapshot", "list", "--db", db_path, "--json").stdout)
    assert [s["id"] for s in listed] == [snap["id"]]
    assert "matches its manifest" in run("snapshot", "verify", "v1", "--db", db_path).stdout
    shown = json.loads(run("snapshot", "show", snap["id"][:8], "--db", db_path, "--json").stdout)
    assert shown["manifest"]["seed"] == 3
    result = run("snapshot", "create", "--name", "v2", "--db", db_path, "--as", "amy")
    assert result.exit_code == 1 and "cannot create snapshot" in result.stderr
    result = run("snapshot", "create", "--name", "v2", "--eval-fraction", 1.5, "--db", db_path, "--as", "lee")
    assert result.exit_code == 2 and "[0, 1)" in result.stderr
    (tmp_path / "snapshots" / snap["id"] / "eval.jsonl").write_text("tampered\n")
    result = run("snapshot", "verify", "v1", "--db", db_path)
    assert result.exit_code == 1 and "FAILED" in result.stderr


def test_import_memory_stays_flat_on_a_large_file(team, db_path, tmp_path):
    """Importing a 114 MB file peaks at the same memory as importing a 10-record file: nothing is held."""
    filler = "lorem ipsum dolor sit amet " * 400  # ~11 KB a record

    def peak_mb(records: int) -> tuple[int, float]:
        path = tmp_path / f"in-{records}.jsonl"
        with path.open("w") as handle:
            for i in range(records):
                message = {
                    "messages": [
                        {"role": "user", "content": f"q{i}-{records}"},
                        {"role": "assistant", "content": f"{i} {filler}"},
                    ]
                }
                handle.write(json.dumps(message) + "\n")
        probe = (
            "import resource, sys; from app.cli import app; "
            "sys.argv = ['goldsmith', 'import', sys.argv[1], '--as', 'amy', '--db', sys.argv[2]]\n"
            "try: app()\nexcept SystemExit: pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"
        )
        result = subprocess.run([sys.executable, "-c", probe, str(path), str(db_path)], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return int(result.stdout.strip().splitlines()[-1]), path.stat().st_size / 2**20

    small, _ = peak_mb(10)
    large, size = peak_mb(11_000)
    assert size > 110
    assert large - small < 25, f"peak RSS grew from {small} MB to {large} MB for a {size:.0f} MB file"
    assert team.db["examples"].count == 11_010
