"""The knowledge tables: documents and their chunks, the sources that import and re-sync websites, their
jobs and the impact reports (store/migrations/0024). Each function takes an open transaction, so a caller
decides whose it is (the owner's for the CLI, the service role's for the server)."""

from __future__ import annotations

import json
from typing import Any

import psycopg

JOB_STALE_S = 120  # a running job whose heartbeat is older than this lost its process
HEARTBEAT_S = 15  # how often a running job's process says it is alive (retrieval/sync.py), whatever it is doing


def corpus_stats(conn: psycopg.Connection) -> list[dict]:
    return conn.execute(
            """SELECT c.name, c.description,
                      (SELECT count(*) FROM documents d WHERE d.corpus = c.name) AS documents,
                      (SELECT count(*) FROM chunks k WHERE k.corpus = c.name) AS chunks
               FROM corpora c ORDER BY c.name"""
    ).fetchall()


def cited(conn: psycopg.Connection, chunk_ids: list[int], change: str) -> list[dict]:
    """The past answers that cited these chunks (before they go): what the impact report lists."""
    if not chunk_ids:
        return []
    return conn.execute(
        """SELECT c.id AS citation_id, c.conversation_id, c.message_id, c.source, c.title, c.snippet,
                  m.created_at AS cited_at, %s AS change
           FROM citations c JOIN messages m ON m.id = c.message_id
           WHERE c.chunk_id = ANY(%s) ORDER BY m.created_at DESC""", (change, chunk_ids)).fetchall()


# --- documents -------------------------------------------------------------------------------------------

_DOCUMENT = """d.id, d.corpus, d.title, d.source, d.content_hash AS sha256, d.ingested_at,
               CASE WHEN d.source_id IS NULL THEN 'upload' ELSE d.source_id::text END AS origin,
               (SELECT count(*) FROM chunks k WHERE k.document_id = d.id) AS chunks"""


def list_documents(conn: psycopg.Connection, corpus: str | None = None, *, limit: int = 1000,
                   offset: int = 0) -> list[dict]:
    return conn.execute(f"SELECT {_DOCUMENT} FROM documents d WHERE %(corpus)s::text IS NULL OR d.corpus = %(corpus)s"
                        " ORDER BY d.corpus, d.source LIMIT %(limit)s OFFSET %(offset)s",
                        {"corpus": corpus, "limit": limit, "offset": offset}).fetchall()


def get_document(conn: psycopg.Connection, document_id: int) -> dict | None:
    row = conn.execute(f"SELECT {_DOCUMENT} FROM documents d WHERE d.id = %s", (document_id,)).fetchone()
    if row is None:
        return None
    row["chunk_list"] = conn.execute(
        """SELECT id, ordinal, section, anchor, token_count, text FROM chunks WHERE document_id = %s
           ORDER BY ordinal""", (document_id,)).fetchall()
    return row


def delete_document(conn: psycopg.Connection, document_id: int) -> dict | None:
    """Remove a document and its chunks; returns it with the past answers that cited it (their citations
    keep the snippet they stored), or None if there is no such document."""
    row = conn.execute(f"SELECT {_DOCUMENT} FROM documents d WHERE d.id = %s FOR UPDATE", (document_id,)).fetchone()
    if row is None:
        return None
    ids = [r["id"] for r in conn.execute("SELECT id FROM chunks WHERE document_id = %s", (document_id,))]
    row["impacts"] = cited(conn, ids, "removed")
    conn.execute("DELETE FROM documents WHERE id = %s", (document_id,))
    return row


# --- sources ---------------------------------------------------------------------------------------------

_SOURCE = """s.id, s.corpus, s.sitemap_url, s.urls, s.every_hours, s.next_sync_at, s.created_at,
             (SELECT count(*) FROM documents d WHERE d.source_id = s.id) AS documents"""


def create_source(conn: psycopg.Connection, corpus: str, sitemap_url: str | None, urls: list[str],
                  every_hours: int | None) -> dict:
    return conn.execute(
        f"""WITH s AS (INSERT INTO knowledge_sources (corpus, sitemap_url, urls, every_hours, next_sync_at)
                       VALUES (%s, %s, %s, %s, now() + make_interval(hours => %s)) RETURNING *)
            SELECT {_SOURCE} FROM s""",
        (corpus, sitemap_url, urls, every_hours, every_hours)).fetchone()


def get_source(conn: psycopg.Connection, source_id: int) -> dict | None:
    row = conn.execute(f"SELECT {_SOURCE} FROM knowledge_sources s WHERE s.id = %s", (source_id,)).fetchone()
    if row is not None:
        row["last_job"] = last_job(conn, source_id)
    return row


def list_sources(conn: psycopg.Connection) -> list[dict]:
    rows = conn.execute(f"SELECT {_SOURCE} FROM knowledge_sources s ORDER BY s.id").fetchall()
    for row in rows:
        row["last_job"] = last_job(conn, row["id"])
    return rows


def delete_source(conn: psycopg.Connection, source_id: int) -> list[dict] | None:
    """The source and every page it imported (documents cascade, and their chunks); returns the past answers
    that cited them, or None if there is no such source."""
    if conn.execute("SELECT 1 FROM knowledge_sources WHERE id = %s FOR UPDATE", (source_id,)).fetchone() is None:
        return None
    ids = [r["id"] for r in conn.execute(
        "SELECT k.id FROM chunks k JOIN documents d ON d.id = k.document_id WHERE d.source_id = %s", (source_id,))]
    impacts = cited(conn, ids, "removed")
    conn.execute("DELETE FROM knowledge_sources WHERE id = %s", (source_id,))
    return impacts


def source_pages(conn: psycopg.Connection, source_id: int) -> dict[str, dict]:
    """The pages a source imported before, by URL, with what their server said last time."""
    return {r["source"]: r for r in conn.execute(
        """SELECT id, source, content_hash, etag, last_modified, lastmod FROM documents WHERE source_id = %s""",
        (source_id,))}


def remove_pages(conn: psycopg.Connection, document_ids: list[int]) -> list[dict]:
    """Prune pages that left their source: their answers' citations first (the impact report), then them."""
    ids = [r["id"] for r in conn.execute("SELECT id FROM chunks WHERE document_id = ANY(%s)", (document_ids,))]
    impacts = cited(conn, ids, "removed")
    conn.execute("DELETE FROM documents WHERE id = ANY(%s)", (document_ids,))
    return impacts


# --- jobs --------------------------------------------------------------------------------------------------

_JOB = """j.id, j.source_id, j.status, j.trigger, j.done, j.total, j.added, j.updated, j.unchanged, j.removed,
          j.embedded, j.errors, j.reason, j.started_at, j.heartbeat_at, j.finished_at,
          (SELECT count(DISTINCT i.message_id) FROM knowledge_impacts i WHERE i.job_id = j.id) AS impacted"""


def start_job(conn: psycopg.Connection, source_id: int, trigger: str) -> dict | None:
    """A running job for the source, or None when one is already running (one at a time per source)."""
    return conn.execute(
        """INSERT INTO knowledge_jobs (source_id, trigger) VALUES (%s, %s)
           ON CONFLICT (source_id) WHERE status = 'running' DO NOTHING RETURNING id""",
        (source_id, trigger)).fetchone()


def running_job(conn: psycopg.Connection, source_id: int) -> int | None:
    row = conn.execute("SELECT id FROM knowledge_jobs WHERE source_id = %s AND status = 'running'",
                       (source_id,)).fetchone()
    return row["id"] if row else None


def progress(conn: psycopg.Connection, job_id: int, **counts: Any) -> bool:
    """Counts so far, and the heartbeat that tells a live job from one whose process is gone; False when the
    job is no longer running (failed meanwhile: its process must stop)."""
    sets = ", ".join(f"{k} = %({k})s" for k in counts)
    return conn.execute(f"UPDATE knowledge_jobs SET {sets}{', ' if sets else ''}heartbeat_at = now() "
                        "WHERE id = %(id)s AND status = 'running'", {**counts, "id": job_id}).rowcount > 0


def add_errors(conn: psycopg.Connection, job_id: int, errors: list[dict]) -> None:
    if errors:
        conn.execute("UPDATE knowledge_jobs SET errors = errors || %s::jsonb WHERE id = %s",
                     (json.dumps(errors), job_id))


def add_impacts(conn: psycopg.Connection, job_id: int, impacts: list[dict]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO knowledge_impacts (job_id, citation_id, conversation_id, message_id, source, title,
                                              change, snippet, cited_at)
               VALUES (%(job)s, %(citation_id)s, %(conversation_id)s, %(message_id)s, %(source)s, %(title)s,
                       %(change)s, %(snippet)s, %(cited_at)s) ON CONFLICT DO NOTHING""",
            [{**i, "job": job_id} for i in impacts])


def finish_job(conn: psycopg.Connection, job_id: int, status: str, reason: str | None = None) -> None:
    conn.execute("""UPDATE knowledge_jobs SET status = %s, reason = %s, finished_at = now(), heartbeat_at = now()
                    WHERE id = %s AND status = 'running'""", (status, reason, job_id))


def get_job(conn: psycopg.Connection, job_id: int, *, impact_limit: int = 500) -> dict | None:
    row = conn.execute(f"SELECT {_JOB} FROM knowledge_jobs j WHERE j.id = %s", (job_id,)).fetchone()
    if row is not None:
        row["impact"] = conn.execute(
            """SELECT conversation_id, message_id, cited_at, source, title, change, snippet FROM knowledge_impacts
               WHERE job_id = %s ORDER BY cited_at DESC LIMIT %s""", (job_id, impact_limit)).fetchall()
    return row


def job_view(job: dict) -> dict:
    """A job as the API and `mentor knowledge job --json` show it."""
    counts = ("added", "updated", "unchanged", "removed", "embedded")
    return {"id": job["id"], "source_id": job["source_id"], "status": job["status"], "trigger": job["trigger"],
            "progress": {"done": job["done"], "total": job["total"]}, **{k: job[k] for k in counts},
            "errors": job["errors"], "reason": job["reason"], "started_at": job["started_at"],
            "finished_at": job["finished_at"], "impacted": job["impacted"], "impact": job.get("impact", [])}


def source_jobs(conn: psycopg.Connection, source_id: int, limit: int = 20) -> list[dict]:
    """A source's recent jobs, newest first (an impact report stays findable after later syncs)."""
    return conn.execute(f"SELECT {_JOB} FROM knowledge_jobs j WHERE j.source_id = %s ORDER BY j.id DESC LIMIT %s",
                        (source_id, limit)).fetchall()


def last_job(conn: psycopg.Connection, source_id: int) -> dict | None:
    return conn.execute(f"SELECT {_JOB} FROM knowledge_jobs j WHERE j.source_id = %s ORDER BY j.id DESC LIMIT 1",
                        (source_id,)).fetchone()


def fail_stale_jobs(conn: psycopg.Connection, stale_s: float | None = None) -> list[int]:
    """Jobs whose process stopped (no heartbeat for `stale_s`) are failed with that reason; they can be
    re-run. Any worker may do this: the heartbeat, not who ran it, tells."""
    return [r["id"] for r in conn.execute(
        """UPDATE knowledge_jobs SET status = 'failed', finished_at = now(),
                  reason = 'interrupted: the process running it stopped (no progress for '
                           || round(extract(epoch FROM now() - heartbeat_at)) || ' s); sync again to re-run it'
           WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => %s) RETURNING id""",
        (stale_s or JOB_STALE_S,))]


SCHEDULER_LOCK = 0x6D656E746F72_4B  # "mentor" + "K": the scheduler's advisory lock, one holder in a cluster


def claim_due_sources(conn: psycopg.Connection) -> list[int]:
    """The scheduled sources due now, claimed (their next time moved on) by exactly one worker of a cluster:
    whoever holds the scheduler's advisory lock for this transaction; the others get nothing."""
    if not conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS got", (SCHEDULER_LOCK,)).fetchone()["got"]:
        return []
    return [r["id"] for r in conn.execute(
        """UPDATE knowledge_sources SET next_sync_at = now() + make_interval(hours => every_hours)
           WHERE every_hours IS NOT NULL AND next_sync_at <= now() RETURNING id""")]
