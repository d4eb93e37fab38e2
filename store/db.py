"""Database bootstrap (embedded pgserver or DATABASE_URL), connection pool and identity-scoped transactions.

Two ways in:
- `Database.admin()` — the connecting (owner) role, for migrations, seeding, ingestion and admin listings.
- `Database.as_user(user_id)` — a transaction running as the `mentor_app` role, which cannot bypass
  row-level security, with `app.user_id` set for that transaction only. Everything done on behalf of
  a caller (agent tools, API handlers) goes through it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from store.errors import DatabaseUnavailable, DataDirInUse, PgvectorMissing
from store.settings import Settings, get_settings

log = logging.getLogger(__name__)

APP_ROLE = "mentor_app"
POOL_TIMEOUT_S = 5.0  # how long a request waits for a connection before it is told the database is unavailable


def _check_pgdata_dir(pgdata: Path) -> None:
    """Refuse a data directory that exists but is not ours to initialise (a file, or foreign files)."""
    if pgdata.exists() and not pgdata.is_dir():
        raise DataDirInUse(f"data directory {pgdata} exists and is not a directory")
    if pgdata.is_dir() and not (pgdata / "PG_VERSION").exists():
        foreign = [p.name for p in pgdata.iterdir() if not p.name.startswith(".")]
        if foreign:
            raise DataDirInUse(
                f"data directory {pgdata} is in use by something else (contains {', '.join(sorted(foreign)[:3])}); "
                "point MENTOR_HOME at an empty or existing mentor directory"
            )


def start_embedded(pgdata: Path) -> str:
    """Start (or attach to) the pgserver PostgreSQL in `pgdata`; return its connection URI."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"runtime-{os.getuid()}"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    import pgserver  # imported lazily: only the embedded default needs it

    _check_pgdata_dir(pgdata)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises CalledProcessError/Timeout/AssertionError
        raise DatabaseUnavailable(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc} (see {pgdata / 'log'})"
        ) from None
    return server.get_uri()


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


def _configure(conn: psycopg.Connection) -> None:
    """Teach each pooled connection the vector type; leave it idle, as the pool requires."""
    register_vector(conn)
    conn.commit()


class Database:
    """A connected database: the URL, a lazily opened pool, and the two ways in."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8) -> None:
        self.url = url
        self._min_size = min_size
        self._max_size = max_size
        self._pool: ConnectionPool | None = None

    @classmethod
    def connect(cls, settings: Settings | None = None) -> Database:
        """Resolve where the database is (URL or embedded) and connect to it."""
        settings = settings or get_settings()
        url = settings.database_url or start_embedded(settings.pgdata)
        return cls.from_url(url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)

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

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            self._pool = ConnectionPool(
                self.url,
                min_size=self._min_size,
                max_size=self._max_size,
                kwargs={"row_factory": dict_row, "autocommit": False},
                configure=_configure,
                check=ConnectionPool.check_connection,
                timeout=POOL_TIMEOUT_S,
                reconnect_timeout=24 * 3600,  # keep trying through a long outage; requests fail fast meanwhile
                open=True,
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    @contextmanager
    def _transaction(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """A pooled connection in a transaction; a lost or unreachable server becomes DatabaseUnavailable.

        The pool checks each connection before handing it out, so after a database restart the dead
        connections are replaced and the service recovers without a restart of its own.
        """
        try:
            with self.pool.connection(timeout=timeout) as conn, conn.transaction():
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
        """A transaction as the connecting (owner) role: migrations, seeding, ingestion, admin listings."""
        with self._transaction() as conn:
            yield conn

    @contextmanager
    def as_user(self, user_id: int | None) -> Iterator[psycopg.Connection]:
        """A transaction as `mentor_app` with `app.user_id` set; RLS shows only that user's rows.

        `None` means an anonymous caller: public tables only, no private row is visible.
        """
        with self._transaction() as conn:
            conn.execute(f"SET LOCAL ROLE {APP_ROLE}")
            conn.execute(
                "SELECT set_config('app.user_id', %s, true)", ("" if user_id is None else str(int(user_id)),)
            )
            yield conn
