"""Snapshots: deterministic, content-addressed, verified, for leads, and never half-written."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE_DATA, make_example
from curation.datasets.importing import import_file
from curation.datasets.snapshots import create_snapshot, verify_snapshot
from curation.errors import InvalidInput, PermissionDenied
from curation.people import users
from curation.store import Store
from schemas import ExampleFilter


def approved_store(path: Path) -> Store:
    """The sample examples, imported as approved by a lead."""
    store = Store(path)
    users.add_user(store, None, "ada", "admin", password="x" * 12)
    users.add_user(store, "ada", "lee", "lead", password="x" * 12)
    users.add_user(store, "ada", "amy", "author", password="x" * 12)
    for file in sorted((SAMPLE_DATA / "examples").glob("*")):
        import_file(store, "lee", file, status="approved")
    return store


def test_same_approved_set_and_seed_give_byte_identical_files(tmp_path):
    a = create_snapshot(approved_store(tmp_path / "a.db"), "lee", "v1", root=tmp_path / "snaps-a", validate=False)
    b = create_snapshot(approved_store(tmp_path / "b.db"), "lee", "v1", root=tmp_path / "snaps-b", validate=False)
    assert a.id == b.id
    for name in ("train.jsonl", "eval.jsonl"):
        assert (Path(a.path) / name).read_bytes() == (Path(b.path) / name).read_bytes()
    c = create_snapshot(approved_store(tmp_path / "c.db"), "lee", "v1", seed=1, root=tmp_path / "snaps-c", validate=False)
    assert c.id != a.id and (c.train, c.eval) == (a.train, a.eval)


def test_snapshot_contents_and_manifest(tmp_path):
    store = approved_store(tmp_path / "g.db")
    make_example(store, "draft", author="amy")  # not approved: never in a snapshot
    snap = create_snapshot(store, "lee", "v1", eval_fraction=0.2, validate=False)
    folder = Path(snap.path)
    assert folder.parent == tmp_path / "snapshots"
    assert sorted(p.name for p in folder.iterdir()) == ["eval.jsonl", "manifest.json", "train.jsonl"]
    lines = [json.loads(line) for f in ("train.jsonl", "eval.jsonl") for line in (folder / f).read_text().splitlines()]
    assert len(lines) == snap.train + snap.eval == store.list_examples(ExampleFilter(status="approved")).total
    assert all({"id", "source_id", "messages", "tags"} <= set(line) and line["source_id"] for line in lines)
    assert all(line["messages"][-1]["role"] == "assistant" for line in lines)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["created_by"] == "lee" and manifest["seed"] == 0 and manifest["schema_version"] == store.schema_version
    assert manifest["filter"] == {"status": "approved"}
    assert sum(manifest["counts"]["train_tags"]["category"].values()) == snap.train
    assert set(manifest["counts"]["eval_tags"]["category"]) == set(manifest["counts"]["train_tags"]["category"])  # stratified
    assert store.get_snapshot("v1") == snap == store.get_snapshot(snap.id[:6])
    assert store.history("snapshot", snap.id)[0].actor == "lee"


def test_recreating_the_same_snapshot_returns_the_existing_one(tmp_path):
    store = approved_store(tmp_path / "g.db")
    first = create_snapshot(store, "lee", "v1", validate=False)
    assert create_snapshot(store, "lee", "v1 again", validate=False) == first
    assert len(store.list_snapshots()) == 1


def test_verification_catches_any_change(tmp_path):
    snap = create_snapshot(approved_store(tmp_path / "g.db"), "lee", "v1", validate=False)
    folder = Path(snap.path)
    verify_snapshot(folder)
    train = folder / "train.jsonl"
    data = bytearray(train.read_bytes())
    data[10] ^= 1
    train.write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match="does not match its sha256"):
        verify_snapshot(folder)
    train.unlink()
    with pytest.raises(InvalidInput, match="missing train.jsonl"):
        verify_snapshot(folder)


def test_groups_stay_on_one_side(tmp_path):
    store = approved_store(tmp_path / "g.db")
    ids = [r["id"] for r in store.db["examples"].rows]
    groups = [ids[i : i + 4] for i in range(0, 40, 4)]
    snap = create_snapshot(store, "lee", "grouped", eval_fraction=0.3, groups=groups, validate=False)
    evaluation = {json.loads(line)["id"] for line in (Path(snap.path) / "eval.jsonl").read_text().splitlines()}
    for group in groups:
        assert set(group) <= evaluation or not set(group) & evaluation


def test_only_leads_cut_snapshots_and_only_from_approved_examples(team, tmp_path):
    make_example(team, "approved")
    for who in ("amy", "rita", "ada"):
        with pytest.raises(PermissionDenied):
            create_snapshot(team, who, "v1")
    assert not (tmp_path / "snapshots").exists()
    empty = Store(tmp_path / "empty.db")
    users.add_user(empty, None, "ada", "admin", password="x" * 12)
    users.add_user(empty, "ada", "lee", "lead", password="x" * 12)
    with pytest.raises(InvalidInput, match="no approved examples"):
        create_snapshot(empty, "lee", "v1")


def test_kill_9_during_snapshots_never_leaves_a_half_folder(tmp_path):
    store = approved_store(tmp_path / "g.db")
    big = tmp_path / "big.jsonl"
    big.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"question {i}"},
                        {"role": "assistant", "content": f"answer {i} " * 20},
                    ]
                }
            )
            + "\n"
            for i in range(15_000)
        )
    )
    import_file(store, "lee", big, status="approved")
    root = tmp_path / "snaps"
    rng = random.Random(4)
    for attempt in range(5):
        cmd = [
            sys.executable,
            "-m",
            "app.cli",
            "snapshot",
            "create",
            "--name",
            f"s{attempt}",
            "--seed",
            str(attempt),
            "--out",
            str(root),
            "--db",
            store.path,
            "--as",
            "lee",
            "--groups",
            "none",
            "--override-reason",
            "kill test",
        ]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 5.0))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for folder in (p for p in root.glob("*") if not p.name.startswith(".")) if root.exists() else []:
            verify_snapshot(folder)  # every visible snapshot folder is complete
        for snap in Store(store.path).list_snapshots():
            verify_snapshot(Path(snap.path))
    # a later run finishes, adopts or rewrites as needed, and cleans up what killed runs left
    result = subprocess.run([*cmd[:5], "--name", "final", *cmd[7:]], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert not list(root.glob(".tmp-*"))


def test_a_snapshot_breaking_critical_expectations_is_refused_unless_a_lead_overrides(tmp_path):
    from curation.datasets.snapshots import SnapshotBlocked

    store = approved_store(tmp_path / "g.db")
    with pytest.raises(SnapshotBlocked, match="no_leak_into_eval") as blocked:
        create_snapshot(store, "lee", "v1", eval_fraction=0.3)
    assert not blocked.value.report["success"] and "no_leak_into_eval" in blocked.value.report["critical_failures"]
    assert not (tmp_path / "snapshots").exists() or not [
        p for p in (tmp_path / "snapshots").iterdir() if not p.name.startswith(".")
    ]
    snap = create_snapshot(store, "lee", "v1", eval_fraction=0.3, override_reason="leak reviewed: same policy FAQ")
    manifest = json.loads((Path(snap.path) / "manifest.json").read_text())
    assert manifest["validation"]["override"] == {"by": "lee", "reason": "leak reviewed: same policy FAQ"}
    assert json.loads((Path(snap.path) / "validation.json").read_text())["success"] is False
    assert [h.action for h in store.history("snapshot", snap.id)] == ["create_snapshot", "override_validation"]


def test_duplicate_groups_make_the_same_snapshot_pass(tmp_path):
    from curation.similarity.dedup import duplicate_groups

    store = approved_store(tmp_path / "g.db")
    snap = create_snapshot(store, "lee", "v1", eval_fraction=0.3, groups=duplicate_groups(store, methods=("near",)))
    report = json.loads((Path(snap.path) / "validation.json").read_text())
    assert report["success"] and json.loads((Path(snap.path) / "manifest.json").read_text())["validation"]["override"] is None
