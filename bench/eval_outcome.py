"""Record an evaluated run as the README's evaluation outcome: a table and the per-category chart (SVG).

Reads the run's evaluation report from the store and writes bench/results/evaluation_outcome.md and
docs/category_chart.svg (per category, worst first: the offline judge's win rate with its 95%
interval, and the change of the eval loss; plain SVG, no plotting library needed).
Run: .venv/bin/python bench/eval_outcome.py RUN --db DB [--note TEXT]
"""

from __future__ import annotations

import argparse
import html
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curation.store import Store  # noqa: E402
from schemas.training import EvaluationReport  # noqa: E402
from training.evaluation.blind import evaluation  # noqa: E402
from training.runs import get_run  # noqa: E402

ROW, LEFT, BAR, GAP = 34, 190, 300, 60


def chart(report: EvaluationReport) -> str:
    """Two bar panels per category: judge win rate (0-100%, interval whiskers, 50% line) and eval loss change."""
    rows = report.by_category
    width, height = LEFT + BAR + GAP + BAR + 60, 70 + ROW * len(rows) + 30
    changes = [abs(c.loss_change or 0.0) for c in rows] or [0.1]
    scale = (BAR // 2) / max(0.05, max(changes))
    x2 = LEFT + BAR + GAP + BAR // 2  # the loss panel's zero line: falls go left of it, rises right
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{LEFT + BAR / 2}" y="22" text-anchor="middle" font-size="14">Judge win rate by category (worst first)</text>',
        f'<text x="{x2}" y="22" text-anchor="middle" font-size="14">Eval loss change, tuned vs base</text>',
    ]
    top = 40
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = LEFT + BAR * tick
        dash = ' stroke-dasharray="4,3"' if tick == 0.5 else ""
        stroke = "#888" if tick == 0.5 else "#eee"
        parts.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{top + ROW * len(rows)}" stroke="{stroke}"{dash}/>')
        parts.append(f'<text x="{x}" y="{top + ROW * len(rows) + 16}" text-anchor="middle">{tick:.0%}</text>')
    parts.append(f'<line x1="{x2}" y1="{top}" x2="{x2}" y2="{top + ROW * len(rows)}" stroke="#888"/>')
    for n, c in enumerate(rows):
        y = top + ROW * n
        rate = c.judge_win_rate or 0.0
        colour = "#2e7d32" if rate >= 0.5 else "#c62828"
        label = html.escape(f"{c.category} ({c.examples})")
        parts.append(f'<text x="{LEFT - 8}" y="{y + ROW / 2 + 4}" text-anchor="end">{label}</text>')
        parts.append(f'<rect x="{LEFT}" y="{y + 7}" width="{BAR * rate:.1f}" height="{ROW - 14}" fill="{colour}" opacity="0.8"/>')
        if c.judge_interval:
            lo, hi = (LEFT + BAR * v for v in c.judge_interval)
            mid = y + ROW / 2
            parts.append(f'<line x1="{lo:.1f}" y1="{mid}" x2="{hi:.1f}" y2="{mid}" stroke="black"/>')
            parts += [f'<line x1="{v:.1f}" y1="{mid - 5}" x2="{v:.1f}" y2="{mid + 5}" stroke="black"/>' for v in (lo, hi)]
        change = c.loss_change or 0.0
        length = abs(change) * scale
        start = x2 if change >= 0 else x2 - length
        colour = "#2e7d32" if change <= 0 else "#c62828"
        parts.append(
            f'<rect x="{start:.1f}" y="{y + 7}" width="{length:.1f}" height="{ROW - 14}" fill="{colour}" opacity="0.8"/>'
        )
        text_x = x2 + 6 if change < 0 else x2 + length + 6
        parts.append(f'<text x="{text_x:.1f}" y="{y + ROW / 2 + 4}">{change:+.1%}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--db", required=True)
    parser.add_argument("--note", default="", help="how it was run (load, command), added to the results file")
    args = parser.parse_args()
    store = Store(args.db)
    run = get_run(store, args.run)
    report = evaluation(store, run.id)
    if report is None or report.judge is None or report.canary is None:
        raise SystemExit(f"run {run.id} has no evaluation with a judge and a canary; run `goldsmith eval {run.id}` first")
    (ROOT / "docs" / "category_chart.svg").write_text(chart(report))
    judge, canary = report.judge, report.canary
    low, high = judge.interval or (0.0, 1.0)
    cpu = next(
        ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")
    )
    worse = [c.category for c in report.by_category if (c.loss_change or 0) > 0]
    lines = [
        "# Evaluating the demo run (CPU)",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, no GPU. Recorded {time.strftime('%Y-%m-%d')} by `bench/eval_outcome.py` "
        f"from run `{run.id}` on snapshot {report.snapshot_id}. {args.note}",
        "",
        "| measure | base | tuned | outcome | goal |",
        "|---|---|---|---|---|",
        f"| eval loss ({report.examples} held-out examples) | {report.base.eval_loss:.4f} | {report.tuned.eval_loss:.4f} | "
        f"{report.eval_loss_drop:.1%} lower | lower |",
        f"| offline judge ({judge.method}) | {judge.losses} wins | {judge.wins} wins, {judge.ties} ties | "
        f"win rate **{judge.win_rate:.1%}** (95% CI {low:.1%}-{high:.1%}) | >= 60% |",
        f"| canary loss ({canary.examples} general-text examples) | {canary.base_loss:.4f} | {canary.tuned_loss:.4f} | "
        f"{canary.change:+.2%} | rise < 5% |",
        f"| categories whose eval loss got worse | | | {len(worse)} of {len(report.by_category)}"
        + (f" ({', '.join(worse)})" if worse else "")
        + " | none |",
        "",
        f"Answers: greedy, at most {report.generation.max_new_tokens} new tokens, {report.generation.engine} "
        f"({report.generation.answers_per_s or 0:.2f} answers/s for both models together). Answers failing the sanity "
        f"check (empty, refusing, looping, far too short or long): {judge.failed_sanity or 'none'}.",
        "",
        "![per category](../../docs/category_chart.svg)",
        "",
        "| category | examples | base loss | tuned loss | change | judge win rate (95% CI) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {c.category} | {c.examples} | {c.base_loss:.4f} | {c.tuned_loss:.4f} | {c.loss_change:+.1%} | "
            f"{c.judge_win_rate:.0%} ({c.judge_interval[0]:.0%}-{c.judge_interval[1]:.0%}) |"
            for c in report.by_category
            if c.base_loss is not None and c.tuned_loss is not None and c.loss_change is not None and c.judge_interval
        ),
        "",
        "| response type | examples | base loss | tuned loss | change | judge win rate |",
        "|---|---|---|---|---|---|",
        *(
            f"| {t.response_type} | {t.examples} | {t.base_loss:.4f} | {t.tuned_loss:.4f} | {t.loss_change:+.1%} | "
            f"{t.judge_win_rate:.0%} |"
            for t in report.by_response_type
            if t.base_loss is not None and t.tuned_loss is not None and t.loss_change is not None and t.judge_win_rate is not None
        ),
        "",
    ]
    (ROOT / "bench" / "results" / "evaluation_outcome.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
