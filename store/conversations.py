"""Conversations, messages and their event log — the state a reconnecting client resumes from.

The server writes here as the trusted owner role (it has already authenticated the caller and checks
ownership itself, including for anonymous widget visitors, who have no RLS identity); users read
their own history through `Database.as_user`, under row-level security.

Sequence numbers are allocated in the database (`conversations.last_seq`, row-locked by the UPDATE),
so any worker can append to or replay a conversation.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from core.errors import MentorError, NotFound
from store.db import Database
from store.events import NewEvent, append, events_after


@dataclass(frozen=True)
class Caller:
    user_id: int | None = None
    site_id: int | None = None
    visitor_id: str | None = None
    address: str | None = None  # the client's network address (rate limits), never stored
    site_user: str | None = None  # a third-party site's own user id (its identity is `visitor_id`)
    site_identity: int | None = None  # that identity's row (site_users), linked to `user_id` or not
    first_party: bool = False  # came through a first-party site (the marketplace's own pages)

    @property
    def anonymous(self) -> bool:
        return self.user_id is None


@dataclass
class TurnStart:
    conversation_id: str
    user_message_id: int
    assistant_message_id: int | None  # None: a person owns the conversation, the bot does not answer
    duplicate: bool
    status: str
    project_id: int | None = None  # what the conversation is about (remembered across follow-ups)
    mode: str = "chat"


class PersonaMismatch(MentorError):
    code = "persona_mismatch"
    http_status = 409


def _owned(row: dict | None, caller: Caller) -> bool:
    if row is None:
        return False
    if caller.user_id is not None:
        return row["user_id"] == caller.user_id
    return (row["user_id"] is None and row["visitor_id"] is not None and row["visitor_id"] == caller.visitor_id
            and row["site_id"] == caller.site_id)


def get_conversation(db: Database, conversation_id: str, caller: Caller) -> dict:
    with db.service() as conn:
        row = conn.execute("SELECT * FROM conversations WHERE id = %s", (conversation_id,)).fetchone()
    if not _owned(row, caller):
        raise NotFound(f"conversation {conversation_id} not found")
    return row


def _duplicate(conn, caller: Caller, client_id: str, conversation_id: str | None) -> TurnStart | None:
    row = conn.execute(
        """SELECT u.conversation_id, u.id AS user_message_id, a.id AS assistant_message_id,
                  coalesce(a.status, 'complete') AS status
           FROM messages u LEFT JOIN messages a ON a.reply_to = u.id
           JOIN conversations c ON c.id = u.conversation_id
           WHERE u.client_id = %(client)s AND u.role = 'user'
             AND (%(conv)s::uuid IS NULL OR u.conversation_id = %(conv)s::uuid)
             AND (c.user_id = %(user)s OR (%(user)s::bigint IS NULL AND c.user_id IS NULL
                                            AND c.visitor_id = %(visitor)s))
           ORDER BY u.id DESC, a.id DESC NULLS LAST LIMIT 1""",
        {"client": client_id, "conv": conversation_id, "user": caller.user_id,
         "visitor": caller.visitor_id}).fetchone()
    if row is None:
        return None
    return TurnStart(str(row["conversation_id"]), row["user_message_id"], row["assistant_message_id"],
                     duplicate=True, status=row["status"])


def start_turn(db: Database, caller: Caller, *, persona: str, text: str, client_id: str,
               conversation_id: str | None, project_id: int | None = None, mode: str | None = None,
               worker_id: int | None = None) -> TurnStart:
    """Store the user's message (idempotent by client id) and an empty assistant message, atomically.

    A client id whose answer ended in an error is retried: a new assistant message, same user message.
    A conversation keeps one persona (another persona starts another conversation) and remembers its
    project and mode: a follow-up that names none continues with them; one that names a project moves it.
    `worker_id` is the worker process that will stream the answer (see `close_orphans`).
    """
    with db.service() as conn:
        return _start_turn(conn, caller, persona=persona, text=text, client_id=client_id,
                           conversation_id=conversation_id, project_id=project_id, mode=mode, worker_id=worker_id)


@dataclass
class OpenedTurn:
    start: TurnStart
    ack_seq: int | None  # None: a duplicate, nothing was stored
    history: list[dict[str, str]]
    human: int | None = None  # the agent who owns the conversation: the message is theirs to answer


def open_turn(db: Database, caller: Caller, *, persona: str, text: str, client_id: str,
              conversation_id: str | None, project_id: int | None, mode: str | None, worker_id: int | None,
              ack: Any, admit: Any = None) -> OpenedTurn:
    """A new turn in one transaction — one round trip of work where a burst of turns queues:

    - the turn this client id already started, if any: a duplicate is returned as such, nothing stored;
    - `admit(duplicate_or_None, tokens_used) -> conversation_id` (the caller's limits; it raises to
      refuse, and everything rolls back) — skipped for a plain duplicate;
    - `start_turn`, its `ack` event (`ack(start) -> payload`) and the history before it.
    """
    with db.service() as conn:
        duplicate = _duplicate(conn, caller, client_id, conversation_id)
        if duplicate is not None and duplicate.status != "error":
            return OpenedTurn(duplicate, None, [])
        if admit is not None:
            used = _tokens_used(conn, conversation_id, caller) if conversation_id else 0
            conversation_id = admit(duplicate, used)
        human = None
        if conversation_id is not None:
            human = human_owner(conn, conversation_id)
        start = _start_turn(conn, caller, persona=persona, text=text, client_id=client_id,
                            conversation_id=conversation_id, project_id=project_id, mode=mode, worker_id=worker_id,
                            answer=human is None)
        if start.duplicate:
            return OpenedTurn(start, None, [])
        # with a person in the conversation, every worker's followers of it (the agent's) read on
        seq = append(conn, [NewEvent(start.conversation_id, caller.user_id, start.assistant_message_id,
                                      ack(start))], notify=human is not None)[0]
        # a conversation this transaction has just started has nothing before the message
        history = [] if conversation_id is None else _history(conn, start.conversation_id, start.user_message_id)
        return OpenedTurn(start, seq, history, human)


def _start_turn(conn, caller: Caller, *, persona: str, text: str, client_id: str,
                conversation_id: str | None, project_id: int | None, mode: str | None,
                worker_id: int | None, answer: bool = True) -> TurnStart:
    created = conversation_id is None
    if conversation_id is None:
        conversation_id = str(uuid.uuid4())
        conn.execute(
            """INSERT INTO conversations (id, user_id, persona, title, site_id, visitor_id, project_id, mode,
                                         client_address)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (conversation_id, caller.user_id, persona, " ".join(text.split())[:80], caller.site_id,
             caller.visitor_id, project_id, mode or "chat",
             caller.address if caller.user_id is None else None))  # a visitor's, for ticket floods only
        context = (project_id, mode or "chat")
    else:
        row = conn.execute("SELECT * FROM conversations WHERE id = %s FOR UPDATE", (conversation_id,)).fetchone()
        if not _owned(row, caller):
            raise NotFound(f"conversation {conversation_id} not found")
        if row["persona"] != persona:
            raise PersonaMismatch(f"this conversation is with {row['persona']}; start a new conversation to "
                                  f"talk to {persona}")
        context = (project_id or row["project_id"], mode or row["mode"])
        if context != (row["project_id"], row["mode"]):
            conn.execute("UPDATE conversations SET project_id = %s, mode = %s WHERE id = %s",
                         (*context, conversation_id))
    # checked again under the conversation's row lock: a concurrent re-send must not slip through
    # (a conversation this transaction has just created holds no messages yet)
    existing = None if created else _duplicate(conn, caller, client_id, conversation_id)
    if existing and existing.status == "error" and not answer:  # the failed answer is now a person's to give
        return TurnStart(conversation_id, existing.user_message_id, None, duplicate=False, status="complete",
                         project_id=context[0], mode=context[1])
    if existing and existing.status == "error":
        # Re-sending a message whose answer failed is a retry: a new answer to the same stored message.
        reply = conn.execute(
            """INSERT INTO messages (conversation_id, user_id, role, content, status, reply_to, worker_id)
               VALUES (%s, %s, 'assistant', '', 'streaming', %s, %s) RETURNING id""",
            (conversation_id, caller.user_id, existing.user_message_id, worker_id)).fetchone()["id"]
        return TurnStart(conversation_id, existing.user_message_id, reply, duplicate=False, status="streaming",
                         project_id=context[0], mode=context[1])
    if existing:
        return existing
    user_msg = conn.execute(
        """INSERT INTO messages (conversation_id, user_id, role, content, client_id, status)
           VALUES (%s, %s, 'user', %s, %s, 'complete') RETURNING id""",
        (conversation_id, caller.user_id, text, client_id)).fetchone()["id"]
    if not answer:  # a person answers this one
        return TurnStart(conversation_id, user_msg, None, duplicate=False, status="complete",
                         project_id=context[0], mode=context[1])
    reply = conn.execute(
        """INSERT INTO messages (conversation_id, user_id, role, content, status, reply_to, worker_id)
           VALUES (%s, %s, 'assistant', '', 'streaming', %s, %s) RETURNING id""",
        (conversation_id, caller.user_id, user_msg, worker_id)).fetchone()["id"]
    return TurnStart(conversation_id, user_msg, reply, duplicate=False, status="streaming",
                     project_id=context[0], mode=context[1])


def human_owner(conn, conversation_id: str) -> int | None:
    """The agent who owns the conversation right now (the bot must stay silent), if any."""
    row = conn.execute("SELECT agent_id FROM handoffs WHERE conversation_id = %s AND status = 'claimed'",
                       (conversation_id,)).fetchone()
    return row["agent_id"] if row else None


def fail_message(db: Database, message_id: int, partial: str) -> None:
    """Close a message whose turn was cut off (kept as status 'error' with what had streamed)."""
    with db.service() as conn:
        conn.execute("UPDATE messages SET status = 'error', content = %s WHERE id = %s AND status = 'streaming'",
                     (partial, message_id))


def read_on(db: Database, conversation_id: str, after_seq: int) -> tuple[list[dict], int | None]:
    """For a follower: the events after `after_seq`, and the answer still streaming, from one snapshot.

    An answer's last event and its status change commit together, so in one snapshot "no answer is
    streaming" means the events hold everything it will ever have, and an answer reported streaming has
    not stored its `done` yet. Read at two moments (two statements under READ COMMITTED), an answer
    ending in between came back streaming with its `done` among the events, and the follower went on to
    relay the next answer as well — one its socket may be relaying already.
    """
    with db.service() as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        streaming = _latest_streaming_message(conn, conversation_id)
        return events_after(conn, conversation_id, after_seq), streaming


def latest_streaming_message(db: Database, conversation_id: str) -> int | None:
    with db.service() as conn:
        return _latest_streaming_message(conn, conversation_id)


def _latest_streaming_message(conn, conversation_id: str) -> int | None:
    row = conn.execute(
        """SELECT id FROM messages WHERE conversation_id = %s AND role = 'assistant' AND status = 'streaming'
           ORDER BY id DESC LIMIT 1""", (conversation_id,)).fetchone()
    return row["id"] if row else None


def history(db: Database, conversation_id: str, before_message_id: int, limit: int = 40) -> list[dict[str, str]]:
    """Earlier finished messages, oldest first, for the model's context."""
    with db.service() as conn:
        return _history(conn, conversation_id, before_message_id, limit)


def _history(conn, conversation_id: str, before_message_id: int, limit: int = 40) -> list[dict[str, str]]:
    rows = conn.execute(  # a support agent's replies are the assistant's side of the transcript
        """SELECT CASE role WHEN 'agent' THEN 'assistant' ELSE role END AS role, content FROM messages
           WHERE conversation_id = %s AND id < %s AND role IN ('user', 'assistant', 'agent')
             AND status IN ('complete', 'cancelled') AND content <> ''
           ORDER BY id DESC LIMIT %s""", (conversation_id, before_message_id, limit)).fetchall()
    return [{"role": r["role"], "content": r["content"]} for r in reversed(rows)]


def _tokens_used(conn, conversation_id: str, caller: Caller) -> int:
    conv = conn.execute("SELECT user_id, visitor_id, site_id FROM conversations WHERE id = %s",
                        (conversation_id,)).fetchone()
    if not _owned(conv, caller):
        return 0
    row = conn.execute(
        "SELECT coalesce(sum((usage->>'total_tokens')::int), 0) AS n FROM messages WHERE conversation_id = %s",
        (conversation_id,)).fetchone()
    return int(row["n"])


def save_contact(db: Database, caller: Caller, ticket_id: int, email: str) -> None:
    """Attach how to reach the caller to one of their own tickets (opened in one of their conversations)."""
    with db.service() as conn:
        row = conn.execute(
            """SELECT c.user_id, c.visitor_id, c.site_id FROM support_tickets t
               JOIN conversations c ON c.id = t.conversation_id WHERE t.id = %s""", (ticket_id,)).fetchone()
        if not _owned(row, caller):
            raise NotFound(f"ticket {ticket_id} not found")
        conn.execute("UPDATE support_tickets SET contact_email = %s WHERE id = %s", (email, ticket_id))


def save_feedback(db: Database, user_id: int, message_id: int, *, rating: int, comment: str | None,
                  implemented: bool) -> int:
    """Feedback on one of the caller's own messages (RLS decides what "own" means)."""
    with db.as_user(user_id) as conn:
        row = conn.execute(
            """INSERT INTO feedback (message_id, user_id, rating, comment, implemented)
               SELECT id, app_user_id(), %s, %s, %s FROM messages WHERE id = %s AND role = 'assistant'
               RETURNING id""", (rating, comment, implemented, message_id)).fetchone()
    if row is None:
        raise NotFound(f"message {message_id} not found")
    return row["id"]


INTERRUPTED = {"type": "error", "code": "interrupted", "retryable": True, "retry_after": 0,
               "message": "the worker streaming this answer stopped; send the message again to retry"}


UPDATED_AT_LAG_S = 1.0  # store/migrations/0016_append_events.sql: updated_at moves at most once a second


def close_orphans(db: Database, live_worker: int, quiet_s: float = 2.0) -> list[str]:
    """Close answers left streaming by a worker that died; return their conversations.

    A worker holds a session advisory lock on its id while it lives (server/hub.py), so a lock we can
    take belongs to a dead worker; so does a fenced lease (a worker that stopped running:
    store/workers.py). Its answer ends as an `interrupted` error (retryable: re-sending the same client
    id retries it) and `done`, and keeps what had streamed. Only answers quiet for `quiet_s`
    are touched, so a worker briefly reconnecting to the database keeps its live turns. `updated_at`
    trails a conversation's last event by up to UPDATED_AT_LAG_S (`append_events` moves it once a
    second), so the check allows for that: quiet means no event for at least `quiet_s`.
    """
    with db.service() as conn:
        rows = conn.execute(
            """SELECT m.id, m.conversation_id, m.user_id FROM messages m
               JOIN conversations c ON c.id = m.conversation_id
               WHERE m.status = 'streaming' AND m.role = 'assistant'
                 AND m.worker_id IS DISTINCT FROM %(me)s
                 AND c.updated_at < now() - make_interval(secs => %(quiet)s + %(lag)s)
                 AND (m.worker_id IS NULL OR pg_try_advisory_xact_lock(m.worker_id)
                      OR m.worker_id IN (SELECT id FROM worker_leases WHERE fenced))
               ORDER BY m.id FOR UPDATE OF m SKIP LOCKED""",
            {"me": live_worker, "quiet": quiet_s, "lag": UPDATED_AT_LAG_S}).fetchall()
        if not rows:
            return []
        done = {"type": "done", "finish_reason": "error", "provider": None, "grounding": None,
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "counted": "tiktoken"}}
        items = []
        for row in rows:
            cid = str(row["conversation_id"])
            partial = conn.execute(
                """SELECT coalesce(string_agg(payload->>'delta', '' ORDER BY seq), '') AS text
                   FROM conversation_events WHERE message_id = %s AND type = 'token'""", (row["id"],)).fetchone()
            items += [NewEvent(cid, row["user_id"], row["id"], dict(INTERRUPTED)),
                      NewEvent(cid, row["user_id"], row["id"], {**done, "message_id": row["id"]},
                               finish=(partial["text"], "error", None))]
        append(conn, items, notify=True)
        return sorted({i.conversation_id for i in items})
