"""Record a finished run as the README's sample-data outcome: a table and an SVG curve.

Reads the run's metrics from the store and writes bench/results/training_outcome.md and
docs/training_curve.svg (train loss per step and eval loss per evaluation; plain SVG, no plotting
library needed).
Run: .venv/bin/python bench/train_outcome.py RUN --db DB [--wall-seconds S]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curation.store import Store  # noqa: E402
from training.runs import get_run, metrics  # noqa: E402

W, H, PAD = 640, 320, 48


def svg(train: list[tuple[int, float]], evals: list[tuple[int, float]], title: str) -> str:
    steps = max(s for s, _ in train + evals) or 1
    values = [v for _, v in train + evals]
    low, high = min(values) * 0.95, max(values) * 1.02

    def xy(step: int, value: float) -> str:
        x = PAD + (W - 2 * PAD) * step / steps
        y = H - PAD - (H - 2 * PAD) * (value - low) / (high - low)
        return f"{x:.1f},{y:.1f}"

    ticks = []
    for i in range(5):
        value = low + (high - low) * i / 4
        y = H - PAD - (H - 2 * PAD) * i / 4
        ticks.append(f'<text x="{PAD - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{value:.2f}</text>')
        ticks.append(f'<line x1="{PAD}" y1="{y:.1f}" x2="{W - PAD}" y2="{y:.1f}" stroke="#eee"/>')
    for i in range(5):
        step = round(steps * i / 4)
        x = PAD + (W - 2 * PAD) * step / steps
        ticks.append(f'<text x="{x:.1f}" y="{H - PAD + 16}" text-anchor="middle" font-size="11">{step}</text>')
    train_line = " ".join(xy(s, v) for s, v in train)
    eval_line = " ".join(xy(s, v) for s, v in evals)
    dots = "".join(
        f'<circle cx="{xy(s, v).split(",")[0]}" cy="{xy(s, v).split(",")[1]}" r="3" fill="#d62728"/>' for s, v in evals
    )
    return f"""<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>
{"".join(ticks)}
<polyline points="{train_line}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>
<polyline points="{eval_line}" fill="none" stroke="#d62728" stroke-width="2"/>{dots}
<text x="{W / 2}" y="{H - 8}" text-anchor="middle" font-size="12">optimizer step</text>
<text x="{W - PAD}" y="40" text-anchor="end" font-size="12" fill="#1f77b4">train loss (assistant tokens)</text>
<text x="{W - PAD}" y="56" text-anchor="end" font-size="12" fill="#d62728">held-out eval loss</text>
</svg>
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--db", required=True)
    parser.add_argument("--wall-seconds", type=float, help="the whole command's wall time, start to finish")
    args = parser.parse_args()
    store = Store(args.db)
    run = get_run(store, args.run)
    points = metrics(store, run.id)
    train = [(p.step, p.loss) for p in points if p.kind == "train"]
    evals = [(p.step, p.eval_loss) for p in points if p.kind == "eval"]
    result = run.result
    drop = result["eval_loss_drop"]
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "training_curve.svg").write_text(
        svg(train, evals, f"SmolLM2-135M LoRA on the sample data: held-out loss -{100 * drop:.1f}%")
    )
    cpu = next(
        ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")
    )
    lines = [
        "# Training on the sample data (CPU)",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, no GPU. Recorded {time.strftime('%Y-%m-%d')} by `bench/train_outcome.py` "
        f"from run `{run.id}` (`goldsmith train v1 --config sample_data/train_demo.yaml`).",
        "",
        f"- Base model {run.base_model}, snapshot {run.snapshot_id}: {result['data']['train']['examples']} train / "
        f"{result['data']['eval']['examples']} held-out examples, {result['steps']} steps, {result['precision']}.",
        f"- Held-out loss (assistant tokens): {result['base_eval_loss']:.4f} (base) -> {result['final_eval_loss']:.4f} "
        f"(**{100 * drop:.1f}% lower**).",
        f"- Time: {result['train_seconds']:.0f} s inside optimizer steps"
        + (
            f", {args.wall_seconds:.0f} s for the whole command (model load and evaluations included)"
            if args.wall_seconds
            else ""
        )
        + f"; {result['tokens_per_s']:.0f} tokens/s; peak memory {result['peak_memory_mb']:.0f} MB.",
        "",
        "![curve](../../docs/training_curve.svg)",
        "",
        "| step | eval loss |",
        "|---|---|",
        *(f"| {s} | {v:.4f} |" for s, v in evals),
        "",
    ]
    (ROOT / "bench" / "results" / "training_outcome.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
