"""Agent assist drafts: the question a draft answers and how it reads from a person (issue 33)."""

from __future__ import annotations

from agents.assist import from_a_person, question_to_answer


def test_a_request_for_a_person_is_not_the_question() -> None:
    said = ["How do I withdraw my earnings?", "I'd like to talk to a real person please", "are you there?"]
    assert question_to_answer(said) == (0, "How do I withdraw my earnings?")
    assert question_to_answer(["I need a human: how long do withdrawals take?"]) == (0, "how long do withdrawals take?")
    assert question_to_answer(["Get me an agent. My payout never arrived!"]) == (0, "My payout never arrived!")
    assert question_to_answer(["hi", "a person please", "hello??"]) is None


def test_a_draft_offers_no_person_and_greets_once() -> None:
    bot = ("Withdrawals take 3 business days [1].\n\nIf you'd like, ask for a person and I'll open a ticket for our "
           "support team. Ask the support assistant to 'talk to a human' at any time.")
    first = from_a_person(bot, "Ana Ruiz", first_reply=True)
    assert first == "Hi, I'm Ana from the support team.\n\nWithdrawals take 3 business days [1]."
    assert from_a_person(bot, "Ana Ruiz", first_reply=False) == "Withdrawals take 3 business days [1]."
    assert from_a_person("", "Ben Okafor", first_reply=True) == (
        "Hi, I'm Ben from the support team. I've read our conversation so far. How can I help?")
