"""The held-out support check: a handbook the project never saw, ingested as a help center.

Measures what a new deployment would get on its own documents: retrieval hit@5 (the answering
section among the top five) and, through the support persona pointed at that corpus, whether the
answer states the asked fact and whether it has figures the evidence lacks. Also checks that off-topic
questions are handed to a person rather than answered.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, field_validator

from agents.aio import iterate_blocking
from agents.composer import COMPOSER
from agents.composer.structures import NOT_FOUND
from agents.llm import ChatProvider
from agents.personas import get_persona
from agents.requests import TurnRequest
from agents.runtime import Turn
from agents.tools import ticket_subject
from retrieval.corpora import add_corpus
from retrieval.ingest import ingest_paths
from retrieval.search import search
from store.db import Database

HELDOUT_DIR = Path(__file__).resolve().parent / "heldout"
HELDOUT_SETS = ("questions.yaml", "tasklane-questions.yaml")  # a Markdown handbook and an HTML help center


Half = Literal["tune", "report"]


class HeldoutCase(BaseModel):
    question: str
    source: str | list[str] = Field(description="the anchor of the section that answers (several: any of them, "
                                                "e.g. a tab and the section it sits in)")
    fact: str
    half: Half = Field("tune", description="tune: may be looked at while tuning; report: only ever reported "
                                           "(sets written before the split count as tuned on)")


class Unanswerable(BaseModel):
    question: str
    half: Half = "tune"


class HeldoutSet(BaseModel):
    corpus: str
    document: str
    cases: list[HeldoutCase]
    off_topic: list[Unanswerable] = Field(default_factory=list, description="questions the documents cannot answer")

    @field_validator("off_topic", mode="before")
    @classmethod
    def _plain_questions(cls, value: list) -> list:
        return [{"question": q} if isinstance(q, str) else q for q in value]


class HeldoutResult(BaseModel):
    question: str
    half: Half = "tune"
    rank: int | None = Field(None, description="position of the answering section in the top 5")
    fact_in_answer: bool
    fact_first: bool = Field(False, description="the fact is in the answer's first quote (what a reader reads first)")
    unsupported: list[str]
    escalated: bool
    answer: str


class UnanswerableResult(BaseModel):
    question: str
    half: Half = "tune"
    honest: bool = Field(description="the answer says the help center does not cover it (or hands it to a person), "
                                     "rather than quoting something else as if it answered")
    answer: str


def first_quote(answer: str) -> str:
    """The answer up to its first source marker, past a "closest topic it covers is “…”:" lead-in."""
    text = answer.split("”: ", 1)[1] if answer.startswith(NOT_FOUND) and "”: " in answer else answer
    return re.split(r"\[\d+\]", text, maxsplit=1)[0]


def honest_about_not_knowing(answer: str, events: list[dict]) -> bool:
    return any(e["type"] == "handoff" and e["reason"] == "no_answer" for e in events) or \
        answer.lstrip().startswith(NOT_FOUND)


class HeldoutReport(BaseModel):
    hits_at_5: int
    facts_in_answer: int
    cases: int
    unsupported_figures: int
    off_topic_escalated: int
    off_topic: int
    results: list[HeldoutResult]
    unanswerable: list[UnanswerableResult] = Field(default_factory=list)

    def half(self, half: Half) -> dict[str, str]:
        """The issue's four numbers for one half: fact stated, honest on unanswerable, unsupported figures,
        hit@5 (as "n/m")."""
        cases = [r for r in self.results if r.half == half]
        unanswerable = [u for u in self.unanswerable if u.half == half]
        return {"fact_stated": f"{sum(r.fact_in_answer for r in cases)}/{len(cases)}",
                "fact_in_first_quote": f"{sum(r.fact_first for r in cases)}/{len(cases)}",
                "honest_unanswerable": f"{sum(u.honest for u in unanswerable)}/{len(unanswerable)}",
                "unsupported_figures": str(sum(len(r.unsupported) for r in cases)),
                "answerable_hedged": f"{sum(r.answer.lstrip().startswith(NOT_FOUND) for r in cases)}/{len(cases)}",
                "hit_at_5": f"{sum(r.rank is not None for r in cases)}/{len(cases)}"}


def load_heldout(name: str = HELDOUT_SETS[0]) -> HeldoutSet:
    return HeldoutSet.model_validate(yaml.safe_load((HELDOUT_DIR / name).read_text(encoding="utf-8")))


def ingest_heldout(db: Database, spec: HeldoutSet, folder: Path = HELDOUT_DIR) -> None:
    add_corpus(db, spec.corpus, "held-out handbook (evals/heldout)")
    ingest_paths(db, [folder / spec.document], spec.corpus, progress=False)


def remove_heldout(db: Database, spec: HeldoutSet) -> None:
    """Take the held-out corpus out again, so searches over every corpus see only the shipped ones."""
    with db.admin() as conn:
        conn.execute("DELETE FROM documents WHERE corpus = %s", (spec.corpus,))
        conn.execute("DELETE FROM corpora WHERE name = %s", (spec.corpus,))


def _ask(db: Database, provider: ChatProvider, corpus: str, question: str) -> tuple[str, list[dict]]:
    persona = get_persona("support").model_copy(update={"id": "heldout_support", "corpora": [corpus]})
    req = TurnRequest(persona="support", text=question)
    events = [e.model_dump() for e in iterate_blocking(Turn(req, persona, db, provider, None, None).run())]
    answer = "".join(e["delta"] for e in events if e["type"] == "token")
    return answer, events


def run_heldout(db: Database, provider: ChatProvider = COMPOSER, spec: HeldoutSet | None = None) -> HeldoutReport:
    spec = spec or load_heldout()
    ingest_heldout(db, spec)
    results = []
    try:
        for case in spec.cases:
            hits = search(db, case.question, corpora=[spec.corpus], k=5)
            sources = [case.source] if isinstance(case.source, str) else case.source
            rank = next((i for i, h in enumerate(hits, 1) if h.anchor in sources), None)
            answer, events = _ask(db, provider, spec.corpus, case.question)
            done = events[-1]
            results.append(HeldoutResult(
                question=case.question, half=case.half, rank=rank, fact_in_answer=case.fact in answer, answer=answer,
                fact_first=case.fact in first_quote(answer),
                unsupported=(done.get("grounding") or {}).get("unsupported", []),
                escalated=any(e["type"] == "handoff" for e in events)))
        escalated = 0
        unanswerable = []
        for item in spec.off_topic:
            answer, events = _ask(db, provider, spec.corpus, item.question)
            escalated += any(e["type"] == "handoff" and e["reason"] == "no_answer" for e in events)
            unanswerable.append(UnanswerableResult(question=item.question, half=item.half, answer=answer,
                                                   honest=honest_about_not_knowing(answer, events)))
    finally:
        asked = [*(c.question for c in spec.cases), *(u.question for u in spec.off_topic)]
        with db.admin() as conn:  # tickets the turns opened
            conn.execute("DELETE FROM support_tickets WHERE user_id IS NULL AND conversation_id IS NULL "
                         "AND subject = ANY(%s)", ([ticket_subject(q) for q in asked],))
    return HeldoutReport(
        hits_at_5=sum(r.rank is not None for r in results), facts_in_answer=sum(r.fact_in_answer for r in results),
        cases=len(results), unsupported_figures=sum(len(r.unsupported) for r in results),
        off_topic_escalated=escalated, off_topic=len(spec.off_topic), results=results, unanswerable=unanswerable)
