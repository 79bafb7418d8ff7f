"""The live duplicate check of one draft against 100,000 stored examples (exact + near + semantic).

Goal: p95 below 150 ms per check once the process's index is warm. Baseline, measured in the
same run: the same check without an index kept between checks (each check reads every cached
signature and vector from the store and builds the LSH), which is what a page that checks on
save without the process-wide index would pay.
The stored examples' embeddings are random unit vectors written into the store's cache under the
real model's key (embedding 100k texts would take minutes and does not change the cost of a
check); the drafts themselves are embedded with the real model on every check.
Run: .venv/bin/python bench/bench_live.py [N]   -> writes bench/results/live_check.md
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.bench_store import fill
from curation.similarity import cache, live
from curation.similarity.embeddings import get_embedder
from curation.similarity.live import LiveIndex
from curation.store import Store
from schemas import ExampleContent


def seed_embeddings(store: Store) -> None:
    embedder = get_embedder()
    rows = list(store.db.query("SELECT prompt_text, response_text FROM examples"))
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(rows), embedder.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    keys = [cache.text_key(f"{r['prompt_text']}\n{r['response_text']}") for r in rows]
    cache._save(store, "embeddings", "model", embedder.model_key, keys, vectors)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "live.db")
        fill(store, n)
        seed_embeddings(store)
        rows = list(store.db.query("SELECT prompt_text, response_text FROM examples ORDER BY random() LIMIT 200"))
        rng = random.Random(3)
        drafts = []
        for i, row in enumerate(rows):
            prompt, response = row["prompt_text"], row["response_text"]
            if i % 3 == 1:  # a light edit: near duplicate
                words = response.split()
                words[rng.randrange(len(words))] = "changed"
                response = " ".join(words)
            elif i % 3 == 2:  # something new
                prompt, response = f"Brand new question {i} about a rental car abroad", f"Here is what to do {i}."
            drafts.append(ExampleContent.from_pair(prompt, response))
        start = time.perf_counter()
        live.find_matches(store, drafts[0])
        warm_s = time.perf_counter() - start
        times = []
        for draft in drafts:
            start = time.perf_counter()
            live.find_matches(store, draft)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        p50, p95 = statistics.median(times), times[int(0.95 * len(times)) - 1]
        base = []
        for draft in drafts[:3]:  # the cold path is slow: three drafts are enough to see it
            start = time.perf_counter()
            LiveIndex().check(store, draft)  # a fresh index per check: load every cached signature and vector
            base.append((time.perf_counter() - start) * 1000)
    report = (
        "\n".join(
            [
                f"# Live duplicate check against {n:,} examples",
                "",
                f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}; 2 cores. "
                f"Embedder: {get_embedder().model_key}.",
                "",
                "| path | p50 ms | p95 ms | checks |",
                "|---|---:|---:|---:|",
                f"| Goldsmith live index (warm) | {p50:.1f} | {p95:.1f} | {len(times)} |",
                f"| baseline: no kept index (reload cached signatures + vectors per check) |"
                f" {statistics.median(base):,.0f} | {max(base):,.0f} | {len(base)} |",
                "",
                f"Warming the index ({n:,} cached signatures and vectors into memory) took {warm_s:.1f} s, once per process.",
                "Stored vectors are random unit vectors under the real model's key; drafts are embedded with the real model.",
            ]
        )
        + "\n"
    )
    (Path(__file__).with_name("results") / "live_check.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
