"""What the operator's reports read (agents/reports/stats.py): conversations, turns and their stored events.

Service role, read only. A window is the conversations started at or after `since`; their turns, events,
ratings and handoffs come with them whenever they happened, so a figure never mixes half a conversation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from store.db import Database


def conversations(db: Database, since: datetime) -> list[dict[str, Any]]:
    """Conversations started since `since` in which someone wrote, with the reason of their first ticket (a
    conversation handed over twice keeps its first reason; the handoff row holds only the latest)."""
    with db.service() as conn:
        return conn.execute(
            """SELECT c.id::text AS id, c.persona, c.created_at, c.user_id, c.visitor_id, c.site_id,
                      (SELECT t.reason FROM support_tickets t WHERE t.conversation_id = c.id ORDER BY t.id LIMIT 1)
                        AS handoff_reason
               FROM conversations c
               WHERE c.created_at >= %s
                 AND EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.role = 'user')
               ORDER BY c.created_at""", (since,)).fetchall()


def user_messages(db: Database, since: datetime) -> list[dict[str, Any]]:
    """What the customers wrote in those conversations, oldest first."""
    with db.service() as conn:
        return conn.execute(
            """SELECT m.id, m.conversation_id::text AS conversation_id, m.content, m.created_at
               FROM messages m JOIN conversations c ON c.id = m.conversation_id
               WHERE c.created_at >= %s AND m.role = 'user' ORDER BY m.id""", (since,)).fetchall()


def turns(db: Database, since: datetime) -> list[dict[str, Any]]:
    """Every answer of the bot in those conversations: its status, text, the question it answered, when
    the question was stored, the first token and `done` were stored, `done`'s payload (usage, provider,
    grounding) and the newest rating of it."""
    with db.service() as conn:
        return conn.execute(
            """SELECT m.id AS message_id, m.conversation_id::text AS conversation_id, c.persona, m.status,
                      m.content, m.created_at, q.id AS question_id, q.content AS question, q.created_at AS asked_at,
                      (SELECT min(e.created_at) FROM conversation_events e
                        WHERE e.conversation_id = m.conversation_id AND e.message_id = m.id AND e.type = 'token')
                        AS first_token_at,
                      d.created_at AS done_at, d.payload AS done, f.rating, f.implemented
               FROM messages m JOIN conversations c ON c.id = m.conversation_id
               LEFT JOIN messages q ON q.id = m.reply_to
               LEFT JOIN LATERAL (SELECT e.created_at, e.payload FROM conversation_events e
                                  WHERE e.conversation_id = m.conversation_id AND e.message_id = m.id
                                    AND e.type = 'done' ORDER BY e.seq DESC LIMIT 1) d ON true
               LEFT JOIN LATERAL (SELECT rating, implemented FROM feedback WHERE message_id = m.id
                                  ORDER BY id DESC LIMIT 1) f ON true
               WHERE c.created_at >= %s AND m.role = 'assistant' ORDER BY m.id""", (since,)).fetchall()


def transcript(db: Database, conversation_id: str) -> dict[str, Any] | None:
    """One conversation, read only, for the numbers' drill-down: its messages and handoff."""
    with db.service() as conn:
        conv = conn.execute(
            """SELECT c.id::text AS id, c.persona, c.created_at, c.user_id, h.reason AS handoff_reason,
                      h.status AS handoff_status
               FROM conversations c LEFT JOIN handoffs h ON h.conversation_id = c.id WHERE c.id::text = %s""",
            (conversation_id,)).fetchone()
        if conv is None:
            return None
        conv["messages"] = conn.execute(
            """SELECT m.id, m.role, m.content, m.status, m.created_at,
                      (SELECT rating FROM feedback f WHERE f.message_id = m.id ORDER BY f.id DESC LIMIT 1) AS rating
               FROM messages m WHERE m.conversation_id = %s AND m.role IN ('user', 'assistant', 'agent')
               ORDER BY m.id""", (conv["id"],)).fetchall()
        return conv


def gap_checks(db: Database) -> dict[int, bool]:
    """The last "check again" of each failed question: answered by the knowledge as it was then."""
    with db.service() as conn:
        return {r["message_id"]: r["answered"] for r in
                conn.execute("SELECT message_id, answered FROM knowledge_gap_checks").fetchall()}


def save_gap_check(db: Database, message_id: int, answered: bool) -> None:
    with db.service() as conn:
        conn.execute("""INSERT INTO knowledge_gap_checks (message_id, answered) VALUES (%s, %s)
                        ON CONFLICT (message_id) DO UPDATE SET answered = excluded.answered, checked_at = now()""",
                     (message_id, answered))


def handoff_counts(db: Database) -> dict[tuple[str, str], int]:
    """Every hand-over to a person since the start (each ticket opened in a conversation), by persona and
    reason (/metrics): tickets are never deleted, so the count only grows."""
    with db.service() as conn:
        rows = conn.execute("""SELECT c.persona, t.reason, count(*) AS n FROM support_tickets t
                               JOIN conversations c ON c.id = t.conversation_id GROUP BY 1, 2""").fetchall()
    return {(r["persona"], r["reason"]): r["n"] for r in rows}


def message_vectors(db: Database, ids: list[int]) -> dict[int, Any]:
    """The stored embeddings of these messages (those embedded by an earlier report)."""
    if not ids:
        return {}
    with db.service() as conn:
        return {r["message_id"]: r["embedding"].to_numpy() for r in conn.execute(
            "SELECT message_id, embedding FROM message_vectors WHERE message_id = ANY(%s)", (ids,)).fetchall()}


def save_message_vectors(db: Database, vectors: dict[int, Any]) -> None:
    if not vectors:
        return
    with db.service() as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO message_vectors (message_id, embedding) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                        list(vectors.items()))
