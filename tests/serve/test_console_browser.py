"""The reviewer console in a real browser: Debian's chromium, driven headless by Playwright
(never `playwright install`), against a real uvicorn server on 127.0.0.1. It logs in, opens a
queue, reveals a blurred image, submits a verdict with the keyboard, and the store is checked.

Skipped where chromium or the playwright package is absent (`.ci/run` installs chromium)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from referee.engine import Engine
from referee.model import Action
from referee.policy import Policy
from referee.records.review import ReviewDesk
from referee.records.reviewers import add_reviewer
from referee.serve import create_app
from referee.settings import Settings
from referee.store import DecisionStore
from tests.serve.conftest import DEFAULT_POLICY, REPO, HashtagDetector
from tests.serve.test_console import held_item

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
#: Where the screenshots go (``reports/`` is gitignored: they are artefacts, not sources).
SHOTS = REPO / "reports" / "console"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, DecisionStore]]:
    settings = Settings(_env_file=None, policy=DEFAULT_POLICY, db_url=f"sqlite:///{tmp_path / 'console.db'}")
    store = DecisionStore(settings.db_url)
    engine = Engine(Policy.from_file(DEFAULT_POLICY), [HashtagDetector()], sink=store)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine=engine, store=store), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", store
    finally:
        server.should_exit = True
        thread.join(10)
        engine.close()
        store.close()


def test_a_reviewer_works_a_queue_in_a_real_browser(served: tuple[str, DecisionStore]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    base, store = served
    add_reviewer(store, "alice", "correct horse", ["general", "eu_notices"])
    held_item(store, n=1)
    held_item(store, n=2)  # a second one, so the queue shows a count of 2
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/console/")
            assert page.url.endswith("/console/login")
            page.fill("#reviewer", "alice")
            page.fill("#password", "correct horse")
            page.click("#sign-in")
            page.wait_for_url(f"{base}/console/")
            row = page.locator('tr[data-queue="general"]')
            assert row.locator("td.open").inner_text() == "2"
            assert page.locator('tr[data-queue="appeals"]').count() == 0  # not granted
            page.screenshot(path=str(SHOTS / "queues.png"), full_page=True)
            row.locator("button.start").click()
            page.wait_for_url(f"{base}/console/tasks/*")
            assert page.locator("mark.evidence").first.inner_text() == "vermin"
            img = page.locator("img.media").first
            img.wait_for()
            page.wait_for_function("() => document.querySelector('img.media').naturalWidth > 0")
            assert "blur" in img.evaluate("e => getComputedStyle(e).filter")
            assert "grayscale" in img.evaluate("e => getComputedStyle(e).filter")
            page.screenshot(path=str(SHOTS / "item-blurred.png"), full_page=True)
            img.click()  # reveal
            page.wait_for_function("() => getComputedStyle(document.querySelector('img.media')).filter === 'none'")
            page.screenshot(path=str(SHOTS / "item-revealed.png"), full_page=True)
            claimed = page.url.rsplit("/", 1)[1]
            page.locator("body").click(position={"x": 5, "y": 300})  # focus on the page, not a field
            with page.expect_navigation():
                page.keyboard.press("u")  # uphold, by keyboard
            assert "/console/tasks/" in page.url and not page.url.endswith(claimed)  # the next item opened
        finally:
            browser.close()
    desk = ReviewDesk(store, Policy.from_file(DEFAULT_POLICY))
    assert desk.task(claimed).status == "done"
    verdict = next(v for v in desk.verdicts() if v.task_id == claimed)
    assert (verdict.reviewer_id, verdict.verdict) == ("alice", "uphold")
    head = store.log.head(verdict.item_id)
    assert head is not None and head.source == "review" and head.action is Action.remove
    assert head.supersedes == verdict.decision_id and verdict.seconds_spent > 0
    assert (SHOTS / "item-revealed.png").stat().st_size > 10_000
