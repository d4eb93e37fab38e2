"""Agent assist: which of the customer's messages a suggested reply answers, and how a person's draft reads.

The support bot's answer is written for a customer talking to a bot: it offers a person and a ticket. A
draft for the person who is now answering must not ("Ask the support assistant to 'talk to a human'" to a
customer who just did), and it answers the customer's question, not their request for a person.
"""

from __future__ import annotations

import re

from agents.composer.passages import _terms
from agents.composer.structures import asks_only_for_a_person

# sentences that offer the customer a person or a ticket, or speak as the bot: wrong from a person's mouth
BOT_OFFERS = re.compile(
    r"\b(talk to a (human|person)|speak (to|with) a (human|person)|real person|ask (for|to talk to) a (person|human)|"
    r"support assistant|open(ed|s|ing)? (a |\w+ )?(support )?ticket|ticket #\d+|a person (from|on) our support|"
    r"i won't guess|hand (you|this) (over|off))\b", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def question_to_answer(customer_messages: list[str]) -> tuple[int, str] | None:
    """The index of the customer's newest message that asks something, and what to answer of it: requests
    for a person only, thanks and "are you there?" are passed over; the request wording is taken out."""
    for i in range(len(customer_messages) - 1, -1, -1):
        if asks_only_for_a_person(customer_messages[i]):
            continue
        clauses = re.split(r"(?<=[:;.!?])\s+|\s+[-–—]\s+", customer_messages[i].strip())
        cleaned = " ".join(c for c in clauses if not asks_only_for_a_person(c)).strip(" :;,-–—")
        if len(_terms(cleaned)) >= 2:
            return i, cleaned
    return None


def from_a_person(draft: str, agent_name: str, *, first_reply: bool) -> str:
    """The bot's answer as the agent's draft: bot-only offers dropped, a greeting on the first reply."""
    kept = []
    for paragraph in draft.split("\n\n"):
        sentences = [s for s in _SENTENCE.split(paragraph.strip()) if s and not BOT_OFFERS.search(s)]
        if sentences:
            kept.append(" ".join(sentences))
    first = agent_name.split()[0] if agent_name.strip() else "the support team"
    greeting = f"Hi, I'm {first} from the support team." if first_reply else ""
    if not kept:
        return f"{greeting} I've read our conversation so far. How can I help?".strip()
    return "\n\n".join([greeting, *kept] if greeting else kept)


def support_without_tickets():
    """The support persona as a drafting tool (agent assist, the gaps' "check again"): no behaviours, no
    ticket tool — it answers, and never opens a ticket or hands anything over."""
    from agents.personas import get_persona

    persona = get_persona("support")
    return persona.model_copy(update={"behaviours": [], "tools": [t for t in persona.tools
                                                                 if t != "create_support_ticket"]})


def answer_text(events) -> str:
    """The answer a turn's events spell out (withdrawn text dropped)."""
    text = ""
    for event in events:
        if event.type == "token":
            text += event.delta
        elif event.type == "answer_replaced":
            text = ""
    return text.strip()
