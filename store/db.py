"""Database bootstrap (embedded PostgreSQL or DATABASE_URL), connection pools and identity-scoped transactions.

Three ways in (store/migrations/0008_least_privilege.sql has the roles):
- `Database.admin()` — the connecting (owner) role: migrations, seeding, ingestion, `mentor` admin
  commands. The running service never uses it after start-up.
- `Database.service()` — the `mentor_service` login role (not a superuser, owns nothing): the service's
  own bookkeeping — conversations, messages, events, widget sites, reading users to authenticate them.
- `Database.as_user(user_id)` — a `mentor_service` transaction switched to the `mentor_app` role, which
  cannot bypass row-level security, with `app.user_id` set for that transaction only. Everything done on
  behalf of a caller (agent tools, API handlers) goes through it.

mentor_service's password is `MENTOR_DB_SERVICE_PASSWORD`, else generated once into
`MENTOR_HOME/db_service_password` (0600); the owner sets it at start-up (several hosts sharing one
database must be given the same one). If the owner may not create roles (a managed database without
CREATEROLE), the service falls back to the owner's connection and logs a warning.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from core.errors import DatabaseUnavailable, PgvectorMissing
from core.settings import Settings, get_settings
from store.secrets import read_or_create_secret

log = logging.getLogger(__name__)

APP_ROLE = "mentor_app"
POOL_TIMEOUT_S = 5.0  # how long a request waits for a connection before it is told the database is unavailable


def start_embedded(home: Path) -> str:
    """Start (or attach to) the embedded PostgreSQL of MENTOR_HOME (store/embedded.py); return its URI."""
    from store.embedded import embedded_server

    return embedded_server(home).start()


def ensure_pgvector(conn: psycopg.Connection) -> None:
    """Create the vector extension, or explain exactly why this server cannot have it."""
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
    if row:
        return
    available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    if not available:
        raise PgvectorMissing(
            "the PostgreSQL server at DATABASE_URL has no pgvector extension installed; "
            "install pgvector (https://github.com/pgvector/pgvector) or unset DATABASE_URL to use the embedded database"
        )
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.commit()
    except psycopg.errors.InsufficientPrivilege:
        conn.rollback()
        user = conn.info.user
        raise PgvectorMissing(
            f"pgvector is not enabled in database {conn.info.dbname!r} and role {user!r} may not create it; "
            "run CREATE EXTENSION vector as a superuser"
        ) from None


HNSW_EF_SEARCH = 100  # every pooled session's hnsw.ef_search (pgvector's default, 40, misses too much here)


def _configure(conn: psycopg.Connection) -> None:
    """Teach each pooled connection the vector type and the HNSW search width (so a search need not
    send a SET LOCAL first: a round trip per search); leave it idle, as the pool requires."""
    register_vector(conn)
    conn.execute(f"SET hnsw.ef_search = {HNSW_EF_SEARCH}")
    conn.commit()


SERVICE_ROLE = "mentor_service"
_ROLE_LOCK_KEY = 7_340_022  # pg_advisory_xact_lock key: one login set-up at a time (store/migrate.py has ..21)
CHECK_AFTER_IDLE_S = 1.0
_returned: dict[int, float] = {}  # id(connection) -> when it last went back to a pool


def _mark_returned(conn: psycopg.Connection) -> None:
    _returned[id(conn)] = time.monotonic()


def _check_if_idle(conn: psycopg.Connection) -> None:
    """Check a pooled connection before use only if it sat idle for a while (a database restart shows up
    there). A check is a round trip: on every checkout it was ~1/5 of a turn's database time under a
    burst, where connections go straight back into use. A connection that breaks in use is discarded by
    the pool when it comes back."""
    if time.monotonic() - _returned.get(id(conn), 0.0) > CHECK_AFTER_IDLE_S:
        ConnectionPool.check_connection(conn)


def _with_login(url: str, user: str, password: str) -> str:
    """The same server and database as `url`, as another role."""
    params = conninfo_to_dict(url)
    params.update(user=user, password=password)
    return make_conninfo(**{k: str(v) for k, v in params.items()})


class Database:
    """A connected database: the owner URL, lazily opened pools, and the three ways in."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 16) -> None:
        self.url = url
        self._min_size = min_size
        self._max_size = max_size
        self._pool: ConnectionPool | None = None
        self._service_pool: ConnectionPool | None = None
        self._service_url: str | None = None
        # which process a connection serves, in pg_stat_activity; unique per Database, so a worker's
        # sessions (and no other's) can be ended when it is fenced off (store/workers.py)
        self.application_name = f"mentor/{os.getpid()}/{secrets.token_hex(3)}"

    @classmethod
    def connect(cls, settings: Settings | None = None, *, serving: bool = False) -> Database:
        """Resolve where the database is (URL or embedded) and connect to it.

        A serving worker keeps its whole pool open unless MENTOR_DB_POOL_MIN says otherwise: under a burst,
        connections opened on demand cost a backend start each, and the pool shrinks back to its minimum
        after 10 idle minutes, so only the minimum is warm when the next burst comes.
        """
        settings = settings or get_settings()
        url = settings.database_url or start_embedded(settings.mentor_home)
        keep_open = settings.db_pool_min or (settings.db_pool_max if serving else 1)
        return cls.from_url(url, min_size=keep_open, max_size=settings.db_pool_max)

    @classmethod
    def from_url(cls, url: str, *, min_size: int = 1, max_size: int = 8) -> Database:
        """Check the server is reachable, new enough and has pgvector (created if allowed)."""
        try:
            with psycopg.connect(url, connect_timeout=10) as conn:
                version = conn.info.server_version
                if version < 150000:
                    raise DatabaseUnavailable(
                        f"PostgreSQL {version // 10000} is too old; version 15 or newer is required"
                    )
                ensure_pgvector(conn)
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseUnavailable(f"cannot connect to the database: {first}") from None
        return cls(url, min_size=min_size, max_size=max_size)

    def _open_pool(self, url: str, min_size: int) -> ConnectionPool:
        return ConnectionPool(
                url,
                min_size=min_size,
                max_size=self._max_size,
                kwargs={"row_factory": dict_row, "autocommit": False, "application_name": self.application_name},
                configure=_configure,
                check=_check_if_idle,
                reset=_mark_returned,
                timeout=POOL_TIMEOUT_S,
                reconnect_timeout=24 * 3600,  # keep trying through a long outage; requests fail fast meanwhile
                open=True,
            )

    @property
    def pool(self) -> ConnectionPool:
        """The owner's pool: opened only when admin work is done (one connection kept)."""
        if self._pool is None:
            self._pool = self._open_pool(self.url, 1)
        return self._pool

    def service_url(self) -> str:
        """mentor_service's login on this database, enabled (LOGIN, password) by the owner on first use."""
        if self._service_url is not None:
            return self._service_url
        settings = get_settings()
        password = settings.db_service_password or read_or_create_secret(
            settings.mentor_home / "db_service_password")
        try:
            with psycopg.connect(self.url, connect_timeout=10, autocommit=True) as conn:
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (SERVICE_ROLE,)).fetchone() is None:
                    if conn.execute("SELECT to_regclass('schema_migrations') IS NULL AS bare").fetchone()[0]:
                        raise DatabaseUnavailable("the database has no mentor schema: run `mentor setup` or "
                                                  "`mentor db migrate`")
                    log.warning("no %s role (the owner may not create roles): the service uses the owner's "
                                "connection", SERVICE_ROLE)
                    self._service_url = self.url
                    return self._service_url
                with conn.transaction():  # workers starting together take turns: concurrent ALTER ROLEs of
                    # one role fail with "tuple concurrently updated"
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ROLE_LOCK_KEY,))
                    conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(SERVICE_ROLE),
                                                                                   sql.Literal(password)))
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseUnavailable(f"the database is unavailable: {first}") from None
        except psycopg.errors.InsufficientPrivilege:
            log.warning("the owner may not set %s's password: the service uses the owner's connection", SERVICE_ROLE)
            self._service_url = self.url
            return self._service_url
        self._service_url = _with_login(self.url, SERVICE_ROLE, password)
        return self._service_url

    @property
    def service_pool(self) -> ConnectionPool:
        if self._service_pool is None:
            self._service_pool = self._open_pool(self.service_url(), self._min_size)
        return self._service_pool

    def warm(self, timeout: float = 10.0) -> None:
        """Open the service pool now and wait for the connections it keeps, so a serving worker's first
        users do not pay for them; a slow start is logged, not fatal (the pool keeps connecting)."""
        try:
            self.service_pool.wait(timeout=timeout)
        except PoolTimeout:
            log.warning("the database pool was not full after %.0f s; it keeps connecting", timeout)

    def close(self) -> None:
        for pool in (self._pool, self._service_pool):
            if pool is not None:
                pool.close()
        self._pool = self._service_pool = None

    @contextmanager
    def _transaction(self, timeout: float | None = None, *, owner: bool = False) -> Iterator[psycopg.Connection]:
        """A pooled connection in a transaction; a lost or unreachable server becomes DatabaseUnavailable.

        The pool checks each connection before handing it out, so after a database restart the dead
        connections are replaced and the service recovers without a restart of its own.
        """
        try:
            pool = self.pool if owner else self.service_pool
            with pool.connection(timeout=timeout) as conn, conn.transaction():
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseUnavailable(f"the database is unavailable: {first}") from None
        except psycopg.errors.UndefinedTable as exc:
            raise DatabaseUnavailable(f"the database has no mentor schema ({str(exc).splitlines()[0]}): "
                                      "run `mentor setup` or `mentor db migrate`") from None

    def ping(self, timeout: float = 2.0) -> bool:
        """Is the database answering right now? (readiness; never raises)"""
        try:
            with self._transaction(timeout=timeout) as conn:
                conn.execute("SELECT 1")
            return True
        except DatabaseUnavailable:
            return False

    @contextmanager
    def admin(self) -> Iterator[psycopg.Connection]:
        """A transaction as the connecting (owner) role: migrations, seeding, ingestion, admin commands."""
        with self._transaction(owner=True) as conn:
            yield conn

    @contextmanager
    def service(self) -> Iterator[psycopg.Connection]:
        """A transaction as mentor_service: the service's own bookkeeping (conversations, sites, users)."""
        with self._transaction() as conn:
            yield conn

    @contextmanager
    def as_user(self, user_id: int | None) -> Iterator[psycopg.Connection]:
        """A transaction as `mentor_app` with `app.user_id` set; RLS shows only that user's rows.

        `None` means an anonymous caller: public tables only, no private row is visible.
        """
        with self._transaction() as conn:
            # one round trip: set_config('role', ..., true) is SET LOCAL ROLE
            conn.execute(f"SELECT set_config('role', '{APP_ROLE}', true), set_config('app.user_id', %s, true)",
                         ("" if user_id is None else str(int(user_id)),))
            yield conn
