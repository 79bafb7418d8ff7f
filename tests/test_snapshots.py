"""Snapshots: deterministic, content-addressed, verified, for leads, and never half-written."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PASSWORD, ROOT, SAMPLE_DATA, make_example
from curation.datasets.importing import import_file
from curation.datasets.snapshots import create_snapshot, verify_snapshot
from curation.errors import InvalidInput, PermissionDenied
from curation.people import sessions, users
from curation.store import Store
from schemas import ExampleFilter, Tags


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


def test_snapshot_lines_carry_contexts_into_the_text_and_keep_turn_weights(tmp_path):
    store = approved_store(tmp_path / "g.db")
    path = tmp_path / "dolly.jsonl"
    record = {"instruction": "What changed in 2024?", "context": "Rates went up 3% in 2024.", "response": "Rates, by 3%."}
    muted = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!", "weight": 0}]}
    muted["messages"] += [
        {"role": "user", "content": "Is hail covered?"},
        {"role": "assistant", "content": "Yes, under comprehensive."},
    ]
    path.write_text(json.dumps(record) + "\n")
    import_file(store, "lee", path, status="approved", tags=Tags(category="claims"))
    path.write_text(json.dumps(muted) + "\n")
    import_file(store, "lee", path, status="approved", tags=Tags(category="claims"))
    snap = create_snapshot(store, "lee", "v1", eval_fraction=0.0, validate=False)
    lines = {line["messages"][-1]["content"]: line for line in map(json.loads, (Path(snap.path) / "train.jsonl").open())}
    question = lines["Rates, by 3%."]["messages"][0]
    assert question == {"role": "user", "content": "What changed in 2024?\n\nRates went up 3% in 2024."}
    assert [m.get("weight") for m in lines["Yes, under comprehensive."]["messages"]] == [None, 0, None, None]


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
    snap = create_snapshot(store, "lee", "grouped", eval_fraction=0.3, groups="none", keep_together=groups, validate=False)
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
    with pytest.raises(SnapshotBlocked, match="no_leak_into_eval") as blocked:  # duplicate clusters not kept together
        create_snapshot(store, "lee", "v1", eval_fraction=0.3, groups="none")
    assert not blocked.value.report.success and "no_leak_into_eval" in blocked.value.report.critical_failures
    assert not (tmp_path / "snapshots").exists() or not [
        p for p in (tmp_path / "snapshots").iterdir() if not p.name.startswith(".")
    ]
    snap = create_snapshot(store, "lee", "v1", eval_fraction=0.3, groups="none", override_reason="leak reviewed: same policy FAQ")
    manifest = json.loads((Path(snap.path) / "manifest.json").read_text())
    assert manifest["validation"]["override"] == {"by": "lee", "reason": "leak reviewed: same policy FAQ"}
    assert json.loads((Path(snap.path) / "validation.json").read_text())["success"] is False
    assert [h.action for h in store.history("snapshot", snap.id)] == ["create_snapshot", "override_validation"]


def test_duplicate_groups_make_the_same_snapshot_pass(tmp_path):
    store = approved_store(tmp_path / "g.db")
    snap = create_snapshot(store, "lee", "v1", eval_fraction=0.3, groups="near")
    report = json.loads((Path(snap.path) / "validation.json").read_text())
    assert report["success"] and json.loads((Path(snap.path) / "manifest.json").read_text())["validation"]["override"] is None


# ------------------------------------------------------------------------------------------ both doors, one rule


DISTINCT = [
    ("Is hail damage to my roof covered?", "Yes, under the dwelling part of your home policy, after the deductible."),
    ("My windscreen cracked on the motorway. What now?", "Book a glass repair in the app; chips under 3 cm are fixed free."),
    ("Can my 16-year-old drive my car?", "Add them as a driver first; a learner permit needs a supervising adult."),
    ("Someone took my bike from the garage.", "File a police report, then a theft claim with the report number."),
    ("Can I pay monthly?", "Monthly instalments are available from the Billing screen for a small fee."),
    ("A pipe burst under the sink last night.", "Turn off the water, dry what you can, and photograph everything."),
    ("Do you cover towing?", "Roadside assistance tows you up to 50 miles if you added it to the policy."),
    ("I am moving to Oregon next month.", "Tell us your new address; rates and coverage follow the state you live in."),
    ("Our dog bit the neighbour.", "Personal liability may pay their medical bills; send us their details."),
    ("Will you pay for a rental while my car is fixed?", "Only with rental reimbursement: up to 30 days at 40 dollars a day."),
    ("My ring was stolen in a hotel in Lisbon.", "Scheduled jewellery is covered worldwide; the hotel report helps."),
    ("A storm knocked a tree onto the fence.", "Fences are other structures; tree removal is paid up to 500 dollars."),
    ("How do I raise my deductible?", "Pick a new amount on the Coverage page; the premium drops next renewal."),
    ("Water came into the basement after rain.", "Flood is excluded unless you bought flood cover separately."),
    ("How do I cancel?", "Call us or use Settings; unused premium is refunded pro rata."),
    ("Someone hit my parked car and drove off.", "Uninsured motorist property damage applies; report it within 24 hours."),
    ("I dropped my laptop into the sea.", "Accidental damage to electronics is covered only with the gadget rider."),
    ("My employer wants proof of insurance.", "Download the declarations page from Documents and send that PDF."),
]


PAIRS = [
    (
        "What papers does a kitchen fire claim need?",
        "Keep the fire brigade's report, a list of what burned with rough prices, photos of the kitchen and the receipts "
        "for any hotel nights; the adjuster visits within five working days to see the damage.",
    ),
    (
        "My car was stolen overnight from the street.",
        "Report the theft to the police first and note the crime number, then call us with both sets of keys at hand; "
        "comprehensive cover pays the market value once the car has been missing for thirty days.",
    ),
    (
        "Rain is coming through the bedroom ceiling.",
        "Put a bucket under the drip, move furniture away and take pictures of the stain; a roofer we pay can make a "
        "temporary patch today, and the permanent repair waits for the adjuster's report.",
    ),
    (
        "Kids broke the living room window with a football.",
        "Glass breakage at home is covered without a deductible on the premium plan; send a photo and a glazier's quote "
        "and we pay the glazier directly, usually within two days of the quote.",
    ),
    (
        "The airline lost my suitcase on the way back from Rome.",
        "Claim from the airline first with the property irregularity report they gave you at the airport; our travel "
        "cover pays what they do not, up to the limit shown on your schedule.",
    ),
    (
        "Does my policy cover the vet if my dog is hit by a bike?",
        "Pet cover pays accident treatment after a fifty dollar excess per condition; ask the vet to send the invoice "
        "and their notes to us and keep the cyclist's name and number for the liability side.",
    ),
]


def near_duplicate_store(path: Path) -> tuple[Store, list[tuple[int, int]]]:
    """30 approved examples: 18 on distinct topics and 6 near-duplicate pairs (one word apart)."""
    store = Store(path)
    users.add_user(store, None, "ada", "admin", password=PASSWORD)
    users.add_user(store, "ada", "lee", "lead", password=PASSWORD)
    records = [{"prompt": q, "response": a} for q, a in DISTINCT]
    for question, answer in PAIRS:  # each written twice, the second time with one word changed
        records += [{"prompt": question, "response": answer}, {"prompt": question, "response": answer.replace(" the ", " a ", 1)}]
    file = path.with_suffix(".jsonl")
    file.write_text("".join(json.dumps(r) + "\n" for r in records))
    import_file(store, "lee", file, status="approved", tags=Tags(category="claims"))
    ids = [r["id"] for r in store.db.query("SELECT id FROM examples ORDER BY id")]
    return store, [(ids[18 + 2 * n], ids[19 + 2 * n]) for n in range(6)]


def test_the_page_and_the_cli_cut_the_same_leak_free_split(tmp_path, monkeypatch):
    """The Snapshots page once cut without the duplicate groups the CLI computed: blocked by the leak check, it offered
    an override that published near-duplicates on both sides. Both doors now call one service and get one split."""
    from streamlit.testing.v1 import AppTest
    from typer.testing import CliRunner

    from app.cli import app as cli

    store, pairs = near_duplicate_store(tmp_path / "a.db")
    store.close()
    (tmp_path / "page").mkdir()
    shutil.copy(tmp_path / "a.db", tmp_path / "page" / "b.db")
    args = ["snapshot", "create", "--name", "v1", "--eval-fraction", "0.4", "--seed", "3", "--as", "lee"]
    done = CliRunner().invoke(cli, [*args, "--db", str(tmp_path / "a.db"), "--json"])
    assert done.exit_code == 0, done.output
    by_cli = Path(json.loads(done.stdout)["path"])

    page_store = Store(tmp_path / "page" / "b.db")
    monkeypatch.setenv("GOLDSMITH_DB", str(tmp_path / "page" / "b.db"))
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.session_state["token"] = sessions.login(page_store, "lee", PASSWORD).token
    at.switch_page("pages/snapshots.py")
    at.run()
    next(t for t in at.text_input if t.label == "Name").input("v1")
    next(n for n in at.number_input if n.label == "Eval share").set_value(0.4)
    next(n for n in at.number_input if n.label == "Seed").set_value(3)
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [snap] = page_store.list_snapshots()
    by_page = Path(snap.path)

    for name in ("train.jsonl", "eval.jsonl"):
        assert (by_page / name).read_bytes() == (by_cli / name).read_bytes()
    manifest = json.loads((by_page / "manifest.json").read_text())
    assert manifest["counts"]["groups_kept_together"] == 6 and manifest["validation"]["success"] is True
    assert (manifest["counts"]["train"], manifest["counts"]["eval"]) == (18, 12)
    evaluation = {json.loads(line)["id"] for line in (by_page / "eval.jsonl").read_text().splitlines()}
    assert all((a in evaluation) == (b in evaluation) for a, b in pairs)
