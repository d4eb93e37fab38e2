"""Who is calling: signed-in users (HS256 JWT) and widget visitors (site key + Origin allowlist)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import jwt

from store.conversations import Caller
from store.db import Database
from store.errors import MentorError, NotFound
from store.settings import Settings


class AuthError(MentorError):
    code = "unauthorized"


def jwt_secret(settings: Settings) -> str:
    """MENTOR_JWT_SECRET, or a random secret created once in MENTOR_HOME (so tokens survive restarts)."""
    if settings.jwt_secret:
        return settings.jwt_secret
    path = Path(settings.mentor_home) / "jwt_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def issue_token(settings: Settings, user_id: int, ttl_s: int | None = None) -> str:
    now = int(time.time())
    return jwt.encode({"sub": str(user_id), "iat": now, "exp": now + (ttl_s or settings.jwt_ttl_s)},
                      jwt_secret(settings), algorithm="HS256")


def verify_token(settings: Settings, token: str) -> int:
    try:
        claims = jwt.decode(token, jwt_secret(settings), algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidTokenError:
        raise AuthError("invalid token") from None
    try:
        return int(claims["sub"])
    except (TypeError, ValueError):
        raise AuthError("invalid token subject") from None


def add_site(db: Database, name: str, origins: list[str]) -> dict:
    bad = [o for o in origins if not o.startswith(("http://", "https://")) or o.endswith("/")]
    if bad or not origins:
        raise MentorError(f"origins must look like https://example.com (no trailing slash): {bad or origins}")
    key = "site_" + secrets.token_urlsafe(18)
    with db.admin() as conn:
        return conn.execute("INSERT INTO sites (site_key, name, origins) VALUES (%s, %s, %s) RETURNING *",
                            (key, name, origins)).fetchone()


def list_sites(db: Database) -> list[dict]:
    with db.admin() as conn:
        return conn.execute("SELECT id, site_key, name, origins FROM sites ORDER BY id").fetchall()


def site_caller(db: Database, site_key: str, origin: str | None, visitor_id: str | None) -> Caller:
    with db.service() as conn:
        site = conn.execute("SELECT * FROM sites WHERE site_key = %s", (site_key,)).fetchone()
    if site is None:
        raise AuthError("unknown site key")
    if origin not in site["origins"]:
        raise AuthError(f"origin {origin!r} is not allowed for this site")
    visitor = visitor_id if visitor_id and 16 <= len(visitor_id) <= 64 and visitor_id.isascii() else None
    return Caller(user_id=None, site_id=site["id"], visitor_id=visitor or "v_" + secrets.token_urlsafe(18))


def user_exists(db: Database, user_id: int) -> dict:
    with db.service() as conn:
        row = conn.execute("SELECT id, handle, name, role FROM users WHERE id = %s", (user_id,)).fetchone()
    if row is None:
        raise NotFound("user not found")
    return row
