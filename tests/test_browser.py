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
from curation.examples import review_queue, workflow
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
    page.get_by_role("button", name="Sign in").first.wait_for()
    _settle(page)


def _go(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", level=1, name=title, exact=True).wait_for()
    _settle(page)


def _shot(page, name: str, *, height: int | None = None) -> None:
    """A screenshot from the page's title; `height` draws a taller window for it (Streamlit scrolls inside the page)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    if height:
        page.set_viewport_size({"width": size["width"], "height": height})
    page.get_by_role("heading", level=1).first.scroll_into_view_if_needed()
    page.wait_for_timeout(400)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(size)


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
    page.keyboard.press("Tab")  # the answer box commits its text: the checks run as the author pauses
    page.get_by_role("heading", name="Checks as you write").wait_for()
    _settle(page)
    _shot(page, "write", height=1700)  # down to the checks under the editor
    page.get_by_role("button", name="Submit for review").click()
    page.get_by_text(re.compile(r"Example \d+ submitted for review")).wait_for()
    _settle(page)
    example_id = int(
        re.search(r"Example (\d+) submitted", page.get_by_text(re.compile(r"Example \d+ submitted")).inner_text())[1]
    )
    assert store.get_example(example_id).status == "submitted"
    _sign_out(page)

    # The reviewer skips one, then opens it by its id, scores what they judged and approves it.
    _sign_in(page, "rui", "Review")
    shown = page.locator("h3", has_text=re.compile(r"^Example \d+$"))
    first = shown.inner_text()
    page.get_by_role("button", name="Skip for now").click()
    page.wait_for_function(
        "([sel, before]) => { const h = [...document.querySelectorAll(sel)].map(e => e.innerText)"
        ".find(t => /^Example \\d+$/.test(t)); return h && h !== before; }",
        arg=["h3", first],
    )
    _settle(page)
    _open_for_review(page, example_id)
    _shot(page, "review")
    page.get_by_role("button", name="Record review").click()  # nothing chosen: nothing recorded
    page.get_by_text("Choose a decision").wait_for()
    assert store.get_example(example_id).status == "submitted"
    page.get_by_role("radiogroup", name="Accuracy").get_by_role("radio", name="5").click()
    page.get_by_role("radiogroup", name="Decision").get_by_text("Approve", exact=True).click()
    page.get_by_role("button", name="Record review").click()
    page.get_by_text(f"Example {example_id}: approved.").wait_for()
    assert store.get_example(example_id).status == "approved"
    [review] = [r for r in review_queue.reviews_of(store, example_id) if r.reviewer == "rui"]
    assert review.rubric.scores == {"accuracy": 5}
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
    nearest = page.get_by_text(re.compile("^Nearest approved example: similarity"))
    assert not nearest.count()  # a closed bad answer draws nothing ...
    page.locator("summary").filter(has_text=re.compile("Log [0-9]+ · ")).first.click()
    nearest.wait_for()  # ... until it is opened
    assert page.get_by_role("button", name="Make task").count() == 1
    _settle(page)
    _shot(page, "production")
    _sign_out(page)

    _sign_in(page, "admin", "Browse")
    _go(page, "Admin")
    _shot(page, "admin")
    page.close()


def _open_for_review(page, example_id: int) -> None:
    if not page.get_by_role("spinbutton", name="Open example by id").is_visible():
        page.get_by_text("Choose what to review").click()
    box = page.get_by_role("spinbutton", name="Open example by id")
    box.fill(str(example_id))
    box.press("Enter")
    page.get_by_role("heading", name=f"Example {example_id}", exact=True).wait_for()
    _settle(page)


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


# ------------------------------------------------------------------------------------------ signing in


def _cookie(context) -> dict:
    return next(c for c in context.cookies() if c["name"] == "goldsmith_session")


def test_a_reload_and_a_second_tab_stay_signed_in_until_sign_out_ends_it_everywhere(server, browser):
    url, _ = server
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    _sign_in(page, "maya", "Write")
    page.wait_for_function("() => true")
    _wait_for_cookie(context)
    cookie = _cookie(context)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert "goldsmith_session" not in page.evaluate("document.cookie")  # no script can read it
    page.reload()
    page.get_by_role("heading", level=1, name="Write", exact=True).wait_for()
    second = context.new_page()
    second.set_default_timeout(TIMEOUT_MS)
    second.goto(f"{url}/dashboard")
    second.get_by_role("heading", level=1, name="Dashboard", exact=True).wait_for()
    _settle(second)
    assert second.get_by_text("Signed in as").count()
    _settle(page)
    _sign_out(page)
    _go_to(second, "Browse")  # the second tab's next step finds its session ended
    second.get_by_role("button", name="Sign in").first.wait_for()
    assert second.get_by_text("Your session has ended").count()
    page.wait_for_function("() => true")
    _settle(page)
    assert not [c for c in context.cookies() if c["name"] == "goldsmith_session"]  # and the browser dropped it
    context.close()


def _wait_for_cookie(context) -> None:
    for _ in range(100):
        if any(c["name"] == "goldsmith_session" for c in context.cookies()):
            return
        time.sleep(0.1)
    pytest.fail("the session cookie was never set")


def _go_to(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')


def test_a_link_to_an_example_survives_signing_in(server, browser):
    url, store = server
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{url}/browse?id=42")
    page.get_by_role("button", name="Sign in").wait_for()
    _sign_in(page, "priya", "Browse")
    page.get_by_role("heading", name="Example 42", exact=True).wait_for()
    assert store.get_example(42).prompt[:40] in page.locator("body").inner_text()
    context.close()


# ------------------------------------------------------------------------------------------ writing and reviewing


def test_the_checks_run_as_the_author_pauses_and_show_the_question_matched(server, browser):
    url, store = server
    twin = store.get_example(7)
    before = store.stats().examples
    page = _page(browser, url)
    _sign_in(page, "lena", "Write")
    page.get_by_role("textbox", name="User message").fill(twin.prompt)
    page.get_by_role("textbox", name="Ideal response").fill(twin.response)  # typing, then a pause: no blur, no save
    page.get_by_role("heading", name="Checks as you write").wait_for()
    page.get_by_text(re.compile(r"existing examples? looks? like this one")).wait_for()
    _settle(page)
    assert page.get_by_role("link", name=re.compile(rf"^Example {twin.id} · word for word")).count() == 1
    assert page.get_by_text(twin.prompt[:60]).count() >= 2  # the matched example's question, under its link
    assert store.stats().examples == before  # nothing was saved
    page.get_by_role("heading", name="Checks as you write").scroll_into_view_if_needed()
    _shot_here(page, "write")
    page.close()


def test_the_rubric_stays_in_view_beside_a_long_example_and_the_checks_lead(server, browser):
    url, store = server
    first = store.get_example(12)
    long_turns = [{"role": "user", "content": first.prompt}, {"role": "assistant", "content": first.response}]
    for n in range(3):
        long_turns += [
            {"role": "user", "content": f"And what about case {n}? " + "Please explain in detail. " * 8},
            {"role": "assistant", "content": ("Here is the long answer, paragraph by paragraph.\n\n" * 12).strip()},
        ]
    copy = workflow.create_example(store, "sam", ExampleContent.model_validate({"messages": long_turns}))
    copy = workflow.submit_example(store, "sam", copy.id, copy.version, reason="The long version teaches follow-ups.")
    page = _page(browser, url)
    _sign_in(page, "priya", "Review")
    _open_for_review(page, copy.id)
    assert page.get_by_text("The author's note: The long version teaches follow-ups.").count() == 1
    assert page.get_by_text("Tag the example with its category").count() >= 1
    record = page.get_by_role("button", name="Record review")
    page.get_by_text("Here is the long answer").last.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    box, height = record.bounding_box(), page.viewport_size["height"]
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height, box  # pinned in view
    page.get_by_text("Choose what to review").scroll_into_view_if_needed()
    _shot_here(page, "review")
    page.close()


def test_a_click_on_a_browse_row_opens_it(server, browser):
    url, store = server
    page = _page(browser, url)
    _sign_in(page, "rui", "Review")
    _go(page, "Browse")
    grid = page.get_by_test_id("stDataFrame").first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + 54)  # a cell of the second row, not its checkbox
    page.get_by_role("heading", name=re.compile(r"^Example \d+$")).wait_for()
    _settle(page)
    opened = int(page.get_by_role("heading", name=re.compile(r"^Example \d+$")).inner_text().split()[1])
    assert store.get_example(opened).id == opened
    page.close()


def _shot_here(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
