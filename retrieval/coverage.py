"""Which of a question's subject words no document of the searched corpora contains.

A retrieval always returns the nearest passages, so "nearest" cannot tell "Can I be paid in Bitcoin?"
from a question the help center answers in other words: both land on the payout-methods page. What
can be checked exactly is the vocabulary: a help center that never mentions Bitcoin, loans or
interest does not answer a question about them. The answerers use this to say so instead of quoting
the nearest page as if it answered (agents/composer/structures.py), and the prompt names the words
for a model (agents/runtime.py).

The words are matched as PostgreSQL's English stems against the chunks' full-text index (title, section
and text), so "pictures" is found by "picture". Words that frame any question ("how long", "cost",
"allowed", "first") are never a subject: a help center answers "how long" in days, not in the word.
"""

from __future__ import annotations

import re

from store.db import Database

_WORD = re.compile(r"[A-Za-z][A-Za-z-]*[A-Za-z]")
# Words that ask, quantify or frame a question in any domain, and the words any help center's readers use for
# the service itself, its users and their money in general: never what makes a question one it doesn't answer.
GENRE_WORDS = frozenset([
    "zero", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twenty", "hundred", "thousand",
    "million", "platform", "site", "website", "service", "app", "company", "team", "account", "user", "users",
    "member", "members", "person", "client", "clients", "customer", "customers", "cash", "funds", "cut", "share",
    "earnings",
])
FRAME_WORDS = GENRE_WORDS | frozenset([
    "a", "about", "above", "after", "again", "against", "all", "allowed", "also", "am", "an", "and", "any",
    "anyone", "anything", "anyway", "are", "around", "as", "ask", "at", "away", "back", "be", "because", "been",
    "before", "being", "best", "big", "bigger", "biggest", "both", "but", "by", "can", "cannot", "could", "day",
    "days", "did", "do", "does", "doing", "done", "don", "during", "each", "early", "earliest", "either", "else",
    "enough", "even", "ever", "every", "exactly", "extra", "far", "fast", "faster", "fastest", "few", "first",
    "for", "from", "get", "gets", "getting", "give", "given", "gives", "go", "goes", "going", "gone", "good",
    "got", "had", "happen", "happened", "happens", "has", "have", "having", "he", "her", "here", "high", "higher",
    "highest", "him", "his", "hour", "hours", "how", "however", "if", "in", "instead", "into", "is", "it", "its",
    "just", "keep", "keeps", "kind", "know", "large", "larger", "largest", "last", "late", "later", "latest",
    "least", "less", "let", "like", "little", "long", "longer", "longest", "lot", "lots", "low", "lower",
    "lowest", "made", "make", "makes", "many", "may", "maximum", "me", "mean", "means", "might", "minimum",
    "minute", "minutes", "month", "months", "more", "most", "much", "must", "my", "myself", "need", "needed",
    "needs", "never", "new", "next", "no", "normal", "normally", "not", "now", "number", "of", "off", "often",
    "ok", "okay", "on", "once", "one", "only", "onto", "or", "other", "our", "out", "over", "own", "part",
    "people", "per", "please", "possible", "pretty", "quick", "quickly", "quite", "rather", "really", "right",
    "same", "say", "says", "second", "see", "should", "since", "single", "so", "some", "someone", "something",
    "soon", "sooner", "still", "such", "sure", "take", "takes", "taking", "tell", "than", "thank", "thanks",
    "that", "the", "their", "them", "then", "there", "these", "they", "thing", "things", "this", "those",
    "though", "three", "through", "time", "times", "to", "today", "too", "top", "total", "two", "under", "until",
    "up", "upon", "us", "use", "used", "using", "usually", "very", "want", "wants", "was", "way", "we", "week",
    "weeks", "well", "were", "what", "whatever", "when", "whenever", "where", "whether", "which", "while", "who",
    "whole", "whom", "whose", "why", "will", "with", "within", "without", "won", "would", "year", "years", "yes",
    "yet", "you", "your", "yours", "yourself", "cost", "costs", "pay", "paid", "paying", "pays", "charge",
    "charged", "charges", "price", "money", "amount", "send", "sent", "receive", "received", "offer", "offers",
    "support", "supports", "require", "required", "requires", "need", "stop", "start", "started", "able", "allow",
    "inside", "outside", "between", "across", "among", "beyond", "ahead", "behind", "toward", "towards", "near",
    "along", "via", "per", "against", "except", "making", "try", "trying", "tried", "put", "putting", "stay",
    "staying", "look", "looking", "find", "finding", "help", "helps",
])


def subject_words(question: str) -> list[str]:
    """The question's words that could name what it is about, in order, lower-cased, each once."""
    words = []
    for word in _WORD.findall(question.replace("'", " ").replace("’", " ")):
        lower = word.lower()
        if len(lower) > 2 and lower not in FRAME_WORDS and lower not in words:
            words.append(lower)
    return words


def missing_words(db: Database, corpora: list[str], question: str) -> list[str]:
    """The question's subject words that no chunk of these corpora contains (as an English stem)."""
    words = subject_words(question)
    if not words or not corpora:
        return []
    # a long word also counts as found by its first six letters ("allergic" by "allergies"; their stems differ)
    prefixes = [w[:6] + ":*" if len(w) >= 7 and w.isalpha() else "" for w in words]
    with db.as_user(None) as conn:
        rows = conn.execute(
            """SELECT w, EXISTS (SELECT 1 FROM chunks WHERE corpus = ANY(%(corpora)s)
                                 AND (tsv @@ plainto_tsquery('english', w)
                                      OR (p <> '' AND tsv @@ to_tsquery('simple', p)))) AS found,
                      numnode(plainto_tsquery('english', w)) AS nodes
               FROM unnest(%(words)s::text[], %(prefixes)s::text[]) WITH ORDINALITY AS t(w, p, i) ORDER BY i""",
            {"corpora": corpora, "words": words, "prefixes": prefixes}).fetchall()
    # a word PostgreSQL drops as a stop word (nodes = 0) says nothing either way
    return [r["w"] for r in rows if r["nodes"] and not r["found"]]
