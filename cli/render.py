"""Compact terminal rendering of turn events (used by `mentor ask` and `mentor chat`)."""

from __future__ import annotations

import json
from typing import Any


def _money(value: Any) -> str:
    return f"${value:,.0f}" if isinstance(value, int | float) else str(value)


def summarize(name: str, data: Any) -> str:
    """One line with the facts a person would want from a tool result."""
    if not isinstance(data, dict):
        return json.dumps(data, default=str)[:120]
    if name == "market_rates":
        return (f"{data['skill']} ({data['segment']}): p25 {_money(data['p25'])} · p50 {_money(data['p50'])} · "
                f"p75 {_money(data['p75'])} · p90 {_money(data['p90'])} per hour · demand {data['demand_score']}/10 · "
                f"{data['trend']} {data['trend_pct']:+}%")
    if name == "my_profile":
        return (f"{data['name']} · {data.get('experience_level') or 'client'} · "
                f"{_money(data.get('hourly_rate') or 0)}/h · revenue {_money(data.get('total_revenue') or 0)} · "
                f"{data.get('jobs_completed') or 0} jobs")
    if name == "learning_roi":
        return (f"{data['learning_hours']} learning h · {_money(data['revenue_from_learned_skills'])} from learned "
                f"skills · {_money(data['revenue_per_learning_hour'] or 0)}/learning h · "
                f"{data['skills_monetized']} skills monetized")
    if name == "recommend_bid":
        unit = "/h" if data["bid_type"] == "hourly" else " fixed"
        return (f"bid {_money(data['amount'])}{unit} (range {_money(data['range_low'])}-{_money(data['range_high'])},"
                f" {data['skill']} {data['segment']} p50 {_money(data['percentiles']['p50'])})")
    if name == "save_proposal_draft":
        return f"draft proposal #{data['proposal_id']} saved ({_money(data['bid_amount'])} {data['bid_type']})"
    if name == "create_support_ticket":
        return f"ticket #{data['ticket_id']} opened ({data['reason']})"
    if name == "get_project":
        return (f"#{data['id']} {data['title']} · {data['project_type']} {_money(data['budget_min'])}-"
                f"{_money(data['budget_max'])} · {data['complexity']} · {data['client']}")
    if name == "my_account":
        return (f"{data['plan']} plan · {float(data['commission_rate']) * 100:.0f}% commission · "
                f"{len(data['orders'])} recent orders · {len(data['payments'])} recent payments")
    if name == "my_revenue_summary":
        return f"{_money(data.get('total', 0))} since {data.get('since')} by {data.get('group_by')}"
    text = json.dumps(data, default=str)
    return text[:140] + ("…" if len(text) > 140 else "")
