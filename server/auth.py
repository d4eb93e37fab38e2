"""Who is calling: signed-in users (HS256 JWT) and widget visitors (site key + Origin allowlist).

Visitor ids are issued by the server and signed (HMAC with the JWT secret) together with their site's
id, so a visitor id copied to another site, or made up, is not accepted: the visitor gets a new one.
Browsers send credentials in the `Sec-WebSocket-Protocol` header (`bearer.<jwt>`, `visitor.<id>`),
never in a URL that access logs and proxies record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from functools import lru_cache
from pathlib import Path

import jwt
from fastapi import WebSocket

from core.errors import Conflict, InvalidArgument, NotFound, Unauthorized
from core.settings import Settings
from store.conversations import Caller
from store.db import Database
from store.secrets import read_or_create_secret

MAX_USER_ID = 2**63 - 1  # a bigint; a larger subject is a forged or broken token, not a user
SUBPROTOCOL = "mentor.v1"  # the WebSocket subprotocol the server selects; credentials ride beside it


class AuthError(Unauthorized):
    """Credentials that do not hold (HTTP 401; a socket is closed with 4401)."""


def jwt_secret(settings: Settings) -> str:
    """MENTOR_JWT_SECRET, or a random secret created once in MENTOR_HOME (so tokens survive restarts)."""
    if settings.jwt_secret:
        return settings.jwt_secret
    return _secret_file(Path(settings.mentor_home) / "jwt_secret")


@lru_cache(maxsize=8)
def _secret_file(path: Path) -> str:
    """Read once per process: every sign-in verifies a token with it."""
    return read_or_create_secret(path, 48)


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
        user_id = int(claims["sub"])
    except (TypeError, ValueError):
        raise AuthError("invalid token subject") from None
    if not 1 <= user_id <= MAX_USER_ID:
        raise AuthError("invalid token subject")
    return user_id


def _visitor_mac(settings: Settings, site_id: int, nonce: str) -> str:
    digest = hmac.new(jwt_secret(settings).encode(), f"visitor:{site_id}:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode().rstrip("=")


def issue_visitor_id(settings: Settings, site_id: int) -> str:
    nonce = secrets.token_urlsafe(15)
    return f"v1.{site_id}.{nonce}.{_visitor_mac(settings, site_id, nonce)}"


def valid_visitor_id(settings: Settings, site_id: int, visitor_id: str | None) -> bool:
    """Was this id issued by this server for this site?"""
    if not visitor_id or len(visitor_id) > 100:
        return False
    parts = visitor_id.split(".")
    if len(parts) != 4 or parts[0] != "v1" or parts[1] != str(site_id):
        return False
    return hmac.compare_digest(parts[3], _visitor_mac(settings, site_id, parts[2]))


WORKER_HEADER = "x-mentor-worker"  # on every response and socket: which worker process behind the balancer served it


def worker_name() -> str:
    return str(os.getpid())


async def accept_socket(ws: WebSocket) -> str | None:
    """Accept a WebSocket, selecting our subprotocol when offered; returns the offered header (credentials)."""
    offered = ws.headers.get("sec-websocket-protocol")
    await ws.accept(subprotocol=SUBPROTOCOL if offered and SUBPROTOCOL in offered else None,
                    headers=[(WORKER_HEADER.encode(), worker_name().encode())])
    return offered


def protocol_credentials(header: str | None) -> dict[str, str]:
    """`Sec-WebSocket-Protocol: mentor.v1, bearer.<jwt>, visitor.<id>, user.<site-signed jwt>` -> a dict."""
    found: dict[str, str] = {}
    for item in (header or "").split(","):
        kind, _, value = item.strip().partition(".")
        if kind in ("bearer", "visitor", "user") and value:
            found[kind] = value
    return found


def add_site(db: Database, name: str, origins: list[str], first_party: bool = False) -> dict:
    """`first_party`: the marketplace's own pages, whose signed `sub` is a marketplace user id; any other
    site vouches only for its own users (site-scoped identities, `site_identity`)."""
    bad = [o for o in origins if not o.startswith(("http://", "https://")) or o.endswith("/")]
    if bad or not origins:
        raise InvalidArgument(f"origins must look like https://example.com (no trailing slash): {bad or origins}")
    key = "site_" + secrets.token_urlsafe(18)
    with db.admin() as conn:  # the secret is returned this once (the CLI prints it) and never listed
        return conn.execute(
            "INSERT INTO sites (site_key, name, origins, secret, first_party) VALUES (%s, %s, %s, %s, %s) RETURNING *",
            (key, name, origins, secrets.token_urlsafe(32), first_party)).fetchone()


def set_first_party(db: Database, site_id: int, first_party: bool) -> dict:
    with db.admin() as conn:
        row = conn.execute("UPDATE sites SET first_party = %s WHERE id = %s RETURNING id, name, first_party",
                           (first_party, site_id)).fetchone()
    if row is None:
        raise NotFound(f"no site {site_id}")
    return row


def list_sites(db: Database) -> list[dict]:
    with db.admin() as conn:
        return conn.execute("SELECT id, site_key, name, origins, first_party FROM sites ORDER BY id").fetchall()


def site_caller(db: Database, settings: Settings, site_key: str, origin: str | None, visitor_id: str | None,
                address: str | None = None, user_token: str | None = None) -> Caller:
    """A widget visitor: the site key and the page's Origin must match; a visitor id this server did not
    issue for this site (copied from another site, or made up) is replaced by a fresh one.

    `user_token`: the host page's own signed-in user, in a token the site signed with its secret; the
    visitor is then that user (account tools run as them). A bad token is refused, never ignored."""
    with db.service() as conn:
        site = conn.execute("SELECT * FROM sites WHERE site_key = %s", (site_key[:100],)).fetchone()
    if site is None:
        raise AuthError("unknown site key")
    if origin not in site["origins"]:
        raise AuthError(f"origin {origin!r} is not allowed for this site")
    if user_token is not None:  # (the caller then loads the user, refusing one that does not exist)
        sub = verified_site_subject(site, user_token, settings.site_token_max_s)
        if site["first_party"]:
            return Caller(user_id=marketplace_user_id(sub), site_id=site["id"], visitor_id=None, address=address,
                          first_party=True)
        identity = site_identity(db, site["id"], sub)
        return identity_caller(site["id"], identity["id"], sub, identity["linked_user_id"], address)
    visitor = visitor_id if valid_visitor_id(settings, site["id"], visitor_id) else issue_visitor_id(settings,
                                                                                                      site["id"])
    return Caller(user_id=None, site_id=site["id"], visitor_id=visitor, address=address)


def verified_site_subject(site: dict, token: str, max_lifetime_s: int = 24 * 3600) -> str:
    """The user a site vouches for (`sub`): an HS256 JWT signed with the site's secret, with `sub` and a
    numeric `exp` at most `max_lifetime_s` ahead (a leaked token must not work for years). Anything else —
    another algorithm (`none` included), another site's secret, expired — is refused."""
    if not site.get("secret"):
        raise AuthError("this site has no secret for signed-in users; register it again with `mentor sites add`")
    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
    except jwt.PyJWTError:
        raise AuthError("the user token is malformed") from None
    if algorithm != "HS256":
        raise AuthError(f"the user token must be signed with HS256, not {str(algorithm)[:20]!r}")
    try:
        claims = jwt.decode(token, site["secret"], algorithms=["HS256"], options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("the user token has expired") from None
    except jwt.InvalidSignatureError:
        raise AuthError("the user token is not signed with this site's secret") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"the user token has no {exc.claim!r} claim (it needs sub and exp)") from None
    except (jwt.ImmatureSignatureError, jwt.InvalidIssuedAtError):
        raise AuthError("the user token is not valid yet (its nbf or iat is in the future)") from None
    except jwt.PyJWTError as exc:  # e.g. a sub that is not a string, an exp that is not a number
        raise AuthError(f"the user token is invalid: {str(exc)[:100]}") from None
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise AuthError("the user token's exp must be a number (seconds since 1970)")
    if exp - time.time() > max_lifetime_s:
        raise AuthError(f"the user token is valid for too long: exp may be at most {max_lifetime_s} s ahead")
    sub = claims["sub"]
    if not isinstance(sub, str) or not EXTERNAL_ID.fullmatch(sub):
        raise AuthError("the user token's sub must be a string of 1-128 letters, digits or ._:@+-")
    return sub


EXTERNAL_ID = re.compile(r"[A-Za-z0-9._:@+-]{1,128}", re.ASCII)


def marketplace_user_id(sub: str) -> int:
    """A first-party site's `sub`: a marketplace user id, ASCII digits only."""
    if not sub.isascii() or not sub.isdigit() or len(sub) > 18 or int(sub) < 1:
        raise AuthError("a first-party site's user token needs sub = a marketplace user id")
    return int(sub)


def identity_caller(site_id: int, identity: int, external_id: str, linked_user_id: int | None,
                    address: str | None) -> Caller:
    """A third-party site's user: the marketplace user who linked the identity, else the identity itself."""
    if linked_user_id is not None:
        return Caller(user_id=linked_user_id, site_id=site_id, address=address, site_identity=identity)
    return Caller(user_id=None, site_id=site_id, visitor_id=f"su.{identity}", address=address,
                  site_user=external_id, site_identity=identity)


def refreshed_identity(db: Database, caller: Caller) -> Caller:
    """The caller again, as the identity's link stands now: unlinking takes effect on open sockets too."""
    with db.service() as conn:
        row = conn.execute("SELECT external_id, linked_user_id FROM site_users WHERE id = %s",
                           (caller.site_identity,)).fetchone()
    if row is None:
        raise AuthError("this site identity no longer exists")
    if row["linked_user_id"] == caller.user_id:
        return caller
    return identity_caller(caller.site_id or 0, caller.site_identity or 0, row["external_id"], row["linked_user_id"],
                           caller.address)


def site_identity(db: Database, site_id: int, external_id: str) -> dict:
    """The site-scoped identity for a third-party site's own user (made on first sight)."""
    with db.service() as conn:
        return conn.execute(
            """INSERT INTO site_users (site_id, external_id) VALUES (%s, %s)
               ON CONFLICT (site_id, external_id) DO UPDATE SET last_seen_at = now()
               RETURNING id, linked_user_id""", (site_id, external_id)).fetchone()


def link_site_identity(db: Database, user_id: int, site_key: str, user_token: str,
                       max_lifetime_s: int = 24 * 3600) -> dict:
    """A signed-in marketplace user links the identity a third-party site vouches for in `user_token`:
    both sides prove it — the user's own JWT, and the site's signature on its identity."""
    with db.service() as conn:
        site = conn.execute("SELECT * FROM sites WHERE site_key = %s", (site_key[:100],)).fetchone()
    if site is None:
        raise NotFound("unknown site key")
    if site["first_party"]:
        raise InvalidArgument("a first-party site already signs in marketplace users; there is nothing to link")
    sub = verified_site_subject(site, user_token, max_lifetime_s)
    identity = site_identity(db, site["id"], sub)
    with db.service() as conn:
        row = conn.execute(
            """UPDATE site_users SET linked_user_id = %s, linked_at = now() WHERE id = %s
               AND (linked_user_id IS NULL OR linked_user_id = %s) RETURNING id, linked_at""",
            (user_id, identity["id"], user_id)).fetchone()
    if row is None:
        raise Conflict("this site identity is linked to another account")
    return {"id": row["id"], "site": site["name"], "site_key": site["site_key"], "external_id": sub,
            "linked_at": row["linked_at"]}


def unlink_site_identity(db: Database, user_id: int, link_id: int) -> None:
    with db.service() as conn:
        row = conn.execute("""UPDATE site_users SET linked_user_id = NULL, linked_at = NULL
                              WHERE id = %s AND linked_user_id = %s RETURNING id""", (link_id, user_id)).fetchone()
    if row is None:
        raise NotFound(f"no site link {link_id}")


def site_links(db: Database, user_id: int) -> list[dict]:
    with db.service() as conn:
        return conn.execute(
            """SELECT su.id, s.name AS site, s.site_key, su.external_id, su.linked_at FROM site_users su
               JOIN sites s ON s.id = su.site_id WHERE su.linked_user_id = %s ORDER BY su.linked_at""",
            (user_id,)).fetchall()


def user_exists(db: Database, user_id: int) -> dict:
    with db.service() as conn:
        row = conn.execute("SELECT id, handle, name, role FROM users WHERE id = %s", (user_id,)).fetchone()
    if row is None:
        raise NotFound("user not found")
    return row
