"""Worker leases (store/migrations/0018): how a worker that stopped running, but whose database sessions
live on, is told apart from a slow one, and kept from writing once the others have closed its answers.

A worker renews its lease from its event loop (server/hub.py). Another worker that finds a lease not
renewed for its `lease_s` fences it: it ends that worker's sessions (its liveness lock and any row locks
go with them) and marks the lease fenced, so `close_orphans` treats it as dead. `append_events` refuses
a fenced writer's events (core.errors.WorkerFenced), and the fenced worker ends itself when it learns.
"""

from __future__ import annotations

import psycopg

from store.db import Database

FORGET_AFTER = "1 day"  # leases not renewed for this long are deleted (a writer without one is refused)
_STALE = "renewed_at < now() - make_interval(secs => lease_s)"


def session_names(app_name: str) -> tuple[str, str]:
    """A worker's sessions in pg_stat_activity: its pool's, and its hub's own (listener, lease)."""
    return app_name, f"{app_name}/hub"


async def register(conn: psycopg.AsyncConnection, worker_id: int, app_name: str, lease_s: float) -> None:
    """Take this worker's lease (idempotent: a reconnect keeps the row, and a fence on it)."""
    await conn.execute("""INSERT INTO worker_leases (id, app_name, lease_s) VALUES (%s, %s, %s)
                          ON CONFLICT (id) DO NOTHING""", (worker_id, app_name, lease_s))


async def renew(conn: psycopg.AsyncConnection, worker_id: int) -> bool:
    """Renew the lease; False if it was fenced off (or forgotten): the worker must stop writing."""
    cur = await conn.execute("""UPDATE worker_leases SET renewed_at = now() WHERE id = %s AND NOT fenced
                                RETURNING id""", (worker_id,))
    return await cur.fetchone() is not None


async def release(conn: psycopg.AsyncConnection, worker_id: int) -> None:
    """A clean stop: the lease is gone (its answers are closed by the usual rule for a dead worker)."""
    await conn.execute("DELETE FROM worker_leases WHERE id = %s AND NOT fenced", (worker_id,))


def fence_stale(db: Database, me: int, my_app_name: str) -> list[int]:
    """Fence off every other worker whose lease was not renewed in time; return their ids.

    Its sessions are ended first (it may be frozen inside a transaction, holding the lock the fence
    needs); then the lease is marked fenced, which waits for any batch of its still in flight (that
    batch holds the lease row FOR SHARE) — so no event of it can be stored after the fence commits.
    Only its service sessions are ended (its owner's, for admin work, may be a superuser's, which only a
    superuser may end; they hold none of the turns' locks), and only under a name no live lease uses:
    app instances in one process (the tests) share one database client, and one of them stopping must
    not cut the others' connections.
    """
    with db.service() as conn:
        conn.execute("SET LOCAL lock_timeout = '5s'")
        conn.execute("DELETE FROM worker_leases WHERE renewed_at < now() - %s::interval", (FORGET_AFTER,))
        stale = conn.execute(f"SELECT id, app_name FROM worker_leases WHERE id <> %s AND NOT fenced AND {_STALE}",
                             (me,)).fetchall()
        if not stale:
            return []
        live = {r["app_name"] for r in conn.execute(f"SELECT app_name FROM worker_leases WHERE NOT ({_STALE})")}
        ending = {r["app_name"] for r in stale} - live - {my_app_name}
        conn.execute("""SELECT pg_terminate_backend(pid, 2000) FROM pg_stat_activity
                        WHERE application_name = ANY(%s) AND pid <> pg_backend_pid()
                          AND usesysid = (SELECT oid FROM pg_roles WHERE rolname = current_user)""",
                     ([name for app in sorted(ending) for name in session_names(app)],))
        rows = conn.execute(f"""UPDATE worker_leases SET fenced = true
                                WHERE id = ANY(%s) AND NOT fenced AND {_STALE} RETURNING id""",
                            ([r["id"] for r in stale],)).fetchall()
        return sorted(r["id"] for r in rows)
