"""Run eval sets through the real runtime and database, and score what a user would get.

Per persona: retrieval hit@5 and MRR over the citation events, tool-call precision and recall
(tool names), exact-fact rate (facts found verbatim in the events), answer-fact rate (the same facts
stated in the answer text itself: 0.1 as "10%", 122435.11 as "$122,435.11"), unsupported-figure rate
(figures in the answers that the grounding check found in no evidence), citation validity (each cited
chunk exists with that source, anchor and text and comes from a corpus the persona may read, and
every [n] in the answer points at a citation sent), escalation accuracy (support), leaks (strings
of other users' data found anywhere in the events), latency p50/p95 per turn.

Rows a turn creates (support tickets, proposal drafts) are deleted afterwards by the ids in its own
tool results, so an eval run leaves the database as it found it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from agents.grounding import mentions_value
from agents.llm import ChatProvider
from agents.personas import get_persona
from agents.requests import TurnRequest
from agents.runtime import run_turn
from core.errors import InvalidArgument
from evals.cases import Case, EvalSet, Fact
from evals.stats import percentile
from retrieval.search import search
from store.db import Database
from store.users import list_demo_users

CITE_MARK = re.compile(r"\[(\d{1,3})\]")


class CaseResult(BaseModel):
    id: str
    hit_at_5: bool | None = None
    reciprocal_rank: float | None = None
    tools_called: list[str] = Field(default_factory=list)
    tools_expected: list[str] = Field(default_factory=list)
    facts_found: int = 0
    facts_expected: int = 0
    missing_facts: list[str] = Field(default_factory=list)
    answer_facts_found: int = 0
    answer_facts_expected: int = 0
    missing_in_answer: list[str] = Field(default_factory=list)
    figures: int = 0
    unsupported: list[str] = Field(default_factory=list)
    citations_valid: int = 0
    citations_checked: int = 0
    escalated: bool = False
    escalation_correct: bool | None = None
    leaks: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    latency_ms: float


class PersonaMetrics(BaseModel):
    cases: int
    retrieval_hit_at_5: float | None
    mrr: float | None
    tool_precision: float | None
    tool_recall: float | None
    exact_fact_rate: float | None
    answer_fact_rate: float | None = None
    unsupported_figure_rate: float | None = None
    unsupported_figures: int = 0
    citation_validity: float | None
    escalation_accuracy: float | None = None
    leaks: int
    errors: int
    latency_p50_ms: float
    latency_p95_ms: float


class Report(BaseModel):
    provider: str
    personas: dict[str, PersonaMetrics]
    failures: list[str] = Field(default_factory=list, description="thresholds not met")
    cases: dict[str, list[CaseResult]] = Field(default_factory=dict)


def _find(data: Any, field: str) -> list[Any]:
    """Every value stored under key `field`, at any depth."""
    found: list[Any] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key == field:
                found.append(value)
            found += _find(value, field)
    elif isinstance(data, list):
        for item in data:
            found += _find(item, field)
    return found


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return abs(float(actual) - float(expected)) < 0.005
    return str(actual) == str(expected)


def fact_present(fact: Fact, events: list[dict], text: str) -> bool:
    if fact.text is not None:
        return fact.text in text
    return any(_equal(v, fact.value) for e in events
               if e["type"] == "tool_result" and e["name"] == fact.tool and not e.get("error")
               for v in _find(e.get("data"), fact.field or ""))


def fact_in_answer(fact: Fact, answer: str) -> bool | None:
    """Is the fact stated in the answer itself? None for facts an answer cannot state (booleans)."""
    if not fact.answer:
        return None
    if fact.text is not None:
        return fact.text in answer
    if isinstance(fact.value, bool):
        return None
    if isinstance(fact.value, int | float):
        return mentions_value(answer, float(fact.value))
    return str(fact.value).lower() in answer.lower()


def _chunks(db: Database, ids: list[int]) -> dict[int, dict]:
    if not ids:
        return {}
    with db.admin() as conn:
        rows = conn.execute(
            "SELECT id, corpus, source, anchor, text FROM chunks WHERE id = ANY(%s)", (ids,)).fetchall()
    return {r["id"]: r for r in rows}


def score_case(case: Case, events: list[dict], answer: str, corpora: list[str], db: Database,
               latency_ms: float) -> CaseResult:
    exp = case.expect
    result = CaseResult(id=case.id, latency_ms=round(latency_ms, 1), tools_expected=sorted(exp.tools))
    citations = [e for e in events if e["type"] == "citation"]
    keys = [f"{c['source']}#{c['anchor']}" for c in citations]
    if exp.sources:
        ranks = [i for i, key in enumerate(keys, 1) if any(key.startswith(s) for s in exp.sources)]
        result.hit_at_5 = bool(ranks) and ranks[0] <= 5
        result.reciprocal_rank = 1 / ranks[0] if ranks else 0.0
    result.tools_called = sorted({e["name"] for e in events if e["type"] == "tool_call"})
    flat = json.dumps(events, default=str, ensure_ascii=False)
    text = "\n".join([answer, *[c["snippet"] for c in citations],
                      *[json.dumps(e.get("data"), default=str) for e in events if e["type"] == "tool_result"]])
    result.facts_expected = len(exp.facts)
    for fact in exp.facts:
        if fact_present(fact, events, text):
            result.facts_found += 1
        else:
            result.missing_facts.append(fact.label())
    for fact in exp.facts:
        stated = fact_in_answer(fact, answer)
        if stated is None:
            continue
        result.answer_facts_expected += 1
        result.answer_facts_found += stated
        if not stated:
            result.missing_in_answer.append(fact.label())
    done = next((e for e in reversed(events) if e["type"] == "done"), None)
    grounding = (done or {}).get("grounding") or {}
    result.figures = grounding.get("figures", 0)
    result.unsupported = grounding.get("unsupported", [])
    rows = _chunks(db, [c["chunk_id"] for c in citations])
    for c in citations:
        row = rows.get(c["chunk_id"])
        snippet = c["snippet"].rstrip("…")
        body = " ".join(row["text"].split()) if row else ""
        result.citations_checked += 1
        result.citations_valid += bool(row and row["source"] == c["source"] and row["anchor"] == c["anchor"]
                                       and row["corpus"] in corpora and snippet[:120] in body)
    for mark in CITE_MARK.findall(answer):
        result.citations_checked += 1
        result.citations_valid += 1 <= int(mark) <= len(citations)
    result.escalated = any(e["type"] == "handoff" for e in events)
    if exp.escalate is not None:
        result.escalation_correct = result.escalated == exp.escalate
    result.leaks = [s for s in exp.absent if s.lower() in flat.lower()]
    codes = [e["code"] for e in events if e["type"] == "error"]
    result.errors = [f"{e['code']}: {e['message']}" for e in events if e["type"] == "error" and e["code"] != exp.error]
    if exp.error is not None and exp.error not in codes:
        result.errors.append(f"expected error {exp.error}, got {codes or 'none'}")
    return result


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def aggregate(results: list[CaseResult], *, support: bool) -> PersonaMetrics:
    retrieval = [r for r in results if r.hit_at_5 is not None]
    called = sum(len(r.tools_called) for r in results)
    expected = sum(len(r.tools_expected) for r in results)
    true_pos = sum(len(set(r.tools_called) & set(r.tools_expected)) for r in results)
    escalations = [r for r in results if r.escalation_correct is not None]
    latencies = [r.latency_ms for r in results]
    return PersonaMetrics(
        cases=len(results),
        retrieval_hit_at_5=_ratio(sum(bool(r.hit_at_5) for r in retrieval), len(retrieval)),
        mrr=_ratio(sum(r.reciprocal_rank or 0.0 for r in retrieval), len(retrieval)),
        tool_precision=_ratio(true_pos, called),
        tool_recall=_ratio(true_pos, expected),
        exact_fact_rate=_ratio(sum(r.facts_found for r in results), sum(r.facts_expected for r in results)),
        answer_fact_rate=_ratio(sum(r.answer_facts_found for r in results),
                                sum(r.answer_facts_expected for r in results)),
        unsupported_figure_rate=_ratio(sum(len(r.unsupported) for r in results), sum(r.figures for r in results))
        if any(r.figures for r in results) else 0.0,
        unsupported_figures=sum(len(r.unsupported) for r in results),
        citation_validity=_ratio(sum(r.citations_valid for r in results), sum(r.citations_checked for r in results)),
        escalation_accuracy=_ratio(sum(bool(r.escalation_correct) for r in escalations), len(escalations))
        if support else None,
        leaks=sum(len(r.leaks) for r in results),
        errors=sum(len(r.errors) for r in results),
        latency_p50_ms=percentile(latencies, 50, digits=1),
        latency_p95_ms=percentile(latencies, 95, digits=1),
    )


DRAFT_FIELDS = ("cover_letter", "bid_amount", "bid_type", "estimated_hours", "rationale", "created_at")


def _drafts(db: Database, user_id: int | None) -> dict[int, dict]:
    """The user's drafts as they are now (a case that revises one is undone from this)."""
    if user_id is None:
        return {}
    with db.admin() as conn:
        rows = conn.execute(f"SELECT id, {', '.join(DRAFT_FIELDS)} FROM proposals WHERE freelancer_id = %s "
                            "AND status = 'draft'", (user_id,)).fetchall()
    return {r["id"]: r for r in rows}


def _cleanup(db: Database, events: list[dict], drafts_before: dict[int, dict]) -> None:
    """Delete the tickets and new drafts a case created; put back drafts it revised."""
    tickets = [e["data"]["ticket_id"] for e in events
               if e["type"] == "tool_result" and e["name"] == "create_support_ticket" and e.get("data")]
    drafts = [e["data"]["proposal_id"] for e in events
              if e["type"] == "tool_result" and e["name"] == "save_proposal_draft" and e.get("data")]
    with db.admin() as conn:
        if tickets:
            conn.execute("DELETE FROM support_tickets WHERE id = ANY(%s)", (tickets,))
        for draft in drafts:
            old = drafts_before.get(draft)
            if old is None:
                conn.execute("DELETE FROM proposals WHERE id = %s AND status = 'draft'", (draft,))
            else:
                conn.execute(f"UPDATE proposals SET {', '.join(f'{f} = %s' for f in DRAFT_FIELDS)} WHERE id = %s",
                             (*[Jsonb(old[f]) if f == "rationale" else old[f] for f in DRAFT_FIELDS], draft))


def run_case(db: Database, provider: ChatProvider, persona: str, case: Case, users: dict[str, int]) -> CaseResult:
    if case.user is not None and case.user not in users:
        raise InvalidArgument(f"eval case {case.id}: unknown demo user {case.user!r}")
    req = TurnRequest(persona=persona, text=case.question, user_id=users.get(case.user) if case.user else None,
                      project_id=case.project, mode=case.mode)
    drafts_before = _drafts(db, req.user_id)
    started = time.perf_counter()
    events = [e.model_dump() for e in run_turn(req, db=db, provider=provider)]
    latency = (time.perf_counter() - started) * 1000
    answer = "".join(e["delta"] for e in events if e["type"] == "token")
    try:
        return score_case(case, events, answer, get_persona(persona).corpora, db, latency)
    finally:
        _cleanup(db, events, drafts_before)


def run_evals(db: Database, provider: ChatProvider, sets: list[EvalSet],
              progress: Callable[[str, CaseResult], None] | None = None) -> Report:
    users = {u["handle"]: u["id"] for u in list_demo_users(db)}
    if not users:
        raise InvalidArgument("no demo users in the database: run `mentor seed` first")
    search(db, "warm up", k=1)  # load the embedding model before anything is timed
    personas: dict[str, PersonaMetrics] = {}
    cases: dict[str, list[CaseResult]] = {}
    for eval_set in sets:
        results = []
        for case in eval_set.cases:
            result = run_case(db, provider, eval_set.persona, case, users)
            results.append(result)
            if progress:
                progress(eval_set.persona, result)
        personas[eval_set.persona] = aggregate(results, support=eval_set.persona == "support")
        cases[eval_set.persona] = results
    return Report(provider=provider.name, personas=personas, cases=cases)


METRICS = ["retrieval_hit_at_5", "mrr", "tool_precision", "tool_recall", "exact_fact_rate", "answer_fact_rate",
           "unsupported_figure_rate", "citation_validity", "escalation_accuracy", "latency_p50_ms", "latency_p95_ms"]
MAXIMA = {"unsupported_figure_rate", "latency_p50_ms", "latency_p95_ms"}  # thresholds on these are upper bounds


def check_thresholds(report: Report, thresholds: dict[str, Any]) -> list[str]:
    """Minimums (maximums for MAXIMA) per persona; leaks must be zero. Returns failures.

    Top-level `default` and persona keys apply to every provider; a section named after a provider
    (`grounded-composer:`) adds its own `default` and persona keys for that provider's reports.
    """
    failures = []
    own = thresholds.get(report.provider, {})
    for persona, metrics in report.personas.items():
        wanted = {**thresholds.get("default", {}), **thresholds.get(persona, {}), **own.get("default", {}),
                  **own.get(persona, {})}
        for key, bound in wanted.items():
            value = getattr(metrics, key, None)
            if value is None:
                continue
            if key in MAXIMA and value > bound:
                failures.append(f"{persona}: {key} {value} > {bound}")
            elif key not in MAXIMA and value < bound:
                failures.append(f"{persona}: {key} {value} < {bound}")
        if metrics.leaks:
            failures.append(f"{persona}: {metrics.leaks} leaked strings of other users' data")
    return failures


def format_table(report: Report) -> str:
    """One row per persona, one column per metric (— where a metric does not apply)."""
    heads = ["persona", "cases", "hit@5", "MRR", "tool P", "tool R", "facts", "ans.facts", "unsup.", "cites",
             "escal.", "leaks", "errors", "p50 ms", "p95 ms"]
    rows = []
    for persona, m in report.personas.items():
        cells = [m.retrieval_hit_at_5, m.mrr, m.tool_precision, m.tool_recall, m.exact_fact_rate, m.answer_fact_rate,
                 m.unsupported_figure_rate, m.citation_validity, m.escalation_accuracy]
        rows.append([persona, str(m.cases), *("—" if c is None else f"{c:.2f}" for c in cells), str(m.leaks),
                     str(m.errors), f"{m.latency_p50_ms:.0f}", f"{m.latency_p95_ms:.0f}"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


THRESHOLDS_FILE = Path(__file__).resolve().parent / "thresholds.yaml"


def load_thresholds(path: Path = THRESHOLDS_FILE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def eval_provider(kind: str) -> ChatProvider:
    """`composer` (the offline default), `scripted` (a deterministic tool-calling model, for CI),
    `local` (the bundled SmolLM2) or `openai` (the configured endpoint)."""
    from agents.llm import OpenAICompatibleProvider
    from agents.providers import get_provider
    from agents.testing import ScriptedEvalModel
    from core.errors import ConfigError
    from core.settings import get_settings

    if kind == "scripted":
        return ScriptedEvalModel()
    if kind == "composer":
        from agents.composer import COMPOSER

        return COMPOSER
    if kind == "local":
        return get_provider(get_settings().model_copy(update={"llm_backend": "local"}))
    if kind == "openai":
        settings = get_settings()
        if not (settings.openai_base_url or settings.openai_api_key):
            raise ConfigError("--provider openai needs OPENAI_BASE_URL or OPENAI_API_KEY")
        return OpenAICompatibleProvider(settings)
    raise InvalidArgument(f"unknown provider {kind!r}: use composer, scripted, local or openai")
