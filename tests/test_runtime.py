"""Runtime pieces: history trimming, the persona registry as data, bids and the upset signal."""

from __future__ import annotations

import pytest
import respx

from agents.bidding import recommend_bid
from agents.context import count_message_tokens, trim_history
from agents.personas import load_personas
from agents.requests import TurnRequest
from agents.runtime import run_turn
from agents.sentiment import is_upset, upset_score, wants_human
from harness.llm_replies import ScriptedEndpoint, text_reply
from store.db import Database


def _history(n: int) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " + "word " * 40}
            for i in range(n)]


def test_history_is_trimmed_oldest_first_within_budget() -> None:
    history = _history(30)
    kept = trim_history(history, budget=400)
    assert 0 < len(kept) < 30
    assert count_message_tokens(kept) <= 400
    assert kept[-1].content == history[-1]["content"]  # the newest survive
    assert kept[0].type == "human"  # never starts mid-exchange
    assert trim_history(history, budget=0) == []


def test_turn_keeps_system_prompt_and_question_whatever_the_history(knowledge: Database, demo_ids, provider) -> None:
    with respx.mock() as router:
        endpoint = ScriptedEndpoint(router, [text_reply("ok")])
        list(run_turn(TurnRequest(persona="marcus", text="THE CURRENT QUESTION", user_id=demo_ids["mateo"],
                                  history=_history(200)), db=knowledge, provider=provider))
    sent = endpoint.requests[0]["messages"]
    assert sent[0]["role"] == "system" and "You are Marcus" in sent[0]["content"]
    assert sent[-1] == {"role": "user", "content": "THE CURRENT QUESTION"}
    from langchain_core.messages import AIMessage, HumanMessage

    history_msgs = [HumanMessage(m["content"]) if m["role"] == "user" else AIMessage(m["content"])
                    for m in sent[1:-1]]
    assert 0 < len(history_msgs) < 200 and count_message_tokens(history_msgs) <= 1500


def test_a_model_is_told_which_words_of_the_question_no_source_mentions(knowledge: Database, provider) -> None:
    with respx.mock() as router:
        endpoint = ScriptedEndpoint(router, [text_reply("The help center doesn't cover Bitcoin.")])
        list(run_turn(TurnRequest(persona="support", text="Can I withdraw my balance in Bitcoin?"), db=knowledge,
                      provider=provider))
    system = endpoint.requests[0]["messages"][0]["content"]
    assert "say plainly that the help center doesn't\ncover it" in system  # the prompt's rule (prompts/support.md)
    assert "No source mentions: bitcoin." in system  # and the words it applies to this time


def test_a_sixth_persona_needs_only_a_prompt_file_and_a_registry_entry(
    knowledge: Database, demo_ids, tmp_path, monkeypatch, provider
) -> None:
    (tmp_path / "registry.yaml").write_text(
        "coach:\n  name: Coach\n  role: Productivity coach\n  prompt: coach.md\n"
        "  fragments: [citations, safety]\n  corpora: [curriculum]\n  retrieval_filter: {track: productivity}\n"
        "  tools: [my_profile]\n  upfront: [my_profile]\n")
    (tmp_path / "coach.md").write_text("You are Coach, who helps freelancers plan their week.")
    monkeypatch.setenv("MENTOR_PERSONAS_DIR", str(tmp_path))
    load_personas.cache_clear()
    try:
        with respx.mock() as router:
            endpoint = ScriptedEndpoint(router, [text_reply("Block two hours every morning.")])
            events = list(run_turn(TurnRequest(persona="coach", text="How should I plan my week?",
                                               user_id=demo_ids["mateo"]), db=knowledge, provider=provider))
    finally:
        load_personas.cache_clear()
    assert "You are Coach" in endpoint.system_prompt() and "Citing sources" in endpoint.system_prompt()
    assert {e.name for e in events if e.type == "tool_result"} == {"my_profile"}
    citations = [e for e in events if e.type == "citation"]
    assert citations and all("productivity" in c.source for c in citations)
    assert events[-1].type == "done" and "".join(e.delta for e in events if e.type == "token")


def test_bad_registry_entry_is_a_clear_error(tmp_path) -> None:
    from core.errors import ConfigError

    (tmp_path / "registry.yaml").write_text("x:\n  name: X\n  role: r\n  prompt: x.md\n  tools: [steal_everything]\n")
    (tmp_path / "x.md").write_text("hi")
    with pytest.raises(ConfigError, match="unknown tools"):
        load_personas.__wrapped__(str(tmp_path))


RATES = {"skill": "React", "segment": "intermediate", "p25": 50, "p50": 65, "p75": 82, "p90": 104}


@pytest.mark.parametrize("own_rate", [30, 70, 200])
@pytest.mark.parametrize("complexity", ["low", "medium", "high"])
def test_hourly_bid_stays_in_its_stated_range(own_rate: int, complexity: str) -> None:
    project = {"id": 1, "project_type": "hourly", "budget_min": 45, "budget_max": 90, "estimated_hours": 80,
               "complexity": complexity}
    bid = recommend_bid(project, {"hourly_rate": own_rate}, RATES)
    assert bid.range_low <= bid.amount <= bid.range_high
    assert bid.range_low == 50 and bid.range_high == 90  # market p25 .. min(p90, client max)
    assert any("p25 $50" in r for r in bid.reasoning)


@pytest.mark.parametrize(("hours", "expect"), [(10, "bottom"), (60, "inside"), (400, "top")])
def test_fixed_bid_uses_the_client_budget(hours: int, expect: str) -> None:
    project = {"id": 2, "project_type": "fixed", "budget_min": 3000, "budget_max": 6000, "estimated_hours": hours,
               "complexity": "medium"}
    bid = recommend_bid(project, {"hourly_rate": 70}, RATES)
    assert 3000 <= bid.amount <= 6000
    assert {"bottom": bid.amount == 3000, "inside": 3000 < bid.amount < 6000, "top": bid.amount == 6000}[expect]
    assert bid.estimated_hours == hours and "Estimate" in " ".join(bid.reasoning)


@pytest.mark.parametrize(("text", "upset"), [
    ("How do I withdraw my money?", False),
    ("Thanks, that helped a lot!", False),
    ("I'm a bit confused about escrow", False),
    ("This is unacceptable, I've been waiting for days and nobody answers", True),
    ("WHERE IS MY MONEY I NEED IT NOW", True),
    ("You people are a scam!!!", True),
    ("I'm frustrated, the withdrawal failed again", True),
])
def test_upset_signal(text: str, upset: bool) -> None:
    assert is_upset(text) is upset, upset_score(text)


def test_wants_human() -> None:
    assert wants_human("Can I talk to a human?") and wants_human("I want to speak to someone")
    assert not wants_human("What is the commission?")


@pytest.mark.parametrize(("text", "amount", "found"), [
    ("My bid is $5,440 for the full scope.", 5440.0, True),
    ("Total: 5440.00 USD", 5440, True),
    ("I'd charge $81 per hour", 81, True),
    ("for $54,400", 5440, False),
    ("no numbers here", 10, False),
])
def test_quotes_amount(text: str, amount: float, found: bool) -> None:
    from agents.hooks import quotes_amount

    assert quotes_amount(text, amount) is found


@pytest.mark.parametrize("kwargs, code", [
    ({"persona": "marcus", "text": "hi"}, "sign_in_required"),  # anonymous caller, private persona
    ({"persona": "proposal_writer", "text": "write one", "user_id": 2}, "project_required"),
    ({"persona": "marcus", "text": "hi", "user_id": 2, "mode": "simulate_client"}, "bad_request"),
    ({"persona": "sarah", "text": "hi", "user_id": 2, "mode": "simulate_client"}, "project_required"),
    ({"persona": "nobody", "text": "hi", "user_id": 2}, "unknown_persona"),
])
def test_a_refused_turn_still_ends_with_done(knowledge: Database, kwargs: dict, code: str) -> None:
    from agents.composer import COMPOSER

    events = list(run_turn(TurnRequest(**kwargs), db=knowledge, provider=COMPOSER))
    assert [e.type for e in events] == ["error", "done"]
    assert events[0].code == code and events[-1].finish_reason == "error"
