"""Tool results as plain sentences, every figure copied from the result (never computed here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def money(value: Any, *, unit: str = "") -> str:
    """$1,234.56, or $1,234 for whole amounts; '' for a missing value."""
    if value is None or value == "":
        return ""
    amount = float(value)
    text = f"${amount:,.0f}" if amount == int(amount) else f"${amount:,.2f}"
    return text + unit


def percent(fraction: Any) -> str:
    """A rate stored as a fraction (0.08) as a percentage (8%)."""
    value = round(float(fraction) * 100, 2)
    return f"{value:g}%"


def number(value: Any) -> str:
    amount = float(value)
    return f"{amount:,.0f}" if amount == int(amount) else f"{amount:,.2f}".rstrip("0").rstrip(".")


def join(parts: list[str]) -> str:
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def profile(d: dict) -> list[str]:
    if d.get("hourly_rate") is None:
        return [f"Your account: {d['name']}."] if d.get("name") else []
    headline = d.get("headline") or ""
    level = d.get("experience_level") or ""
    bits = [f"{level} level" if level and level.lower() not in headline.lower() else "",
            f"{number(d['years_experience'])} years of experience" if d.get("years_experience") is not None else "",
            f"{money(d['hourly_rate'])}/h"]
    sentence = f"Your profile: {headline}, " if headline else "Your profile: "
    sentence += join(bits) + "."
    record = []
    if d.get("jobs_completed") is not None:
        record.append(f"{number(d['jobs_completed'])} completed jobs")
    if d.get("rating") is not None:
        record.append(f"an average rating of {number(d['rating'])}")
    if d.get("total_revenue") is not None:
        record.append(f"{money(d['total_revenue'])} earned in total")
    if record:
        sentence += f" You have {join(record)}."
    skills = [s["name"] for s in d.get("skills") or []][:4]
    if skills:
        sentence += f" Skills: {', '.join(skills)}."
    return [sentence]


def learning_roi(d: dict) -> list[str]:
    if not d.get("skills_tracked"):
        return ["You have no learning sessions recorded yet."]
    sentence = (f"You have logged {number(d['learning_hours'])} learning hours; the skills you learned brought "
                f"{money(d['revenue_from_learned_skills'])}")
    if d.get("revenue_per_learning_hour") is not None:
        sentence += f", which is {money(d['revenue_per_learning_hour'])} per learning hour"
    sentence += (f". {number(d['skills_monetized'])} of your {number(d['skills_tracked'])} tracked skills "
                 "are generating revenue.")
    best = next((s for s in d.get("skills") or [] if s.get("revenue_per_learning_hour")), None)
    if best:
        sentence += (f" Best return: {best['skill']}, {money(best['revenue'])} from {number(best['hours_learned'])} "
                     f"hours of learning ({money(best['revenue_per_learning_hour'])} per hour).")
    return [sentence]


def revenue_summary(d: dict) -> list[str]:
    if not d.get("rows"):
        return ["No revenue is recorded yet."]
    sentence = f"From {d['since']} to {d['until']} you earned {money(d['total'])}"
    if d.get("all_time_total") is not None:
        sentence += f" ({money(d['all_time_total'])} in all)"
    sentence += "."
    rows = sorted(d["rows"], key=lambda r: -float(r["revenue"]))
    key = d.get("group_by", "month")
    top = [f"{r[key]} ({money(r['revenue'])})" for r in rows[:3]]
    if top:
        sentence += f" Largest by {key}: {', '.join(top)}."
    return [sentence]


def market_rates(d: dict) -> list[str]:
    trend = d.get("trend")
    pct = d.get("trend_pct")
    trend_text = f", trend {trend}" + (f" ({number(abs(float(pct)))}% over twelve months)" if pct is not None else "") \
        if trend else ""
    return [f"{d['skill']} ({d['segment']}) market rates: 25th percentile {money(d['p25'])}, median "
            f"{money(d['p50'])}, 75th percentile {money(d['p75'])}, 90th percentile {money(d['p90'])} per hour; "
            f"demand {number(d['demand_score'])}/10{trend_text}."]


def project(d: dict) -> list[str]:
    unit = "/h" if d.get("project_type") == "hourly" else ""
    kind = {"hourly": "hourly", "fixed": "fixed-price", "milestone": "milestone"}.get(d.get("project_type", ""), "")
    return [f"Project #{d['id']}, \"{d['title']}\" for {d.get('client', 'the client')}: {kind} budget "
            f"{money(d['budget_min'], unit=unit)}–{money(d['budget_max'], unit=unit)}, about "
            f"{number(d['estimated_hours'])} hours, {d.get('complexity', '')} complexity; skills "
            f"{', '.join(d.get('skills') or [])}."]


def bid(d: dict) -> list[str]:
    unit = " per hour" if d["bid_type"] == "hourly" else " for the whole project"
    return [f"Recommended bid: {money(d['amount'])}{unit} (range {money(d['range_low'])}–{money(d['range_high'])})."]


def rate_advice(d: dict) -> list[str]:
    return [" ".join(d.get("reasoning") or [])]


def account(d: dict) -> list[str]:
    limit = d.get("proposals_per_month")
    sentence = (f"You are on the {d['plan']} plan ({money(d['monthly_price'])} a month): the platform keeps "
                f"{percent(d['commission_rate'])} of what you earn")
    sentence += f" and you can send {number(limit)} proposals a month." if limit else " and proposals are unlimited."
    return [sentence]


def payments(d: dict) -> list[str]:
    out = []
    latest = (d.get("payments") or [])[:2]
    if latest:
        out.append("Your latest payments: " + "; ".join(
            f"{money(p['amount'])} ({p['kind']}, {p['status']}, {str(p['created_at'])[:10]})" for p in latest) + ".")
    orders = (d.get("orders") or [])[:1]
    if orders:
        o = orders[0]
        fee = f", client fee {money(o['client_fee'])}" if o.get("side") == "buyer" and o.get("client_fee") else ""
        out.append(f"Your latest order: {money(o['amount'])}{fee}, {o['status'].replace('_', ' ')} "
                   f"({str(o['created_at'])[:10]}).")
    return out


def client_projects(d: dict) -> list[str]:
    totals = d.get("totals") or {}
    rows = d.get("projects") or []
    if not rows:
        return ["You have no client projects on record."]
    sentence = (f"You have {number(totals.get('projects', len(rows)))} client projects on record: "
                f"{number(totals.get('hours', 0))} hours and {money(totals.get('revenue', 0))} in revenue.")
    latest = rows[0]
    sentence += (f" Most recent: \"{latest['title']}\" for {latest['client']} ({latest['status']}, "
                 f"{money(latest['revenue'])}")
    if latest.get("client_satisfaction") is not None:
        sentence += f", satisfaction {number(latest['client_satisfaction'])}"
    return [sentence + ")."]


def projects_found(d: dict) -> list[str]:
    rows = d.get("projects") or []
    if not rows:
        return ["No open projects match that search."]
    listed = "; ".join(f"#{p['id']} {p['title']} ({money(p['budget_min'])}–{money(p['budget_max'])})" for p in rows[:3])
    return [f"{number(d['count'])} open projects match, for example: {listed}."]


def draft_saved(d: dict) -> list[str]:
    return [f"Saved as draft proposal #{d['proposal_id']}."]


SENTENCES: dict[str, Callable[[dict], list[str]]] = {
    "my_profile": profile,
    "learning_roi": learning_roi,
    "my_revenue_summary": revenue_summary,
    "market_rates": market_rates,
    "get_project": project,
    "recommend_bid": bid,
    "recommend_rate": rate_advice,
    "my_account": account,
    "my_client_projects": client_projects,
    "search_projects": projects_found,
    "save_proposal_draft": draft_saved,
}


def describe(name: str, data: Any) -> list[str]:
    """A tool result as sentences; tools without a renderer list their plain fields."""
    if not isinstance(data, dict):
        return []
    render = SENTENCES.get(name)
    if render is not None:
        try:
            return [s for s in render(data) if s]
        except (KeyError, TypeError, ValueError):
            pass  # an unexpected shape: fall back to the plain fields
    fields = [f"{k.replace('_', ' ')} {v}" for k, v in data.items() if isinstance(v, str | int | float)
              and not isinstance(v, bool)][:6]
    return [f"{name.replace('_', ' ').capitalize()}: {'; '.join(fields)}."] if fields else []
