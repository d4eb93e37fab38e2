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


class RateAdvice(BaseModel):
    skill: str
    segment: str
    your_rate: float | None
    your_rate_source: Literal["your message", "your profile", "none"]
    position: str
    percentiles: dict[str, float]
    demand_score: int | None
    trend: str | None
    range_low: float
    range_high: float
    existing_clients: list[float] | None = None  # +10% and +15% on the current rate
    reasoning: list[str]


RAISE_STEPS = (Decimal("1.10"), Decimal("1.15"))  # "increases of 10-15% are rarely questioned" (raising-your-rates)


def recommend_rate(rates: dict, profile: dict | None, stated_rate: float | None = None) -> RateAdvice:
    """Where an hourly rate sits among the market percentiles, and the range to aim for, with reasons.

    The band follows the pricing lessons: near the 25th percentile while building first reviews, the
    median to the 75th percentile with a track record, raises of 10-15% for existing clients; high demand
    with a rising trend moves the top of the range up to the 90th percentile, weak demand keeps it lower.
    """
    p25, p50, p75, p90 = (_d(rates[k]) for k in ("p25", "p50", "p75", "p90"))
    profile = profile or {}
    own = _d(stated_rate) if stated_rate else (_d(profile["hourly_rate"]) if profile.get("hourly_rate") else None)
    source: Literal["your message", "your profile", "none"] = \
        "your message" if stated_rate else ("your profile" if own is not None else "none")
    market = f"{rates['skill']} ({rates['segment']})"
    reasoning = []
    if own is None:
        position = "no current rate given"
    elif own < p25:
        position = "below the 25th percentile"
    elif own < p50:
        position = "between the 25th percentile and the median"
    elif own < p75:
        position = "between the median and the 75th percentile"
    elif own <= p90:
        position = "between the 75th and 90th percentiles"
    else:
        position = "above the 90th percentile"
    if own is not None:
        reasoning.append(f"At ${own:.0f}/h you are {position} of the {market} market (25th ${p25:.0f}, median "
                         f"${p50:.0f}, 75th ${p75:.0f}, 90th ${p90:.0f}).")
    jobs = int(profile.get("jobs_completed") or 0)
    rating = float(profile.get("rating") or 0)
    if profile and jobs < 3:
        low, high = p25, p50
        reasoning.append(f"With {jobs} completed jobs, price near the budget end while you collect reviews: "
                         f"${low:.0f}-${high:.0f}/h.")
    else:
        low, high = p50, p75
        proof = f" with {jobs} completed jobs and a {rating:g} rating" if jobs else ""
        reasoning.append(f"A freelancer{proof} belongs between the median and the 75th percentile: "
                         f"${low:.0f}-${high:.0f}/h.")
    demand, trend = rates.get("demand_score"), rates.get("trend")
    if demand is not None and int(demand) >= 7 and trend == "rising":
        high = p90
        reasoning.append(f"Demand is {demand}/10 and rising, so the top of the range can reach the 90th percentile "
                         f"(${p90:.0f}/h).")
    elif demand is not None and (int(demand) <= 3 or trend == "falling"):
        reasoning.append(f"Demand is {demand}/10 ({trend}), so compete on proof and value rather than pushing "
                         "past the range.")
    if own is not None and own > high:
        reasoning.append(f"You already charge above this range; keep ${own:.0f}/h while your win rate holds.")
        low, high = min(own, p90), max(own, high)
    elif own is not None and own >= low:
        low = own
        reasoning.append(f"You are inside the range: quote up to ${high:.0f}/h to new clients.")
    elif own is not None:
        reasoning.append(f"Quote at least ${low:.0f}/h to new clients.")
    existing = None
    if own is not None and own < p90:
        existing = [float(_whole(own * step)) for step in RAISE_STEPS]
        reasoning.append(f"For existing clients, a 10-15% raise with 30 days' notice takes you to "
                         f"${existing[0]:.0f}-${existing[1]:.0f}/h.")
    return RateAdvice(
        skill=rates["skill"], segment=rates["segment"], your_rate=float(own) if own is not None else None,
        your_rate_source=source, position=position,
        percentiles={"p25": float(p25), "p50": float(p50), "p75": float(p75), "p90": float(p90)},
        demand_score=int(demand) if demand is not None else None, trend=trend,
        range_low=float(_whole(low)), range_high=float(_whole(high)), existing_clients=existing, reasoning=reasoning)
