"""Listings of users (the service role; not reachable from agent tools)."""

from __future__ import annotations

from core.errors import NotFound
from store.db import Database


def list_demo_users(db: Database) -> list[dict]:
    with db.service() as conn:
        return conn.execute(
            """SELECT id, handle, name, role, plan_id AS plan, demo_note AS note
               FROM users WHERE is_demo ORDER BY id"""
        ).fetchall()


def resolve_user(db: Database, ref: str | int) -> dict:
    """Find a user by numeric id or handle (e.g. `mateo`)."""
    with db.service() as conn:
        if isinstance(ref, int) or str(ref).isdigit():
            row = conn.execute("SELECT id, handle, name, role FROM users WHERE id = %s", (int(ref),)).fetchone()
        else:
            row = conn.execute("SELECT id, handle, name, role FROM users WHERE handle = %s", (ref,)).fetchone()
    if row is None:
        raise NotFound(f"no user {ref!r} (see `mentor users`)")
    return row
