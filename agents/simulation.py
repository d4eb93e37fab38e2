"""Sarah's client simulation: a client brief derived from a real marketplace project's data.

The personality is computed from the project (budget against market rates, complexity, company
size, industry), so the same project always gives the same client, and the learner practises
against real constraints rather than an invented story.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

FEEDBACK_REQUEST = re.compile(
    r"\b(feedback|step out|out of role|how did i do|pause (the )?(simulation|role[- ]?play)|end (the )?simulation)\b",
    re.I)


class ClientBrief(BaseModel):
    project_id: int
    company: str
    industry: str
    company_size: str
    title: str
    budget: str
    hidden_max: float
    deadline_pressure: str
    personality: list[str]
    constraints: list[str]
    opening_line: str


def client_brief(project: dict, rates: dict | None = None) -> ClientBrief:
    ptype = project["project_type"]
    bmin, bmax = float(project["budget_min"]), float(project["budget_max"])
    unit = "per hour" if ptype == "hourly" else "in total"
    traits: list[str] = []
    constraints = [f"Budget ${bmin:,.0f}-${bmax:,.0f} {unit}; will go at most 10% above ${bmax:,.0f} "
                   "and only if the freelancer explains the value."]
    if rates:
        market_cost = float(rates["p50"]) * (1 if ptype == "hourly" else float(project["estimated_hours"]))
        if bmax < market_cost * 0.9:
            traits.append("price-sensitive: pushes back on every number and asks for discounts")
        elif bmin > market_cost * 1.2:
            traits.append("quality-first: cares about proof and process more than price")
    size = project["company_size"]
    traits.append({"solo": "informal and quick, decides alone", "small": "friendly but busy, replies briefly",
                   "medium": "organised, needs sign-off from a manager",
                   "enterprise": "formal, asks about process, security and invoicing"}[size])
    if project["complexity"] == "high":
        traits.append("worried about risk: asks how milestones and testing will work")
        constraints.append("Wants the work split into milestones with clear acceptance criteria.")
    elif project["complexity"] == "low":
        traits.append("expects it to be quick and simple; surprised by long estimates")
    pressure = "tight: wants it done in under three weeks" if project["estimated_hours"] <= 40 else \
        "moderate: has a launch date in about two months"
    skills = ", ".join(project["skills"])
    constraints.append(f"Scope as posted: about {project['estimated_hours']} hours; skills {skills}.")
    return ClientBrief(
        project_id=int(project["id"]), company=project["client"], industry=project["industry"], company_size=size,
        title=project["title"], budget=f"${bmin:,.0f}-${bmax:,.0f} {unit}", hidden_max=round(bmax * 1.1, 2),
        deadline_pressure=pressure, personality=traits, constraints=constraints,
        opening_line=f"Hi, thanks for reaching out about \"{project['title']}\". What would your approach be, "
                     "and what would it cost us?",
    )


def wants_feedback(text: str) -> bool:
    return bool(FEEDBACK_REQUEST.search(text))
