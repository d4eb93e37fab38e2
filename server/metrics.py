"""Prometheus metrics exposed on /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

REGISTRY = CollectorRegistry()
CONNECTIONS = Gauge("mentor_ws_connections", "Open chat WebSocket connections", registry=REGISTRY)
TURNS = Counter("mentor_turns_total", "Turns started", ["persona"], registry=REGISTRY)
TOKENS = Counter("mentor_tokens_total", "Model tokens", ["kind"], registry=REGISTRY)
TOOL_CALLS = Counter("mentor_tool_calls_total", "Tool calls", ["name", "outcome"], registry=REGISTRY)
ERRORS = Counter("mentor_errors_total", "Errors sent to clients", ["code"], registry=REGISTRY)
TURN_SECONDS = Histogram("mentor_turn_seconds", "Turn duration", registry=REGISTRY,
                         buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160))
FIRST_EVENT_SECONDS = Histogram("mentor_first_token_seconds", "Time to the first token", registry=REGISTRY,
                                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20))
SETUP_WAIT_SECONDS = Histogram("mentor_turn_setup_wait_seconds",
                               "Time a message waited for a setup slot (MENTOR_TURN_SETUP_SLOTS) before it was "
                               "stored: the worker's queue under a burst", registry=REGISTRY,
                               buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10))
SETUP_SLOTS = Gauge("mentor_turn_setup_slots", "Turns this worker lets into setup at once (MENTOR_TURN_SETUP_SLOTS; "
                    "`mentor serve --workers N` gives each worker 64 unless set)", registry=REGISTRY)
SETUP_BUSY = Gauge("mentor_turn_setup_slots_busy", "Setup slots held now: at the limit, new messages wait",
                   registry=REGISTRY)
HANDOFF_QUEUE = Gauge("mentor_handoff_queue", "Conversations handed to a person and waiting for one (read at scrape)",
                      registry=REGISTRY)
FIRST_HUMAN_REPLY_SECONDS = Histogram("mentor_first_human_reply_seconds",
                                      "From the handoff to the first reply of a person", registry=REGISTRY,
                                      buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 14400, 86400))


class DatabaseCounters:
    """Counters whose truth is the database (every worker reports the same figure), set at each scrape."""

    def __init__(self) -> None:
        self.handoffs: dict[tuple[str, str], int] = {}

    def collect(self):
        family = CounterMetricFamily("mentor_handoffs", "Conversations handed to a person since the start, by "
                                     "persona and reason (read from the database at scrape)",
                                     labels=["persona", "reason"])
        for (persona, reason), n in sorted(self.handoffs.items()):
            family.add_metric([persona, reason], n)
        yield family


DB_COUNTERS = DatabaseCounters()
REGISTRY.register(DB_COUNTERS)
OUTCOMES = Gauge("mentor_conversations_7d", "Conversations started in the last 7 days by outcome (resolved_confirmed, "
                 "resolved_assumed, handed_off, unresolved): the admin stats' definitions, refreshed at most every "
                 "5 minutes", ["persona", "outcome"], registry=REGISTRY)
