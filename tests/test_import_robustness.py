"""Fuzzed files never crash the importer and never cost a good record; a killed import leaves nothing."""

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from curation.datasets.importing import import_file
from curation.errors import InvalidInput
from curation.store import Store
from schemas import ExampleContent

MUTATIONS = st.lists(
    st.tuples(
        st.integers(0, 40),
        st.sampled_from(["truncate", "flip", "insert", "garbage", "duplicate", "delete", "blank", "nan"]),
        st.integers(0, 200),
        st.binary(min_size=1, max_size=4),
    ),
    max_size=8,
)


def mutate(lines: list[bytes], mutations) -> tuple[list[bytes], set[int]]:
    """Apply mutations; return the new lines and the indexes (into the original) left untouched."""
    lines = list(lines)
    touched: set[int] = set()
    for where, kind, at, blob in mutations:
        i = where % len(lines)
        line = lines[i]
        if kind == "duplicate":  # the line (intact or not) appears twice; its first copy is unchanged
            lines.append(line)
            continue
        touched.add(i)
        if not line:
            continue
        if kind == "truncate":
            lines[i] = line[: at % max(1, len(line))]
        elif kind == "flip":
            k = at % len(line)
            lines[i] = line[:k] + blob[:1] + line[k + 1 :]
        elif kind == "insert":
            k = at % len(line)
            lines[i] = line[:k] + blob + line[k:]
        elif kind == "garbage":
            lines[i] = blob
        elif kind == "delete":
            lines[i] = b""
        elif kind == "blank":
            lines[i] = b"   "
        elif kind == "nan":
            lines[i] = line.replace(b'"id"', b'"score": NaN, "id"', 1)
    return lines, touched


def records(n: int) -> list[dict]:
    return [
        {"id": f"r{i}", "messages": [{"role": "user", "content": f"q{i} é ✓"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(n)
    ]


def hash_count(store: Store, record: dict) -> int:
    digest = ExampleContent.model_validate({"messages": record["messages"]}).content_hash
    return len(store.example_ids_with_hash(digest))


def non_blank(lines: list[bytes]) -> int:
    count = 0
    for line in b"\n".join(lines).split(b"\n"):  # a mutation may have split a line in two
        try:
            count += bool(line.decode("utf-8").strip())
        except UnicodeDecodeError:
            count += 1
    return count


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A store with an author, built once; each fuzz case works on a fresh copy (argon2 is slow on purpose)."""
    from curation.people import users

    path = tmp_path_factory.mktemp("template") / "g.db"
    store = Store(path)
    users.add_user(store, None, "ada", "admin", password="x" * 12)
    users.add_user(store, "ada", "amy", "author", password="x" * 12)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return path


def fresh_store(template, tmp_path_factory) -> tuple[Store, object]:
    tmp = tmp_path_factory.mktemp("fuzz")
    shutil.copy(template, tmp / "g.db")
    return Store(tmp / "g.db"), tmp


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(3, 25), mutations=MUTATIONS)
def test_mutated_jsonl_never_crashes_and_every_intact_record_is_imported_once(template, tmp_path_factory, n, mutations):
    store, tmp = fresh_store(template, tmp_path_factory)
    originals = records(n)
    lines, touched = mutate([json.dumps(r, ensure_ascii=False).encode() for r in originals], mutations)
    path = tmp / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    try:
        report = import_file(store, "amy", path)
    except InvalidInput:
        assert all(not line.strip() or i in touched for i, line in enumerate(lines[:n]))  # only when nothing readable is left
        return
    assert report.imported + report.duplicates + len(report.rejected) == non_blank(lines)
    for i, record in enumerate(originals):
        if i not in touched:
            assert hash_count(store, record) == 1, f"intact record {i} not imported exactly once"
    assert store.db["examples"].count == report.imported


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(3, 15), mutations=MUTATIONS)
def test_mutated_json_arrays_and_csv_never_crash(template, tmp_path_factory, n, mutations):
    store, tmp = fresh_store(template, tmp_path_factory)
    body = [json.dumps(r).encode() for r in records(n)]
    lines, _ = mutate([b"["] + [b + b"," for b in body[:-1]] + [body[-1], b"]"], mutations)
    (tmp / "a.json").write_bytes(b"\n".join(lines))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "prompt", "response"])
    for r in records(n):
        writer.writerow([r["id"], r["messages"][0]["content"], r["messages"][1]["content"]])
    csv_lines, _ = mutate(out.getvalue().encode().split(b"\r\n"), mutations)
    (tmp / "c.csv").write_bytes(b"\r\n".join(csv_lines))
    for name in ("a.json", "c.csv"):
        before = store.db.table("examples").count
        try:
            report = import_file(store, "amy", tmp / name)
        except InvalidInput:
            assert store.db.table("examples").count == before  # an unreadable file imports nothing
            continue
        assert store.db.table("examples").count - before == report.imported  # what the report counts is what is stored
        assert all(r.reason and (r.line is not None or r.index is not None) for r in report.rejected)
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_kill_9_during_an_import_leaves_nothing_half_imported(team, db_path, tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records(30_000)))
    wal = db_path.with_name(db_path.name + "-wal")
    start = wal.stat().st_size if wal.exists() else 0
    cmd = [sys.executable, "-m", "app.cli", "import", str(path), "--as", "amy", "--db", str(db_path)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and (not wal.exists() or wal.stat().st_size < start + 2_000_000) and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the import finished before it could be killed; make the file bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    after = Store(db_path)
    assert after.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert after.db["examples"].count == 0
    assert after.history("example") == []
    result = subprocess.run([*cmd, "--json"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["imported"] == 30_000 == after.db["examples"].count
