"""Importing a 500 MB JSONL file: Goldsmith's streaming import vs a load-everything-first baseline.

Baseline: `pandas.read_json(path, lines=True)` (what many import scripts do), then the same inserts
in one transaction. Each side runs in its own process; we report wall time and peak RSS.
Run: .venv/bin/python bench/bench_import.py [MB]   -> writes bench/results/import_memory.md
"""

from __future__ import annotations

import json
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = [json.loads(line) for line in (ROOT / "sample_data" / "examples" / "claims_billing.jsonl").read_text().splitlines()]

OURS = """
import resource, sys, time
sys.path.insert(0, sys.argv[3])
from pathlib import Path
from curation.datasets.importing import import_file
from curation.store import Store
start = time.perf_counter()
report = import_file(Store(sys.argv[2]), "bench", Path(sys.argv[1]))
print(report.imported, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""

BASELINE = """
import resource, sys, time
sys.path.insert(0, sys.argv[3])
import pandas as pd
from curation.store import Store
from schemas import ExampleContent
start = time.perf_counter()
frame = pd.read_json(sys.argv[1], lines=True)
store = Store(sys.argv[2])
n = 0
with store.write():
    for messages in frame["messages"]:
        c = ExampleContent.model_validate({"messages": messages})
        if not store.example_ids_with_hash(c.content_hash):
            store.insert_example(messages=c.messages, tags=c.tags, author="bench", status="draft", actor="bench")
            n += 1
print(n, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def make_file(path: Path, megabytes: int) -> int:
    rng = random.Random(0)
    n = 0
    with path.open("w", encoding="utf-8") as handle:
        while handle.tell() < megabytes * 2**20:
            base = rng.choice(SAMPLE)
            messages = [dict(m) for m in base["messages"]]
            messages[-1]["content"] += f" (variant {n})"
            handle.write(json.dumps({"id": f"b{n}", "messages": messages, "tags": base["tags"]}) + "\n")
            n += 1
    return n


def fresh_store(path: Path, role: str = "author") -> None:
    """A new store with an admin and the user `bench` (an author, or `role`)."""
    sys.path.insert(0, str(ROOT))
    from curation.people import users
    from curation.store import Store

    store = Store(path)
    users.add_user(store, None, "admin", "admin", password="x" * 12)
    users.add_user(store, "admin", "bench", role, password="x" * 12)
    store.close()


def run(script: str, data: Path, db: Path) -> tuple[int, float, int]:
    out = subprocess.run(
        [sys.executable, "-c", script, str(data), str(db), str(ROOT)], capture_output=True, text=True, check=True
    )
    count, seconds, rss = out.stdout.split()
    return int(count), float(seconds), int(rss)


def main() -> None:
    megabytes = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "big.jsonl"
        records = make_file(data, megabytes)
        results: dict[str, tuple[int, float, int]] = {}
        for name, script in (("Goldsmith streaming import", OURS), ("baseline: pandas.read_json then insert", BASELINE)):
            db = Path(tmp) / f"{len(results)}.db"
            fresh_store(db)
            results[name] = run(script, data, db)
    size = megabytes
    lines = [
        f"# Importing a {size} MB JSONL file ({records:,} records)",
        "",
        f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}; 2 cores, 24 GiB. "
        "One run each, in separate processes, on the same file and a fresh store.",
        "",
        "| importer | imported | wall time s | records/s | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (count, seconds, rss) in results.items():
        lines.append(f"| {name} | {count:,} | {seconds:.0f} | {count / seconds:,.0f} | {rss:,} |")
    report = "\n".join(lines) + "\n"
    (Path(__file__).with_name("results") / "import_memory.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
