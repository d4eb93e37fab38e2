"""Row-level security: a caller sees only their own rows, whatever SQL is run on their behalf."""

from __future__ import annotations

import psycopg
import pytest

from store.db import Database

# table -> owner column
PRIVATE = {
    "users": "id",
    "freelancer_profiles": "user_id",
    "freelancer_skills": "user_id",
    "client_projects": "freelancer_id",
    "revenue_attributions": "freelancer_id",
    "skill_progress": "freelancer_id",
    "learning_sessions": "freelancer_id",
    "payments": "user_id",
    "conversations": "user_id",
    "messages": "user_id",
    "conversation_events": "user_id",
    "tool_calls": "user_id",
    "citations": "user_id",
    "feedback": "user_id",
    "support_tickets": "user_id",
}


def test_every_private_table_shows_only_the_callers_rows(db: Database, demo_ids: dict[str, int]) -> None:
    mateo, sofia = demo_ids["mateo"], demo_ids["sofia"]
    with db.admin() as conn:
        totals = {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in PRIVATE}
    with db.as_user(mateo) as conn:
        for table, owner in PRIVATE.items():
            owners = {r["o"] for r in conn.execute(f"SELECT {owner} AS o FROM {table}")}
            assert owners <= {mateo}, table
        assert conn.execute("SELECT count(*) AS n FROM client_projects").fetchone()["n"] >= 10
        assert conn.execute("SELECT count(*) AS n FROM client_projects WHERE freelancer_id = %s",
                            (sofia,)).fetchone()["n"] == 0
    assert totals["client_projects"] > 1000  # the rows exist; RLS hides them


def test_joins_do_not_leak_other_users_rows(db: Database, demo_ids: dict[str, int]) -> None:
    mateo = demo_ids["mateo"]
    with db.as_user(mateo) as conn:
        rows = conn.execute(
            """SELECT DISTINCT cp.freelancer_id AS a, ra.freelancer_id AS b, sp.freelancer_id AS c, u.id AS d
               FROM client_projects cp
               JOIN revenue_attributions ra ON ra.client_project_id = cp.id
               JOIN skill_progress sp ON sp.skill_id = ra.skill_id
               JOIN users u ON u.id = sp.freelancer_id"""
        ).fetchall()
        assert rows and all(set(r.values()) == {mateo} for r in rows)
        # public tables joined to private ones still only yield the caller's private rows
        leaked = conn.execute(
            """SELECT count(*) AS n FROM skills s JOIN skill_progress sp ON sp.skill_id = s.id
               WHERE sp.freelancer_id <> %s""", (mateo,)).fetchone()["n"]
        assert leaked == 0


def test_missing_identity_sees_nothing_private(db: Database) -> None:
    with db.as_user(None) as conn:
        for table in PRIVATE:
            assert conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"] == 0, table
        for table in ("proposals", "orders"):
            assert conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"] == 0, table
        # public knowledge and market data stay readable
        assert conn.execute("SELECT count(*) AS n FROM market_rates").fetchone()["n"] > 0
        assert conn.execute("SELECT count(*) AS n FROM projects").fetchone()["n"] > 0


def test_cannot_write_or_update_other_users_rows(db: Database, demo_ids: dict[str, int]) -> None:
    mateo, sofia = demo_ids["mateo"], demo_ids["sofia"]
    # revenue records are read-only for the application role (least privilege), whoever owns the row
    for statement in ("UPDATE client_projects SET title = 'hacked' WHERE freelancer_id = %s",
                      "DELETE FROM learning_sessions WHERE freelancer_id = %s",
                      "UPDATE client_projects SET title = 'mine' WHERE freelancer_id = app_user_id() AND %s > 0"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(mateo) as conn:
            conn.execute(statement, (sofia,))
    project = 1
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(mateo) as conn:
        conn.execute(
            """INSERT INTO proposals (project_id, freelancer_id, cover_letter, bid_amount, bid_type, status)
               VALUES (%s, %s, 'x', 100, 'fixed', 'draft')""", (project, sofia))


def test_application_role_cannot_bypass_rls_or_edit_reference_data(db: Database, demo_ids: dict[str, int]) -> None:
    with db.admin() as conn:
        role = conn.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'mentor_app'").fetchone()
    assert role == {"rolsuper": False, "rolbypassrls": False}
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(demo_ids["mateo"]) as conn:
        conn.execute("SET LOCAL row_security = off")
        conn.execute("SELECT count(*) FROM client_projects")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(demo_ids["mateo"]) as conn:
        conn.execute("UPDATE market_rates SET p50 = 1")


def test_client_sees_proposals_on_own_projects_only(db: Database, demo_ids: dict[str, int]) -> None:
    dana, mateo = demo_ids["dana"], demo_ids["mateo"]
    with db.as_user(dana) as conn:
        rows = conn.execute(
            """SELECT pr.freelancer_id, c.user_id AS owner FROM proposals pr
               JOIN projects p ON p.id = pr.project_id JOIN clients c ON c.id = p.client_id""").fetchall()
    assert rows, "the demo client has proposals on Acme projects"
    assert all(r["owner"] == dana for r in rows)
    assert any(r["freelancer_id"] == mateo for r in rows)
    with db.as_user(mateo) as conn:
        mine = conn.execute("SELECT DISTINCT freelancer_id FROM proposals").fetchall()
    assert [r["freelancer_id"] for r in mine] == [mateo]
