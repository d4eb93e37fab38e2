"""`mentor eval`: the eval sets run through the real runtime and database and meet their thresholds."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agents.testing import ScriptedEvalModel
from core.errors import InvalidArgument
from evals.cases import load_sets
from evals.runner import METRICS, check_thresholds, format_table, load_thresholds, run_evals


def _counts(db) -> tuple[int, int]:
    with db.admin() as conn:
        tickets = conn.execute("SELECT count(*) AS n FROM support_tickets").fetchone()["n"]
        drafts = conn.execute("SELECT count(*) AS n FROM proposals WHERE status = 'draft'").fetchone()["n"]
    return tickets, drafts


def test_eval_sets_cover_every_persona_with_enough_cases() -> None:
    sets = {s.persona: s for s in load_sets()}
    assert set(sets) == {"marcus", "sarah", "david", "proposal_writer", "support"}
    for persona, eval_set in sets.items():
        assert len(eval_set.cases) >= (40 if persona == "support" else 15), persona
    support = sets["support"].cases
    assert sum(c.expect.escalate is True for c in support) >= 5
    assert sum(c.expect.escalate is False for c in support) >= 20


def test_scripted_evals_meet_thresholds_and_leave_no_rows_behind(knowledge) -> None:
    before = _counts(knowledge)
    report = run_evals(knowledge, ScriptedEvalModel(), load_sets())
    table = {p: m.model_dump() for p, m in report.personas.items()}
    print(json.dumps(table, indent=1))
    assert check_thresholds(report, load_thresholds()) == []
    assert report.personas["support"].retrieval_hit_at_5 >= 0.9
    assert all(m.leaks == 0 and m.errors == 0 for m in report.personas.values())
    assert _counts(knowledge) == before  # tickets and drafts the turns created were removed


def test_thresholds_catch_a_regression(knowledge) -> None:
    report = run_evals(knowledge, ScriptedEvalModel(), load_sets(personas=["support"]))
    report.personas["support"].retrieval_hit_at_5 = 0.5
    report.personas["support"].leaks = 1
    failures = check_thresholds(report, load_thresholds())
    assert any("retrieval_hit_at_5 0.5 < 0.9" in f for f in failures)
    assert any("leaked" in f for f in failures)


def test_cli_json_report_has_the_documented_keys(knowledge, tmp_path) -> None:
    from cli import app

    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["eval", "--persona", "support", "--persona", "david", "--json", "--check",
                                      "--report", str(out)])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout[result.stdout.index("{"):])
    assert set(printed["personas"]) == {"support", "david"}
    for persona, metrics in printed["personas"].items():
        for key in METRICS:
            if key == "escalation_accuracy" and persona != "support":
                continue
            assert metrics[key] is not None, (persona, key)
    saved = json.loads(out.read_text())
    assert len(saved["cases"]["support"]) >= 40


def test_a_broken_eval_set_is_one_typed_error(tmp_path) -> None:
    (tmp_path / "bad.yaml").write_text("persona: support\ncases:\n  - id: x\n    questio: typo\n")
    with pytest.raises(InvalidArgument, match="bad.yaml is invalid"):
        load_sets(tmp_path)
    with pytest.raises(InvalidArgument, match="no eval set for persona nobody"):
        load_sets(personas=["nobody"])


def test_composer_states_the_facts_in_its_answers_and_invents_none(knowledge) -> None:
    from agents.composer import COMPOSER

    report = run_evals(knowledge, COMPOSER, load_sets())
    print(format_table(report))
    assert check_thresholds(report, load_thresholds()) == []
    for persona, metrics in report.personas.items():
        assert metrics.answer_fact_rate >= 0.9, persona
        assert metrics.unsupported_figures == 0, persona
