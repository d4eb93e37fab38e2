"""Versioned SQL migrations: `store/migrations/NNNN_name.sql`, applied in order, each in one transaction.

Applied versions are recorded with a checksum; re-running is a no-op, and an edited migration that
was already applied is reported instead of silently diverging.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from core.errors import DatabaseUnavailable
from store.db import Database

_LOCK_KEY = 7_340_021  # pg_advisory_xact_lock key: one migrator at a time


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("store.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version, _, rest = entry.name.partition("_")
            found.append(Migration(int(version), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


def migrate(db: Database) -> list[Migration]:
    """Apply every migration not yet recorded; return the ones applied now."""
    with db.admin() as conn:
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
    applied: list[Migration] = []
    for migration in available_migrations():
        with db.admin() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            row = conn.execute(
                "SELECT checksum FROM schema_migrations WHERE version = %s", (migration.version,)
            ).fetchone()
            if row:
                if row["checksum"] != migration.checksum:
                    raise DatabaseUnavailable(
                        f"migration {migration.version:04d}_{migration.name} was changed after it was applied"
                    )
                continue
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            applied.append(migration)
    return applied


def applied_versions(db: Database) -> list[int]:
    with db.admin() as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations') AS t").fetchone()["t"]
        if not exists:
            return []
        return [r["version"] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
