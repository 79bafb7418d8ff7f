"""Server-side rerun time of every app page with 100,000 examples in the store (goal: under 200 ms).

Each page runs through streamlit.testing.v1.AppTest (the script, the service calls, the element
tree; no browser), signed in as a user of the role the page is for. One warm-up run, then the
median of N reruns. Reviews are added for ~20% of the examples so the review stats have work to do.
Run: .venv/bin/python bench/bench_app.py [N_EXAMPLES] [RERUNS]  -> writes bench/results/app_pages.md
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from argon2 import PasswordHasher

from bench.bench_store import CATEGORIES, fill
from curation.people import sessions
from curation.store import Store, now

MAIN = Path(__file__).resolve().parent.parent / "app" / "main.py"
PASSWORD = "bench password"
PAGES = [  # (page, user): each page as the role it is for
    ("pages/login.py", None),
    ("pages/write.py", "a7"),
    ("pages/review.py", "rev"),
    ("pages/browse.py", "rev"),
    ("pages/dashboard.py", "lead"),
    ("pages/snapshots.py", "lead"),
    ("pages/admin.py", "admin"),
]


def prepare(store: Store, n: int) -> None:
    """100k examples (bench_store.fill), a team with real passwords, a taxonomy, and reviews."""
    fill(store, n)
    secret = PasswordHasher().hash(PASSWORD)
    with store.write():
        for name, role in (("admin", "admin"), ("lead", "lead"), ("rev", "reviewer"), ("rev2", "reviewer")):
            store.conn.execute(
                "INSERT INTO users (username, role, active, password_hash, version, created_at) VALUES (?, ?, 1, ?, 1, ?)",
                [name, role, secret, now()],
            )
        store.conn.execute("UPDATE users SET password_hash = ? WHERE username = 'a7'", [secret])
        store.conn.execute("UPDATE users SET display_name = '' WHERE display_name IS NULL")  # fill leaves it NULL
        taxonomy = {
            "categories": list(CATEGORIES),
            "response_types": ["how_to", "explanation"],
            "knowledge_areas": [],
            "targets": [{"category": c, "response_type": "how_to", "target": 5000} for c in CATEGORIES],
        }
        store.db["settings"].insert(
            {"key": "taxonomy", "value": json.dumps(taxonomy), "version": 1, "updated_at": now(), "updated_by": "admin"}
        )
        rng = random.Random(2)
        decided = [r[0] for r in store.conn.execute("SELECT id FROM examples WHERE status IN ('approved', 'rejected')")]
        rows = []
        for example_id in rng.sample(decided, len(decided) // 3):
            for reviewer in ("rev", "rev2") if rng.random() < 0.2 else (rng.choice(("rev", "rev2")),):
                rows.append(
                    {
                        "example_id": example_id,
                        "example_version": 1,
                        "reviewer": reviewer,
                        "decision": rng.choice(("approve",) * 4 + ("reject",)),
                        "accuracy": 4,
                        "tone": 4,
                        "compliance": 5,
                        "completeness": 4,
                        "comment": "",
                        "created_at": now(),
                    }
                )
        store.db["reviews"].insert_all(rows, batch_size=5000)


def measure(db: Path, store: Store, reruns: int) -> dict[str, tuple[float, float, str]]:
    from streamlit.testing.v1 import AppTest

    os.environ["GOLDSMITH_DB"] = str(db)
    out = {}
    for page, user in PAGES:
        at = AppTest.from_file(str(MAIN), default_timeout=120)
        if user:
            at.session_state["token"] = sessions.login(store, user, PASSWORD).token
        at.switch_page(page)
        start = time.perf_counter()
        at.run()  # warm-up: the first run opens this session's store and fills caches
        first = (time.perf_counter() - start) * 1000
        if at.exception:
            raise SystemExit(f"{page} raised: {[e.value for e in at.exception]}")
        times = []
        for _ in range(reruns):
            start = time.perf_counter()
            at.run()
            times.append((time.perf_counter() - start) * 1000)
        title = at.title[0].value if at.title else "?"
        out[page] = (statistics.median(times), first, title)
        print(f"{page:22} {title:10} first {first:7.1f} ms   median rerun {statistics.median(times):7.1f} ms", flush=True)
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    reruns = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        store = Store(db)
        t0 = time.perf_counter()
        prepare(store, n)
        fill_s = time.perf_counter() - t0
        reviews = store.db["reviews"].count
        results = measure(db, store, reruns)
    goal = 200.0
    lines = [
        f"# App pages at {n:,} examples",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {platform.system()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version}, "
        f"Streamlit {__import__('streamlit').__version__}.",
        f"Store: {n:,} examples (bench_store.fill: 60% approved, 10% each submitted, draft, rejected, changes requested; "
        f"20 authors), {reviews:,} reviews (a fifth double-reviewed), a taxonomy with targets. Built in {fill_s:.1f} s.",
        f"Each page is run server-side with streamlit.testing.v1.AppTest, signed in as the role it is for; "
        f"one warm-up run, then the median of {reruns} reruns (the AppTest harness's own overhead is included).",
        "",
        "| page | signed in as | first run ms | median rerun ms | goal < 200 ms |",
        "|---|---|---:|---:|---|",
    ]
    for page, user in PAGES:
        median, first, _ = results[page]
        lines.append(f"| {page} | {user or '(nobody)'} | {first:.0f} | {median:.0f} | {'yes' if median < goal else 'NO'} |")
    lines += [
        "",
        "Not part of a plain rerun (behind buttons, with a spinner): finding duplicate clusters, the coverage map",
        "(embeddings), cutting a snapshot, preparing an export, and the live duplicate check after a save.",
    ]
    report = "\n".join(lines) + "\n"
    Path(__file__).with_name("results").mkdir(exist_ok=True)
    (Path(__file__).with_name("results") / "app_pages.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
