"""The opt-in SmolLM2 provider (MENTOR_LLM=local) loads from the installed wheel and generates (about 20-30 s)."""

from __future__ import annotations

import pytest

from agents.llm import LocalProvider, ModelReply
from agents.personas import load_personas
from agents.providers import get_provider
from agents.requests import TurnRequest
from agents.runtime import run_turn
from core.settings import Settings
from store.db import Database

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local() -> LocalProvider:
    provider = get_provider(Settings(llm_backend="local"))  # opt-in; the offline default is the composer
    assert isinstance(provider, LocalProvider) and not provider.supports_tools
    return provider


def test_local_model_streams_tokens(local: LocalProvider) -> None:
    from langchain_core.messages import HumanMessage, SystemMessage

    pieces = list(local.stream([SystemMessage("You are brief."), HumanMessage("Name one way to find clients.")],
                               max_tokens=24, temperature=0))
    reply = pieces[-1]
    assert isinstance(reply, ModelReply) and reply.completion_tokens > 0 and reply.prompt_tokens > 10
    assert "".join(p for p in pieces if isinstance(p, str)).strip() == reply.text.strip() != ""


def test_local_turn_carries_facts_in_events(knowledge: Database, demo_ids, local, tmp_path, monkeypatch) -> None:
    """Without tool calling, the context is assembled up front; the facts reach the client as events."""
    (tmp_path / "registry.yaml").write_text(
        "david:\n  name: David\n  role: Pricing consultant\n  prompt: david.md\n  fragments: [facts]\n"
        "  corpora: [market_data]\n  retrieval_k: 2\n  tools: [market_rates, my_profile]\n"
        "  upfront: [my_profile, {tool: market_rates, args: {skill: $skill}}]\n"
        "  generation: {temperature: 0, max_tokens: 40}\n")
    (tmp_path / "david.md").write_text((load_personas.__wrapped__()["david"].folder / "david.md").read_text())
    monkeypatch.setenv("MENTOR_PERSONAS_DIR", str(tmp_path))
    load_personas.cache_clear()
    try:
        events = list(run_turn(TurnRequest(persona="david", text="What do React developers charge?",
                                           user_id=demo_ids["mateo"]), db=knowledge, provider=local))
    finally:
        load_personas.cache_clear()
    rates = next(e for e in events if e.type == "tool_result" and e.name == "market_rates")
    assert rates.data["skill"] == "React" and rates.data["p50"] > 0
    assert [e for e in events if e.type == "citation"]
    assert "".join(e.delta for e in events if e.type == "token").strip()
    done = events[-1]
    assert done.type == "done" and done.usage.completion_tokens > 0 and done.provider.startswith("local:")
