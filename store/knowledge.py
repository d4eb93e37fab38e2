"""Read-only statistics about the knowledge tables."""

from __future__ import annotations

from store.db import Database


def corpus_stats(db: Database) -> list[dict]:
    with db.admin() as conn:
        return conn.execute(
            """SELECT c.name, c.description,
                      (SELECT count(*) FROM documents d WHERE d.corpus = c.name) AS documents,
                      (SELECT count(*) FROM chunks k WHERE k.corpus = c.name) AS chunks
               FROM corpora c ORDER BY c.name"""
        ).fetchall()
