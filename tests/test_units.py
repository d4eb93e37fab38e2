"""The composer's quotable units, in the shapes help centers are written in: FAQ pairs, wrapped list items,
config blocks split across chunks."""

from __future__ import annotations

from agents.composer.passages import units_of
from retrieval.chunking import ParsedDocument, Section, chunk_document, config_lines, parse_html, readable
from retrieval.search import SearchHit


def hit(body: str, header: str = "Help — Payments") -> SearchHit:
    return SearchHit(chunk_id=1, corpus="c", title="Help", source="help.md", section="Payments", anchor="",
                     text=f"{header}\n\n{body}", score=1.0)


def test_a_q_and_a_pair_is_the_answer_keyed_by_its_question() -> None:
    units = units_of(hit("Q: How do students pay for lessons?\nA: Students buy packs of 5, 10 or 20 lessons in\n"
                         "advance.\n\nQ: When are tutors paid?\nA: Payouts go out on the 1st and the 15th."), 1)
    assert [u.text for u in units] == ["Students buy packs of 5, 10 or 20 lessons in advance.",
                                       "Payouts go out on the 1st and the 15th."]  # the questions are not quoted
    assert units[0].section == "Help — Payments › How do students pay for lessons?"
    assert units[1].section == "Help — Payments › When are tutors paid?"


def test_html_faq_questions_survive_ingestion_and_key_their_answers() -> None:
    _, sections = parse_html("<h2>Fees</h2><details><summary>Do you charge hosts a fee?</summary><p>Yes. The host "
                             "fee is 3% of the subtotal.</p></details><dl><dt>Can I open a second account?</dt>"
                             "<dd>No. Each person may have one account.</dd></dl>", "FAQ")
    units = units_of(hit(sections[0].text, "FAQ — Fees"), 1)
    by_question = {u.section.rsplit(" › ", 1)[-1]: u.text for u in units if len(u.text.split()) > 2}
    assert by_question == {"Do you charge hosts a fee?": "The host fee is 3% of the subtotal.",
                           "Can I open a second account?": "Each person may have one account."}


def test_a_list_item_keeps_its_wrapped_lines() -> None:
    markdown = units_of(hit("Disputes:\n- We review the evidence from both sides and send a decision from our\n"
                            "  team within 5 business days.\n- Lazy continuation lines\nbelong to their item too."), 1)
    assert [u.text for u in markdown if u.kind == "item"] == [
        "We review the evidence from both sides and send a decision from our team within 5 business days.",
        "Lazy continuation lines belong to their item too."]
    _, sections = parse_html("<ul><li>We send a decision from our\n   team within 5 business days.</li></ul>", "T")
    assert [u.text for u in units_of(hit(sections[0].text), 1)] == [
        "We send a decision from our team within 5 business days."]


def test_every_piece_of_a_split_config_block_keeps_its_key_path() -> None:
    lines = ["```yaml", "plans:"]
    for plan in ("free", "pro"):
        lines += [f"  {plan}:", "    monthly_price: 0", "    commission_rate: 0.20", "    payout_schedule: weekly",
                  "    listing_limit: 50", "    support_channel: email", "    api_calls_per_minute: 60"]
    doc = ParsedDocument(source="docs.md", title="Docs", sections=[Section("Plans", "\n".join([*lines, "```"]),
                                                                           ["Plans"])])
    chunks = chunk_document(doc, max_tokens=50, overlap=0)
    firsts = []
    for chunk in chunks:
        values = [line for line in readable(chunk.text.split("\n\n", 1)[1]).splitlines() if ": " in line]
        assert values and all(v.startswith(("plans › free › ", "plans › pro › ")) for v in values), values
        firsts.append(values[0])
    assert len(chunks) >= 2 and any("monthly price" not in v for v in firsts)  # cut inside a plan's object
    found = [v for c in chunks for v in config_lines(c.text.split("\n\n", 1)[1].splitlines()[1:-1])]
    assert "plans › pro › api calls per minute: 60" in found


def test_a_plan_named_by_its_price_is_learned_from_the_documents_prices() -> None:
    from agents.composer.passages import Unit, priced_by_question

    def unit(text: str, kind: str) -> Unit:
        return Unit(text=text, source=1, section="Plans", kind=kind, position=0)

    rows = [unit("Plan Starter: Monthly price $0; Commission 12%", "row"),
            unit("Plan Plus: Monthly price $15; Commission 8%", "row"),
            unit("Plan Pro: Monthly price $40; Commission 5%", "row")]
    config = [unit("plans › basic › price per month usd: 0", "config"),
              unit("plans › team › price per month usd: 19", "config"),
              unit("plans › elite › price per month usd: 59", "config"),
              unit("plans › elite › seats: 80", "config")]
    assert priced_by_question("I'm on the free tier, what percentage do you keep?", rows) == "Plan Starter"
    assert priced_by_question("How much is the top plan per month?", config) == "plans › elite"
    assert priced_by_question("What does the middle tier cost?", rows) == "Plan Plus"
    assert priced_by_question("What's the cheapest paid plan?", config) == "plans › team"
    assert priced_by_question("How do refunds work?", rows) is None


def test_a_row_or_config_line_is_read_as_a_sentence_about_what_was_asked() -> None:
    from agents.composer.passages import Unit
    from agents.composer.structures import direct

    def unit(text: str, kind: str) -> Unit:
        return Unit(text=text, source=1, section="Plans", kind=kind, position=0)

    row = unit("Plan Free: Monthly price $0; Commission on earnings 10%", "row")
    assert direct("What commission does the Free plan take?", row).text == \
        "For Plan Free, commission on earnings is 10%"
    method = unit("Method PayPal: Fee per withdrawal $1.00; Arrives in 1 business day", "row")
    assert direct("How long does a PayPal withdrawal take?", method).text == \
        "For Method PayPal, arrives in 1 business day"
    assert direct("Tell me about PayPal", method).text == method.text  # nothing singled out: as written
    config = unit("plans › growth › payout schedule: daily", "config")
    assert direct("How often am I paid on Growth?", config).text == "For plans › growth, payout schedule is daily"
    sentence = unit("Payouts go out every Friday.", "sentence")
    assert direct("When are payouts?", sentence) is sentence
