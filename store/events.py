"""The event log: every event of a conversation, with its seq, in the order clients receive it.

Conversations (turns, the answer's tokens) and handoffs (an agent joins, replies, leaves) both write here;
readers replay it after a seq. Seqs are allocated in the database (`conversations.last_seq`, row-locked),
so any worker can append to or replay any conversation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from core.errors import NotFound, WorkerFenced
from store.db import Database
from store.jsonfast import dumps


@dataclass
class NewEvent:
    """One event to log; `finish` (content, status, usage) also closes its message in the same transaction."""

    conversation_id: str
    user_id: int | None
    message_id: int | None
    event: dict[str, Any]
    finish: tuple[str, str, dict | None] | None = None


def append_events(db: Database, items: list[NewEvent], *, notify: bool = False,
                  writer: int | None = None) -> list[int]:
    """Store many events, of any conversations, in one transaction (group commit); return their seqs.

    `notify`: tell every worker's listener (LISTEN mentor_events) which conversations have new events, at
    commit — how a client following a conversation on another worker learns there is more to read.
    `writer`: the worker whose turns these are; refused (WorkerFenced) if its lease was fenced off.
    """
    with db.service() as conn:
        return append(conn, items, notify=notify, writer=writer)


def append(conn, items: list[NewEvent], *, notify: bool = False,
            writer: int | None = None) -> list[int]:
    """One call of `append_events` (store/migrations/0016): each conversation's seqs taken from its
    `last_seq` (rows locked in id order, so concurrent writers cannot deadlock) and handed out in the
    order the items came; the events, tool calls, citations and finished answers stored with them, and
    with `notify` every worker's listener told at commit (NOTIFY mentor_events, the conversation ids).
    The batch travels as one JSON document: one parameter, one orjson call, one round trip."""
    if not items:
        return []
    rows = []
    for n, item in enumerate(items):
        row = {"o": n, "c": item.conversation_id, "u": item.user_id, "m": item.message_id, "t": item.event["type"],
               "p": item.event}
        if item.finish is not None:
            content, status, usage = item.finish
            row |= {"f": True, "fc": content, "fs": status, "fu": usage or None}
        rows.append(row)
    try:
        seqs = conn.execute("SELECT append_events(%s::jsonb, %s, %s) AS seqs",
                            (dumps(rows), notify, writer)).fetchone()["seqs"]
    except psycopg.errors.NoDataFound as exc:
        raise NotFound(exc.diag.message_primary or "conversation not found") from None
    except psycopg.Error as exc:
        if exc.sqlstate == "MW001":
            raise WorkerFenced(exc.diag.message_primary or "this worker was fenced off") from None
        raise
    return seqs


def append_read(db: Database, conversation_id: str, who: str, upto_seq: int) -> int:
    """A read receipt (`who` saw everything up to `upto_seq`), stored like any event and announced."""
    with db.service() as conn:
        row = conn.execute("SELECT user_id FROM conversations WHERE id = %s", (conversation_id,)).fetchone()
        if row is None:
            raise NotFound(f"conversation {conversation_id} not found")
        last = conn.execute("SELECT coalesce(max(seq), 0) AS seq FROM conversation_events WHERE conversation_id = %s",
                            (conversation_id,)).fetchone()["seq"]  # nobody read past the last event
        return append(conn, [NewEvent(conversation_id, row["user_id"], None,
                                       {"type": "read", "who": who, "upto_seq": min(upto_seq, last)})], notify=True)[0]


def events_after(conn, conversation_id: str, after_seq: int, limit: int = 5000) -> list[dict]:
    rows = conn.execute(
        """SELECT seq, message_id, payload FROM conversation_events
           WHERE conversation_id = %s AND seq > %s ORDER BY seq LIMIT %s""",
        (conversation_id, after_seq, limit)).fetchall()
    return [{**r["payload"], "seq": r["seq"], "conversation_id": conversation_id, "message_id": r["message_id"]}
            for r in rows]


def recorded(db: Database, conversation_id: str, user_id: int | None, message_id: int,
             events: Iterable[Any]) -> Iterator[Any]:
    """Pass a turn's events on, each stored first as the server stores them (its own transaction, so its
    time is when it happened): the terminal's conversations count in the operator's reports like any other.
    `done` closes the answer; a turn that stops without one leaves it closed as an error."""
    answer: list[str] = []
    finished = False
    try:
        for event in events:
            payload = event.model_dump()
            finish = None
            if payload["type"] == "token":
                answer.append(payload["delta"])
            elif payload["type"] == "answer_replaced":
                answer.clear()
            elif payload["type"] == "done":
                status = {"cancelled": "cancelled", "error": "error"}.get(payload["finish_reason"], "complete")
                finish, finished = ("".join(answer), status, payload["usage"]), True
            append_events(db, [NewEvent(conversation_id, user_id, message_id, payload, finish)])
            yield event
    finally:
        if not finished:
            with db.service() as conn:
                conn.execute("UPDATE messages SET status = 'error', content = %s WHERE id = %s AND status = "
                             "'streaming'", ("".join(answer), message_id))
