"""The inbox of conversations handed to a person, and what support staff do with them.

Reads run as the agent under row-level security (`staff_may_read`: a waiting handoff, or one the agent
owns). Writes run as the service, after checking the handoff's state under a row lock, and each leaves
an event in the conversation (with its seq, NOTIFYing every worker) so the customer sees it live and
after a reconnect: `agent_joined`, `agent_message`, `agent_left`, `handoff_resolved`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from core.errors import InvalidArgument, MentorError, NotFound
from store.db import Database
from store.events import NewEvent, append

STAFF_ROLES = ("agent", "admin")
InboxView = Literal["open", "mine", "resolved"]


class HandoffConflict(MentorError):
    """The handoff is not in a state that allows this (another agent owns it, it is resolved)."""

    code = "conflict"
    http_status = 409


@dataclass
class Staff:
    id: int
    name: str
    role: str

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


def staff_member(db: Database, user_id: int) -> Staff | None:
    """The user as support staff, or None if they are not an agent or admin."""
    with db.service() as conn:
        row = conn.execute("SELECT id, name, role FROM users WHERE id = %s", (user_id,)).fetchone()
    if row is None or row["role"] not in STAFF_ROLES:
        return None
    return Staff(row["id"], row["name"], row["role"])


# "Visitor 3f2a": enough to tell two visitors apart in the queue, nothing to sign in with
VISITOR_LABEL = "CASE WHEN c.user_id IS NULL THEN 'Visitor ' || left(md5(c.visitor_id), 4) END"


def list_staff(db: Database) -> list[dict[str, Any]]:
    """Support staff: agents and admins."""
    with db.admin() as conn:
        return conn.execute("SELECT id, handle, name, role FROM users WHERE role = ANY(%s) ORDER BY id",
                            (list(STAFF_ROLES),)).fetchall()


def set_staff_role(db: Database, user: str, role: str | None) -> dict[str, Any]:
    """Make a user (id or handle) support staff (`agent`, `admin`), or take the role away (None: back to
    freelancer, or client if they hire on the marketplace). Open inbox sockets notice on their next event:
    access is checked on delivery."""
    if role is not None and role not in STAFF_ROLES:
        raise InvalidArgument(f"role must be one of {', '.join(STAFF_ROLES)}")
    with db.admin() as conn:
        row = conn.execute("SELECT id, role FROM users WHERE handle = %s OR id::text = %s", (user, user)).fetchone()
        if row is None:
            raise NotFound(f"no user {user!r}")
        if role is None and row["role"] not in STAFF_ROLES:
            raise InvalidArgument(f"user {user!r} is not support staff")
        if role is None:  # back to what their records say they are: a client if they hire, else a freelancer
            hires = conn.execute("SELECT 1 FROM clients WHERE user_id = %s", (row["id"],)).fetchone()
            role = "client" if hires else "freelancer"
        return conn.execute("UPDATE users SET role = %s WHERE id = %s RETURNING id, handle, name, role",
                            (role, row["id"])).fetchone()


def inbox(db: Database, staff: Staff, view: InboxView = "open") -> list[dict[str, Any]]:
    """Handoffs for this view, oldest waiting first; what RLS lets the agent see. A visitor is a label, never
    their signed visitor id (it is their sign-in to the widget); the preview is what the customer last wrote."""
    where = {"open": "h.status = 'open'", "mine": "h.status = 'claimed' AND h.agent_id = app_user_id()",
             "resolved": "h.status = 'resolved'"}[view]
    with db.as_user(staff.id) as conn:
        return conn.execute(
            f"""SELECT h.conversation_id, h.ticket_id, h.reason, h.status, h.agent_id,
                       round(extract(epoch FROM now() - h.created_at))::int AS waiting_s,
                       jsonb_build_object('user_id', c.user_id, 'visitor', c.user_id IS NULL,
                                          'label', {VISITOR_LABEL}, 'site_id', c.site_id) AS customer,
                       (SELECT jsonb_build_object('role', m.role, 'text', left(m.content, 300), 'at', m.created_at)
                          FROM messages m WHERE m.conversation_id = h.conversation_id AND m.content <> ''
                           AND m.role = 'user'
                         ORDER BY m.id DESC LIMIT 1) AS last_message
                FROM handoffs h JOIN conversations c ON c.id = h.conversation_id
                WHERE {where} ORDER BY h.created_at, h.conversation_id""").fetchall()


def transcript(db: Database, staff: Staff, conversation_id: str, after_seq: int = 0) -> dict[str, Any]:
    """The handoff and the conversation's events, if the agent may read them (else NotFound)."""
    with db.as_user(staff.id) as conn:
        handoff = conn.execute("SELECT * FROM handoffs WHERE conversation_id = %s", (conversation_id,)).fetchone()
        if handoff is None:
            raise NotFound(f"no handoff in conversation {conversation_id}")
        events = conn.execute(
            """SELECT seq, message_id, payload FROM conversation_events
               WHERE conversation_id = %s AND seq > %s ORDER BY seq""", (conversation_id, after_seq)).fetchall()
        notes = conn.execute(
            """SELECT n.id, n.text, n.created_at, n.author_id FROM handoff_notes n
               WHERE n.conversation_id = %s ORDER BY n.id""", (conversation_id,)).fetchall()
    return {"handoff": handoff, "customer": customer_card(db, conversation_id), "notes": notes,
            "events": [{**e["payload"], "seq": e["seq"], "message_id": e["message_id"],
                        "conversation_id": conversation_id} for e in events]}


def customer_card(db: Database, conversation_id: str) -> dict[str, Any]:
    """Who the customer is, for the agent: a widget visitor, a third-party site's own user (a support
    identity of that site, with no marketplace records), or a user with their plan, recent orders and
    payments; and through which site, first- or third-party. Read once the agent may see the handoff (a
    customer's rows are not the agent's to read under RLS; they are read as the customer)."""
    with db.service() as conn:
        row = conn.execute(
            f"""SELECT c.user_id, c.visitor_id, u.name, u.handle, u.role, p.name AS plan,
                      s.name AS site_name, s.first_party, su.external_id, {VISITOR_LABEL} AS label,
                      (SELECT t.contact_email FROM support_tickets t WHERE t.conversation_id = c.id
                          AND t.contact_email IS NOT NULL ORDER BY t.id DESC LIMIT 1) AS contact_email
               FROM conversations c
               LEFT JOIN users u ON u.id = c.user_id LEFT JOIN subscription_plans p ON p.id = u.plan_id
               LEFT JOIN sites s ON s.id = c.site_id
               LEFT JOIN site_users su ON c.visitor_id LIKE 'su.%%' AND su.id::text = substr(c.visitor_id, 4)
               WHERE c.id = %s""", (conversation_id,)).fetchone()
    if row is None:
        return {"visitor": True, "name": None, "site": None}
    site = None if row["site_name"] is None else {"name": row["site_name"], "first_party": row["first_party"]}
    if row["user_id"] is None:
        return {"visitor": True, "name": None, "label": row["label"], "site": site, "site_user": row["external_id"],
                "contact_email": row["contact_email"]}
    with db.as_user(row["user_id"]) as conn:  # as the customer: row-level security gives exactly their rows
        orders = conn.execute(
            """SELECT id, status, amount::float AS amount, created_at FROM orders
               ORDER BY created_at DESC LIMIT 5""").fetchall()
        payments = conn.execute(
            """SELECT id, kind, status, amount::float AS amount, created_at FROM payments
               ORDER BY created_at DESC LIMIT 5""").fetchall()
    return {"visitor": False, "user_id": row["user_id"], "name": row["name"], "handle": row["handle"],
            "role": row["role"], "plan": row["plan"], "orders": orders, "payments": payments, "site": site,
            "contact_email": row["contact_email"]}


def add_note(db: Database, staff: Staff, conversation_id: str, text: str) -> dict[str, Any]:
    """An internal note on the handoff, for staff only (it is never an event of the conversation)."""
    visible(db, staff, conversation_id)
    with db.service() as conn:
        return conn.execute(
            """INSERT INTO handoff_notes (conversation_id, author_id, text) VALUES (%s, %s, %s)
               RETURNING id, text, created_at, author_id""", (conversation_id, staff.id, text)).fetchone()


def _locked(conn, conversation_id: str) -> dict:
    row = conn.execute("""SELECT h.*, c.user_id AS customer_id FROM handoffs h
                          JOIN conversations c ON c.id = h.conversation_id
                          WHERE h.conversation_id = %s FOR UPDATE OF h""", (conversation_id,)).fetchone()
    if row is None:
        raise NotFound(f"no handoff in conversation {conversation_id}")
    return row


def _event(conn, handoff: dict, payload: dict[str, Any], message_id: int | None = None) -> int:
    cid = str(handoff["conversation_id"])
    return append(conn, [NewEvent(cid, handoff["customer_id"], message_id, payload)], notify=True)[0]


def visible(db: Database, staff: Staff, conversation_id: str) -> dict[str, Any]:
    """The agent may act only on a handoff RLS shows them (a waiting one, or their own); returns it."""
    with db.as_user(staff.id) as conn:
        row = conn.execute("SELECT status, agent_id, first_reply_at FROM handoffs WHERE conversation_id = %s",
                           (conversation_id,)).fetchone()
    if row is None:
        raise NotFound(f"no handoff in conversation {conversation_id}")
    return row


def claim(db: Database, staff: Staff, conversation_id: str) -> dict[str, Any]:
    """The agent owns the conversation from now on: the bot stays silent until it is released.

    Any agent may claim a waiting handoff (they all see those); one another agent owns is a conflict."""
    with db.service() as conn:
        handoff = _locked(conn, conversation_id)
        if handoff["status"] == "resolved":
            raise HandoffConflict("this handoff is resolved")
        if handoff["status"] == "claimed":
            if handoff["agent_id"] != staff.id:
                raise HandoffConflict("another agent has claimed this conversation")
            return {"status": "claimed", "seq": None}
        conn.execute("""UPDATE handoffs SET status = 'claimed', agent_id = %s, claimed_at = now()
                        WHERE conversation_id = %s""", (staff.id, conversation_id))
        seq = _event(conn, handoff, {"type": "agent_joined", "agent": staff.public()})
    return {"status": "claimed", "seq": seq}


def _owned(conn, staff: Staff, conversation_id: str) -> dict:
    handoff = _locked(conn, conversation_id)
    if handoff["status"] != "claimed" or handoff["agent_id"] != staff.id:
        raise HandoffConflict("claim this conversation first")
    return handoff


def reply(db: Database, staff: Staff, conversation_id: str, text: str) -> dict[str, Any]:
    """The agent's message: stored in the customer's conversation and delivered to them.

    Returns its seq and, for the first human reply, how long the customer waited for it."""
    visible(db, staff, conversation_id)
    with db.service() as conn:
        handoff = _owned(conn, staff, conversation_id)
        message_id = conn.execute(
            """INSERT INTO messages (conversation_id, user_id, role, content, status, author_id)
               VALUES (%s, %s, 'agent', %s, 'complete', %s) RETURNING id""",
            (conversation_id, handoff["customer_id"], text, staff.id)).fetchone()["id"]
        waited = None
        if handoff["first_reply_at"] is None:
            waited = conn.execute(
                """UPDATE handoffs SET first_reply_at = now() WHERE conversation_id = %s
                   RETURNING extract(epoch FROM now() - created_at)::float AS waited""",
                (conversation_id,)).fetchone()["waited"]
        seq = _event(conn, handoff, {"type": "agent_message", "text": text, "agent": staff.public()}, message_id)
    return {"message_id": message_id, "seq": seq, "first_reply_after_s": waited}


def release(db: Database, staff: Staff, conversation_id: str) -> dict[str, Any]:
    """Hand the conversation back to the bot (it answers the next message, with the whole transcript)."""
    visible(db, staff, conversation_id)
    with db.service() as conn:
        handoff = _owned(conn, staff, conversation_id)
        conn.execute("UPDATE handoffs SET status = 'open', agent_id = NULL WHERE conversation_id = %s",
                     (conversation_id,))
        seq = _event(conn, handoff, {"type": "agent_left", "agent": staff.public()})
    return {"status": "open", "seq": seq}


def resolve(db: Database, staff: Staff, conversation_id: str, outcome: str) -> dict[str, Any]:
    """Close the handoff (and its ticket); the bot answers again if the customer writes."""
    visible(db, staff, conversation_id)
    with db.service() as conn:
        handoff = _locked(conn, conversation_id)
        if handoff["status"] == "resolved":
            raise HandoffConflict("this handoff is already resolved")
        if handoff["status"] == "claimed" and handoff["agent_id"] != staff.id:
            raise HandoffConflict("another agent has claimed this conversation")
        conn.execute("""UPDATE handoffs SET status = 'resolved', outcome = %s, resolved_at = now(),
                        agent_id = coalesce(agent_id, %s) WHERE conversation_id = %s""",
                     (outcome, staff.id, conversation_id))
        if handoff["ticket_id"] is not None:
            conn.execute("UPDATE support_tickets SET status = 'solved' WHERE id = %s", (handoff["ticket_id"],))
        seq = _event(conn, handoff, {"type": "handoff_resolved", "outcome": outcome})
    return {"status": "resolved", "seq": seq}


def customer_of(db: Database, conversation_id: str) -> int | None:
    """The signed-in customer of a conversation (None for a widget visitor)."""
    with db.service() as conn:
        row = conn.execute("SELECT user_id FROM conversations WHERE id = %s", (conversation_id,)).fetchone()
    return row["user_id"] if row else None


def queue_length(db: Database) -> int:
    with db.service() as conn:
        return conn.execute("SELECT count(*) AS n FROM handoffs WHERE status = 'open'").fetchone()["n"]
