"""`goldsmith dedup --method near` as a user runs it (a fresh process on a store) vs the plain datasketch loop as a script.

Goal: the command, process start included, at least 20x faster than the loop script on the same
20,000 ~80-word examples. The store is filled once (not timed); "cold" means no cached signatures
(the command sketches and caches all 20,000; each cold run gets a fresh copy of the filled store),
"warm" means a later run reads them from the store. Each figure is the median of several runs, all
in one sitting, the baseline's included.
Run: .venv/bin/python bench/bench_dedup_cli.py [N]   -> writes bench/results/dedup_cli.md
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_dedup import PROCESS_BASELINE, make_corpus  # noqa: E402

RUNS, BASE_RUNS = 5, 3


def spread(runs: list[float]) -> str:
    return "[" + ", ".join(f"{r:.2f}" for r in sorted(runs)) + "]"


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    texts, _ = make_corpus(n)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        db, data, plain = tmp / "g.db", tmp / "pairs.jsonl", tmp / "texts.jsonl"
        with data.open("w") as handle, plain.open("w") as raw:
            for i, text in enumerate(texts):
                words = text.split()
                prompt, response = " ".join(words[:20]), " ".join(words[20:])
                handle.write(json.dumps({"id": f"t{i}", "prompt": prompt, "response": response}) + "\n")
                raw.write(json.dumps({"id": i, "text": f"{prompt}\n{response}"}) + "\n")
        goldsmith = (
            [str(ROOT / ".venv" / "bin" / "goldsmith")] if (ROOT / ".venv" / "bin" / "goldsmith").exists() else ["goldsmith"]
        )
        env_db = ["--db", str(db)]
        subprocess.run([*goldsmith, "init", *env_db], check=True, capture_output=True)
        subprocess.run(
            [*goldsmith, "user", "add", "admin", "--role", "admin", "--generate-password", *env_db],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*goldsmith, "user", "add", "bench", "--role", "author", "--generate-password", "--as", "admin", *env_db],
            check=True,
            capture_output=True,
        )
        subprocess.run([*goldsmith, "import", str(data), "--as", "bench", *env_db], check=True, capture_output=True)
        load = os.getloadavg()[0]
        dedup = [*goldsmith, "dedup", "--method", "near", "--json", "--db", str(tmp / "run.db")]
        colds = []
        for _ in range(RUNS):
            for leftover in ("run.db-wal", "run.db-shm"):
                (tmp / leftover).unlink(missing_ok=True)
            shutil.copyfile(db, tmp / "run.db")  # the filled store, no signatures cached yet
            os.sync()  # the copy's 60 MB on disk, as an import done a while before would be
            colds.append(timed(dedup))
        warms = [timed(dedup) for _ in range(RUNS)]
        bases = [timed([sys.executable, "-c", PROCESS_BASELINE, str(plain), str(ROOT)]) for _ in range(BASE_RUNS)]
    cold, warm, base = (statistics.median(runs) for runs in (colds, warms, bases))
    report = (
        "\n".join(
            [
                f"# `goldsmith dedup --method near` on {n:,} examples, process start included",
                "",
                f"Machine: {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores. "
                f"Load average before the runs: {load:.1f}. Medians of {RUNS} runs ({BASE_RUNS} for the baseline); "
                "every run in brackets.",
                "",
                "| what | wall s | speed-up vs the loop script | runs |",
                "|---|---:|---:|---|",
                "| baseline: plain datasketch MinHash.update loop + MinHashLSH, as a script "
                f"| {base:.2f} | 1.0x | {spread(bases)} |",
                f"| `goldsmith dedup --method near`, cold (sketches, caches all) | {cold:.2f} | {base / cold:.1f}x "
                f"| {spread(colds)} |",
                f"| `goldsmith dedup --method near`, warm (signatures read from the store) | {warm:.2f} | {base / warm:.1f}x "
                f"| {spread(warms)} |",
            ]
        )
        + "\n"
    )
    (ROOT / "bench" / "results" / "dedup_cli.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
