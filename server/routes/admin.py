"""`/api/admin`: the operator's side. Is the bot resolving questions, where does it fail, what does it cost.

Admins only (`current_admin`: everyone else 403). The figures and their definitions: agents/reports/stats.py
and the README ("The operator's side"); the knowledge gaps: agents/reports/gaps.py.
"""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from core.errors import NotFound
from server.deps import Admin, ConversationId, Svc
from store import reports

router = APIRouter(prefix="/api/admin", tags=["admin"])
Days = Annotated[int, Query(ge=1, le=366, description="conversations started in the last N days (today is one)")]


@router.get("/stats")
async def stats(admin: Admin, s: Svc, days: Days = 7) -> dict[str, Any]:
    """Per persona and per persona and day: conversations, turns, handoffs by reason, resolution (confirmed,
    assumed), CSAT, implemented, unsupported figures, latency p50/p95, tokens and cost."""
    from agents.reports.stats import compute

    result = await asyncio.to_thread(compute, s.db, s.settings, days)
    return result.model_dump(mode="json")


@router.get("/stats.csv")
async def stats_csv(admin: Admin, s: Svc, days: Days = 7) -> Response:
    """The same figures as CSV: a row per persona and day, then a row per persona for the whole window."""
    from agents.reports.stats import CSV_COLUMNS, compute, csv_rows

    result = await asyncio.to_thread(compute, s.db, s.settings, days)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(result))
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="mentor-stats-{days}d.csv"'})


@router.get("/gaps")
async def gaps(admin: Admin, s: Svc, days: Annotated[int, Query(ge=1, le=366)] = 30) -> list[dict[str, Any]]:
    """Failed questions clustered, largest first, each with its kind, nearest passages and a draft outline."""
    from agents.reports.gaps import gaps as find

    return [g.model_dump(mode="json") for g in await asyncio.to_thread(find, s.db, days)]


@router.post("/gaps/{gap_id}/check")
async def check_gap(gap_id: Annotated[int, Path(ge=1, le=2**63 - 1)], admin: Admin, s: Svc,
                    days: Annotated[int, Query(ge=1, le=366)] = 30) -> dict[str, Any]:
    """Check again: ask the gap's questions against today's knowledge; `fixed` when all are answered."""
    from agents.reports.gaps import check_again
    from agents.reports.gaps import gaps as find

    found = next((g for g in await asyncio.to_thread(find, s.db, days) if g.id == gap_id), None)
    if found is None:
        raise NotFound(f"no knowledge gap {gap_id} in the last {days} days")
    return (await asyncio.to_thread(check_again, s.db, found)).model_dump(mode="json")


@router.get("/conversations")
async def conversations(admin: Admin, s: Svc, days: Days = 7,
                        persona: Annotated[str | None, Query(max_length=64)] = None,
                        outcome: Annotated[Literal["resolved", "handed_off", "unresolved"] | None, Query()] = None,
                        ) -> list[dict[str, Any]]:
    """The conversations behind a figure: each with its outcome and detail (the reason, or confirmed /
    assumed), newest first."""
    from agents.reports.stats import compute

    result = await asyncio.to_thread(compute, s.db, s.settings, days)
    started = await asyncio.to_thread(reports.conversations, s.db, result.since)
    rows = []
    for c in reversed(started):
        kind, _, detail = result.outcomes[c["id"]].partition(":")
        if (persona is None or c["persona"] == persona) and (outcome is None or kind == outcome):
            rows.append({"id": c["id"], "persona": c["persona"], "created_at": c["created_at"].isoformat(),
                         "outcome": kind, "detail": detail})
    return rows


@router.get("/conversations/{conversation_id}")
async def transcript(conversation_id: ConversationId, admin: Admin, s: Svc) -> dict[str, Any]:
    """A conversation behind a number, read only."""
    found = await asyncio.to_thread(reports.transcript, s.db, conversation_id)
    if found is None:
        raise NotFound("no such conversation")
    return found
