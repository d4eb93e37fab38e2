"""Migrations, the embedded server and a broken environment, on a real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from core.errors import DatabaseUnavailable, DataDirInUse, PgvectorMissing
from store.db import Database, ensure_pgvector
from store.migrate import applied_versions, available_migrations, migrate


def test_migrations_apply_in_order_and_rerun_is_a_noop(admin_db: Database) -> None:
    applied = migrate(admin_db)
    assert [m.version for m in applied] == sorted(m.version for m in available_migrations())
    assert migrate(admin_db) == []
    assert applied_versions(admin_db) == [m.version for m in available_migrations()]


def test_edited_migration_is_reported_not_reapplied(admin_db: Database) -> None:
    migrate(admin_db)
    with admin_db.admin() as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
    with pytest.raises(DatabaseUnavailable, match="changed after it was applied"):
        migrate(admin_db)


def test_server_without_pgvector_gives_a_clear_error(pg_server, admin_db: Database) -> None:
    """A role that cannot create the extension in a database that lacks it is told exactly that."""
    with psycopg.connect(pg_server.uri(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS novector")
        conn.execute("CREATE ROLE novector LOGIN PASSWORD 'novector-pw'")
    with psycopg.connect(admin_db.url, autocommit=True) as conn:
        conn.execute("DROP EXTENSION vector")
    dbname = psycopg.conninfo.conninfo_to_dict(admin_db.url)["dbname"]
    url = pg_server.uri(dbname, user="novector", password="novector-pw")
    with psycopg.connect(url) as conn, pytest.raises(PgvectorMissing, match="pgvector"):
        ensure_pgvector(conn)
    # and the CLI turns it into one line and a non-zero exit
    proc = subprocess.run([sys.executable, "-m", "cli", "db", "migrate"], capture_output=True, text=True,
                          env={**__import__("os").environ, "DATABASE_URL": url}, timeout=120)
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "pgvector" in lines[0]


def test_unreachable_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import Settings

    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailable, match="cannot connect"):
        Database.connect(settings)


def test_data_directory_used_by_something_else_is_refused(tmp_path) -> None:
    home = tmp_path / "home"
    (home / "pgdata").mkdir(parents=True)
    (home / "pgdata" / "notes.txt").write_text("precious")
    env = {**__import__("os").environ, "MENTOR_HOME": str(home)}
    env.pop("DATABASE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "cli", "db", "migrate"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 3
    assert proc.stderr.strip().startswith("error:") and "in use" in proc.stderr
    assert (home / "pgdata" / "notes.txt").read_text() == "precious"


def test_data_directory_check_accepts_empty_and_existing(tmp_path) -> None:
    from store.embedded import _check_pgdata_dir

    _check_pgdata_dir(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    _check_pgdata_dir(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataDirInUse):
        _check_pgdata_dir(tmp_path / "file")


def test_embedded_default_starts_in_an_empty_home(tmp_path) -> None:
    """`mentor db migrate` with no DATABASE_URL creates a fresh instance inside MENTOR_HOME."""
    env = {**__import__("os").environ, "MENTOR_HOME": str(tmp_path / "fresh")}
    env.pop("DATABASE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "cli", "db", "migrate"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "applied 0001_schema" in proc.stdout
    assert (tmp_path / "fresh" / "pgdata" / "PG_VERSION").exists()
    again = subprocess.run([sys.executable, "-m", "cli", "db", "migrate"], capture_output=True, text=True,
                           env=env, timeout=120)
    assert again.returncode == 0 and "up to date" in again.stdout


def test_workers_starting_together_all_get_the_service_login(database_url: str) -> None:
    """`mentor serve --workers N` (or N machines) start at once: each enables mentor_service's login on
    its first use, and none may fail because another is doing the same ("tuple concurrently updated")."""
    import threading

    from store.db import Database

    def start(barrier: threading.Barrier, urls: list[str], failures: list[Exception]) -> None:
        db = Database(database_url)
        barrier.wait()
        try:
            urls.append(db.service_url())
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    for _ in range(3):
        barrier, urls, failures = threading.Barrier(6), [], []
        threads = [threading.Thread(target=start, args=(barrier, urls, failures)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures and len(set(urls)) == 1
