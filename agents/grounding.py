"""The grounding check: every figure in an answer must appear in the turn's evidence.

Figures are money ($1,250.50, $5k, 300 USD), percentages (8%, 2.5 percent), dates (2026-10-31,
October 31, 2026, Oct 2026) and other numbers (counts, hours, ids). List markers, citation markers
`[n]`, numbers glued to words (p50, H1, cl100k) and numbers inside links are not figures.

Evidence is everything the turn could honestly quote: tool results, the full text of the cited
chunks, the persona's system prompt (operator-written facts), the user's message and the history.
A figure is supported when a number in the evidence equals it at the precision it is written in
("$73" accepts 72.6, "$72.60" does not), a percentage also matching a fraction (10% ↔ 0.1), a
date matching to the day (or month, for "October 2026"). Sign is ignored ("-4.2%" ↔ "falling 4.2%").
It cannot tell a true figure from a wrong one the evidence happens to contain; it catches invention.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, Field

MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"], 1)}
MONTHS |= {m[:3]: i for m, i in list(MONTHS.items())} | {"sept": 9}
_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|" \
         r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_SCALE = r"(?:\s?(?:k|K|thousand|m|M|million|bn|billion|trillion)\b)?"
FIGURE = re.compile(
    rf"(?P<iso>\b\d{{4}}-\d{{2}}-\d{{2}}(?:[T ][\d:.]+(?:Z|[+-]\d{{2}}:?\d{{2}})?)?)"
    rf"|(?P<mdy>\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b)"
    rf"|(?P<dmy>\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}\s+\d{{4}}\b)"
    rf"|(?P<my>\b{_MONTH}\s+\d{{4}}\b)"
    rf"|(?P<money>(?:US)?\$\s?(?:{_NUM}){_SCALE}|(?:{_NUM}){_SCALE}\s?(?:USD|dollars)\b)"
    rf"|(?P<percent>(?:{_NUM})\s?(?:%|percent\b|per\s?cent\b))"
    rf"|(?P<number>{_NUM})",
    re.I,
)
_CITATION = re.compile(r"\[\d{1,3}\]")
# what is not a figure, though it has digits. List markers at a line's start, after any indentation, quote,
# bullet, heading or bold mark — "1.", "2)", "(3)", "4:", "**5.**", "### 6.", "1.2 Click", "7 - Pick", "8.Open"
# — also at the end of a streamed piece; a table's row number ("| 1 | Open |"); inline enumerations
# ("1) open Payouts, 2) choose"); keycap digits (1️⃣); step and section numbers ("Step 2", "Tip #3");
# versions ("v2.1", "version 3", "2.4.1").
_LINE_START = r"(?m)^[ \t>*#-]*(?:\*\*|__)?"
_LIST_MARKER = re.compile(
    _LINE_START + r"(?:\(?\d{1,2}(?:\.\d{1,2})*[.):]|\d{1,2}(?:\.\d{1,2})+(?=\s+[A-Z])|\d{1,2}(?=\s+[-–—]\s))"
    r"(?:\*\*|__)?(?=\s|$|[A-Z])")
_TABLE_ROW_NUMBER = re.compile(r"(?m)^\|\s*\d{1,2}\s*(?=\|\s*[*_]*[A-Za-z])")
_INLINE_ENUMERATION = re.compile(r"(?<![\w.$%(])\d{1,2}\)(?=\s+[A-Za-z])")
_KEYCAP = re.compile("\\d\ufe0f?\u20e3")
_STEP = re.compile(r"\b(?:step|phase|part|stage|chapter|section|option|tip|lesson|module|level|point|rule|"
                   r"question|item)\s?#?\d{1,3}\b", re.I)
_VERSION = re.compile(r"\b(?:v|version\s?)\d+(?:\.\d+)*\b|\b\d+\.\d+\.\d+\b", re.I)
_URL = re.compile(r"https?://\S+|\bwww\.\S+")
_SCALE_OF = re.compile(r"(?<=\d)\s?(?:/\s?|out of\s)(?:5|10|100)\b")  # "7/10", "4.8 out of 5": a scale, not a figure
_SCALES = {"k": 1000, "thousand": 1000, "m": 1_000_000, "million": 1_000_000, "bn": 10**9, "billion": 10**9,
           "trillion": 10**12}


@dataclass(frozen=True)
class Figure:
    raw: str
    kind: Literal["money", "percent", "number", "date"]
    value: Decimal | None = None  # money, percent, number
    step: Decimal = Decimal(1)  # the precision it is written in (the last digit's place, scaled)
    date: tuple[int, ...] | None = None  # (y, m, d) or (y, m)


class Grounding(BaseModel):
    figures: int = Field(0, description="figures found in the answer")
    unsupported: list[str] = Field(default_factory=list, description="figures not found in the evidence")


def _number(text: str) -> tuple[Decimal, Decimal] | None:
    """A written number and its precision: '1,250.5' -> (1250.5, 0.1); '5k' -> (5000, 1000)."""
    match = re.search(_NUM, text)
    if not match:
        return None
    digits = match.group(0).replace(",", "")
    try:
        value = Decimal(digits)
    except InvalidOperation:
        return None
    step = Decimal(1).scaleb(-len(digits.split(".")[1])) if "." in digits else Decimal(1)
    scale = re.search(r"^\s?(k|thousand|million|bn|billion|trillion|m)\b", text[match.end():], re.I)
    if scale:
        factor = _SCALES[scale.group(1).lower()]
        value, step = value * factor, step * factor
    return value, step


def _date(kind: str, raw: str) -> tuple[int, ...] | None:
    text = raw.lower().replace(",", " ").replace(".", " ")
    try:
        if kind == "iso":
            day = dt.date.fromisoformat(raw[:10])
            return day.year, day.month, day.day
        words = text.split()
        month = next(MONTHS[w] for w in words if w in MONTHS)
        numbers = [int(re.sub(r"\D", "", w)) for w in words if re.sub(r"\D", "", w)]
        year = next(n for n in numbers if n >= 1000)
        days = [n for n in numbers if n < 1000]
        if days:
            dt.date(year, month, days[0])
            return year, month, days[0]
        return year, month
    except (StopIteration, ValueError):
        return None


def _masked(text: str) -> str:
    """Blank out what is not a figure (citation and list markers, links), keeping offsets."""
    for pattern in (_CITATION, _URL, _LIST_MARKER, _TABLE_ROW_NUMBER, _INLINE_ENUMERATION, _KEYCAP, _STEP, _VERSION,
                    _SCALE_OF):
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return text


def extract_figures(text: str) -> list[Figure]:
    masked = _masked(text)
    figures = []
    for match in FIGURE.finditer(masked):
        kind = match.lastgroup or "number"
        raw = match.group(0).strip()
        before = masked[match.start() - 1] if match.start() else " "
        after = masked[match.end()] if match.end() < len(masked) else " "
        if kind == "number" and (before.isalpha() or before == "_" or after.isalpha() or after == "_"):
            continue  # p50, H1, cl100k, v2: part of a name, not a figure
        if kind in ("iso", "mdy", "dmy", "my"):
            parsed = _date(kind, raw)
            if parsed is not None:
                figures.append(Figure(raw=raw, kind="date", date=parsed))
            continue
        parsed_number = _number(raw)
        if parsed_number is None:
            continue
        value, step = parsed_number
        figures.append(Figure(raw=raw, kind=kind, value=value, step=step))
    return figures


@dataclass
class EvidenceIndex:
    """The numbers and dates the evidence contains, for fast checks."""

    numbers: set[Decimal] = field(default_factory=set)
    dates: set[tuple[int, ...]] = field(default_factory=set)

    def add_text(self, text: str) -> None:
        for fig in extract_figures(text):
            if fig.kind == "date" and fig.date:
                self.dates.add(fig.date)
                self.dates.add(fig.date[:2])
            elif fig.value is not None:
                self.add_number(fig.value)

    def add_number(self, value: Decimal | float | int) -> None:
        number = abs(Decimal(str(value)))
        self.numbers.add(number)
        if number < 1:
            self.numbers.add(number * 100)  # a rate stored as a fraction is written as a percentage

    def add_data(self, data: Any) -> None:
        """Numbers, dates and texts inside a tool result, at any depth."""
        if isinstance(data, bool) or data is None:
            return
        if isinstance(data, int | float | Decimal):
            self.add_number(data)
        elif isinstance(data, str):
            self.add_text(data)
        elif isinstance(data, dict):
            for value in data.values():
                self.add_data(value)
        elif isinstance(data, list | tuple):
            for value in data:
                self.add_data(value)
        else:
            self.add_text(json.dumps(data, default=str))

    def supports(self, fig: Figure) -> bool:
        if fig.kind == "date":
            return fig.date in self.dates
        assert fig.value is not None
        value, tolerance = abs(fig.value), fig.step / 2
        return any(abs(n - value) <= tolerance for n in self.numbers)


def build_index(texts: Iterable[str] = (), data: Iterable[Any] = ()) -> EvidenceIndex:
    index = EvidenceIndex()
    for text in texts:
        index.add_text(text)
    for item in data:
        index.add_data(item)
    return index


def check(answer: str, index: EvidenceIndex | Callable[[], EvidenceIndex]) -> Grounding:
    """The answer's figures against the evidence. `index` may be a function that builds it: then it is
    built only if the answer states any figure (indexing every record and source costs ~1-2 ms a turn)."""
    figures = extract_figures(answer)
    if not figures:
        return Grounding(figures=0, unsupported=[])
    if callable(index):
        index = index()
    unsupported: list[str] = []
    for fig in figures:
        if not index.supports(fig) and fig.raw not in unsupported:
            unsupported.append(fig.raw)
    return Grounding(figures=len(figures), unsupported=unsupported)


def mentions_value(text: str, value: float, *, as_percent_of_fraction: bool = True) -> bool:
    """Does `text` state this value as a figure (0.1 also as 10%)? Used by the answer-level evals."""
    target = abs(Decimal(str(value)))
    for fig in extract_figures(text):
        if fig.value is None:
            continue
        tolerance = fig.step / 2
        if abs(abs(fig.value) - target) <= tolerance:
            return True
        as_percent = as_percent_of_fraction and fig.kind == "percent" and target < 1
        if as_percent and abs(fig.value - target * 100) <= tolerance:
            return True
    return False


# Where a streamed answer may be cut into pieces that are checked on their own: after a sentence's end
# or a line break, but never inside something `extract_figures` reads whole — a list marker ("1."),
# an abbreviated month ("Oct. 31, 2026"), a decimal ("2.5"), "e.g."/"i.e."
_SENTENCE_END = re.compile(r"[.!?:](?=\s)|\n")
_NO_CUT_BEFORE = re.compile(r"(?:(?m:^)[ \t>*#-]*(?:\*\*|__)?\(?\d{1,2}(?:\.\d{1,2})*|\b(?:jan|feb|mar|apr|jun|jul|"
                            r"aug|sept?|oct|nov|dec|e\.g|i\.e|etc|vs|no|approx|ca))$", re.I)


def sentence_ends(text: str) -> list[int]:
    """Offsets where `text` may be cut so that each piece is checked as the whole text would be."""
    return [m.end() for m in _SENTENCE_END.finditer(text)
            if m.group(0) not in ".:" or not _NO_CUT_BEFORE.search(text, 0, m.start())]


class StrictGate:
    """Strict grounding while an answer streams: holds text until a sentence is complete, then releases it
    only if its figures are supported. It cuts only where `sentence_ends` allows, so a piece is checked by
    the same rule as the whole answer (`check`)."""

    def __init__(self, index: Callable[[], EvidenceIndex]) -> None:
        self.index = index  # called per piece: tool calls may add evidence mid-answer
        self.buffer = ""
        self.unsupported: list[str] = []

    @property
    def failed(self) -> bool:
        return bool(self.unsupported)

    def feed(self, text: str) -> str:
        self.buffer += text
        ends = sentence_ends(self.buffer)
        if not ends:
            return ""
        ready, self.buffer = self.buffer[:ends[-1]], self.buffer[ends[-1]:]
        return self._checked(ready)

    def flush(self) -> str:
        ready, self.buffer = self.buffer, ""
        return self._checked(ready)

    def _checked(self, text: str) -> str:
        result = check(text, self.index)
        if result.unsupported:
            self.unsupported += [f for f in result.unsupported if f not in self.unsupported]
            return ""
        return text
