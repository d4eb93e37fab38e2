"""Recommended bid for a marketplace project, from market percentiles and the freelancer's own rate.

Deterministic and explained: the numbers are computed here, not by the model, and every input
(percentiles, budget, complexity, buffer) is returned with the result.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from pydantic import BaseModel

COMPLEXITY_RATE_FACTOR = {"low": Decimal("1.00"), "medium": Decimal("1.05"), "high": Decimal("1.12")}
COMPLEXITY_HOURS_BUFFER = {"low": Decimal("1.10"), "medium": Decimal("1.15"), "high": Decimal("1.25")}


class BidRecommendation(BaseModel):
    project_id: int
    bid_type: Literal["fixed", "hourly"]
    amount: float
    range_low: float
    range_high: float
    hourly_rate_used: float
    estimated_hours: int
    skill: str
    segment: str
    percentiles: dict[str, float]
    budget: dict[str, Any]
    complexity: str
    reasoning: list[str]


def _d(value: Any) -> Decimal:
    return Decimal(str(value))


def _whole(value: Decimal, step: int = 1) -> Decimal:
    return (value / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step


def recommend_bid(project: dict, profile: dict, rates: dict) -> BidRecommendation:
    p25, p50, p75, p90 = (_d(rates[k]) for k in ("p25", "p50", "p75", "p90"))
    own = _d(profile["hourly_rate"]) if profile.get("hourly_rate") else None
    complexity = project["complexity"]
    bmin, bmax = _d(project["budget_min"]), _d(project["budget_max"])
    hours = int(project["estimated_hours"])
    reasoning = [
        f"Market for {rates['skill']} ({rates['segment']}): p25 ${p25:.0f}, median ${p50:.0f}, p75 ${p75:.0f}, "
        f"p90 ${p90:.0f} per hour.",
    ]
    base = own if own else p50
    reasoning.append(f"Starting from {'your profile rate' if own else 'the market median'} of ${base:.0f}/h.")
    rate = base * COMPLEXITY_RATE_FACTOR[complexity]
    if complexity != "low":
        uplift = (COMPLEXITY_RATE_FACTOR[complexity] - 1) * 100
        reasoning.append(f"{complexity.capitalize()} complexity: +{uplift:.0f}% for risk, giving ${rate:.0f}/h.")
    clamped = min(max(rate, p25), p90)
    if clamped != rate:
        reasoning.append(f"Kept inside the market's p25-p90 band: ${clamped:.0f}/h.")
    rate = _whole(clamped)

    if project["project_type"] == "hourly":
        low, high = p25, p90
        if bmax >= p25:
            high = min(p90, bmax)
            if rate > high:
                reasoning.append(f"The client's maximum is ${bmax:.0f}/h, so the bid is capped there.")
            rate = min(rate, high)
        else:
            reasoning.append(f"The client's maximum (${bmax:.0f}/h) is below the market p25; bidding p25 and "
                             "explaining the value is better than underpricing.")
        low = min(low, high)
        amount = min(max(rate, low), high)
        reasoning.append(f"Recommended: ${amount:.0f} per hour (range ${low:.0f}-${high:.0f}).")
        bid_type: Literal["fixed", "hourly"] = "hourly"
    else:
        buffer = COMPLEXITY_HOURS_BUFFER[complexity]
        estimate = rate * hours * buffer
        reasoning.append(f"Estimate: {hours} h x ${rate:.0f}/h x {buffer} buffer for {complexity} complexity "
                         f"= ${estimate:,.0f}.")
        low, high = bmin, bmax
        amount = min(max(_whole(estimate, 10), low), high)
        if estimate > bmax:
            reasoning.append(f"That is above the client's budget of ${bmin:,.0f}-${bmax:,.0f}: bid the top of the "
                             "range and propose a reduced scope or phased delivery.")
        elif estimate < bmin:
            reasoning.append(f"That is below the client's budget of ${bmin:,.0f}-${bmax:,.0f}: bid the bottom of "
                             "the range; the client expects to pay at least that.")
        else:
            reasoning.append(f"Within the client's budget of ${bmin:,.0f}-${bmax:,.0f}.")
        bid_type = "fixed"
    return BidRecommendation(
        project_id=int(project["id"]), bid_type=bid_type, amount=float(amount), range_low=float(low),
        range_high=float(high), hourly_rate_used=float(rate), estimated_hours=hours, skill=rates["skill"],
        segment=rates["segment"], percentiles={"p25": float(p25), "p50": float(p50), "p75": float(p75),
                                               "p90": float(p90)},
        budget={"min": float(bmin), "max": float(bmax), "type": project["project_type"],
                "unit": "USD per hour" if project["project_type"] == "hourly" else "USD total"},
        complexity=complexity, reasoning=reasoning,
    )
