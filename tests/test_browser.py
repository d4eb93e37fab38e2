"""Real browser: Debian's Chromium, headless, driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from store.db import Database
from tests.fakes import REPLY

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# Outside CI a machine without Chromium skips these; in CI (CI=true) a missing browser is a failure.
pytestmark = pytest.mark.skipif(
    not os.environ.get("CI") and shutil.which("chromium") is None and not Path(CHROMIUM).exists(),
    reason="Debian chromium is not installed (./run.sh test installs it as root)",
)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1200, "height": 820})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


def test_widget_demo_answer_with_citation_then_human_handoff(live, page, db: Database) -> None:
    page.goto(f"{live.http}/widget/demo")
    page.click("#mentor-support-widget >> .launcher")
    page.fill("#mentor-support-widget >> input", "What are the fees on the free plan?")
    page.press("#mentor-support-widget >> input", "Enter")
    page.locator("#mentor-support-widget >> .msg.bot[data-done=stop]").first.wait_for(timeout=20_000)
    answer = page.locator("#mentor-support-widget >> .msg.bot .text").first
    assert answer.inner_text().strip() == REPLY.replace("**", "")
    citation = page.locator("#mentor-support-widget >> .cites a").first
    assert "/knowledge/help_center/" in citation.get_attribute("href")
    # the host page's hostile CSS does not reach inside the Shadow DOM
    color = page.locator("#mentor-support-widget >> .launcher").evaluate("el => getComputedStyle(el).backgroundColor")
    assert color == "rgb(29, 42, 68)"
    page.screenshot(path=str(ARTIFACTS / "widget-answer.png"))
    page.click("#mentor-support-widget >> button.human")
    ticket = page.locator("#mentor-support-widget >> .ticket").first
    ticket.wait_for(timeout=20_000)
    ticket_id = int(ticket.get_attribute("data-ticket"))
    assert f"Ticket #{ticket_id}" in ticket.inner_text()
    with db.admin() as conn:
        row = conn.execute("SELECT user_id, reason FROM support_tickets WHERE id = %s", (ticket_id,)).fetchone()
    assert row == {"user_id": None, "reason": "user_request"}
    page.screenshot(path=str(ARTIFACTS / "widget-ticket.png"))


def ask_on_chat_page(page, live, user: str, text: str, persona: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Sign in as a demo user on /, wait for the socket, optionally pick a persona, send a message."""
    page.goto(live.http)
    page.select_option("#user-select", user)
    page.click("#signin-btn")
    page.locator("#status[data-state=connected]").wait_for(timeout=15_000)
    if persona:
        page.select_option("#persona", persona)
    page.fill("#input", text)
    page.click("#send")


def test_chat_page_david_shows_a_rate_card(live, page, db: Database) -> None:
    ask_on_chat_page(page, live, "mateo", "What should I charge for React work?", persona="david")
    card = page.locator(".card-rates").first
    card.wait_for(timeout=20_000)
    with db.admin() as conn:
        p50 = conn.execute("""SELECT p50 FROM market_rates m JOIN skills s ON s.id = m.skill_id
                              WHERE s.name = 'React' AND segment = 'intermediate'""").fetchone()["p50"]
    assert "React" in card.inner_text() and f"${float(p50):,.0f}" in card.inner_text()
    page.locator(".msg.assistant .feedback button").first.wait_for(timeout=20_000)
    assert page.locator(".msg.assistant .citation").count() > 0
    page.screenshot(path=str(ARTIFACTS / "chat-david-rates.png"))


def test_model_output_cannot_inject_script(live, page) -> None:
    ask_on_chat_page(page, live, "sofia", "show me xss")
    page.locator(".msg.assistant .text", has_text="stays text").wait_for(timeout=20_000)
    assert page.evaluate("() => window.__xss") is None
    assert page.locator(".msg.assistant img").count() == 0
    assert "<img src=x" in page.locator(".msg.assistant .text").last.inner_text()


def test_chat_page_reconnects_and_resumes(live, page) -> None:
    ask_on_chat_page(page, live, "nora", "How do withdrawals work?", persona="support")
    page.locator(".msg.assistant .text", has_text="Here is").wait_for(timeout=20_000)
    page.evaluate("() => window.mentorClient.dropConnection()")  # network drop mid-answer
    page.locator(".msg.assistant .feedback button").first.wait_for(timeout=30_000)
    assert page.locator(".msg.assistant .text").last.inner_text().strip() == REPLY.replace("**", "")
