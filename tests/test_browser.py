"""Real browser: Debian's Chromium, headless, driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from agents.testing import REPLY
from store.db import Database

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# Outside CI a machine without Chromium skips these; in CI (CI=true) a missing browser is a failure.
pytestmark = pytest.mark.skipif(
    not os.environ.get("CI") and shutil.which("chromium") is None and not Path(CHROMIUM).exists(),
    reason="Debian chromium is not installed (./run.sh test installs it as root)",
)


@pytest.fixture(scope="module")
def browser():
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
def page(browser):
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
    # the section the answer's first quote [1] comes from, under the answer
    source = page.locator("#mentor-support-widget >> .msg.bot .from").first.inner_text()
    assert source == "From: " + citation.inner_text().removeprefix("[1] ")
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


def ask_on_chat_page(page, live, user: str, text: str, persona: str | None = None) -> None:
    """Sign in as a demo user on /, wait for the socket, optionally pick a persona, send a message."""
    page.goto(live.http)
    page.select_option("#user-select", user)
    page.click("#signin-btn")
    page.locator("#status[data-state=connected]").wait_for(timeout=15_000)
    if persona:
        phone = page.locator("#menu").is_visible()  # on a phone the persona picker is in the menu
        if phone:
            page.click("#menu")
        page.select_option("#persona", persona)
        if phone:
            page.click("#menu")
    if text:
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
    assert page.locator(".msg.assistant .from").first.inner_text().startswith("From: ")
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


# -- the grounded composer on the chat page: one default offline answer per persona ----------------------
PERSONA_QUESTIONS = [
    ("david", "mateo", "What should I charge for React work? I'm at $81/h now.", "market_rates", ["p50", "p75"]),
    ("marcus", "mateo", "Which of my skills should I focus on to grow my business?", "my_profile", ["total_revenue"]),
    ("support", "nora", "What commission do I pay on my plan?", "my_account", []),
    ("proposal_writer", "mateo", "Write a proposal for project 1", "recommend_bid", ["amount"]),
    ("sarah", "sofia", "How do I handle a client who keeps asking for more work?", None, []),
]


def _card_figures(db: Database, persona: str, user: str) -> dict:
    """What the cards show, read back from the stored tool results of the user's latest turn."""
    with db.admin() as conn:
        rows = conn.execute(
            """SELECT e.payload FROM conversation_events e JOIN conversations c ON c.id = e.conversation_id
               JOIN users u ON u.id = c.user_id
               WHERE u.handle = %s AND c.persona = %s AND e.type = 'tool_result'
               ORDER BY e.created_at, e.seq""", (user, persona)).fetchall()
    return {r["payload"]["name"]: r["payload"]["data"] for r in rows}  # the latest result of each tool wins


@pytest.mark.parametrize("persona, user, question, tool, fields", PERSONA_QUESTIONS)
def test_each_persona_answers_offline_with_the_figures_of_its_cards(live_composer, page, db: Database, persona: str,
                                                                      user: str, question: str, tool: str | None,
                                                                      fields: list[str]) -> None:
    ask_on_chat_page(page, live_composer, user, question, persona=persona)
    page.locator(".msg.assistant .feedback button").first.wait_for(timeout=30_000)
    text = page.locator(".msg.assistant .text").last.inner_text()
    assert len(text.split()) >= 12 and "thinking" not in text
    assert page.locator(".msg.assistant mark.unsupported").count() == 0
    assert page.locator(".msg.assistant .grounding-note").count() == 0
    assert page.locator(".msg.assistant .citation").count() >= 1
    assert re.search(r"\[\d\]", text)  # quotes carry their source markers
    if tool:
        data = _card_figures(db, persona, user)[tool]
        for field in fields:
            value = data[field]
            assert f"${value:,.0f}" in text or f"${value:,.2f}" in text, (field, value, text)
    if persona == "support":
        assert "10%" in text and "Free plan" in text
    page.screenshot(path=str(ARTIFACTS / f"composer-{persona}.png"), full_page=True)
    if persona == "proposal_writer":
        with db.admin() as conn:
            conn.execute("DELETE FROM proposals WHERE status = 'draft' AND freelancer_id = "
                         "(SELECT id FROM users WHERE handle = %s)", (user,))


def test_an_empty_chat_suggests_questions_and_long_words_wrap(live_composer, page) -> None:
    ask_on_chat_page(page, live_composer, "mateo", "", persona="david")  # signed in, nothing asked yet
    examples = page.locator(".examples button.example")
    assert examples.count() == 3 and "charging enough" in examples.first.inner_text()
    examples.first.click()
    assert page.input_value("#input") == examples.first.inner_text()
    page.fill("#input", "x" * 90 + " is this word too long?")
    page.click("#send")
    bubble = page.locator(".msg.user").first
    bubble.wait_for(timeout=10_000)
    assert page.locator(".examples").count() == 0
    assert bubble.evaluate("el => el.scrollWidth <= el.clientWidth + 1")
    box = bubble.bounding_box()
    messages = page.locator("#messages").bounding_box()
    assert box["x"] + box["width"] <= messages["x"] + messages["width"] + 1


INVENTED = "Your plan has a monthly service charge of $12.15, and PayPal withdrawals cost 4.35% of the amount."


def test_the_page_marks_an_invented_fee_and_shows_a_replaced_answer(live_model, page) -> None:
    import respx

    from harness.llm_replies import BASE_URL, text_reply

    with respx.mock(assert_all_called=False) as router:
        router.post(f"{BASE_URL}/chat/completions").mock(side_effect=lambda request: text_reply(INVENTED, pieces=8))
        router.route(host="127.0.0.1").pass_through()
        ask_on_chat_page(page, live_model, "mateo", "What does David think my React rate should be?", persona="david")
        page.locator(".msg.assistant .feedback button").first.wait_for(timeout=30_000)
        marked = page.locator(".msg.assistant mark.unsupported")
        assert sorted(marked.all_inner_texts()) == ["$12.15", "4.35%"]  # flag mode (David): streamed, then marked
        assert "$12.15" in page.locator(".msg.assistant .grounding-note").inner_text()
        page.screenshot(path=str(ARTIFACTS / "grounding-marked.png"))

        page.select_option("#persona", "support")  # support is strict: the composer's answer replaces it
        page.click("#new-chat")
        page.fill("#input", "What fees do I pay on my plan?")
        page.click("#send")
        page.locator(".msg.assistant .grounding-note.replaced").wait_for(timeout=30_000)
        page.locator(".msg.assistant .feedback button").last.wait_for(timeout=30_000)
        answer = page.locator(".msg.assistant .text").last.inner_text()
        assert "$12.15" not in answer and "8%" in answer and "Plus plan" in answer
        assert page.locator(".msg.assistant mark.unsupported").count() == 0
        page.screenshot(path=str(ARTIFACTS / "grounding-replaced.png"))


def test_credentials_never_ride_in_a_url_and_links_keep_their_href(live, page) -> None:
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    ask_on_chat_page(page, live, "nora", "How do withdrawals work?", persona="support")
    page.locator(".msg.assistant .feedback button").first.wait_for(timeout=30_000)
    assert sockets and all("token" not in url and "visitor" not in url for url in sockets)
    # a citation marker inside a Markdown link must not break the link's href (security finding 8)
    html = page.evaluate("""async () => (await import('/static/markdown.js'))
        .renderMarkdown('see [the fees](/knowledge/help_center/fees.md#plans[1]) and [2]; [a scam](https://evil.example/x)')""")
    assert 'href="/knowledge/help_center/fees.md#plans[1]"' in html
    assert '<sup class="cite" data-cite="2">[2]</sup>' in html
    assert "evil.example" in html and 'href="https://evil.example' not in html  # other sites: shown, not clickable
    # paths that start with "/" but leave the site as the browser resolves them are not links either
    for sneaky in ("//evil.example/p", "/\\evil.example/x", "/\\/evil.example"):
        html = page.evaluate("async (u) => (await import('/static/markdown.js')).renderMarkdown(`[x](${u})`)", sneaky)
        assert "<a " not in html, (sneaky, html)


# -- issue 11: the pages as a product — the journey a user takes -----------------------------------------
AXE = Path(__file__).resolve().parents[1] / ".venv" / "axe" / "node_modules" / "axe-core" / "axe.min.js"


def _messages(page) -> list[str]:
    return page.eval_on_selector_all("#messages .msg", "els => els.map(e => e.classList[1])")


def test_journey_reload_mid_answer_then_reopen_in_order(live_slow, page) -> None:
    ask_on_chat_page(page, live_slow, "nora", "How do withdrawals work?", persona="support")
    page.locator(".msg.assistant .text", has_text="Here is").wait_for(timeout=20_000)
    page.reload()  # mid-answer: the conversation comes back and the answer keeps growing
    page.locator(".msg.user", has_text="How do withdrawals work?").wait_for(timeout=20_000)
    page.locator(".msg.assistant .feedback button").first.wait_for(timeout=40_000)
    assert page.locator(".msg.assistant .text").last.inner_text().strip() == REPLY.replace("**", "")
    page.fill("#input", "And how long does it take?")
    page.click("#send")
    page.locator(".msg.assistant .feedback button").nth(1).wait_for(timeout=40_000)
    page.click("#new-chat")
    page.locator(".welcome").wait_for()
    page.locator("#conversations a", has_text="How do withdrawals work?").first.click()
    page.locator(".msg.assistant .feedback").nth(1).wait_for(timeout=20_000)
    assert _messages(page) == ["user", "assistant", "user", "assistant"]  # in order, not users first
    assert page.locator(".thinking").count() == 0
    page.locator(".msg.assistant .feedback button").first.click()
    page.reload()
    page.locator(".msg.assistant .feedback small", has_text="Thanks").first.wait_for(timeout=20_000)  # persisted


def test_journey_proposal_follow_up_remembers_the_project(live_composer, page, db: Database) -> None:
    ask_on_chat_page(page, live_composer, "mateo", "Write a proposal for project 67", persona="proposal_writer")
    page.locator(".msg.assistant .feedback button").first.wait_for(timeout=30_000)
    first_letter = page.locator(".card-draft .letter-text").first.inner_text()
    assert "$" in first_letter and page.locator(".card-draft .letter-text").first.is_visible()
    page.fill("#input", "Make it shorter and mention my React experience")
    page.click("#send")
    page.locator(".msg.assistant .feedback button").nth(2).wait_for(timeout=30_000)
    assert page.locator(".msg.assistant .err").count() == 0 and page.locator(".thinking").count() == 0
    second = page.locator(".card-draft").last
    assert "(revised)" in second.locator(".ctitle").inner_text()
    letter = second.locator(".letter-text").inner_text()
    assert "React" in letter and len(letter) < len(first_letter)
    # the "implemented" checkbox belongs to advice, not to drafts
    assert page.locator(".msg.assistant .feedback input[type=checkbox]").count() == 0
    with db.admin() as conn:
        drafts = conn.execute("""SELECT count(*) AS n FROM proposals WHERE project_id = 67 AND status = 'draft'
                                 AND freelancer_id = (SELECT id FROM users WHERE handle = 'mateo')""").fetchone()["n"]
        conn.execute("DELETE FROM proposals WHERE project_id = 67 AND status = 'draft'")
    assert drafts == 1  # the follow-up revised the draft instead of saving another


def test_journey_roleplay_from_the_page(live_composer, page) -> None:
    ask_on_chat_page(page, live_composer, "mateo", "", persona="sarah")
    page.locator("#roleplay").wait_for()
    page.click("#start-roleplay")
    assert "Role-play" in page.locator("#banner").inner_text()
    page.fill("#input", "Hi! What are you hoping to achieve with this project?")
    page.click("#send")
    page.locator(".msg.assistant .feedback button").first.wait_for(timeout=30_000)
    reply = page.locator(".msg.assistant .text").last.inner_text()
    assert "We need" in reply or "approach" in reply  # the client answers in role
    page.fill("#input", "feedback please")
    page.click("#send")
    page.locator(".msg.assistant .feedback button").nth(2).wait_for(timeout=30_000)
    assert "✓" in page.locator(".msg.assistant .text").last.inner_text()


def test_journey_widget_handoff_with_an_email_survives_a_reload(live_composer, page, db: Database) -> None:
    page.goto(f"{live_composer.http}/widget/demo")
    page.click("#mentor-support-widget >> .launcher")
    page.click("#mentor-support-widget >> button.human")
    ticket = page.locator("#mentor-support-widget >> .ticket").first
    ticket.wait_for(timeout=20_000)
    ticket_id = int(ticket.get_attribute("data-ticket"))
    page.fill("#mentor-support-widget >> .ticket input", "visitor@example.com")
    page.click("#mentor-support-widget >> .ticket button")
    page.locator("#mentor-support-widget >> .ticket .contact", has_text="visitor@example.com").wait_for(timeout=10_000)
    page.locator("#mentor-support-widget >> .msg.bot[data-done=stop]").first.wait_for(timeout=20_000)
    page.screenshot(path=str(ARTIFACTS / "widget-handoff.png"))
    with db.admin() as conn:
        row = conn.execute("SELECT contact_email, conversation_id FROM support_tickets WHERE id = %s",
                           (ticket_id,)).fetchone()
    assert row["contact_email"] == "visitor@example.com"
    from store.handoffs import customer_card
    card = customer_card(db, str(row["conversation_id"]))  # what the agent's customer card shows
    assert card["contact_email"] == "visitor@example.com" and card["label"].startswith("Visitor ")
    page.keyboard.press("Escape")
    assert not page.locator("#mentor-support-widget >> .panel").is_visible()
    page.reload()
    page.click("#mentor-support-widget >> .launcher")
    page.locator("#mentor-support-widget >> .msg.user", has_text="talk to a person").wait_for(timeout=20_000)
    page.locator(f"#mentor-support-widget >> .ticket[data-ticket='{ticket_id}']").wait_for(timeout=20_000)
    # after the reload the address is shown, not asked for again; it can be changed
    saved = page.locator(f"#mentor-support-widget >> .ticket[data-ticket='{ticket_id}'] .contact")
    saved.wait_for(timeout=10_000)
    assert "We'll write to you at visitor@example.com" in saved.inner_text()
    page.click(f"#mentor-support-widget >> .ticket[data-ticket='{ticket_id}'] .contact .change")
    assert page.locator(f"#mentor-support-widget >> #mentor-contact-{ticket_id}").input_value() == "visitor@example.com"


def test_widget_visitor_hears_from_ana_across_a_reload_then_the_bot_again(live_composer, page, db: Database,
                                                                          demo_ids) -> None:
    """A widget visitor asks for a person; Ana (support agent) joins and replies from the inbox API; the
    visitor sees her, keeps her reply across a reload, and gets the bot back once she releases."""
    from server.auth import issue_token

    page.goto(f"{live_composer.http}/widget/demo")
    page.click("#mentor-support-widget >> .launcher")
    page.click("#mentor-support-widget >> button.human")
    ticket = page.locator("#mentor-support-widget >> .ticket").first
    ticket.wait_for(timeout=20_000)
    with db.admin() as conn:
        conversation = str(conn.execute("SELECT conversation_id FROM support_tickets WHERE id = %s",
                                        (int(ticket.get_attribute("data-ticket")),)).fetchone()["conversation_id"])
    ana = {"Authorization": f"Bearer {issue_token(live_composer.services.settings, demo_ids['ana'])}"}
    inbox = f"{live_composer.http}/api/inbox/{conversation}"
    assert httpx.post(f"{inbox}/claim", headers=ana, timeout=10).status_code == 200
    joined = page.locator("#mentor-support-widget >> .msg.note", has_text="Ana Ruiz from support joined")
    joined.wait_for(timeout=10_000)
    assert page.locator("#mentor-support-widget >> .ticket .state").inner_text() == "Status: Ana Ruiz is handling it"
    sent = httpx.post(f"{inbox}/messages", headers=ana, json={"text": "Hi, I am Ana. What went wrong?"}, timeout=10)
    assert sent.status_code == 201
    said = page.locator("#mentor-support-widget >> .msg.agent", has_text="What went wrong?")
    said.wait_for(timeout=10_000)
    assert "Ana Ruiz" in said.inner_text()
    page.screenshot(path=str(ARTIFACTS / "widget-agent.png"))

    page.reload()  # the reply is stored: a reload (a dropped connection) loses nothing
    page.click("#mentor-support-widget >> .launcher")
    page.locator("#mentor-support-widget >> .msg.agent", has_text="What went wrong?").wait_for(timeout=20_000)

    assert httpx.post(f"{inbox}/release", headers=ana, timeout=10).status_code == 200
    page.locator("#mentor-support-widget >> .msg.note", has_text="back to the assistant").wait_for(timeout=10_000)
    assert "back with the assistant" in page.locator("#mentor-support-widget >> .ticket .state").inner_text()
    answered = page.locator("#mentor-support-widget >> .msg.bot[data-done=stop]").count()
    page.fill("#mentor-support-widget >> form.composer input", "How long do withdrawals take?")
    page.press("#mentor-support-widget >> form.composer input", "Enter")
    page.locator("#mentor-support-widget >> .msg.bot[data-done=stop]").nth(answered).wait_for(timeout=30_000)


def test_two_browsers_a_visitor_and_ana_in_her_inbox(live_composer, browser, db: Database) -> None:
    """The handoff end to end in two Chromium contexts: the visitor asks for a person; the conversation
    appears in Ana's inbox; she claims it and types (the visitor sees it) and replies (the visitor sees
    it, she sees it was read); the visitor's connection drops and resumes with the reply; she hands back
    to the bot, which answers the visitor's next message."""
    errors: list[str] = []
    contexts = [browser.new_context(viewport={"width": 1200, "height": 820}) for _ in range(2)]
    visitor, ana = (c.new_page() for c in contexts)
    for p in (visitor, ana):
        p.on("pageerror", lambda exc: errors.append(str(exc)))
    widget = "#mentor-support-widget >> "
    try:
        visitor.goto(f"{live_composer.http}/widget/demo")
        visitor.click(widget + ".launcher")
        visitor.click(widget + "button.human")
        ticket = visitor.locator(widget + ".ticket").first
        ticket.wait_for(timeout=20_000)
        with db.admin() as conn:
            conversation = str(conn.execute("SELECT conversation_id FROM support_tickets WHERE id = %s",
                                            (int(ticket.get_attribute("data-ticket")),)).fetchone()["conversation_id"])

        ana.goto(f"{live_composer.http}/inbox")
        ana.select_option("#agent-select", "ana")
        ana.click("#signin-btn")
        item = ana.locator(f"#handoffs button[data-id='{conversation}']")
        item.wait_for(timeout=15_000)
        item.click()
        ana.locator("#transcript .msg.user", has_text="talk to a person").wait_for(timeout=10_000)
        # opening it watches it, then marks it read: the visitor sees "Seen", Ana no red error (a receipt sent
        # before `watch` used to be refused, and said so in red on every opening)
        visitor.locator(widget + ".msg.user .seen").first.wait_for(timeout=10_000)
        assert ana.locator("#error").inner_text().strip() == ""
        ana.reload()  # signed in still, and named as herself (the header said "user 562" after a reload)
        ana.locator("#whoami-name", has_text="Ana Ruiz").wait_for(timeout=10_000)
        ana.locator(f"#handoffs button[data-id='{conversation}']").click()
        ana.locator("#transcript .msg.user", has_text="talk to a person").wait_for(timeout=10_000)
        ana.click("#claim")
        visitor.locator(widget + ".msg.note", has_text="Ana Ruiz from support joined").wait_for(timeout=10_000)
        ana.click("#suggest")  # agent assist drafts a reply; she writes her own instead
        # the visitor only asked for a person: the draft greets them as Ana, offering no person or ticket
        expect(ana.locator("#reply-text")).to_have_value(re.compile(r"^Hi, I'm Ana from the support team"),
                                                          timeout=20_000)
        assert "ticket" not in ana.locator("#reply-text").input_value()
        ana.fill("#reply-text", "")

        ana.click("#reply-text")
        ana.keyboard.type("Hello, this is Ana")
        visitor.locator(widget + ".msg.typing", has_text="Ana Ruiz is typing").wait_for(timeout=10_000)
        ana.click("#reply-send")
        visitor.locator(widget + ".msg.agent", has_text="Hello, this is Ana").wait_for(timeout=10_000)
        ana.locator("#transcript .msg.agent .seen").wait_for(timeout=10_000)  # the visitor read it
        ana.screenshot(path=str(ARTIFACTS / "inbox.png"))
        visitor.screenshot(path=str(ARTIFACTS / "widget-agent-live.png"))

        visitor.reload()  # the connection drops; the widget resumes the stored conversation
        visitor.click(widget + ".launcher")
        visitor.locator(widget + ".msg.agent", has_text="Hello, this is Ana").wait_for(timeout=20_000)

        ana.click("#release")
        visitor.locator(widget + ".msg.note", has_text="back to the assistant").wait_for(timeout=10_000)
        answered = visitor.locator(widget + ".msg.bot[data-done=stop]").count()
        visitor.fill(widget + "form.composer input", "How long do withdrawals take?")
        visitor.press(widget + "form.composer input", "Enter")
        visitor.locator(widget + ".msg.bot[data-done=stop]").nth(answered).wait_for(timeout=30_000)
        ana.fill("#outcome", "answered")
        ana.click("#resolve")
        visitor.locator(widget + ".msg.note", has_text="resolved").wait_for(timeout=10_000)
        ana.locator("#handoff-status", has_text="read only").wait_for(timeout=10_000)  # a record now
        assert ana.locator("#reply-send").is_disabled() and ana.locator("#claim").is_disabled()
        assert ana.locator("#error").inner_text().strip() == "" and visitor.locator(widget + ".err").count() == 0
    finally:
        for c in contexts:
            c.close()
    assert not errors, errors


def test_layout_on_a_phone_and_a_laptop(live_composer, browser) -> None:
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = phone.new_page()
    ask_on_chat_page(page, live_composer, "nora", "What commission do I pay on my plan?", persona="support")
    page.locator(".msg.assistant .feedback button").first.wait_for(timeout=30_000)
    assert not page.locator("#sidebar").is_visible()
    chat = page.locator("#messages").bounding_box()
    assert chat["width"] >= 370  # the chat column has the screen, not 130 px beside a sidebar
    page.screenshot(path=str(ARTIFACTS / "phone-chat.png"))
    page.click("#menu")
    assert page.locator("#sidebar").is_visible()
    page.screenshot(path=str(ARTIFACTS / "phone-menu.png"))
    page.goto(f"{live_composer.http}/widget/demo")
    page.click("#mentor-support-widget >> .launcher")
    panel = page.locator("#mentor-support-widget >> .panel").bounding_box()
    assert panel["width"] >= 389 and panel["height"] >= 800  # full screen on a phone
    page.screenshot(path=str(ARTIFACTS / "phone-widget.png"))
    phone.close()
    laptop = browser.new_context(viewport={"width": 1280, "height": 800})
    page = laptop.new_page()
    ask_on_chat_page(page, live_composer, "mateo", "What should I charge for React work? I'm at $81/h now.",
                     persona="david")
    page.locator(".msg.assistant .feedback button").first.wait_for(timeout=30_000)
    assert page.locator("#sidebar").is_visible()
    page.screenshot(path=str(ARTIFACTS / "laptop-chat.png"))
    laptop.close()


@pytest.mark.skipif(not AXE.exists() and not os.environ.get("CI"), reason="axe-core not installed (./run.sh test)")
def test_no_serious_accessibility_violations(live_composer, browser) -> None:
    axe = AXE.read_text()
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)  # to inject axe
    page = context.new_page()

    def serious() -> list[dict]:
        page.evaluate(axe)
        found = page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .map(v => ({id: v.id, impact: v.impact, targets: v.nodes.map(n => n.target.join(' ')).slice(0, 3)}))""")
        return [v for v in found if v["impact"] in ("serious", "critical")]

    ask_on_chat_page(page, live_composer, "sofia", "How do I handle a client who keeps asking for more work?",
                     persona="sarah")
    page.locator(".msg.assistant .feedback button").first.wait_for(timeout=30_000)
    assert serious() == []
    page.goto(f"{live_composer.http}/widget/demo")
    page.click("#mentor-support-widget >> .launcher")
    page.fill("#mentor-support-widget >> input", "How do withdrawals work?")
    page.press("#mentor-support-widget >> input", "Enter")
    page.locator("#mentor-support-widget >> .msg.bot[data-done=stop]").first.wait_for(timeout=20_000)
    assert serious() == []
    page.click("#mentor-support-widget >> button.human")  # a handoff, for the inbox below
    page.locator("#mentor-support-widget >> .ticket").first.wait_for(timeout=20_000)
    page.goto(f"{live_composer.http}/knowledge/help_center/fees-and-commission.md#client-marketplace-fee")
    assert page.locator("section:target h2").inner_text() == "Client marketplace fee"
    assert serious() == []
    page.goto(f"{live_composer.http}/inbox")  # the agents' inbox, with a conversation open
    page.select_option("#agent-select", "ana")
    page.click("#signin-btn")
    page.locator("#handoffs button").first.click(timeout=15_000)
    page.locator("#transcript .msg").first.wait_for(timeout=10_000)
    assert serious() == []
    context.close()


def test_page_details_cards_markdown_and_documents(live, page) -> None:
    """Issue 11, items 5, 6, 10, 11, 13: cards never show raw JSON or "null", a ticket is shown once,
    Markdown headings and numbering, cut answers say so, documents work offline and lead back."""
    page.goto(live.http)
    cards = page.evaluate("""async () => { const {toolCard} = await import('/static/cards.js'); return {
        account: toolCard({name: 'my_account', data: {plan: 'Free', monthly_price: 0, commission_rate: 0.1,
            proposals_per_month: 15,
            payments: [{amount: 259.99, kind: 'withdrawal', created_at: '2026-08-07T10:00:00'}]}}),
        roi: toolCard({name: 'learning_roi', data: {learning_hours: 18.83, revenue_from_learned_skills: 2599.86,
            revenue_per_learning_hour: 138.07, skills_monetized: 1, skills_tracked: 2, skills: []}}),
        client: toolCard({name: 'my_profile', data: {name: 'Dana', plan: 'free', country: 'US', hourly_rate: null,
            experience_level: null, jobs_completed: null, skills: []}}),
        ticket: toolCard({name: 'create_support_ticket', data: {ticket_id: 7, status: 'open'}})}; }""")
    assert "10%" in cards["account"] and "15" in cards["account"] and "{" not in cards["account"]
    assert "$138" in cards["roi"] and "{" not in cards["roi"]
    assert "null" not in cards["client"] and "no freelancer profile" in cards["client"]
    assert cards["ticket"] == ""  # the handoff card shows the ticket; not twice
    html = page.evaluate("""async () => (await import('/static/markdown.js'))
        .renderMarkdown('### Steps\\nStart here.\\n\\n1. one\\n\\n2. two')""")
    assert html.startswith("<h4>Steps</h4><p>Start here.</p>") and '<ol start="2">' in html and "###" not in html
    for path in ("/docs", "/docs/protocol", "/favicon.ico"):
        assert httpx.get(f"{live.http}{path}").status_code == 200
    docs = httpx.get(f"{live.http}/docs").text
    assert "/swagger/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert httpx.get(f"{live.http}/swagger/swagger-ui-bundle.js").status_code == 200
    protocol = httpx.get(f"{live.http}/docs/protocol").text
    assert "<h1>WebSocket protocol" in protocol and "<table>" in protocol and "# WebSocket" not in protocol
    page.goto(f"{live.http}/knowledge/help_center/fees-and-commission.md#worked-example")
    assert page.title().startswith("Fees and Commission by Plan")
    assert page.locator("a.back").get_attribute("href") == "/"
    assert page.locator("section:target h2").inner_text() == "Worked example"


def test_welcome_screen_and_sign_out(live, page) -> None:
    ask_on_chat_page(page, live, "sofia", "", persona="david")  # signed in, nothing asked yet
    welcome = page.locator(".welcome")
    assert "What to charge" in welcome.inner_text() and welcome.locator("button.example").count() == 3
    page.click("#signout")
    assert page.locator("#signin").is_visible() and not page.locator("#whoami").is_visible()
    assert page.evaluate("() => sessionStorage.getItem('mentor_token')") is None


def test_an_answer_cut_at_the_length_limit_says_so(knowledge, page) -> None:
    from agents.testing import ScriptedProvider
    from harness.live import serve

    server = serve(knowledge, ScriptedProvider(delay_s=0, finish="length"))
    try:
        ask_on_chat_page(page, server, "mateo", "Tell me everything about pricing", persona="marcus")
        page.locator(".msg.assistant .note", has_text="cut at the length limit").wait_for(timeout=20_000)
    finally:
        server.stop()


def test_staff_see_the_inbox_link_on_the_chat_page(live, page) -> None:
    ask_on_chat_page(page, live, "ana", "")
    page.locator("#inbox-link").wait_for(state="visible", timeout=10_000)
    assert page.locator("#inbox-link").get_attribute("href") == "/inbox"
    page.click("#signout")
    ask_on_chat_page(page, live, "nora", "")
    page.locator("#whoami-name", has_text="Nora").wait_for(timeout=10_000)
    assert not page.locator("#inbox-link").is_visible()  # a freelancer has no inbox


CHARTJS = Path(__file__).resolve().parents[1] / "server" / "static" / "vendor" / "chart.umd.min.js"


def test_the_admin_sees_charts_gaps_and_transcripts_a_freelancer_sees_nothing(live_composer, browser, demo_ids
                                                                            ) -> None:
    """Issue 26: the admin signs in on /admin, sees the turns the test just ran in the table and the chart,
    opens a knowledge gap's conversation; a freelancer signed in gets no figures. No serious axe findings."""
    from server.auth import issue_token

    question = "Can I book a video call with my client inside the platform?"
    customer = browser.new_context(viewport={"width": 1200, "height": 820})
    chat = customer.new_page()
    ask_on_chat_page(chat, live_composer, "nora", question, persona="support")
    chat.locator(".msg.assistant .feedback button").first.wait_for(timeout=30_000)
    customer.close()
    settings = live_composer.services.settings
    olivia = issue_token(settings, demo_ids["olivia"])
    stats = httpx.get(f"{live_composer.http}/api/admin/stats?days=7", headers={"Authorization": f"Bearer {olivia}"},
                      timeout=60).json()
    turns = stats["personas"]["support"]["turns"]

    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=AXE.exists())  # axe injected
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_composer.http}/admin")
    page.select_option("#admin-select", "olivia")
    page.click("#signin-btn")
    row = page.locator("#summary tbody tr", has=page.locator("th", has_text="support"))
    row.wait_for(timeout=30_000)
    assert row.locator("td").nth(1).inner_text().strip() == str(turns)  # the turns column
    if CHARTJS.exists() or os.environ.get("CI"):  # drawn by the vendored Chart.js, from the same figures
        charted = page.evaluate("() => Chart.getChart('chart-turns').data.datasets[0].data.reduce((a, b) => a + b, 0)")
        assert charted == sum(s["turns"] for s in stats["personas"].values())
    gap = page.locator("#gaps li.gap", has_text="video call")
    gap.locator("button.linkish").first.click()
    page.locator("#transcript .msg.user", has_text="video call").wait_for(timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "admin.png"), full_page=True)
    if AXE.exists():
        page.evaluate(AXE.read_text())
        found = page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .filter(v => ['serious', 'critical'].includes(v.impact)).map(v => v.id)""")
        assert found == []
    assert not errors, errors
    context.close()

    freelancer = browser.new_context(viewport={"width": 390, "height": 844})
    page = freelancer.new_page()
    page.goto(f"{live_composer.http}/admin")
    page.fill("#token-input", issue_token(settings, demo_ids["mateo"]))
    page.click("#signin-btn")
    page.locator("#error", has_text="This page is for admins").wait_for(timeout=10_000)
    assert page.locator("#panel").is_hidden() and page.locator("#summary tbody tr").count() == 0
    assert "support" not in page.locator("main").inner_text()
    freelancer.close()


def test_the_admin_drops_a_file_on_the_knowledge_panel_and_the_bot_cites_it(live_composer, browser, knowledge
                                                                            ) -> None:
    """Issue 27: the admin drags a Markdown file onto the Knowledge panel of /admin, sees its chunk count, and
    a customer's next question is answered from it, citing it. The upload goes afterwards."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=AXE.exists())
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_composer.http}/admin")
    page.select_option("#admin-select", "olivia")
    page.click("#signin-btn")
    page.locator("#kn-corpus option[value=help_center]").wait_for(state="attached", timeout=30_000)
    assert page.locator("#kn-corpus").input_value() == "help_center"
    text = ("# Parrot mode\n\n## Turning on parrot mode\n\nParrot mode repeats every client message back in the "
            "freelancer's own words. Turn it on under Settings, Conversations, Parrot mode.\n")
    dropped = page.evaluate_handle("""(text) => {
        const data = new DataTransfer();
        data.items.add(new File([text], "parrot-mode.md", { type: "text/markdown" }));
        return data; }""", text)
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": dropped})
    result = page.locator("#upload-result", has_text="chunk")
    result.wait_for(timeout=60_000)
    assert "Parrot mode (uploads/parrot-mode.md): 1 chunk, added" in result.inner_text()
    page.locator("#documents tbody tr", has_text="uploads/parrot-mode.md").wait_for(timeout=10_000)
    page.locator("#knowledge").screenshot(path=str(ARTIFACTS / "admin-knowledge.png"))
    if AXE.exists():
        page.evaluate(AXE.read_text())
        found = page.evaluate("""async () => (await axe.run('#knowledge', {resultTypes: ['violations']})).violations
            .filter(v => ['serious', 'critical'].includes(v.impact)).map(v => v.id)""")
        assert found == []
    assert not errors, errors
    context.close()

    try:
        customer = browser.new_context(viewport={"width": 1200, "height": 820})
        chat = customer.new_page()
        ask_on_chat_page(chat, live_composer, "nora", "How do I turn on parrot mode?", persona="support")
        chat.locator(".msg.assistant .feedback button").first.wait_for(timeout=60_000)  # the answer is done
        answer = chat.locator(".msg.assistant").last
        assert "Settings, Conversations, Parrot mode" in answer.inner_text(), answer.inner_text()
        cited = answer.locator("a[href*='uploads/parrot-mode.md']").first
        cited.wait_for(timeout=10_000)
        chat.screenshot(path=str(ARTIFACTS / "admin-knowledge-cited.png"))
        customer.close()
    finally:
        with knowledge.admin() as conn:
            conn.execute("DELETE FROM documents WHERE source = 'uploads/parrot-mode.md'")
