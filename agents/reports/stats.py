"""The operator's figures: does the bot resolve questions, where does it fail, how fast, at what cost.

Definitions (README, "The operator's side", has them with their denominators):
- A window is the conversations started in the last N days (UTC) in which someone wrote.
- Each conversation is exactly one of *handed off* (a handoff row), *resolved* or *unresolved*, so the
  three rates share one denominator and sum to 100%. Resolved: the bot answered (a complete answer that
  is not "I couldn't find…"), no answer rated ≤ 2, no re-ask of a question in the conversation (a later
  message at cosine similarity ≥ REASK_SIMILARITY), and no return on the same topic within 24 h (the same
  user or visitor, the same persona, a new conversation whose messages are that close). Confirmed when a
  rating ≥ 4 or a thank-you followed an answer; assumed otherwise.
- Turns: the bot's answers. CSAT: ratings ≥ 4 among rated answers (each answer's newest rating).
  Implemented: answers marked implemented among answers. Unsupported: answers whose grounding check found a
  figure no evidence holds, among answers checked. Latency: from the question stored to the first token
  stored (first_token_ms) and to `done` stored (answer_ms). Tokens and cost: from `done`'s usage and
  provider, priced by `Settings.prices` (cached input at its own price, counted once; the offline
  composer, the local model and the test models cost 0; an unknown model is listed as unpriced).
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from core.settings import DEFAULT_PRICES, Price, Settings
from store import reports
from store.db import Database

# A later message this close to an earlier one asks it again. Set on the tune half of
# evals/heldout/reasks.yaml (19/22 right at 0.71); on the report half 21/22: 10 of 11 re-asks found, none of
# the 11 different questions taken for one (`python -m evals.reasks`).
REASK_SIMILARITY = 0.71
RETURN_WINDOW = timedelta(hours=24)
THANKS = re.compile(r"\b(thanks?|thank you|thx|ty|cheers|that helped|that helps|perfect|great,? (it )?works|"
                    r"solved|got it)\b", re.I)
# "that has not solved anything", "no thanks", "still not working": a thank-you word is no thanks here
NEGATED = re.compile(r"\b(not|no|never|still|nothing|didn't|doesn't|isn't|wasn't|won't|hasn't|haven't|can't|"
                     r"cannot|useless|wrong)\b|n't\b", re.I)
# an answer that is no answer: the composer's "I couldn't find…", a model's "I don't know", off-topic refusals
NO_ANSWER = re.compile(r"\b(I couldn't find|I could not find|I don't know|I do not know|I can only help with)\b",
                       re.I)
FREE_PROVIDERS = ("grounded-composer", "local:", "scripted-")


class Percentiles(BaseModel):
    p50: float | None = None
    p95: float | None = None


class Tokens(BaseModel):
    prompt: int = 0
    cached: int = Field(0, description="of prompt: read from the backend's cache")
    completion: int = 0


class Resolution(BaseModel):
    confirmed: int = 0
    assumed: int = 0


class PersonaStats(BaseModel):
    conversations: int = Field(0, description="the denominator of the three rates below")
    turns: int = 0
    handoffs: int = 0
    handoffs_by_reason: dict[str, int] = Field(default_factory=dict)
    resolved: int = 0
    unresolved: int = 0
    unresolved_by_reason: dict[str, int] = Field(default_factory=dict, description="a conversation counts "
                                                  "once, under its first reason: not_answered, low_rating, "
                                                  "reask, returned")
    resolution_rate: float | None = None
    handoff_rate: float | None = None
    unresolved_rate: float | None = None
    resolution: Resolution = Field(default_factory=Resolution)
    rated: int = 0
    csat: float | None = None
    implemented_rate: float | None = None
    unsupported_figure_rate: float | None = None
    first_token_ms: Percentiles = Field(default_factory=Percentiles)
    answer_ms: Percentiles = Field(default_factory=Percentiles)
    tokens: Tokens = Field(default_factory=Tokens)
    cost_usd: float = 0.0
    cost_by_model: dict[str, float] = Field(default_factory=dict)
    unpriced_models: list[str] = Field(default_factory=list)


class DayStats(PersonaStats):
    day: str
    persona: str


class Stats(BaseModel):
    since: datetime
    window_days: int
    personas: dict[str, PersonaStats]
    days: list[DayStats]
    outcomes: dict[str, str] = Field(default_factory=dict, exclude=True)  # conversation id -> outcome


def price_of(provider: str, prices: dict[str, Price]) -> Price | None:
    """The price of a `done` event's provider: free ones cost 0; else by its whole name or its model."""
    if provider.startswith(FREE_PROVIDERS) or not provider:
        return Price(input=0, output=0)
    return prices.get(provider) or prices.get(provider.split(":", 1)[-1])


def cost(usage: dict[str, Any], price: Price) -> float:
    """Dollars for one answer: uncached input, cached input and output each at their price, per 1M."""
    cached = min(int(usage.get("cached_tokens") or 0), int(usage.get("prompt_tokens") or 0))
    fresh = int(usage.get("prompt_tokens") or 0) - cached
    cached_price = price.input if price.cached_input is None else price.cached_input
    return (fresh * price.input + cached * cached_price + int(usage.get("completion_tokens") or 0) * price.output) / 1e6


def embed_texts(texts: list[str]) -> np.ndarray:
    from retrieval.embedder import get_embedder

    return get_embedder().embed(texts) if texts else np.zeros((0, 384), dtype=np.float32)


def message_vectors(db: Database, messages: list[dict]) -> np.ndarray:
    """The messages' embeddings, in order: stored ones read, the rest embedded once and stored."""
    stored = reports.message_vectors(db, [m["id"] for m in messages])
    missing = [m for m in messages if m["id"] not in stored]
    fresh = dict(zip((m["id"] for m in missing), embed_texts([m["content"] for m in missing]), strict=True))
    reports.save_message_vectors(db, fresh)
    stored |= fresh
    return np.array([stored[m["id"]] for m in messages], dtype=np.float32).reshape(len(messages), 384)


def outcomes(convs: list[dict], messages: list[dict], turns: list[dict], vectors: np.ndarray
             ) -> dict[str, tuple[str, str]]:
    """Each conversation's (outcome, detail): handed_off (reason), resolved (confirmed|assumed) or
    unresolved (not_answered|low_rating|reask|returned). `vectors`: the messages' embeddings."""
    by_conv: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(messages):
        by_conv[m["conversation_id"]].append(i)
    answers: dict[str, list[dict]] = defaultdict(list)
    for t in turns:
        answers[t["conversation_id"]].append(t)
    owner = {c["id"]: (c["user_id"], c["visitor_id"], c["persona"]) for c in convs}
    started = {c["id"]: c["created_at"] for c in convs}
    later: dict[tuple, list[str]] = defaultdict(list)  # the same owner's conversations with the same persona
    for c in convs:  # (convs come oldest first: each owner's list is in order of start)
        if c["user_id"] is not None or c["visitor_id"] is not None:
            later[owner[c["id"]]].append(c["id"])
    starts = {key: [started[c] for c in ids] for key, ids in later.items()}

    result: dict[str, tuple[str, str]] = {}
    for c in convs:
        cid = c["id"]
        if c["handoff_reason"]:
            result[cid] = ("handed_off", c["handoff_reason"])
            continue
        own = by_conv[cid]
        mine = vectors[own] if own else np.zeros((0, 384))
        # the bot's answers to questions (a reply to "thanks, that helped" is not one: whatever it says)
        complete = [t for t in answers[cid] if t["status"] == "complete" and t["content"].strip()
                    and not thanks(t["question"] or "")]
        answered = [t for t in complete if not NO_ANSWER.search(t["content"])]
        if not answered or NO_ANSWER.search(complete[-1]["content"]):  # the last question got no answer
            result[cid] = ("unresolved", "not_answered")
        elif any(t["rating"] is not None and t["rating"] <= 2 for t in answers[cid]):
            result[cid] = ("unresolved", "low_rating")
        elif len(own) > 1 and _reasked(mine):
            result[cid] = ("unresolved", "reask")
        elif _returned(cid, mine, later.get(owner[cid], []), starts.get(owner[cid], []), started, by_conv, vectors):
            result[cid] = ("unresolved", "returned")
        else:
            first_answer = min(t["created_at"] for t in answered)
            thanked = any(thanks(messages[i]["content"]) and messages[i]["created_at"] > first_answer for i in own)
            rated_well = any(t["rating"] is not None and t["rating"] >= 4 for t in answers[cid])
            result[cid] = ("resolved", "confirmed" if thanked or rated_well else "assumed")
    return result


def thanks(text: str) -> bool:
    """"thanks, that helped", "perfect, got it" — not "no thanks" or "that has not solved anything"."""
    return bool(THANKS.search(text)) and not NEGATED.search(text)


def _reasked(vectors: np.ndarray) -> bool:
    sims = vectors @ vectors.T
    return bool(np.any(np.triu(sims, k=1) >= REASK_SIMILARITY))


def _returned(cid: str, mine: np.ndarray, siblings: list[str], starts: list, started: dict, by_conv: dict,
              vectors: np.ndarray) -> bool:
    """A later conversation of the same owner, within 24 h, with a question this close. `siblings` are in
    order of start (`starts`): only those after this one are looked at, and the walk stops past 24 h."""
    begun = started[cid]
    for other in siblings[bisect.bisect_right(starts, begun):]:
        if started[other] > begun + RETURN_WINDOW:
            break
        if other == cid or not by_conv[other]:
            continue
        if len(mine) and np.any(mine @ vectors[by_conv[other]].T >= REASK_SIMILARITY):
            return True
    return False


def percentile(values: list[float], q: int, digits: int = 1) -> float | None:
    """Linear interpolation between closest ranks: PostgreSQL's percentile_cont, the evals' percentile."""
    return round(float(np.percentile(values, q)), digits) if values else None


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def _fill(stats: PersonaStats, convs: list[dict], results: dict, turns: list[dict], prices: dict[str, Price]) -> None:
    stats.conversations = len(convs)
    for c in convs:
        outcome, detail = results[c["id"]]
        if outcome == "handed_off":
            stats.handoffs += 1
            stats.handoffs_by_reason[detail] = stats.handoffs_by_reason.get(detail, 0) + 1
        elif outcome == "resolved":
            stats.resolved += 1
            setattr(stats.resolution, detail, getattr(stats.resolution, detail) + 1)
        else:
            stats.unresolved += 1
            stats.unresolved_by_reason[detail] = stats.unresolved_by_reason.get(detail, 0) + 1
    n = stats.conversations
    stats.resolution_rate, stats.handoff_rate = _rate(stats.resolved, n), _rate(stats.handoffs, n)
    stats.unresolved_rate = _rate(stats.unresolved, n)
    stats.turns = len(turns)
    rated = [t for t in turns if t["rating"] is not None]
    stats.rated = len(rated)
    stats.csat = _rate(sum(t["rating"] >= 4 for t in rated), len(rated))
    stats.implemented_rate = _rate(sum(bool(t["implemented"]) for t in turns), len(turns))
    checked = [t for t in turns if t["done"] and t["done"].get("grounding") is not None]
    stats.unsupported_figure_rate = _rate(sum(bool(t["done"]["grounding"].get("unsupported")) for t in checked),
                                          len(checked))
    first = [(t["first_token_at"] - t["asked_at"]).total_seconds() * 1000 for t in turns
             if t["first_token_at"] and t["asked_at"]]
    whole = [(t["done_at"] - t["asked_at"]).total_seconds() * 1000 for t in turns if t["done_at"] and t["asked_at"]]
    stats.first_token_ms = Percentiles(p50=percentile(first, 50, 1), p95=percentile(first, 95, 1))
    stats.answer_ms = Percentiles(p50=percentile(whole, 50, 1), p95=percentile(whole, 95, 1))
    unpriced = set()
    for t in turns:
        if not t["done"]:
            continue
        usage, provider = t["done"].get("usage") or {}, t["done"].get("provider") or ""
        stats.tokens.prompt += int(usage.get("prompt_tokens") or 0)
        stats.tokens.cached += int(usage.get("cached_tokens") or 0)
        stats.tokens.completion += int(usage.get("completion_tokens") or 0)
        price = price_of(provider, prices)
        if price is None:
            unpriced.add(provider)
            continue
        dollars = cost(usage, price)
        stats.cost_usd += dollars
        stats.cost_by_model[provider] = round(stats.cost_by_model.get(provider, 0.0) + dollars, 6)
    stats.cost_usd = round(stats.cost_usd, 6)
    stats.unpriced_models = sorted(unpriced)


def window_start(days: int, now: datetime | None = None) -> datetime:
    """The first instant of the last `days` whole UTC days, today being one."""
    now = now or datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=days - 1)


def compute(db: Database, settings: Settings, days: int = 7, now: datetime | None = None) -> Stats:
    """The figures for conversations started in the last `days` days (today counts as one), per persona and
    per persona and day (a conversation's day is the day it started; a turn's, its own)."""
    since = window_start(days, now)
    convs, messages = reports.conversations(db, since), reports.user_messages(db, since)
    turns = reports.turns(db, since)
    results = outcomes(convs, messages, turns, message_vectors(db, messages))
    prices = {**DEFAULT_PRICES, **settings.prices}
    personas: dict[str, PersonaStats] = {}
    by_persona: dict[str, list[dict]] = defaultdict(list)
    for c in convs:
        by_persona[c["persona"]].append(c)
    turns_by: dict[str, list[dict]] = defaultdict(list)
    for t in turns:
        turns_by[t["persona"]].append(t)
    for persona in sorted(set(by_persona) | set(turns_by)):
        personas[persona] = PersonaStats()
        _fill(personas[persona], by_persona[persona], results, turns_by[persona], prices)
    daily: list[DayStats] = []
    keys = {(c["created_at"].astimezone(UTC).date(), c["persona"]) for c in convs} | \
           {(t["created_at"].astimezone(UTC).date(), t["persona"]) for t in turns}
    for day, persona in sorted(keys):
        row = DayStats(day=day.isoformat(), persona=persona)
        _fill(row, [c for c in by_persona[persona] if c["created_at"].astimezone(UTC).date() == day], results,
              [t for t in turns_by[persona] if t["created_at"].astimezone(UTC).date() == day], prices)
        daily.append(row)
    return Stats(since=since, window_days=days, personas=personas, days=daily,
                 outcomes={cid: f"{o}:{d}" for cid, (o, d) in results.items()})


CSV_COLUMNS = ["day", "persona", "conversations", "turns", "handoffs", "resolved", "unresolved", "resolution_rate",
               "handoff_rate", "unresolved_rate", "confirmed", "assumed", "rated", "csat", "implemented_rate",
               "unsupported_figure_rate", "first_token_p50_ms", "first_token_p95_ms", "answer_p50_ms",
               "answer_p95_ms", "prompt_tokens", "cached_tokens", "completion_tokens", "cost_usd"]


def csv_rows(stats: Stats) -> list[list[Any]]:
    """One row per persona and day (the `days` list), then one per persona with day `all`."""
    rows = []
    for label, persona, s in [(d.day, d.persona, d) for d in stats.days] + \
                             [("all", p, s) for p, s in stats.personas.items()]:
        rows.append([label, persona, s.conversations, s.turns, s.handoffs, s.resolved, s.unresolved,
                     s.resolution_rate, s.handoff_rate, s.unresolved_rate, s.resolution.confirmed,
                     s.resolution.assumed, s.rated, s.csat, s.implemented_rate, s.unsupported_figure_rate,
                     s.first_token_ms.p50, s.first_token_ms.p95, s.answer_ms.p50, s.answer_ms.p95,
                     s.tokens.prompt, s.tokens.cached, s.tokens.completion, s.cost_usd])
    return rows
