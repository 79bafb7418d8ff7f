"""The whole loop in a real browser: `goldsmith serve` on a demo store, driven by Playwright and Debian's chromium.

Author writes and submits; reviewer approves; lead sees it counted, cuts a snapshot and opens the
Production page. Screenshots of the main pages land in $GOLDSMITH_SCREENSHOTS (docs/ for the README)
or /tmp. A second test renders hostile text and checks that no script ran.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import SAMPLE_DATA
from curation.demo import load_demo
from curation.examples import workflow
from curation.store import Store
from schemas import ExampleContent, ReviewInput

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)"),
]
PASSWORD = "demo password 1"
# Screenshots go to $GOLDSMITH_SCREENSHOTS when set (`GOLDSMITH_SCREENSHOTS=docs` refreshes the README's), else to /tmp.
SHOTS = Path(os.environ.get("GOLDSMITH_SCREENSHOTS") or Path(tempfile.gettempdir()) / "goldsmith-screenshots")
TIMEOUT_MS = 30_000
HOSTILE = (
    "xsscanary <script>window.__xss = 'script'; alert('script')</script>\n\n"
    "<img src=x onerror=\"window.__xss = 'img'; alert('img')\">\n\n"
    "[click me](javascript:window.__xss='link';alert('link'))\n\n"
    "[entity](javascript&#58;alert('entity'))\n\n"
    "<a href=\"javascript:alert('anchor')\">anchor</a>\n\n"
    "![pic](javascript:alert('image'))\n\n"
    "<iframe src=\"javascript:alert('iframe')\"></iframe> <svg onload=\"alert('svg')\"></svg>"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A demo store and `goldsmith serve` on it, as a real subprocess on a free localhost port."""
    folder = tmp_path_factory.mktemp("served")
    db = folder / "goldsmith.db"
    store = Store(db)
    load_demo(store, SAMPLE_DATA, password=PASSWORD)
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    goldsmith = Path(sys.executable).with_name("goldsmith")
    process = subprocess.Popen(
        [str(goldsmith), "serve", "--db", str(db), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail(f"goldsmith serve did not start: {process.stdout.read().decode(errors='replace')[-2000:]}")
    yield url, store
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=20)
    store.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield chromium
        chromium.close()


def _page(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    return page


def _settle(page) -> None:
    """Wait until Streamlit has finished the current rerun (the app says its script is not running)."""
    page.wait_for_timeout(250)  # a click reaches the server and starts a rerun
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    page.wait_for_timeout(150)


def _sign_in(page, username: str, heading: str) -> None:
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", level=1, name=heading, exact=True).wait_for()
    _settle(page)


def _sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()


def _go(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", level=1, name=title, exact=True).wait_for()
    _settle(page)


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.get_by_role("heading", level=1).first.scroll_into_view_if_needed()
    page.wait_for_timeout(200)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def _metric(page, label: str) -> int:
    metric = page.get_by_test_id("stMetric").filter(has=page.get_by_text(label, exact=True)).first
    return int(metric.get_by_test_id("stMetricValue").inner_text().replace(",", ""))


def test_author_reviewer_lead_loop(server, browser):
    url, store = server
    approved_before = store.stats().by_status["approved"]
    page = _page(browser, url)

    # The author writes an example and submits it.
    page.get_by_role("button", name="Sign in").wait_for()
    _shot(page, "login")
    _sign_in(page, "maya", "Write")
    page.get_by_role("textbox", name="User message").fill("Does my renters policy cover a stolen bike in the loop test?")
    page.get_by_role("textbox", name="Ideal response").fill(
        "Yes, personal property coverage usually includes bikes stolen away from home, minus your deductible. "
        "Your declarations page shows the limit; file the claim in the Lakeshore app with the police report number."
    )
    page.get_by_role("button", name="Submit for review").click()
    page.get_by_text(re.compile(r"Example \d+ submitted for review")).wait_for()
    _settle(page)
    _shot(page, "write")
    example_id = int(
        re.search(r"Example (\d+) submitted", page.get_by_text(re.compile(r"Example \d+ submitted")).inner_text())[1]
    )
    assert store.get_example(example_id).status == "submitted"
    _sign_out(page)

    # The reviewer finds it in the queue (skipping older ones) and approves it.
    _sign_in(page, "rui", "Review")
    shown = page.locator("h3", has_text=re.compile(r"^Example \d+$"))
    for _ in range(80):
        current = shown.inner_text()
        if current == f"Example {example_id}":
            break
        page.get_by_role("button", name="Skip for now").click()
        page.wait_for_function(
            "([sel, before]) => { const h = [...document.querySelectorAll(sel)].map(e => e.innerText)"
            ".find(t => /^Example \\d+$/.test(t)); return h && h !== before; }",
            arg=["h3", current],
        )
        _settle(page)
    else:
        pytest.fail(f"example {example_id} never reached rui's review queue")
    _shot(page, "review")
    page.get_by_role("button", name="Record review").click()
    page.get_by_text(f"Example {example_id}: approve recorded.").wait_for()
    assert store.get_example(example_id).status == "approved"
    _go(page, "Browse")
    _shot(page, "browse")
    _sign_out(page)

    # The lead sees it counted and cuts a snapshot (overriding with a reason if the demo's data is blocked).
    _sign_in(page, "dana", "Write")
    _go(page, "Dashboard")
    assert _metric(page, "Approved") == approved_before + 1
    _shot(page, "dashboard")
    _go(page, "Snapshots")
    page.get_by_role("textbox", name="Name").fill("loop-v1")
    page.get_by_role("button", name="Validate and create").click()
    outcome = page.get_by_text(re.compile(r"Snapshot [0-9a-f]{16} \(loop-v1\)")).or_(
        page.get_by_role("button", name="Create anyway")
    )
    outcome.first.wait_for(timeout=120_000)
    if page.get_by_role("button", name="Create anyway").count():
        page.get_by_role("textbox", name=re.compile("Reason to publish anyway")).fill("demo data reviewed by the lead")
        page.get_by_role("button", name="Create anyway").click()
        page.get_by_text(re.compile(r"Snapshot [0-9a-f]{16} \(loop-v1\)")).wait_for(timeout=120_000)
    _settle(page)
    _shot(page, "snapshots")
    snapshot = store.list_snapshots()[0]
    assert snapshot.name == "loop-v1" and example_id in _ids(Path(snapshot.path))

    # ... and watches the deployed model's traffic (the demo's production logs).
    _go(page, "Production")
    page.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=120_000)
    assert _metric(page, "Conversations") == 150
    _settle(page)
    _shot(page, "production")
    _sign_out(page)

    _sign_in(page, "admin", "Browse")
    _go(page, "Admin")
    _shot(page, "admin")
    page.close()


def _ids(folder: Path) -> set[int]:
    import json

    return {json.loads(line)["id"] for f in ("train.jsonl", "eval.jsonl") for line in (folder / f).read_text().splitlines()}


def test_hostile_text_never_runs_script(server, browser):
    url, store = server
    example = workflow.create_example(store, "sam", ExampleContent.from_pair(HOSTILE, HOSTILE))
    example = workflow.submit_example(store, "sam", example.id, example.version)
    workflow.review_example(store, "priya", example.id, example.version, ReviewInput(decision="request_changes", comment=HOSTILE))
    page = _page(browser, url)
    page.add_init_script("window.__xss = null;")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url)

    _sign_in(page, "sam", "Write")
    page.get_by_role("tab", name="My queue").click()
    page.get_by_role("button", name="Open").first.click()  # the newest changes-requested example: the hostile one
    _settle(page)
    page.get_by_role("tab", name="Editor").click()
    page.get_by_text(f"Editing example {example.id}").wait_for()
    _settle(page)
    _assert_inert(page, dialogs)
    _go(page, "Browse")
    page.get_by_role("spinbutton", name="Open example by id").fill(str(example.id))
    page.get_by_role("spinbutton", name="Open example by id").press("Enter")
    page.get_by_role("heading", name=f"Example {example.id}", exact=True).wait_for()
    _settle(page)
    assert page.get_by_text("xsscanary").count() >= 2  # the hostile text is shown, as text
    _assert_inert(page, dialogs)
    for link in page.get_by_role("link", name=re.compile("click me|entity|anchor")).all():
        href = link.get_attribute("href") or ""
        assert not href.lower().startswith("javascript:"), href
    page.close()


def _assert_inert(page, dialogs: list[str]) -> None:
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    found = page.evaluate(
        """() => ({
            scripts: [...document.scripts].filter(s => s.textContent.includes('__xss')).length,
            handlers: [...document.querySelectorAll('[onerror],[onload]')].length,
            jsLinks: [...document.querySelectorAll('a[href],iframe[src]')]
                .map(a => a.getAttribute('href') || a.getAttribute('src') || '')
                .filter(h => h.trim().toLowerCase().replace(/[^a-z:]/g, '').startsWith('javascript')),
        })"""
    )
    assert found == {"scripts": 0, "handlers": 0, "jsLinks": []}
