"""`/api`: REST for the same data the chat produces (conversations, events, feedback, drafts, tickets), the
personas, demo sign-in and a user's site links."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from agents.personas import all_personas
from core.errors import Forbidden, InvalidArgument, NotFound
from server.auth import AuthError, issue_token
from server.deps import Svc, User
from server.protocol import FeedbackBody, NoNul
from server.services import Services
from store import conversations as convs

router = APIRouter(prefix="/api")


def _rows(s: Services, user_id: int, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    with s.db.as_user(user_id) as conn:
        return conn.execute(sql, params).fetchall()


@router.get("/personas")
def personas() -> list[dict[str, Any]]:
    return [{"id": p.id, "name": p.name, "role": p.role, "description": p.description, "anonymous": p.anonymous,
             "examples": p.examples, "advice": p.advice,
             "roleplay": "client_simulation" in p.behaviours} for p in all_personas().values()]


@router.get("/projects/suggested")
def suggested_projects(user: User, s: Svc) -> list[dict[str, Any]]:
    """Open marketplace projects in the caller's skills (else the newest), to practise a client role-play on."""
    return _rows(s, user, """SELECT p.id, p.title, p.project_type, p.budget_min, p.budget_max FROM projects p
                             WHERE p.status = 'open' ORDER BY EXISTS (
                                 SELECT 1 FROM project_skills ps JOIN freelancer_skills fs ON fs.skill_id = ps.skill_id
                                 WHERE ps.project_id = p.id AND fs.user_id = app_user_id()) DESC, p.posted_at DESC
                             LIMIT 12""")


class DemoLogin(BaseModel):
    user: NoNul = Field(min_length=1, max_length=64, description="demo user handle or id, e.g. 'mateo'")


@router.post("/demo-login")
def demo_login(body: DemoLogin, s: Svc) -> dict[str, Any]:
    """Sign in as a seeded demo user (MENTOR_DEMO=1 only): the chat page uses it."""
    if not s.settings.demo:
        raise Forbidden("demo login is disabled")
    with s.db.service() as conn:
        row = conn.execute("SELECT id, handle, name, role FROM users WHERE is_demo AND (handle = %s OR id::text = %s)",
                           (body.user, body.user)).fetchone()
    if row is None:
        raise NotFound(f"no demo user {body.user!r}")
    return {"token": issue_token(s.settings, row["id"]), "user": row}


@router.get("/demo-users")
def demo_users(s: Svc) -> list[dict[str, Any]]:
    if not s.settings.demo:
        return []
    from store.users import list_demo_users

    return list_demo_users(s.db)


@router.get("/me")
def me(user: User, s: Svc) -> dict[str, Any]:
    rows = _rows(s, user, "SELECT id, handle, name, role, plan_id AS plan FROM users WHERE id = app_user_id()")
    return rows[0] if rows else {}


@router.get("/conversations")
def list_conversations(user: User, s: Svc) -> list[dict[str, Any]]:
    # the caller's own: row-level security also shows support staff the conversations handed to them,
    # which are answered in /inbox, not continued here
    return _rows(s, user, """SELECT id, persona, title, mode, project_id, created_at, updated_at, last_seq
                             FROM conversations WHERE user_id = app_user_id()
                             ORDER BY updated_at DESC LIMIT 100""")


@router.get("/conversations/{conversation_id}")
def get_conversation(conversation_id: str, user: User, s: Svc) -> dict[str, Any]:
    with s.db.as_user(user) as conn:
        conv = conn.execute("SELECT id, persona, title, mode, project_id, created_at, updated_at, last_seq "
                            "FROM conversations WHERE id::text = %s", (conversation_id,)).fetchone()
        if conv is None:
            raise NotFound("conversation not found")
        messages = conn.execute("""SELECT id, role, content, client_id, status, usage, reply_to, created_at
                                   FROM messages WHERE conversation_id = %s ORDER BY id""", (conv["id"],)).fetchall()
        events = conn.execute("""SELECT seq, message_id, type, payload FROM conversation_events
                                 WHERE conversation_id = %s ORDER BY seq""", (conv["id"],)).fetchall()
        feedback = conn.execute("""SELECT DISTINCT ON (f.message_id) f.message_id, f.rating, f.implemented
                                   FROM feedback f JOIN messages m ON m.id = f.message_id
                                   WHERE m.conversation_id = %s ORDER BY f.message_id, f.id DESC""",
                                (conv["id"],)).fetchall()
    return {**conv, "messages": messages, "feedback": {str(f["message_id"]): f for f in feedback},
            "events": [{**e["payload"], "seq": e["seq"], "message_id": e["message_id"]} for e in events]}


@router.post("/messages/{message_id}/feedback", status_code=201)
async def post_feedback(message_id: int, body: FeedbackBody, user: User, s: Svc) -> dict[str, Any]:
    fid = await asyncio.to_thread(convs.save_feedback, s.db, user, message_id, rating=body.rating,
                                  comment=body.comment, implemented=body.implemented)
    return {"feedback_id": fid, "message_id": message_id}


@router.get("/proposals/drafts")
def drafts(user: User, s: Svc) -> list[dict[str, Any]]:
    return _rows(s, user, """SELECT pr.id, pr.project_id, p.title AS project, pr.bid_amount, pr.bid_type,
                                    pr.estimated_hours, pr.cover_letter, pr.rationale, pr.created_at
                             FROM proposals pr JOIN projects p ON p.id = pr.project_id
                             WHERE pr.status = 'draft' AND pr.freelancer_id = app_user_id()
                             ORDER BY pr.created_at DESC""")


@router.get("/support/tickets")
def tickets(user: User, s: Svc) -> list[dict[str, Any]]:
    return _rows(s, user, """SELECT id, conversation_id, subject, reason, status, created_at FROM support_tickets
                             ORDER BY created_at DESC""")


class SiteLink(BaseModel):
    site_key: NoNul = Field(min_length=1, max_length=100)
    user_token: NoNul = Field(min_length=1, max_length=4096, description="the site's signed token for its user")


@router.get("/me/site-links")
def my_site_links(user: User, s: Svc) -> list[dict[str, Any]]:
    """Third-party sites whose identity for you you linked to this account."""
    from server.auth import site_links

    return site_links(s.db, user)


@router.post("/me/site-links", status_code=201)
def link_site(body: SiteLink, user: User, s: Svc) -> dict[str, Any]:
    """Link a third-party site's identity to this account, so the support widget on that site reads your
    account, orders and payments. Both sides prove it: your token, and the site's signed token for you."""
    from server.auth import link_site_identity

    try:
        return link_site_identity(s.db, user, body.site_key, body.user_token, s.settings.site_token_max_s)
    except AuthError as exc:  # the site's token, not the caller's sign-in: a bad argument, not a 401
        raise InvalidSiteToken(str(exc)) from None


class InvalidSiteToken(InvalidArgument):
    code = "invalid_site_token"


@router.delete("/me/site-links/{link_id}", status_code=204)
def unlink_site(link_id: Annotated[int, Path(ge=1, le=2**63 - 1)], user: User, s: Svc) -> None:
    """Unlink: the widget on that site goes back to knowing only the site's own identity for you."""
    from server.auth import unlink_site_identity

    unlink_site_identity(s.db, user, link_id)
