"""The `mentor` command line, run as a user would (real executable, real database)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cli import app
from store.db import Database

runner = CliRunner()


def mentor(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def _commands(typer_app, prefix=()):
    import typer.main

    group = typer.main.get_command(typer_app)
    stack = [(prefix, group)]
    while stack:
        path, cmd = stack.pop()
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            stack.append(((*path, name), sub))


def test_every_command_has_help() -> None:
    paths = list(_commands(app))
    assert len(paths) >= 10
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Usage" in result.output


def test_users_json(db: Database) -> None:
    proc = mentor("users", "--json")
    assert proc.returncode == 0, proc.stderr
    users = json.loads(proc.stdout)
    assert {"id", "name", "role"} <= set(users[0])
    assert {u["role"] for u in users} == {"freelancer", "client", "agent", "admin"}
    assert any(u["name"] == "Mateo Alvarez" for u in users)
    assert {u["handle"] for u in users if u["role"] == "agent"} == {"ana", "ben"}  # two, to try a claim
    assert any(u["handle"] == "olivia" and u["role"] == "admin" for u in users)


def test_search_json(knowledge: Database) -> None:
    proc = mentor("search", "what do Figma designers charge", "--json", "--k", "3")
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)
    assert len(hits) == 3
    assert {"chunk_id", "corpus", "title", "source", "section", "text", "score"} <= set(hits[0])
    assert hits[0]["source"] == "market/figma"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["search", "fees", "--corpus", "nope"], "unknown corpus"),
        (["ingest", "/definitely/missing.md", "--corpus", "curriculum"], "no such file"),
        (["ingest", "README.md", "--corpus", "nope"], "unknown corpus"),
        (["search", "fees", "--filter", "oops"], "KEY=VALUE"),
        (["seed", "--scale", "0"], "--scale"),
        (["corpus", "add", "Bad Name"], "corpus name"),
    ],
)
def test_bad_input_gives_one_error_line_and_nonzero_exit(db: Database, args: list[str], fragment: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr


def test_empty_file_is_refused(db: Database, tmp_path) -> None:
    empty = tmp_path / "empty.md"
    empty.write_text("")
    proc = mentor("ingest", str(empty), "--corpus", "curriculum")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: {empty}: file is empty (no text to index)"]


def test_db_check_passes(db: Database) -> None:
    result = runner.invoke(app, ["db", "check"])
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output and result.output.count("PASS") >= 6


def test_staff_are_managed_without_sql(db: Database) -> None:
    listed = runner.invoke(app, ["staff", "list"])
    assert listed.exit_code == 0 and "ana" in listed.output
    added = runner.invoke(app, ["staff", "add", "sofia"])
    try:
        assert added.exit_code == 0 and "sofia is now agent" in added.output, added.output
        assert "sofia" in runner.invoke(app, ["staff", "list"]).output
    finally:
        removed = runner.invoke(app, ["staff", "remove", "sofia"])
    assert removed.exit_code == 0 and "no longer support staff" in removed.output
    assert "sofia" not in runner.invoke(app, ["staff", "list"]).output
    again = runner.invoke(app, ["staff", "remove", "sofia"])
    assert again.exit_code != 0 and "not support staff" in again.output
    assert runner.invoke(app, ["staff", "add", "nobody-such"]).exit_code != 0
    # a client made staff and back is a client again, not a freelancer
    assert runner.invoke(app, ["staff", "add", "dana", "--role", "admin"]).exit_code == 0
    assert runner.invoke(app, ["staff", "remove", "dana"]).exit_code == 0
    with db.admin() as conn:
        assert conn.execute("SELECT role FROM users WHERE handle = 'dana'").fetchone()["role"] == "client"


def test_reports_on_a_fresh_instance_after_a_few_asks(admin_db) -> None:
    """Issue 26: `mentor report stats --json` and `mentor report gaps` on a new instance, after `mentor ask`s
    (which record their turns as the server does)."""
    import os

    env = {**os.environ, "DATABASE_URL": admin_db.url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=600,
                              env=env)

    assert run("setup", "--scale", "0.05", "--quiet").returncode == 0
    for question in ("How do I withdraw my earnings?", "Can I book a video call with a client in the app?",
                     "Is there built-in video calling with clients?"):
        asked = run("ask", question, "--persona", "support")
        assert asked.returncode == 0, asked.stderr
    stats = run("report", "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    support = json.loads(stats.stdout)["personas"]["support"]
    assert support["conversations"] == 3 and support["turns"] == 3
    assert support["resolved"] + support["handoffs"] + support["unresolved"] == 3
    assert support["cost_usd"] == 0 and support["tokens"]["prompt"] > 0  # the offline composer is free
    assert support["answer_ms"]["p50"] is not None
    gaps = run("report", "gaps")
    assert gaps.returncode == 0, gaps.stderr
    assert "2×  [no article]" in gaps.stdout and "video" in gaps.stdout, gaps.stdout
