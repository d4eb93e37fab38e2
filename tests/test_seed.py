"""The demo dataset: size, consistency (the platform guide's checks) and determinism."""

from __future__ import annotations

import re

import psycopg

from store.catalog import CORPUS_DIR, PLANS
from store.checks import run_checks
from store.db import Database
from store.migrate import migrate
from store.seed import seed, table_counts


def test_dataset_is_large_enough(db: Database) -> None:
    counts = table_counts(db)
    assert counts["skills"] >= 150
    assert counts["market_rates"] == counts["skills"] * 3
    assert counts["freelancer_profiles"] >= 500
    assert counts["projects"] >= 2000
    assert counts["proposals"] > 2000
    assert counts["client_projects"] > 1000
    assert counts["orders"] > 0 and counts["payments"] > 0


def test_revenue_data_is_consistent(db: Database) -> None:
    results = run_checks(db)
    assert len(results) >= 6
    failed = [(r.name, r.failures) for r in results if not r.passed]
    assert failed == []


def test_market_percentiles_are_ordered_and_demand_in_range(db: Database) -> None:
    with db.admin() as conn:
        bad = conn.execute(
            """SELECT count(*) AS n FROM market_rates
               WHERE NOT (p25 <= p50 AND p50 <= p75 AND p75 <= p90) OR demand_score NOT BETWEEN 1 AND 10""").fetchone()
    assert bad["n"] == 0


def test_demo_users_have_rich_histories(db: Database, demo_ids: dict[str, int]) -> None:
    # ana and ben: the support agents; olivia: the admin
    assert set(demo_ids) == {"nora", "mateo", "sofia", "dana", "ana", "ben", "olivia"}
    with db.admin() as conn:
        def n(sql: str, uid: int) -> int:
            return conn.execute(sql, (uid,)).fetchone()["n"]

        cp = "SELECT count(*) AS n FROM client_projects WHERE freelancer_id = %s"
        assert n(cp, demo_ids["nora"]) >= 1
        assert n(cp, demo_ids["mateo"]) >= 10
        assert n(cp, demo_ids["sofia"]) >= 25
        assert n("SELECT count(*) AS n FROM learning_sessions WHERE freelancer_id = %s", demo_ids["mateo"]) >= 20
        assert n("""SELECT count(*) AS n FROM projects p JOIN clients c ON c.id = p.client_id
                    WHERE c.user_id = %s""", demo_ids["dana"]) >= 5
        react = conn.execute(
            """SELECT s.name FROM freelancer_skills fs JOIN skills s ON s.id = fs.skill_id
               WHERE fs.user_id = %s AND fs.is_primary""", (demo_ids["mateo"],)).fetchone()
        assert react["name"] == "React"


def test_same_seed_gives_same_data(pg_server, db: Database) -> None:
    fingerprints = []
    for name in ("det_a", "det_b"):
        with psycopg.connect(pg_server.uri(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        other = Database.from_url(pg_server.uri(name))
        try:
            migrate(other)
            seed(other, scale=0.05, seed_value=7)
            with other.admin() as conn:
                fingerprints.append(conn.execute(
                    """SELECT md5(string_agg(concat_ws('|', id, freelancer_id, hourly_rate, hours, revenue), ','
                                             ORDER BY id)) AS f FROM client_projects""").fetchone()["f"])
        finally:
            other.close()
            with psycopg.connect(pg_server.uri(), autocommit=True) as conn:
                conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
    assert fingerprints[0] == fingerprints[1]


def test_reseeding_without_reset_keeps_existing_data(db: Database) -> None:
    before = table_counts(db)
    summary = seed(db, scale=0.1)
    assert summary.already_seeded
    assert table_counts(db) == before


def test_help_center_quotes_the_seeded_plans() -> None:
    fees = (CORPUS_DIR / "help_center" / "fees-and-commission.md").read_text()
    plans = (CORPUS_DIR / "help_center" / "subscription-plans.md").read_text()
    for _pid, name, price, rate, proposals, _ in PLANS:
        assert re.search(rf"{name}.*{round(rate * 100)}%", fees), name
        assert f"${price:.2f}" in fees or price == 0
        assert f"{round(rate * 100)}% commission" in plans
        if proposals:
            assert f"{proposals} proposals per month" in plans
