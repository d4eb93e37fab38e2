"""Sarah's client simulation without a language model: a rule-based client and a checklist-based coach.

The client is the brief (`agents/simulation.py`) come to life: it reacts to the price the freelancer
quotes against its budget — accepts within budget, accepts up to its hidden maximum only when the
freelancer explains value or trades scope, counters at the top of its budget, or pushes back on scope
when the quote is far above it — and otherwise asks the questions its personality would ask.
Feedback scores the freelancer's messages against `prompts/negotiation_checklist.yaml`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml

from agents.composer.facts import money
from agents.composer.passages import pick, rank
from agents.evidence import Evidence
from agents.grounding import extract_figures

CHECKLIST = Path(__file__).resolve().parents[2] / "prompts" / "negotiation_checklist.yaml"
VALUE = re.compile(r"\b(value|worth|return|roi|results?|outcome|revenue|save|saves|saving|experience|portfolio|"
                   r"similar|case stud\w*|because|proven)\b", re.I)
SCOPE = re.compile(r"\b(scope|phase\w*|milestones?|mvp|drop|remove|reduce|smaller|fewer|first version|instead)\b",
                   re.I)
TOPICS = [
    (re.compile(r"\b(budget|afford|spend|pay)\b", re.I), "budget"),
    (re.compile(r"\b(when|deadline|timeline|launch|date|urgent|soon)\b", re.I), "timeline"),
    (re.compile(r"\b(scope|features?|deliverables?|requirements?|include|hours|tell me more|more about|details?|"
                r"describe|what (do|does) (you|it) need)\b", re.I), "scope"),
    (re.compile(r"\b(goal|goals|achieve|success|why|problem|users?|customers?)\b", re.I), "goal"),
]


def quoted_price(text: str) -> float | None:
    """The price a message proposes: its largest dollar amount (None if it names none)."""
    amounts = [float(f.value) for f in extract_figures(text) if f.kind == "money" and f.value is not None]
    return max(amounts) if amounts else None


def _user_turns(ev: Evidence) -> list[str]:
    return [h["content"] for h in ev.history if h.get("role") == "user"] + [ev.question]


def _questions(brief: dict, project: dict) -> list[str]:
    """What this client asks, in order: from its personality and constraints."""
    asks = ["What would your approach be, and what would it cost us?"]
    traits = " ".join(brief.get("personality") or [])
    if "risk" in traits or project.get("complexity") == "high":
        asks.append("How would you split this into milestones, and how will you test each one?")
    if "price-sensitive" in traits:
        asks.append("Is there any flexibility on the price?")
    if "formal" in traits:
        asks.append("How do you handle invoicing, and how do you keep our data secure?")
    if "quality-first" in traits:
        asks.append("Can you show us similar work you've done?")
    asks.append("When could you start, and when would we see a first version?")
    return asks


def describe_project(brief: dict, project: dict) -> str:
    """What the client says about its project: the posting's own words, hours, skills and posted budget."""
    asks = [s for s in re.split(r"(?<=[.!?])\s+", project.get("description") or "") if "looking for" not in s]
    return (f"We need \"{project['title']}\": about {project['estimated_hours']} hours of "
            f"{', '.join(project.get('skills') or [])} work, and we've posted a budget of {brief['budget']}. "
            + " ".join(a for a in asks if not a.startswith(("Scope", "Skills")))).strip()


def _answer_topic(brief: dict, project: dict, message: str) -> str:
    for pattern, topic in TOPICS:
        if pattern.search(message):
            if topic == "budget":
                return f"We've set aside {brief['budget']}."
            if topic == "timeline":
                level, _, detail = brief["deadline_pressure"].partition(":")
                detail = detail.strip().replace("wants it", "we want it").replace("has a", "we have a")
                return f"Timing is {level}: {detail}."
            if topic == "scope":
                return describe_project(brief, project)
            if topic == "goal":
                return (f"We're a {brief['company_size']} {brief['industry']} company and we need "
                        f"\"{project['title']}\" done properly without it dragging on.")
    return ""


def client_reply(ev: Evidence) -> str:
    brief, project = ev.record("client_brief"), ev.record("get_project")
    if not brief or not project:
        return "I couldn't load that project, so I can't play its client. Pick another project and try again."
    message = ev.question
    price = quoted_price(message)
    hourly = project.get("project_type") == "hourly"
    unit = "/h" if hourly else ""
    top = float(project["budget_max"])
    ceiling = float(brief["hidden_max"])
    if price is not None:
        shown = money(price, unit=unit)
        if price <= top:
            return (f"{shown} works for us — that's within our budget of {brief['budget']}. When could you start, "
                    "and what would you need from us in the first week?")
        if price <= ceiling and (VALUE.search(message) or SCOPE.search(message)):
            return (f"{shown} is more than we planned, but the way you put it makes sense. Let's go ahead at "
                    f"{shown} if you can share a short milestone plan first.")
        if price <= ceiling:
            return (f"{shown} is a bit more than we budgeted. Could you do it for {money(top, unit=unit)}? Help me "
                    "understand what we'd get for the extra.")
        if SCOPE.search(message):
            return (f"A smaller scope could work, but {shown} is still well above our budget of {brief['budget']}. "
                    f"What exactly would you deliver for {money(top, unit=unit)}?")
        return (f"{shown} is well above our budget of {brief['budget']}. What could you deliver for "
                f"{money(top, unit=unit)} — could we phase the work or drop part of the scope?")
    asked = len(_user_turns(ev)) - 1
    questions = _questions(brief, project)
    answer = _answer_topic(brief, project, message) if "?" in message else ""
    follow = questions[min(asked, len(questions) - 1)]
    if asked == 0 and not answer:
        return brief.get("opening_line") or follow
    return f"{answer} {follow}".strip()


@lru_cache(maxsize=1)
def checklist() -> list[dict]:
    return yaml.safe_load(CHECKLIST.read_text(encoding="utf-8"))


def _score(item: dict, messages: list[str]) -> tuple[bool, str]:
    """Did the freelancer's messages meet one checklist item? With the reason, in the user's own terms."""
    prices = [(i, p) for i, m in enumerate(messages) if (p := quoted_price(m)) is not None]
    first_price = prices[0][0] if prices else len(messages)
    kind = item["id"]
    if kind == "discovery":
        pattern = re.compile(item["question_words"], re.I)
        ok = any("?" in m and pattern.search(m) for m in messages[:first_price])
        return ok, "you asked about their goals first" if ok else "you went to price before asking about their goals"
    if kind == "price":
        return bool(prices), "you named a price" if prices else "you never named a price"
    words = re.compile(item.get("words", r"$^"), re.I)
    if kind == "value":
        ok = any(words.search(m) for i, m in enumerate(messages) if i >= first_price - 1)
        return ok, "you tied the price to the result" if ok else "you didn't say what the result is worth to them"
    if kind == "trade":
        dropped = [j for n, (j, p) in enumerate(prices) if n and p < max(q for _, q in prices[:n])]
        if not dropped:
            return True, "you held your price"
        ok = all(words.search(messages[j]) for j in dropped)
        return ok, "you lowered the price by reducing scope" if ok else "you lowered the price without changing scope"
    ok = bool(messages) and bool(words.search(messages[-1]))
    return ok, "you ended with a next step" if ok else "your last message didn't propose a next step"


def negotiation_feedback(ev: Evidence) -> str:
    # the freelancer's messages in the role-play; the request for feedback itself is not scored
    messages = [h["content"] for h in ev.history if h.get("role") == "user"]
    brief = ev.record("client_brief")
    if not messages:
        budget = f" The client's posted budget is {brief['budget']}." if brief else ""
        return f"There's nothing to review yet: reply to the client first, then ask me for feedback.{budget}"
    lines, misses = [], []
    for item in checklist():
        ok, why = _score(item, messages)
        lines.append(f"- {'✓' if ok else '✗'} {item['label']} — {why}.")
        if not ok:
            misses.append(item)
    ranked = rank(" ".join(m["lesson"] for m in misses) or "negotiation next step", ev.hits,
                  question_vector=None) if ev.hits else []
    tips = pick(ranked, 2, margin=0.3)
    parts = ["Stepping out of the role. How your messages did against the negotiation checklist:", "\n".join(lines)]
    prices = [p for m in messages if (p := quoted_price(m)) is not None]
    if brief:
        where = ""
        if prices:
            top = float((ev.record("get_project") or {}).get("budget_max") or 0)
            where = f" Your last price was {money(prices[-1])}, " + ("within it." if prices[-1] <= top else
                                                                      "above it: trade scope or explain the value.")
        parts.append(f"The client's posted budget was {brief['budget']}.{where}")
    if tips:
        parts.append("From the lessons: " + " ".join(f"{t.text if t.text[-1:] in '.?!' else t.text + '.'} "
                                                     f"[{t.source}]" for t in tips))
    if not misses:
        parts.append("Well done: next round, try a tougher opening price and see how the client reacts.")
    return "\n\n".join(parts)
