"""When support hands a conversation to a person: the written policy's tests (README, "Handing over").

- Asked for a person, or upset: a ticket at once.
- A question about the service the help center does not answer: the answer says so and offers a person;
  the ticket opens when the customer accepts ("yes please" to that offer) — reason `no_answer`.
- A question that has nothing to do with the service (the nearest passage is far and the help center uses
  none of its subject words): a short "I can only help with questions about this service", no ticket.
"""

from __future__ import annotations

import re

from retrieval.coverage import subject_words
from retrieval.search import SearchHit

# Best help-center match farther than this (cosine distance) = nothing relevant, when the help center also
# uses none of the question's subject words. Measured on 12 on-topic support questions (worst 0.618) and 10
# off-topic ones (best 0.847); see tests/test_agents.py. Help centers written in long unsectioned pages (a
# plain-text export) answer some questions from 0.72-0.82: their shared words keep those answered.
NO_ANSWER_DISTANCE = 0.72
OFFERED = re.compile(r"\b(open a ticket|talk to a person|ask for a person|someone from (our )?support)\b", re.I)
ACCEPTS = re.compile(r"^\W*(yes|yeah|yep|yup|sure|ok|okay|please|go ahead|do it|do that|that would help|"
                     r"that would be great|that'd be great)\b", re.I)


def off_topic(question: str, hits: list[SearchHit], missing_words: list[str]) -> bool:
    """Nothing near it, and none of its subject words in any document searched."""
    if min((h.distance for h in hits if h.distance is not None), default=1.0) <= NO_ANSWER_DISTANCE:
        return False
    subject = subject_words(question)
    return not subject or len(missing_words) == len(subject)


# "ok thanks", "sure, got it", "no need": an acknowledgment or a no, not a yes to a person
DECLINES = re.compile(r"\b(thanks?|thank you|thx|got it|no|not|nope|never ?mind|fine|cool|great answer)\b", re.I)


def accepts_offer(text: str, history: list[dict[str, str]]) -> bool:
    """A short yes to the last answer's offer of a person."""
    last = next((m.get("content", "") for m in reversed(history) if m.get("role") == "assistant"), "")
    return bool(OFFERED.search(last)) and bool(ACCEPTS.match(text)) and not DECLINES.search(text) \
        and len(text.split()) <= 8
