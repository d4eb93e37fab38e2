"""Liveness, readiness and metrics: what a balancer, an orchestrator and Prometheus ask."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import threading
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents.llm import model_health
from agents.personas import personas_without_tools
from core.errors import MentorError, Unauthorized
from server import metrics
from server.deps import Svc
from server.services import Services

log = logging.getLogger("mentor.app")

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    """Liveness for the balancer: answered on the event loop itself (a plain `def` would wait for a
    thread and a second pass of a busy loop), so it measures what it should — that the loop runs."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready = the database answers and the model can: its endpoint is reachable and serves the configured
    model (a probe of its models list at most every 5 s, or the last request's outcome if newer), with
    whether its chat template can do tools and which personas lose them if not."""
    s = request.app.state.services
    if s is None:
        return JSONResponse({"ready": False, "database": False, "model": False, "backend": None}, 503)
    database = await asyncio.to_thread(s.db.ping)
    health = await model_health(s.provider)
    ready = database and health.ok
    return JSONResponse({"ready": ready, "database": database, "model": health.ok, "backend": s.provider.name,
                         "model_detail": {**dataclasses.asdict(health),
                                          "personas_without_tools": personas_without_tools(health.tools)}},
                        status_code=200 if ready else 503)


_outcomes_read_at = 0.0
_outcomes_lock = threading.Lock()


def _refresh_outcomes(s: Services) -> None:
    """The admin stats' outcomes of the last 7 days, at most every 5 minutes and never inside a scrape: the
    first computation embeds the week's customer messages (seconds on a busy machine, past a scraper's
    timeout), so a scrape starts it on a thread of its own and answers with the figures it has."""
    global _outcomes_read_at
    if (_outcomes_read_at and time.monotonic() - _outcomes_read_at < 300) or not _outcomes_lock.acquire(blocking=False):
        return
    _outcomes_read_at = time.monotonic()

    def compute_outcomes() -> None:
        from agents.reports.stats import compute

        try:
            for persona, st in compute(s.db, s.settings, 7).personas.items():
                for outcome, n in (("resolved_confirmed", st.resolution.confirmed),
                                   ("resolved_assumed", st.resolution.assumed), ("handed_off", st.handoffs),
                                   ("unresolved", st.unresolved)):
                    metrics.OUTCOMES.labels(persona, outcome).set(n)
        except Exception:  # noqa: BLE001 - the database may be away: the next scrape after 5 minutes tries again
            log.warning("metrics: the week's outcomes could not be computed", exc_info=True)
        finally:
            _outcomes_lock.release()

    threading.Thread(target=compute_outcomes, name="metrics-outcomes", daemon=True).start()


@router.get("/metrics")
def prometheus(request: Request, s: Svc) -> Response:
    """Prometheus metrics; with MENTOR_METRICS_TOKEN set, only for `Authorization: Bearer <token>`."""
    wanted = s.settings.metrics_token
    given = request.headers.get("authorization", "")
    if wanted and not hmac.compare_digest(given.encode(), f"Bearer {wanted}".encode()):
        raise Unauthorized("metrics need the metrics token")
    from store.handoffs import queue_length
    from store.reports import handoff_counts

    # the queue is in the database: every worker reports the same figure (if it is away, the last one)
    with contextlib.suppress(MentorError):
        metrics.HANDOFF_QUEUE.set(queue_length(s.db))
        metrics.DB_COUNTERS.handoffs = handoff_counts(s.db)
        _refresh_outcomes(s)
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
