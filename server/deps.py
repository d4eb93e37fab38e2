"""What routes depend on, in one place: the services, the signed-in user, support staff, path ids."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Request

from core.errors import Forbidden, NotFound, Unauthorized
from server.auth import AuthError, user_exists, verify_token
from server.services import Services
from store import handoffs


def services(request: Request) -> Services:
    return request.app.state.services


Svc = Annotated[Services, Depends(services)]


def current_user(request: Request, s: Svc) -> int:
    """The caller's user id: a valid token for a user who exists (a deleted user's token is refused)."""
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        raise Unauthorized("Authorization: Bearer <token> needed")
    try:
        user_id = verify_token(s.settings, header[7:])
        user_exists(s.db, user_id)
    except (AuthError, NotFound) as exc:
        raise Unauthorized(str(exc)) from None
    return user_id


User = Annotated[int, Depends(current_user)]


def current_staff(user: User, s: Svc) -> handoffs.Staff:
    staff = handoffs.staff_member(s.db, user)
    if staff is None:
        raise Forbidden("the inbox is for support agents")
    return staff


Staff = Annotated[handoffs.Staff, Depends(current_staff)]


def current_admin(user: User, s: Svc) -> handoffs.Staff:
    """Operators: the reports read every conversation, so only the `admin` role (agents too get 403)."""
    staff = handoffs.staff_member(s.db, user)
    if staff is None or staff.role != "admin":
        raise Forbidden("this is for admins (the operator's reports and the bots' knowledge)")
    return staff


Admin = Annotated[handoffs.Staff, Depends(current_admin)]


def conversation_id(conversation_id: Annotated[str, Path(max_length=100, description="a conversation's UUID")]
                    ) -> str:
    """A conversation id from the path, in canonical form; anything that is not a UUID names no conversation
    (404, never a database error)."""
    try:
        return str(uuid.UUID(conversation_id))
    except ValueError:
        raise NotFound("no such conversation (ids are UUIDs)") from None


ConversationId = Annotated[str, Depends(conversation_id)]
