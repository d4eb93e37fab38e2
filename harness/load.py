"""A bounded load test over loopback: every persona at once, clients that drop and resume, for a fixed time.

Virtual users (signed-in demo users and anonymous widget visitors) loop: pick a persona, send a
message, read the stream; some drop the socket mid-answer, reconnect and `resume` after the last
seq they saw. At the end every sent message must have reached `done` (zero lost messages), every
answer assembled from events must equal what the database stored (nothing lost or duplicated across
the reconnect), no event may carry another user's data, and the error rate is reported.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import websockets

from evals.stats import percentile

PERSONA_QUESTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "marcus": ("How do I find my first clients?", {}),
    "sarah": ("How do I handle a client who keeps adding scope?", {}),
    "david": ("What do React developers charge per hour?", {}),
    "proposal_writer": ("Write my proposal for this project.", {"project_id": 67}),
    "support": ("When can I withdraw my earnings?", {}),
}


@dataclass
class VirtualUser:
    name: str
    url: str
    personas: list[str]
    foreign: list[str]  # strings of other users' data that must never reach this user
    origin: str | None = None  # widget visitors connect from a registered site
    visitor: str | None = None  # the visitor id the server issued (sent back on every reconnect)

    def connect(self) -> Any:
        """A connection with this user's credentials in the subprotocol header, as the browser sends them."""
        protocols = ["mentor.v1", *([f"visitor.{self.visitor}"] if self.visitor else [])]
        return websockets.connect(self.url, open_timeout=30, ping_interval=None, origin=self.origin,
                                  subprotocols=protocols)

    def ready(self, frame: str) -> None:
        self.visitor = json.loads(frame).get("visitor_id") or self.visitor


@dataclass
class LoadResult:
    sent: int = 0
    rejected: int = 0  # refused before anything was stored (a typed error without seq), e.g. rate limits
    completed: int = 0
    lost: list[str] = field(default_factory=list)
    reconnects: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)
    gaps: int = 0
    answers: dict[int, str] = field(default_factory=dict)  # assistant message id -> text seen by the client
    turn_seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        errors = sum(self.errors.values())
        return {"messages_sent": self.sent, "completed": self.completed, "rejected": self.rejected,
                "lost": len(self.lost),
                "reconnects_with_resume": self.reconnects, "seq_gaps": self.gaps, "cross_user_leaks": len(self.leaks),
                "error_events": errors, "error_rate": round(errors / self.sent, 4) if self.sent else 0.0,
                "errors_by_code": self.errors,
                "turn_p50_s": percentile(self.turn_seconds, 50), "turn_p95_s": percentile(self.turn_seconds, 95)}


async def _events(ws: Any, timeout: float) -> Any:
    while True:
        yield json.loads(await asyncio.wait_for(ws.recv(), timeout=timeout))


async def _one_message(user: VirtualUser, persona: str, rng: random.Random, result: LoadResult,
                       drop_probability: float) -> None:
    question, extra = PERSONA_QUESTIONS[persona]
    client_id = uuid.uuid4().hex
    result.sent += 1
    started = time.perf_counter()
    text: list[str] = []
    last_seq, conversation, message_id = 0, None, None
    drop_after = rng.randint(1, 12) if rng.random() < drop_probability else None
    seen = 0
    async with user.connect() as ws:
        user.ready(await ws.recv())
        await ws.send(json.dumps({"type": "message", "client_id": client_id, "persona": persona, "text": question,
                                  **extra}))
        async for event in _events(ws, 120):
            if _account(event, user, result, text):
                conversation = event.get("conversation_id") or conversation
                message_id = event.get("message_id") or message_id
                if event.get("seq") is not None:
                    result.gaps += int(last_seq and event["seq"] != last_seq + 1)
                    last_seq = event["seq"]
            if event["type"] == "done" or (event["type"] == "error" and event.get("seq") is None):
                break
            seen += 1
            if drop_after is not None and seen >= drop_after and conversation:
                break  # the client vanishes mid-answer
    done = event["type"] == "done"
    if not done and conversation is None and event["type"] == "error":
        result.rejected += 1  # nothing was stored, nothing can be lost
        return
    while not done and conversation and drop_after is not None:
        result.reconnects += 1
        async with user.connect() as ws:
            user.ready(await ws.recv())
            await ws.send(json.dumps({"type": "resume", "conversation_id": conversation, "after_seq": last_seq}))
            async for event in _events(ws, 120):
                if _account(event, user, result, text) and event.get("seq") is not None:
                    result.gaps += int(event["seq"] != last_seq + 1)
                    last_seq = event["seq"]
                if event["type"] == "done":
                    done = True
                    break
    if done:
        result.completed += 1
        result.turn_seconds.append(time.perf_counter() - started)
        if message_id is not None:
            result.answers[message_id] = "".join(text)
    else:
        result.lost.append(client_id)


def _account(event: dict, user: VirtualUser, result: LoadResult, text: list[str]) -> bool:
    """Check one event for other users' data and count errors; collect answer text. True = has a seq."""
    if event["type"] == "error":
        result.errors[event["code"]] = result.errors.get(event["code"], 0) + 1
    raw = json.dumps(event)
    result.leaks += [f"{user.name}: {s}" for s in user.foreign if s in raw]
    if event["type"] == "token":
        text.append(event["delta"])
    return event.get("seq") is not None


async def _user_loop(user: VirtualUser, deadline: float, seed: int, result: LoadResult,
                     drop_probability: float) -> None:
    rng = random.Random(seed)
    while time.perf_counter() < deadline:
        await _one_message(user, rng.choice(user.personas), rng, result, drop_probability)


async def run_load(users: list[VirtualUser], seconds: float, *, drop_probability: float = 0.3,
                   seed: int = 7) -> LoadResult:
    result = LoadResult()
    deadline = time.perf_counter() + seconds
    await asyncio.gather(*(_user_loop(u, deadline, seed + i, result, drop_probability)
                           for i, u in enumerate(users)))
    return result


def stored_answers(db: Any, message_ids: list[int]) -> dict[int, tuple[str, str]]:
    """What the database kept for these assistant messages: id -> (content, status)."""
    with db.admin() as conn:
        rows = conn.execute("SELECT id, content, status FROM messages WHERE id = ANY(%s)", (message_ids,)).fetchall()
    return {r["id"]: (r["content"], r["status"]) for r in rows}
