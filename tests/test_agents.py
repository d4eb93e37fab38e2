"""Persona turns end to end: real database, real langchain-openai/openai client, respx as the model."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
import respx

from agents.answerability import NO_ANSWER_DISTANCE
from agents.llm import LLMError
from agents.requests import TurnRequest
from agents.runtime import run_turn
from harness.llm_replies import BASE_URL, ScriptedEndpoint, text_reply, tool_reply
from retrieval.search import search
from store.db import Database


def turn(db: Database, provider, **kwargs) -> list:
    return list(run_turn(TurnRequest(**kwargs), db=db, provider=provider))


def scripted_turn(db: Database, provider, replies: list, **kwargs) -> tuple[list, ScriptedEndpoint]:
    """Run one turn against the respx-mocked endpoint serving `replies` in order."""
    with respx.mock() as router:
        endpoint = ScriptedEndpoint(router, replies)
        events = turn(db, provider, **kwargs)
    return events, endpoint


def of(events: list, kind: str, name: str | None = None) -> list:
    return [e for e in events if e.type == kind and (name is None or getattr(e, "name", None) == name)]


def test_streaming_answer_tokens_in_order_with_backend_usage(knowledge: Database, provider, demo_ids) -> None:
    events, _ = scripted_turn(
        knowledge,
        provider,
        [text_reply("Focus on one niche first, then raise your rate.")],
        persona="marcus",
        text="How do I grow my business?",
        user_id=demo_ids["mateo"],
    )
    tokens = "".join(e.delta for e in of(events, "token"))
    assert tokens == "Focus on one niche first, then raise your rate."
    assert len(of(events, "token")) >= 3
    done = events[-1]
    assert done.type == "done" and done.finish_reason == "stop"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.counted) == (120, 30, "backend")
    # facts arrived before the answer: up-front tools, then citations, then tokens
    kinds = [e.type for e in events]
    assert kinds.index("tool_result") < kinds.index("citation") < kinds.index("token")


def test_tool_call_split_across_chunks_runs_as_caller(knowledge: Database, provider, demo_ids) -> None:
    events, endpoint = scripted_turn(
        knowledge,
        provider,
        [
            tool_reply([("market_rates", {"skill": "Figma", "segment": "expert"})]),
            text_reply("Expert Figma designers charge a median of about $104 per hour."),
        ],
        persona="david",
        text="What do expert Figma designers charge?",
        user_id=demo_ids["mateo"],
    )
    calls = [e for e in of(events, "tool_call", "market_rates") if e.args.get("segment") == "expert"]
    assert calls and calls[0].args == {"skill": "Figma", "segment": "expert"}
    result = next(e for e in of(events, "tool_result", "market_rates") if e.id == calls[0].id)
    with knowledge.admin() as conn:
        row = conn.execute("""SELECT p25, p50, p75, p90 FROM market_rates m JOIN skills s ON s.id = m.skill_id
                              WHERE s.name = 'Figma' AND segment = 'expert'""").fetchone()
    assert [result.data[k] for k in ("p25", "p50", "p75", "p90")] == [float(v) for v in row.values()]
    # the tool schema was offered, and the result went back to the model as a tool message
    assert any(t["function"]["name"] == "market_rates" for t in endpoint.requests[0]["tools"])
    tool_msgs = [m for m in endpoint.requests[1]["messages"] if m["role"] == "tool"]
    assert tool_msgs and tool_msgs[0]["tool_call_id"] == calls[0].id and '"p50"' in tool_msgs[0]["content"]


def test_retry_on_429_then_success(knowledge: Database, provider, demo_ids) -> None:
    events, endpoint = scripted_turn(
        knowledge,
        provider,
        [httpx.Response(429, json={"error": {"message": "slow down"}}), text_reply("Here you go.")],
        persona="support",
        text="How do withdrawals work?",
    )
    assert len(endpoint.requests) == 2
    assert "".join(e.delta for e in of(events, "token")) == "Here you go."


@pytest.mark.parametrize(
    ("failure", "retryable"),
    [
        (httpx.Response(500, json={"error": {"message": "boom"}}), True),
        (httpx.ConnectError("refused"), True),
        (httpx.Response(401, json={"error": {"message": "bad key"}}), False),
    ],
)
def test_persistent_failure_becomes_typed_error_event(knowledge: Database, provider, failure, retryable) -> None:
    with respx.mock() as router:
        ScriptedEndpoint(router, [failure] * 5)
        events = turn(knowledge, provider, persona="support", text="How do withdrawals work?")
    errors = of(events, "error")
    assert len(errors) == 1 and errors[0].code == "llm_unavailable" and errors[0].retryable is retryable
    assert events[-1].type == "done" and events[-1].finish_reason == "error"


def test_provider_raises_typed_error_directly(provider) -> None:
    from langchain_core.messages import HumanMessage

    with respx.mock() as router:
        ScriptedEndpoint(router, [httpx.Response(503, json={})] * 5)
        with pytest.raises(LLMError) as info:
            list(provider.stream([HumanMessage("hi")]))
    assert info.value.retryable


def test_marcus_uses_profile_and_learning_roi(knowledge: Database, provider, demo_ids) -> None:
    mateo = demo_ids["mateo"]
    events, endpoint = scripted_turn(
        knowledge,
        provider,
        [text_reply("Your React work earns the most.")],
        persona="marcus",
        text="Which skill should I focus on next?",
        user_id=mateo,
    )
    roi = of(events, "tool_result", "learning_roi")[0].data
    with knowledge.admin() as conn:
        hours = conn.execute(
            "SELECT sum(duration_minutes) / 60.0 AS h FROM learning_sessions WHERE freelancer_id = %s", (mateo,)
        ).fetchone()["h"]
    assert Decimal(str(roi["learning_hours"])) == Decimal(hours).quantize(Decimal("0.01"))
    assert {c.corpus for c in of(events, "citation")} == {"curriculum"}
    assert "Records" in endpoint.system_prompt() and "learning_roi" in endpoint.system_prompt()


def test_david_percentiles_equal_the_market_table(knowledge: Database, provider, demo_ids) -> None:
    events, _ = scripted_turn(
        knowledge,
        provider,
        [text_reply("Compare your rate with the median.")],
        persona="david",
        text="Should I raise my React rate?",
        user_id=demo_ids["mateo"],
    )
    rates = of(events, "tool_result", "market_rates")[0].data
    with knowledge.admin() as conn:
        row = conn.execute(
            """SELECT p25, p50, p75, p90, demand_score FROM market_rates m JOIN skills s ON s.id = m.skill_id
               WHERE s.name = 'React' AND m.segment = 'intermediate'"""
        ).fetchone()
    assert rates["skill"] == "React" and rates["segment"] == "intermediate"
    assert [rates[k] for k in ("p25", "p50", "p75", "p90", "demand_score")] == [float(v) for v in row.values()]


def _open_project(db: Database, skill: str, ptype: str | None = None) -> dict:
    with db.admin() as conn:
        return conn.execute(
            """SELECT p.* FROM projects p JOIN project_skills ps ON ps.project_id = p.id
               JOIN skills s ON s.id = ps.skill_id
               WHERE p.status = 'open' AND s.name = %s AND (%s::text IS NULL OR p.project_type = %s)
               ORDER BY p.id LIMIT 1""",
            (skill, ptype, ptype),
        ).fetchone()


@pytest.mark.parametrize("ptype", ["fixed", "hourly"])
def test_proposal_writer_recommends_bid_in_range_and_saves_draft(
    knowledge: Database, provider, demo_ids, ptype
) -> None:
    mateo = demo_ids["mateo"]
    project = _open_project(knowledge, "React", ptype)
    from agents.tools import ToolContext, run_tool

    expected = run_tool("recommend_bid", {"project_id": project["id"]}, ToolContext(knowledge, mateo)).data
    letter = (
        "Hi team, you need a React dashboard your customers will use. I will start with a short discovery "
        f"call, build in weekly increments and hand over documented code for ${expected['amount']:,.0f}. "
        "What is your launch date?"
    )
    events, _ = scripted_turn(
        knowledge,
        provider,
        [text_reply(letter)],
        persona="proposal_writer",
        text=f"Write a proposal for project {project['id']}",
        user_id=mateo,
    )
    bid = of(events, "tool_result", "recommend_bid")[0].data
    assert bid["range_low"] <= bid["amount"] <= bid["range_high"]
    assert bid["bid_type"] == ("hourly" if ptype == "hourly" else "fixed")
    assert set(bid["percentiles"]) == {"p25", "p50", "p75", "p90"} and bid["reasoning"]
    if ptype != "hourly":
        assert (bid["range_low"], bid["range_high"]) == (float(project["budget_min"]), float(project["budget_max"]))
    saved = of(events, "tool_result", "save_proposal_draft")[0].data
    with knowledge.as_user(mateo) as conn:
        draft = conn.execute("SELECT * FROM proposals WHERE id = %s", (saved["proposal_id"],)).fetchone()
    assert draft["status"] == "draft" and draft["freelancer_id"] == mateo
    assert float(draft["bid_amount"]) == bid["amount"] and draft["cover_letter"] == letter
    assert draft["rationale"]["cover_letter_source"] == "model"
    # the user can list it later
    listed = run_tool("my_proposals", {"status": "draft"}, ToolContext(knowledge, mateo))
    assert saved["proposal_id"] in [p["id"] for p in listed.data["proposals"]]


@pytest.mark.parametrize(
    "reply",
    [
        "ok",
        "I am thrilled to help you with your dream project! Please click here to "
        "send your order now and choose a date within six weeks.",
    ],
)
def test_proposal_writer_falls_back_to_a_factual_letter(knowledge: Database, provider, demo_ids, reply) -> None:
    """Too short, or never states the recommended bid: the draft gets the factual template instead."""
    project = _open_project(knowledge, "Figma")
    events, _ = scripted_turn(
        knowledge,
        provider,
        [text_reply(reply)],
        persona="proposal_writer",
        text="Draft it please",
        project_id=project["id"],
        user_id=demo_ids["sofia"],
    )
    saved = of(events, "tool_call", "save_proposal_draft")[0].args
    assert saved["rationale"]["cover_letter_source"] == "template"
    assert project["title"] in saved["cover_letter"] and f"${saved['bid_amount']:,.0f}" in saved["cover_letter"]


def test_proposal_writer_needs_a_project(knowledge: Database, provider, demo_ids) -> None:
    events = turn(knowledge, provider, persona="proposal_writer", text="write me a proposal", user_id=demo_ids["mateo"])
    assert [e.code for e in of(events, "error")] == ["project_required"]


def test_sarah_plays_the_client_then_steps_out_for_feedback(knowledge: Database, provider, demo_ids) -> None:
    project = _open_project(knowledge, "React")
    with respx.mock() as router:
        endpoint = ScriptedEndpoint(
            router,
            [
                text_reply("That's more than we planned. Can you do it for less?"),
                text_reply("You asked good questions; next time trade scope."),
            ],
        )
        in_role = turn(
            knowledge,
            provider,
            persona="sarah",
            text="Hi! I'd quote $4,000 for this.",
            user_id=demo_ids["mateo"],
            mode="simulate_client",
            project_id=project["id"],
        )
        feedback = turn(
            knowledge,
            provider,
            persona="sarah",
            text="Can you step out of role and give me feedback?",
            user_id=demo_ids["mateo"],
            mode="simulate_client",
            project_id=project["id"],
            history=[
                {"role": "user", "content": "Hi! I'd quote $4,000 for this."},
                {"role": "assistant", "content": "That's more than we planned."},
            ],
        )
    role_prompt = endpoint.system_prompt(0)
    assert "role-playing a client" in role_prompt and project["title"] in role_prompt
    assert f"${float(project['budget_max']):,.0f}" in role_prompt
    assert "tools" not in endpoint.requests[0]
    assert not of(in_role, "citation")  # the client does not cite lessons
    assert "feedback" in endpoint.system_prompt(1).lower() and of(feedback, "citation")


def test_support_answers_with_citations_and_the_users_plan(knowledge: Database, provider, demo_ids) -> None:
    events, _ = scripted_turn(
        knowledge,
        provider,
        [text_reply("On the Free plan the commission is 10% [1].")],
        persona="support",
        text="What commission do I pay on my plan?",
        user_id=demo_ids["nora"],
    )
    account = of(events, "tool_result", "my_account")[0].data
    assert account["plan"] == "Free" and account["commission_rate"] == 0.1
    citations = of(events, "citation")
    assert citations and {c.corpus for c in citations} == {"help_center"}
    assert any(c.source == "help_center/fees-and-commission.md" for c in citations)
    assert not of(events, "handoff")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Can I talk to a human please?", "user_request"),
        ("This is RIDICULOUS, my money was stolen and nobody answers!!!", "upset"),
    ],
)
def test_support_escalates_with_a_ticket(knowledge: Database, provider, demo_ids, text, reason) -> None:
    nora = demo_ids["nora"]
    events, _ = scripted_turn(
        knowledge,
        provider,
        [text_reply("I've opened a ticket for you.")],
        persona="support",
        text=text,
        user_id=nora,
        history=[{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi!"}],
    )
    handoff = of(events, "handoff")
    assert len(handoff) == 1 and handoff[0].reason == reason
    with knowledge.as_user(nora) as conn:
        ticket = conn.execute("SELECT * FROM support_tickets WHERE id = %s", (handoff[0].ticket_id,)).fetchone()
    assert ticket["reason"] == reason and text in ticket["transcript"] and "user: hello" in ticket["transcript"]


def test_no_answer_threshold_separates_on_and_off_topic(knowledge: Database) -> None:
    def best(q: str) -> float:
        return min(h.distance for h in search(knowledge, q, corpora=["help_center"], k=4) if h.distance is not None)

    assert best("how do I withdraw to paypal") < NO_ANSWER_DISTANCE
    assert best("how long is the security hold") < NO_ANSWER_DISTANCE
    assert best("write me a poem about the sea") > NO_ANSWER_DISTANCE


def test_anonymous_visitor_gets_public_help_only(knowledge: Database, provider) -> None:
    with respx.mock() as router:
        endpoint = ScriptedEndpoint(router, [text_reply("Free plan: 10%.")])
        events = turn(knowledge, provider, persona="support", text="What are the fees?")
        blocked = turn(knowledge, provider, persona="marcus", text="Help me grow")
    assert not of(events, "tool_call", "my_account")
    tool_names = {t["function"]["name"] for t in endpoint.requests[0].get("tools", [])}
    assert "my_account" not in tool_names
    assert [e.code for e in of(blocked, "error")] == ["sign_in_required"]


def test_anonymous_visitor_can_still_reach_a_human(knowledge: Database, provider) -> None:
    events, _ = scripted_turn(
        knowledge,
        provider,
        [text_reply("A person will reply.")],
        persona="support",
        text="I need to speak to a real person",
    )
    ticket_id = of(events, "handoff")[0].ticket_id
    with knowledge.admin() as conn:
        row = conn.execute("SELECT user_id, reason FROM support_tickets WHERE id = %s", (ticket_id,)).fetchone()
    assert row == {"user_id": None, "reason": "user_request"}
    with knowledge.as_user(None) as conn:  # and cannot read it back
        assert conn.execute("SELECT count(*) AS n FROM support_tickets").fetchone()["n"] == 0


def test_cli_ask_json_prints_events(knowledge: Database, demo_ids, monkeypatch) -> None:
    from typer.testing import CliRunner

    from cli import app
    from core.settings import get_settings

    monkeypatch.setenv("OPENAI_BASE_URL", BASE_URL)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("MENTOR_LLM_HTTP", "httpx")  # the transport respx intercepts
    get_settings.cache_clear()
    try:
        with respx.mock() as router:
            ScriptedEndpoint(router, [text_reply("Median React rate is in the card.")])
            result = CliRunner().invoke(
                app, ["ask", "--persona", "david", "--user", "mateo", "--json", "What should I charge for React?"]
            )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    events = json.loads(result.stdout)
    assert events[-1]["type"] == "done"
    assert any(e["type"] == "tool_result" and e["name"] == "market_rates" for e in events)


def test_cli_chat_keeps_history(knowledge: Database, monkeypatch) -> None:
    from typer.testing import CliRunner

    from cli import app
    from core.settings import get_settings

    monkeypatch.setenv("OPENAI_BASE_URL", BASE_URL)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("MENTOR_LLM_HTTP", "httpx")  # the transport respx intercepts
    get_settings.cache_clear()
    try:
        with respx.mock() as router:
            endpoint = ScriptedEndpoint(
                router, [text_reply("Escrow holds the money."), text_reply("It is released on approval.")]
            )
            result = CliRunner().invoke(
                app,
                ["chat", "--persona", "support", "--user", "nora"],
                input="What is escrow?\nWhen is it released?\n/quit\n",
            )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "Escrow holds the money." in result.stdout and "It is released on approval." in result.stdout
    second = endpoint.requests[1]["messages"]
    assert [m["content"] for m in second[1:]] == ["What is escrow?", "Escrow holds the money.", "When is it released?"]


def test_tool_loop_is_bounded(knowledge: Database, provider, demo_ids) -> None:
    """A model that never stops calling tools is cut off after the persona's max_tool_steps."""
    endless = [tool_reply([("market_rates", {"skill": "React"})]) for _ in range(10)]
    events, endpoint = scripted_turn(knowledge, provider, endless, persona="david", text="Rates?",
                                     user_id=demo_ids["mateo"])
    assert events[-1].finish_reason == "tool_steps"
    assert len(endpoint.requests) == 5  # the first call plus max_tool_steps (4) more


def test_usage_is_counted_with_tiktoken_when_the_backend_reports_none(knowledge: Database, provider,
                                                                       demo_ids) -> None:
    events, _ = scripted_turn(knowledge, provider, [text_reply("Four words right here.", usage=None)],
                              persona="support", text="How do refunds work?", user_id=demo_ids["nora"])
    usage = events[-1].usage
    assert usage.counted == "tiktoken" and usage.prompt_tokens > 200
    assert usage.completion_tokens == 5  # "Four words right here." in cl100k_base


def test_the_model_requests_retry_waits_follow_the_server_then_back_off() -> None:
    """agents/llm_http.py keeps the openai client's rules: the server's retry-after when sane, else
    0.5 s doubling to 8 s, with up to 25% jitter below."""
    import email.utils
    import time

    from agents.llm_http import retry_delay

    assert retry_delay(0, {"retry-after": "2"}) == 2.0
    assert retry_delay(0, {"retry-after-ms": "1500"}) == 1.5
    soon = email.utils.formatdate(time.time() + 3, usegmt=True)
    assert 1.5 < retry_delay(0, {"retry-after": soon}) <= 3.5
    for odd in ("0", "120", "-1", "soon"):  # not a sane wait: backoff
        assert 0.375 <= retry_delay(0, {"retry-after": odd}) <= 0.5
    assert 0.75 <= retry_delay(1) <= 1.0 and 6.0 <= retry_delay(10) <= 8.0


def test_an_endpoint_nobody_listens_on_is_a_retryable_typed_error() -> None:
    import asyncio

    from langchain_core.messages import HumanMessage

    from agents.llm import LLMError, OpenAICompatibleProvider
    from core.settings import Settings

    provider = OpenAICompatibleProvider(Settings(openai_base_url="http://127.0.0.1:9/v1", openai_api_key="k",
                                                 mentor_model="m", llm_max_retries=1))

    async def ask() -> None:
        from agents.aio import close_loop_resources

        try:
            async for _ in provider.astream([HumanMessage("hi")]):
                pass
        finally:
            await close_loop_resources()  # the HTTP session bound to this loop

    with pytest.raises(LLMError) as info:
        asyncio.run(ask())
    assert info.value.retryable and "cannot be reached" in str(info.value)
    # the user never reads the endpoint's address; the operator's log does
    assert "127.0.0.1" not in str(info.value) and info.value.detail.startswith("unreachable")


def test_identical_tool_calls_in_a_round_run_once_and_a_round_is_capped(knowledge: Database, provider,
                                                                       demo_ids) -> None:
    """A small model asked for one tool ten times, five of them the same: the repeats are answered once and
    at most `max_tool_calls` (4) run, so the next request stays inside the model's context."""
    import re

    same = ("my_revenue_summary", {"months": 1})
    calls = [same] * 5 + [("my_profile", {}), ("learning_roi", {}), ("my_revenue_summary", {"months": 3}),
                          ("my_revenue_summary", {"months": 6}), ("my_revenue_summary", {"months": 12})]
    events, endpoint = scripted_turn(knowledge, provider, [tool_reply(calls), text_reply("Here is your summary.")],
                                     persona="marcus", text="How is my business doing?", user_id=demo_ids["mateo"])
    by_model = [(e.name, e.args) for e in of(events, "tool_call") if re.fullmatch(r"call_\d+_\w+", e.id)]
    assert by_model == [same, ("my_profile", {}), ("learning_roi", {}), ("my_revenue_summary", {"months": 3})]
    second = endpoint.requests[1]["messages"]  # what the model is told it asked for, and each answer
    assistant = next(m for m in second if m["role"] == "assistant" and m.get("tool_calls"))
    told = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in assistant["tool_calls"]]
    assert told == by_model
    assert len([m for m in second if m["role"] == "tool"]) == 4
