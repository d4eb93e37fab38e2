"""Cited chunks → quotable units (sentences, list items, table rows, config lines) → the best few.

Units are scored against the question with the MiniLM model the service already loaded (cosine of
the unit with its section path), plus a little word overlap, a nudge for units that hold a figure
when the question asks for one, and the chunk's retrieval rank. Near-duplicates are skipped.
Embeddings of units are cached by text: the same help-center sentence is embedded once per process.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from agents.grounding import extract_figures
from retrieval.chunking import config_lines, table_rows
from retrieval.embedder import get_embedder
from retrieval.search import SearchHit

_ABBREVIATIONS = ("e.g.", "i.e.", "E.g.", "I.e.", "etc.", "vs.", "approx.", "incl.", "no.", "min.", "max.", "Mr.",
                  "Ms.", "Dr.")
_SENTENCE_SPLIT = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]”]))\s+(?=[A-Z0-9$\"'(“])")
CLAUSE_NUMBER = re.compile(r"^\(?\d{1,2}(?:\.\d{1,2})+\)?\s+(?=[A-Z])")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,2}[.)])\s+(.*)$")
_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "do", "does", "did", "for",
    "from", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our",
    "so", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to", "was", "we",
    "what", "when", "where", "which", "who", "why", "will", "with", "would", "you", "your", "yours", "am", "any",
    "about", "after", "before", "up", "out", "also", "just", "get", "got", "should", "much", "many",
])
# What kind of figure a question asks for, and how to recognise a unit that states one.
ASKS = {
    "money": (re.compile(r"\b(how much|cost|costs|fee|fees|price|prices|pricing|charge|charges|pay|paid|percent|"
                         r"percentage|cut|commission|expensive|cheap|rate|rates)\b|[$%]", re.I),
              re.compile(r"[$€£]\s?\d|\d\s?(%|percent|usd|dollars)", re.I)),
    "time": (re.compile(r"\b(how (long|soon|quickly|fast)|when|until|wait|deadline|days?|weeks?|hours?)\b", re.I),
             re.compile(r"\d[\d.,]*[\s-]*(business |working |calendar )?"
                        r"(minutes?|hours?|days?|weeks?|months?|years?)\b", re.I)),
    "count": (re.compile(r"\b(how many|number of|limit|limits|maximum|minimum|smallest|largest|at most|at least)\b",
                         re.I), re.compile(r"\d")),
}
_CACHE_SIZE = 20_000


@dataclass
class Unit:
    text: str  # as it will be quoted
    source: int  # the citation marker [n]
    section: str  # title › section, for scoring
    kind: str  # sentence | item | row | config
    position: int
    corpus: str = ""
    title: str = ""  # the document's: a lesson, a help-center article
    has_figure: bool = False
    score: float = 0.0


def _terms(text: str) -> set[str]:
    words = set()
    for word in _WORD.findall(text.lower()):
        if word in STOPWORDS or len(word) < 2:
            continue
        for suffix in ("ing", "ed", "es", "s"):
            if len(word) > len(suffix) + 3 and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        words.add(word)
    return words


def split_sentences(paragraph: str) -> list[str]:
    text = " ".join(paragraph.split())
    protected = text
    for abbr in _ABBREVIATIONS:
        protected = protected.replace(abbr, abbr.replace(".", "\x00"))
    return [s.replace("\x00", ".").strip() for s in _SENTENCE_SPLIT.split(protected) if s.strip()]


QUESTION_LINE = re.compile(r"^\s*(?:Q|Question)\s*[:.]\s*(\S.*)$", re.I)
ANSWER_LINE = re.compile(r"^\s*(?:A|Answer)\s*[:.]\s*(.*)$", re.I)


def _faq_question(paragraph: list[str]) -> str | None:
    """A paragraph that is one short question ("Can I cancel?", "**Can I cancel?**") heads an FAQ pair."""
    text = " ".join(" ".join(paragraph).split()).strip("*_ ")
    return text if text.endswith("?") and len(text) <= 200 and len(split_sentences(text)) == 1 else None


def _block(lines: list[str], i: int) -> tuple[str, list[str], int]:
    """A fenced code block or a table starting at line i: its units and the line after it."""
    if lines[i].strip().startswith("```"):
        block = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith("```"):
            block.append(lines[i])
            i += 1
        return "config", config_lines(block), i + 1
    block = []
    while i < len(lines) and lines[i].strip().startswith("|"):
        block.append(lines[i])
        i += 1
    return "row", table_rows(block), i


def _continues(line: str) -> bool:
    """A wrapped line of the list item above (indented, or a lazy continuation as Markdown allows)."""
    return bool(line.strip()) and not _LIST_ITEM.match(line) and not line.strip().startswith(("|", "```")) \
        and not QUESTION_LINE.match(line) and not ANSWER_LINE.match(line)


def _list_item(lines: list[str], i: int) -> tuple[str, int]:
    """The list item starting at line i with its wrapped lines, and the index of its last line."""
    item = [_LIST_ITEM.match(lines[i]).group(1)]
    while i + 1 < len(lines) and _continues(lines[i + 1]):
        i += 1
        item.append(lines[i].strip())
    return " ".join(item), i


def units_of(hit: SearchHit, number: int) -> list[Unit]:
    """Split a cited chunk into units; the chunk's first line is its title/section header.

    An FAQ pair (a "Q:"/"A:" pair, or a question paragraph such as an HTML <summary> or <dt> followed by
    its answer) becomes units of the answer keyed by the question: the question joins the section path the
    unit is scored with, and is not quoted itself. A list item keeps its wrapped lines.
    """
    header, _, body = hit.text.partition("\n\n")
    section = header.strip() or f"{hit.title} › {hit.section}"
    texts: list[tuple[str, str, str]] = []  # kind, text, the FAQ question it answers ("" if none)
    lines = body.splitlines()
    i = 0
    paragraph: list[str] = []
    question = ""

    def flush_paragraph() -> None:
        nonlocal question
        if not paragraph:
            return
        asked = _faq_question(paragraph)
        if asked is not None:
            question = asked  # the answer follows
        else:
            # a clause number ("2.1 We deduct ...") numbers the policy, not the fact: quoted without it, so the
            # answer does not read "... [1] 5.1 You may close" and the number is no figure to check
            texts.extend(("sentence", CLAUSE_NUMBER.sub("", s), question)
                         for s in split_sentences(" ".join(paragraph)))
            if paragraph[-1].rstrip().endswith(":"):
                question = ""  # "Things to check before your first lesson:" starts something else
        paragraph.clear()

    while i < len(lines):
        line = lines[i]
        if line.strip().startswith(("```", "|")):
            flush_paragraph()
            kind, block, i = _block(lines, i)
            texts.extend((kind, b, question) for b in block)
            continue
        if (asked := QUESTION_LINE.match(line)) is not None:
            flush_paragraph()
            question = asked.group(1).strip()
        elif (answered := ANSWER_LINE.match(line)) is not None:
            flush_paragraph()
            paragraph.append(answered.group(1).strip())
        elif _LIST_ITEM.match(line):
            flush_paragraph()
            item, i = _list_item(lines, i)
            texts.append(("item", item, question))
        elif not line.strip():
            flush_paragraph()
        else:
            paragraph.append(line.strip())
        i += 1
    flush_paragraph()
    units = []
    for position, (kind, text, asked) in enumerate(texts):
        text = text.strip()
        if len(text) < 3 or not re.search(r"[A-Za-z0-9]", text):
            continue
        units.append(Unit(text=text, source=number, section=f"{section} › {asked}" if asked else section, kind=kind,
                          position=position, corpus=hit.corpus, title=hit.title,
                          has_figure=bool(extract_figures(text))))
    return units


class _EmbeddingCache:
    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self.size = size
        self.vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self.lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        with self.lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            fresh = get_embedder().embed(missing)
            with self.lock:
                for text, vector in zip(missing, fresh, strict=True):
                    self.vectors[text] = vector
                while len(self.vectors) > self.size:
                    self.vectors.popitem(last=False)
        with self.lock:
            out = []
            for text in texts:
                self.vectors.move_to_end(text)
                out.append(self.vectors[text])
        return np.vstack(out) if out else np.zeros((0, 384), dtype=np.float32)


CACHE = _EmbeddingCache()


_PRICE_FIELD = re.compile(r"\b(price|cost|monthly|per month|subscription)\b", re.I)
_NOT_PRICE = re.compile(r"\b(commission|percent|percentage|rate|share|fee per withdrawal)\b", re.I)
_AMOUNT = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
# how readers name a plan by its price, where the document names it by its own word ("Starter")
_BY_PRICE = {"free": re.compile(r"\b(free|without paying|no cost|not paying|don't pay|unpaid)\b", re.I),
             "max": re.compile(r"\b(top|most expensive|priciest|highest|premium|biggest)\b (plan|tier|level|package)",
                               re.I),
             "min": re.compile(r"\b(cheapest|lowest|basic|smallest)\b (paid )?(plan|tier|level|package)", re.I),
             "middle": re.compile(r"\b(middle|mid|second)\b[- ]?(plan|tier|level|package)", re.I)}


def _key_and_field(unit: Unit) -> tuple[str, str, str] | None:
    """A table row's or config line's key (the row's first cell, the object path), a field and its value."""
    if unit.kind == "row" and ": " in unit.text:
        key, _, rest = unit.text.partition(": ")
        fields = [f for f in rest.rstrip(".").split("; ") if _PRICE_FIELD.search(f) and not _NOT_PRICE.search(f)]
        return (key, fields[0], fields[0]) if fields else (key, "", "")
    if unit.kind == "config" and " › " in unit.text and ": " in unit.text:
        path, _, value = unit.text.rpartition(": ")
        *keys, name = path.split(" › ")
        if keys:
            return " › ".join(keys), name, value
    return None


def priced_by_question(question: str, units: list[Unit]) -> str | None:
    """The plan the question names by its price ("the free plan", "the top tier") when the document names it
    otherwise: learned from the document's own prices (a tier priced $0 is the free one)."""
    asked = [kind for kind, pattern in _BY_PRICE.items() if pattern.search(question)]
    if not asked:
        return None
    prices: dict[str, float] = {}
    for unit in units:
        found = _key_and_field(unit)
        if found is None or not found[1] or not _PRICE_FIELD.search(found[1]) or _NOT_PRICE.search(found[1]):
            continue
        amount = _AMOUNT.search(found[2])  # a row's field holds its value ("Monthly price $0")
        if amount is not None:
            prices.setdefault(found[0], float(amount.group(0).replace(",", "")))
    if len(prices) < 2:
        return None
    ordered = sorted(prices, key=prices.get)
    kind = asked[0]
    if kind == "free":
        free = [k for k in ordered if prices[k] == 0]
        return free[0] if len(free) == 1 else None
    if kind == "max":
        return ordered[-1]
    if kind == "min":
        paid = [k for k in ordered if prices[k] > 0]
        return paid[0] if paid else None
    return ordered[len(ordered) // 2] if len(ordered) % 2 == 1 else None


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def rank(question: str, hits: list[SearchHit], *, corpora: set[str] | None = None,
         question_vector: np.ndarray | None = None, bonus: Callable[[Unit], float] | None = None) -> list[Unit]:
    """Every unit of the cited chunks (optionally only some corpora), best first, with its score.

    `bonus` lets a structure prefer some units (the caller's own plan, actionable advice).
    """
    units = [u for n, hit in enumerate(hits, 1) if corpora is None or hit.corpus in corpora
             for u in units_of(hit, n)]
    if not units:
        return []
    q = question_vector if question_vector is not None else CACHE.embed([question])[0]
    vectors = CACHE.embed([f"{u.section}: {u.text}" for u in units])
    similarity = vectors @ q
    q_terms = _terms(question)
    asked = [answer for question_pattern, answer in ASKS.values() if question_pattern.search(question)]
    named_by_price = priced_by_question(question, units)
    for unit, sim in zip(units, similarity, strict=True):
        overlap = len(q_terms & _terms(unit.text)) / len(q_terms) if q_terms else 0.0
        unit.score = float(sim) + 0.2 * overlap + 0.02 / unit.source
        if unit.kind in ("row", "config") and q_terms & _terms(unit.text.split(":", 1)[0]):
            unit.score += 0.05  # the row or object the question names ("on the free plan") over its neighbours
        if named_by_price is not None and (found := _key_and_field(unit)) is not None and found[0] == named_by_price:
            unit.score += 0.08  # "the top plan" is the one the document prices highest
        if asked and unit.has_figure:  # the question wants a figure: units stating that kind of figure first
            unit.score += 0.1 if any(p.search(unit.text) for p in asked) else 0.03
        if unit.text.rstrip().endswith(":"):
            unit.score -= 0.1  # a lead-in ("as the billing system applies them:") introduces the answer, isn't it
        if len(unit.text.split()) < 4:
            unit.score -= 0.1
        if bonus is not None:
            unit.score += bonus(unit)
    return sorted(units, key=lambda u: (-u.score, u.source, u.position))


def _near_duplicate(a: Unit, b: Unit) -> bool:
    """Same words and the same figures (two config lines that differ only in their value are two facts)."""
    if a.text in b.text or b.text in a.text:
        return True
    figures = {f.raw for f in extract_figures(a.text)} != {f.raw for f in extract_figures(b.text)}
    return not figures and _jaccard(_terms(a.text), _terms(b.text)) > 0.6


def pick(ranked: list[Unit], n: int, *, floor: float = 0.0, margin: float = 1.0,
         prefer_source: bool = False) -> list[Unit]:
    """Up to n units: the best, then others within `margin` of it and above `floor`, no near-duplicates."""
    if not ranked or n <= 0 or ranked[0].score < floor:
        return []
    best = ranked[0]
    chosen = [best]
    candidates = ranked[1:]
    if prefer_source:  # the direct answer reads better from one article: its other units first
        candidates = sorted(candidates, key=lambda u: -(u.score + (0.06 if u.source == best.source else 0.0)))
    for unit in candidates:
        if len(chosen) >= n:
            break
        if unit.score < max(floor, best.score - margin):
            continue
        if any(_near_duplicate(unit, c) for c in chosen):
            continue
        chosen.append(unit)
    return chosen


IMPERATIVE = re.compile(
    r"^(?:if [^,]+, |when [^,]+, |before [^,]+, |after [^,]+, )?(?:don't |do not |never |always )?"
    r"(ask|pick|choose|start|stop|raise|quote|send|write|offer|set|track|review|list|build|focus|move|keep|give|tell|"
    r"use|add|create|charge|block|schedule|follow|reach|join|share|post|update|check|decide|define|lead|name|show|"
    r"test|try|plan|prepare|limit|price|split|collect|invest|specialise|specialize|package|measure|compare|aim|spend|"
    r"reply|agree|document|avoid|learn|practise|practice|contact|apply|book|look|turn|get|make|do|put|treat|say|"
    r"restate|trade|reduce|cut|drop|open|either|end|repeat|pitch|target|narrow|replace|reuse|batch|automate|"
    r"protect|ship|deliver|confirm|summarise|summarize|mention|lead|link|ask)\b", re.I)
DEFINITION = re.compile(r"^\*\*[^*]+\*\*")  # "**Learning ROI**: revenue divided by ..." defines, it doesn't advise


def actionable(unit: Unit) -> float:
    """Advice a learner can act on (imperatives, "if X, do Y") over definitions and background."""
    text = unit.text.strip().strip("*")
    if DEFINITION.match(unit.text.strip()):
        return -0.15
    return 0.08 if IMPERATIVE.match(text) else 0.0
