"""The two WebSockets: `/ws/chat` (customers, users, widget visitors) and `/ws/inbox` (support staff).
Their sessions live in server/ws.py and server/inbox_ws.py; the protocol is docs/protocol.md."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from server.inbox_ws import inbox_endpoint
from server.ws import chat_endpoint

router = APIRouter()


@router.websocket("/ws/chat")
async def ws_chat(websocket: WebSocket) -> None:
    await chat_endpoint(websocket, websocket.app.state.services)


@router.websocket("/ws/inbox")
async def ws_inbox(websocket: WebSocket) -> None:
    await inbox_endpoint(websocket, websocket.app.state.services)
