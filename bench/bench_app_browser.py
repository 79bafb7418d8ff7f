"""Speed a person feels: every page and main action of the app, timed in Debian's chromium from the click to
the page going idle, on the demo store and on a 100,000-example store.

Goal: median under 400 ms and p95 under 800 ms for every navigation and main action (sign in, save, skip,
record a review); the first visit of a page in a new session under 1.5 s.

Baseline, measured side by side in the same run: the app as it was before issue 15 (commit a1ee079,
unpacked with `git archive` and served the same way), on its own copy of the same store file.

"Idle" is Streamlit's own signal: the app's `data-test-script-state` is `notRunning` again after the click
started a run (a MutationObserver in the page records when), and what the action should show is on the page
(the page's title, the saved example's message, the next example); a run that starts within 300 ms of the
end (a switch_page, a rerun) counts towards the same action. Each session signs in as the role the pages
are for (the lead sees Write, Review, Browse, Dashboard, Snapshots, Training, Compare, Playground and
Production). Per side and store: a first visitor warms the fresh server (its figures are reported as
"first visit after the server started"), then a second session's first visit of each page is "cold", and
ROUNDS more visits and actions give the median and p95.

The 100k store is bench_store.fill plus bench_app.prepare (users, taxonomy, reviews); its examples'
embeddings are random unit vectors under each side's own model key (as in bench_live: embedding 100k texts
takes minutes and does not change the cost of a page), its MinHash signatures computed and cached once by each
side's own code (the two sides key their caches differently).
Run: .venv/bin/python bench/bench_app_browser.py [--rounds N] [--examples N] [--only demo|100k] [--keep DIR]
  -> writes bench/results/app_browser.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASELINE = "a1ee079"  # the last commit before issue 15
PASSWORD = "bench password 1"
CHROMIUM = "/usr/bin/chromium"
LEAD_PAGES = ["Write", "Review", "Browse", "Dashboard", "Snapshots", "Training", "Compare", "Playground", "Production"]
RESULTS = Path(__file__).with_name("results") / "app_browser.md"
GOAL_MEDIAN, GOAL_P95, GOAL_COLD = 400, 800, 1500

# Marks the start of an action; the observer notes any run that starts (a run can start and end within one
# frame, so its end is found by polling, not by waiting for the attribute to change).
MARK_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  window.__gs = {t0: performance.now(), ran: false};
  if (!window.__gsObs) {
    window.__gsObs = new MutationObserver(() => {
      if (app.getAttribute('data-test-script-state') === 'running') window.__gs.ran = true;
    });
    window.__gsObs.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  }
}"""
# Resolves, at the first animation frame where the app is idle and `ready` holds, with the ms since the mark.
IDLE_JS = """(ready) => new Promise((resolve) => {
  const app = document.querySelector('[data-testid="stApp"]');
  const check = new Function('return ' + ready);
  const tick = () => {
    if (app.getAttribute('data-test-script-state') === 'notRunning' && check()) {
      window.__gs.ran = false;
      resolve(performance.now() - window.__gs.t0);
    } else if (performance.now() - window.__gs.t0 > 180000) resolve(-1);
    else requestAnimationFrame(tick);
  };
  tick();
})"""


# ------------------------------------------------------------------------------------------ stores


def build_demo(folder: Path, tree: Path) -> Path:
    """The demo store as `tree`'s own code loads it (each side reads the data its own schema wrote)."""
    path = folder / f"demo-{tree.name}.db"
    if not path.exists():
        code = (
            "import sys; from pathlib import Path; from curation.store import Store; from curation.demo import load_demo; "
            f"load_demo(Store(Path(sys.argv[1])), Path(sys.argv[2]), password={PASSWORD!r})"
        )
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, "-c", code, str(path), str(tree / "sample_data")], cwd=tree, env=env, check=True)
    return path


SEED_CACHES = """
import sys
from pathlib import Path
import numpy as np
from curation.similarity import cache
from curation.similarity.embeddings import get_embedder
from curation.similarity.live import LiveIndex
from curation.store import Store
store = Store(Path(sys.argv[1]))
embedder = get_embedder()
rows = list(store.db.query("SELECT prompt_text, response_text FROM examples"))
vectors = np.random.default_rng(0).standard_normal((len(rows), embedder.dim)).astype(np.float32)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
keys = [cache.text_key(f"{r['prompt_text']}\\n{r['response_text']}") for r in rows]
cache._save(store, "embeddings", "model", embedder.model_key, keys, vectors)
LiveIndex(semantic=False).refresh(store)
store.close()
"""  # bench_live.seed_embeddings, in whichever tree runs it (the baseline's bench_store cannot import there)


def _seed_caches(path: Path, tree: Path) -> None:
    """Random embeddings and real MinHash signatures under `tree`'s own cache keys (its int8 recipe and text
    keys may differ from ours: without this, that side's first check would embed 100,000 texts)."""
    code = SEED_CACHES
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, "-c", code, str(path)], cwd=tree, env=env, check=True)


def build_large(folder: Path, n: int, trees: list[Path]) -> tuple[Path, str]:
    from argon2 import PasswordHasher

    from bench.bench_app import prepare
    from curation.store import Store

    path = folder / f"large-{n}.db"
    if path.exists():
        return path, "lead"
    store = Store(path)
    prepare(store, n)
    secret = PasswordHasher().hash(PASSWORD)
    with store.write():
        store.conn.execute("UPDATE users SET password_hash = ?", [secret])
    store.close()
    for tree in trees:  # each side's embeddings and MinHash signatures, as that side's code keys them
        _seed_caches(path, tree)
    return path, "lead"


# ------------------------------------------------------------------------------------------ servers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def baseline_tree(folder: Path) -> Path:
    """The app at BASELINE, unpacked beside the run (git archive: the working tree is not touched)."""
    tree = folder / f"baseline-{BASELINE}"
    if not tree.exists():
        tree.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def streamlit_argv(tree: Path, port: int) -> list[str]:
    """What `goldsmith serve` runs on this side: its own app/cli_serve.streamlit_argv (script and flags)."""
    code = f"import json; from app.cli_serve import streamlit_argv; print(json.dumps(streamlit_argv({port}, '127.0.0.1')))"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, check=True, capture_output=True)
    return json.loads(out.stdout)


@contextmanager
def serve(side: str, db: Path, tree: Path):
    """This side's app on `db`, as `goldsmith serve` runs it; yields the URL."""
    port = _free_port()
    env = {**os.environ, "GOLDSMITH_DB": str(db), "PYTHONPATH": str(tree)}
    process = subprocess.Popen(
        streamlit_argv(tree, port),
        cwd=tree,  # `python -m` puts the working folder first on sys.path: each side imports its own app/
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.2)
    else:
        os.killpg(process.pid, signal.SIGTERM)
        raise SystemExit(f"the {side} server did not start")
    try:
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


# ------------------------------------------------------------------------------------------ timing


def timed(page: Any, act: Any, ready: str) -> float:
    """Milliseconds from `act()` (a click) to the app idle with `ready` (a JS expression, true only after the step)."""
    page.evaluate(MARK_JS)
    act()
    while True:
        took = float(page.evaluate(IDLE_JS, ready))
        if took < 0:
            page.screenshot(path=str(Path(tempfile.gettempdir()) / "goldsmith-bench-failed.png"))
            raise SystemExit(f"not idle with {ready} after 3 minutes ({page.url})")
        page.wait_for_timeout(300)  # a switch_page or a rerun right after counts towards the same step
        if not page.evaluate("window.__gs.ran"):
            return took


def _title(name: str) -> str:
    return f"[...document.querySelectorAll('h1')].some(h => h.innerText.trim() === {name!r})"


def sign_in(browser: Any, url: str, user: str, landing: str) -> tuple[Any, Any, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(180_000)
    page.goto(url)
    page.get_by_role("button", name="Sign in").wait_for()
    page.wait_for_timeout(500)  # the page's first run has ended (not timed: the sign-in is)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    page.get_by_role("textbox", name="Username").fill(user)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    took = timed(page, lambda: page.get_by_role("button", name="Sign in").click(), _title(landing))
    return context, page, took


def go(page: Any, title: str) -> float:
    print(f"  {title}", end="", flush=True, file=sys.stderr)
    link = page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True)
    return timed(page, link.click, _title(title))


def save(page: Any, n: int) -> float:
    """Write a new example and save it as a draft (after the author's pause: the checks have run)."""
    if page.get_by_role("button", name="Start a new example").count():
        timed(page, page.get_by_role("button", name="Start a new example").click, _title("Write"))
    texts = {
        "User message": f"Bench question {n} {time.time_ns()}: is my bike covered?",
        "Ideal response": f"Bench answer {n}: usually yes, minus your deductible.",
    }
    for _ in range(5):  # a rerun that was still redrawing the editor can replace the boxes just filled: fill again
        for name, text in texts.items():
            page.get_by_role("textbox", name=name).first.fill(text)
        page.keyboard.press("Tab")  # the last box commits its text (Streamlit commits a text area on blur)
        page.wait_for_timeout(1500)
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
        if all(page.get_by_role("textbox", name=name).first.input_value() == text for name, text in texts.items()):
            break
    ready = "document.body.innerText.includes('saved (draft)')"
    return timed(page, page.get_by_role("button", name="Save draft").click, ready)


def _example_shown(page: Any) -> str:
    return page.locator("h3").filter(has_text="Example ").first.inner_text()


def skip(page: Any) -> float:
    before = _example_shown(page)
    ready = f"[...document.querySelectorAll('h3')].some(h => /^Example \\d+$/.test(h.innerText) && h.innerText !== {before!r})"
    return timed(page, page.get_by_role("button", name="Skip for now").click, ready)


def record(page: Any, current: bool) -> float:
    shown = _example_shown(page)
    if current:  # the decision starts unset: choosing it is the reviewer's, not the page's
        page.get_by_role("radiogroup", name="Decision").get_by_text("Approve", exact=True).click()
    ready = f"document.body.innerText.includes({shown + ':'!r})"
    return timed(page, page.get_by_role("button", name="Record review").click, ready)


# ------------------------------------------------------------------------------------------ one side, one store


def run_side(browser: Any, url: str, lead: str, current: bool, rounds: int, out: dict[str, dict[str, list[float]]]) -> None:
    """Fills `out` with first (a fresh server's first visitor), cold (a new session's first visit) and warm figures,
    in ms (what was measured stays there if a step fails)."""
    context, page, took = sign_in(browser, url, lead, "Write")
    out["first"]["sign in"] = [took]
    for title in LEAD_PAGES:
        out["first"][title] = [go(page, title)]
    go(page, "Write")
    out["first"]["save"] = [save(page, 0)]
    context.close()

    context, page, took = sign_in(browser, url, lead, "Write")
    out["cold"]["sign in"] = [took]
    for title in LEAD_PAGES:
        out["cold"][title] = [go(page, title)]
    warm = out["warm"]
    for _ in range(rounds):
        for title in LEAD_PAGES:
            warm.setdefault(title, []).append(go(page, title))
    go(page, "Write")
    for n in range(1, rounds + 1):
        warm.setdefault("save", []).append(save(page, n))
    go(page, "Review")
    for _ in range(rounds):
        warm.setdefault("skip", []).append(skip(page))
    context.close()
    context, page, took = sign_in(browser, url, lead, "Write")  # a new sitting: nothing skipped
    go(page, "Review")
    for _ in range(rounds):
        warm.setdefault("record review", []).append(record(page, current))
    context.close()
    signs = [took]
    for _ in range(max(3, rounds // 3)):
        context, _, took = sign_in(browser, url, lead, "Write")
        signs.append(took)
        context.close()
    warm["sign in"] = signs


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]


# ------------------------------------------------------------------------------------------ the report


def table(name: str, runs: dict[str, dict[str, dict[str, list[float]]]], failed: dict[str, str]) -> list[str]:
    now, base = runs["current"], runs["baseline"]
    lines = [
        f"### {name}",
        "",
        "| step | current median ms | current p95 ms | baseline median ms | baseline p95 ms | current cold ms "
        "| baseline cold ms | current first after start ms | goal met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for step in [*LEAD_PAGES, "sign in", "save", "skip", "record review"]:
        w, b = now["warm"].get(step, []), base["warm"].get(step, [])
        if not w:
            lines.append(f"| {step} | not measured | | | | | | | |")
            continue
        cold, bcold = now["cold"].get(step, [None])[0], base["cold"].get(step, [None])[0]
        first = now["first"].get(step, [None])[0]
        met = statistics.median(w) < GOAL_MEDIAN and p95(w) < GOAL_P95 and (cold is None or cold < GOAL_COLD)

        def ms(v: float | None) -> str:
            return "" if v is None else f"{v:,.0f}"

        lines.append(
            f"| {step} | {ms(statistics.median(w))} | {ms(p95(w))} | {ms(statistics.median(b) if b else None)} "
            f"| {ms(p95(b) if b else None)} | {ms(cold)} | {ms(bcold)} | {ms(first)} | {'yes' if met else 'NO'} |"
        )
    notes = [f"The {side} side stopped here: {why} (above: what it measured before)." for side, why in failed.items()]
    return [*lines, "", *notes, *([""] if notes else [])]


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--only", choices=["demo", "100k"])
    parser.add_argument("--keep", type=Path, help="a folder to keep the stores and the baseline in between runs")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = args.keep or Path(tempfile.mkdtemp(prefix="goldsmith-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    tree = baseline_tree(folder)
    sides = {"baseline": tree, "current": ROOT}
    stores: list[tuple[str, dict[str, Path], str]] = []
    if args.only in (None, "demo"):
        demo = {side: build_demo(folder, code) for side, code in sides.items()}
        stores.append(("Demo store (`goldsmith demo`: 172 examples, 150 production logs)", demo, "dana"))
    if args.only in (None, "100k"):
        large, lead = build_large(folder, args.examples, list(sides.values()))
        stores.append((f"{args.examples:,}-example store", dict.fromkeys(sides, large), lead))
    load_before = loadavg()
    sections = []
    with sync_playwright() as p:
        for name, paths, lead in stores:
            runs: dict[str, dict[str, dict[str, list[float]]]] = {}
            failed: dict[str, str] = {}
            for side, code in sides.items():
                copy = folder / f"run-{side}-{paths[side].name}"
                for leftover in ("-wal", "-shm"):  # an earlier run's log would be replayed into the fresh copy
                    Path(f"{copy}{leftover}").unlink(missing_ok=True)
                shutil.copyfile(paths[side], copy)
                # A fresh browser per side: one that has served a side for minutes is slower for the next.
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
                runs[side] = {"first": {}, "cold": {}, "warm": {}}
                with serve(side, copy, code) as url:
                    try:
                        run_side(browser, url, lead, side == "current", args.rounds, runs[side])
                    except (SystemExit, Exception) as error:  # report what failed beside what was measured
                        failed[side] = str(error).splitlines()[0]
                        print(f"{name} {side} failed: {failed[side]}", flush=True)
                browser.close()
                print(name, side, {k: round(statistics.median(v)) for k, v in runs[side]["warm"].items()}, flush=True)
            sections += table(name, runs, failed)
    write_report(sections, args, load_before, loadavg())
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


def write_report(sections: list[str], args: argparse.Namespace, load_before: str, load_after: str) -> None:
    import streamlit

    lines = [
        "# App pages and actions in a browser",
        "",
        f"Machine: {platform.machine()}, {platform.system()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Streamlit {streamlit.__version__}, Debian chromium (headless, Playwright). "
        f"1-minute load average {load_before} before the run and {load_after} after it"
        + (
            " (measured under load: other work shared the machine)." if max(float(load_before), float(load_after)) >= 0.8 else "."
        ),
        "",
        "From the click (a sidebar link, a button) to the app idle: Streamlit's script state back to `notRunning`"
        " and what the step shows on the page; a rerun within 300 ms counts towards the same step.",
        f"Median and p95 over {args.rounds} rounds in one signed-in session; *cold* is a new session's first visit,"
        " *first after start* the first visit on a freshly started server (the embedding model, the live duplicate"
        " index and the caches load there). Goal: median < 400 ms, p95 < 800 ms, cold < 1.5 s.",
        f"Baseline: the app before issue 15 (commit {BASELINE}), served the same way on its own copy of the store,"
        " in the same run. Signed in as the lead.",
        "",
        *sections,
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
