"""A small, explainable "is the user upset?" signal for the support bot's escalation.

Lexicon hits, shouting (mostly capitals), repeated punctuation and threats to leave add up to a
score in [0, 1]; 0.5 or more counts as upset. Deliberately simple and tested on examples: it only
decides whether a human should look, never what to answer.
"""

from __future__ import annotations

import re

STRONG = {
    "furious", "outraged", "unacceptable", "ridiculous", "scam", "fraud", "disgusting", "terrible",
    "horrible", "worst", "useless", "pathetic", "livid", "fed up", "sick of", "rip off", "ripped off",
    "stole", "stolen", "lawyer", "sue", "wtf", "damn", "hate",
}
MILD = {
    "angry", "upset", "annoyed", "frustrated", "frustrating", "disappointed", "unhappy", "awful", "bad",
    "still not", "again", "never", "nobody", "no one", "waiting for days", "waited", "ignored", "broken",
}
LEAVING = re.compile(r"\b(cancel my account|close my account|leaving|quit this|never use)\b", re.I)


def upset_score(text: str) -> float:
    lowered = text.lower()
    score = 0.0
    score += 0.45 * sum(1 for w in STRONG if re.search(rf"\b{re.escape(w)}\b", lowered))
    score += 0.25 * sum(1 for w in MILD if re.search(rf"\b{re.escape(w)}\b", lowered))
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > 0.6:
        score += 0.5  # a whole message in capitals is shouting
    if re.search(r"[!?]{2,}", text):
        score += 0.15
    if LEAVING.search(text):
        score += 0.3
    return min(1.0, round(score, 2))


def is_upset(text: str, threshold: float = 0.5) -> bool:
    return upset_score(text) >= threshold


WANTS_HUMAN = re.compile(
    r"\b(human|real person|a person|someone real|agent|representative|operator|support team|"
    r"talk to (someone|somebody|support)|speak to (someone|somebody|support))\b", re.I)


def wants_human(text: str) -> bool:
    return bool(WANTS_HUMAN.search(text))
