"""Import, export and snapshot throughput against SQLite and json.dumps baselines, side by side in one run.

1. Import 20,000 chat examples with `goldsmith import` (validation, content hash, duplicate lookup,
   history, FTS, one transaction; the median of five alternating runs) vs sqlite-utils'
   `insert_all` of the same rows (every column Goldsmith fills, hashes included) into the same
   `examples` table (same indexes and FTS5 triggers, in a fresh Goldsmith database). Goal: within 1.5x.
2. Export 100,000 approved examples with `goldsmith export --format openai` vs a loop that reads
   the same rows with sqlite3 and writes `json.dumps(row)` per row.
3. Snapshot the same 100,000 with `goldsmith snapshot create --groups none` (split, hashes, manifest
   and the great-expectations validation) vs the same json.dumps loop writing train/eval files.

Every side is its own process, timed from before the process starts to after it exits (process start
included), on the same machine in the same run.
Run: .venv/bin/python bench/bench_io.py [IMPORT_N] [EXPORT_N]   -> writes bench/results/io.md
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_import import fresh_store  # noqa: E402

GOLDSMITH = str(Path(sys.executable).with_name("goldsmith"))
SAMPLE = [json.loads(line) for line in (ROOT / "sample_data" / "examples" / "claims_billing.jsonl").read_text().splitlines()]

INSERT_ALL = """
import json, hashlib, sys, sqlite_utils
db = sqlite_utils.Database(sys.argv[2])
def rows():
    with open(sys.argv[1], encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            messages, tags = record["messages"], record["tags"]
            dumped = json.dumps(messages, ensure_ascii=False)
            prompt = "\\n\\n".join(m["content"] for m in messages if m["role"] != "assistant")
            response = "\\n\\n".join(m["content"] for m in messages if m["role"] == "assistant")
            yield {
                "messages": dumped, "prompt_text": prompt, "response_text": response,
                "category": tags.get("category"), "response_type": tags.get("response_type"),
                "knowledge_area": tags.get("knowledge_area"), "labels": json.dumps(tags.get("labels", [])),
                "content_hash": hashlib.sha256(dumped.encode()).hexdigest(),
                "norm_hash": hashlib.sha256((prompt + response).lower().encode()).hexdigest(),
                "source": "import:bench", "source_id": record["id"], "metadata": "{}", "status": "draft",
                "author": "bench", "version": 1,
                "created_at": "2026-12-04T00:00:00+00:00", "updated_at": "2026-12-04T00:00:00+00:00",
            }
with db.conn:
    db["examples"].insert_all(rows(), batch_size=1000)
"""

DUMPS_LOOP = """
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
files = [open(p, "w", encoding="utf-8") for p in sys.argv[2:]]
cursor = conn.execute("SELECT id, source_id, messages, category, response_type, knowledge_area, labels, metadata "
                      "FROM examples WHERE status = 'approved' ORDER BY id")
for n, (id_, source_id, messages, category, response_type, knowledge_area, labels, metadata) in enumerate(cursor):
    record = {"id": source_id or id_, "messages": json.loads(messages),
              "tags": {"category": category, "response_type": response_type, "knowledge_area": knowledge_area,
                       "labels": json.loads(labels or "[]")}} | json.loads(metadata or "{}")
    files[n % 10 == 0 and len(files) > 1].write(json.dumps(record, ensure_ascii=False) + "\\n")
"""


def make_file(path: Path, count: int) -> None:
    """`count` distinct chat examples, no two near duplicates: the sample data's shapes (single and multi-turn)
    with their words drawn at random from the sample vocabulary."""
    rng = random.Random(0)
    vocabulary = sorted({w for r in SAMPLE for m in r["messages"] for w in m["content"].split()})
    with path.open("w", encoding="utf-8") as handle:
        for n in range(count):
            base = rng.choice(SAMPLE)
            messages = [
                {"role": m["role"], "content": " ".join(rng.choices(vocabulary, k=max(8, len(m["content"].split()))))}
                for m in base["messages"]
            ]
            handle.write(json.dumps({"id": f"b{n}", "messages": messages, "tags": base["tags"]}) + "\n")


def timed(command: list[str]) -> float:
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
    return time.perf_counter() - start


def count_rows(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM examples").fetchone()[0])


def bench_import(tmp: Path, count: int, repeats: int = 5) -> tuple[list[float], list[float]]:
    """Seconds of `repeats` alternating runs of each side, each into a fresh store."""
    data = tmp / "import.jsonl"
    make_file(data, count)
    ours: list[float] = []
    theirs: list[float] = []
    for n in range(repeats):
        mine, base = tmp / f"ours-{n}.db", tmp / f"theirs-{n}.db"
        fresh_store(mine, "lead")
        fresh_store(base, "lead")
        ours.append(timed([GOLDSMITH, "import", str(data), "--as", "bench", "--db", str(mine), "--json"]))
        theirs.append(timed([sys.executable, "-c", INSERT_ALL, str(data), str(base)]))
        assert count_rows(mine) == count_rows(base) == count  # both sides really wrote every row
    return ours, theirs


def bench_export_and_snapshot(tmp: Path, count: int) -> dict[str, tuple[float, float]]:
    data, db = tmp / "big.jsonl", tmp / "big.db"
    make_file(data, count)
    fresh_store(db, "lead")
    subprocess.run(
        [GOLDSMITH, "import", str(data), "--as", "bench", "--db", str(db), "--status", "approved", "--json"],
        check=True,
        capture_output=True,
    )
    export = timed([GOLDSMITH, "export", "--format", "openai", "--out", str(tmp / "out.jsonl"), "--db", str(db)])
    export_base = timed([sys.executable, "-c", DUMPS_LOOP, str(db), str(tmp / "base.jsonl")])
    snap = timed(
        [
            GOLDSMITH,
            "snapshot",
            "create",
            "--name",
            "bench",
            "--groups",
            "none",
            "--as",
            "bench",
            "--db",
            str(db),
            "--out",
            str(tmp / "snaps"),
        ]
    )
    snap_base = timed([sys.executable, "-c", DUMPS_LOOP, str(db), str(tmp / "train.jsonl"), str(tmp / "eval.jsonl")])
    return {"export": (export, export_base), "snapshot": (snap, snap_base)}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    import_n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    export_n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ours, theirs = bench_import(tmp, import_n)
        other = bench_export_and_snapshot(tmp, export_n)
    rows = [
        (
            f"import {import_n:,} chat examples",
            "`goldsmith import`",
            statistics.median(ours),
            "sqlite-utils `insert_all`, same rows, table and FTS5",
            statistics.median(theirs),
        ),
        (
            f"export {export_n:,} examples",
            "`goldsmith export --format openai`",
            *other["export"][:1],
            "json.dumps per row",
            other["export"][1],
        ),
        (
            f"snapshot {export_n:,} examples",
            "`goldsmith snapshot create --groups none`",
            *other["snapshot"][:1],
            "json.dumps per row, two files",
            other["snapshot"][1],
        ),
    ]
    lines = [
        "# Import, export and snapshot throughput",
        "",
        f"Machine: {cpu_name()}, {platform.machine()}, {platform.system()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end. "
        "Each side is its own process, timed with its start; one run, same machine, same data.",
        "",
        "| task | Goldsmith | s | baseline | s | ratio |",
        "|---|---|---:|---|---:|---:|",
    ]
    for task, name, seconds, base_name, base_seconds in rows:
        lines.append(f"| {task} | {name} | {seconds:.2f} | {base_name} | {base_seconds:.2f} | {seconds / base_seconds:.2f}x |")
    lines += [
        "",
        f"Import, each of the {len(ours)} alternating runs (s): Goldsmith {', '.join(f'{x:.2f}' for x in ours)}; "
        f"insert_all {', '.join(f'{x:.2f}' for x in theirs)}. The table shows the medians; best against best: "
        f"{min(ours):.2f} vs {min(theirs):.2f} = {min(ours) / min(theirs):.2f}x.",
    ]
    report = "\n".join(lines) + "\n"
    (Path(__file__).with_name("results") / "io.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
