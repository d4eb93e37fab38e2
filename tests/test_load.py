"""A bounded load test on loopback: all personas, signed-in users and widget visitors, clients that
drop mid-answer and resume, for a fixed time, through the real provider against the mock model."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from harness.load import VirtualUser, run_load, stored_answers
from harness.mock_llm import MockLLM, MockServer
from server.auth import add_site, issue_token

SECONDS = 20
SECRETS = {"nora": ["Nora Bennett", "nora@example.com", "2599.86"],
           "mateo": ["Mateo Alvarez", "mateo@example.com", "122435.11"],
           "sofia": ["Sofia Lindqvist", "sofia@example.com", "340112.32"]}


@pytest.fixture(scope="module")
def loaded(knowledge):
    from agents.llm import OpenAICompatibleProvider
    from core.settings import get_settings
    from harness.live import LiveServer
    from server.services import Services

    mock = MockServer(MockLLM(tokens=40, rate=100, ttft=0.05))
    settings = get_settings().model_copy(update={"openai_base_url": mock.base_url, "openai_api_key": "sk-mock",
                                                 "mentor_model": "mock", "user_messages_per_minute": 1000,
                                                 "site_messages_per_minute": 1000,
                                                 "visitor_messages_per_minute": 1000,
                                                 "address_messages_per_minute": 1000})
    server = LiveServer(Services(settings=settings, db=knowledge, provider=OpenAICompatibleProvider(settings)))
    yield server
    server.stop()
    mock.stop()


def test_mixed_load_with_reconnects_loses_nothing_and_leaks_nothing(loaded, knowledge, demo_ids) -> None:
    settings = loaded.services.settings
    users = [VirtualUser(name=handle, url=f"{loaded.ws}?token={issue_token(settings, demo_ids[handle])}",
                         personas=["marcus", "sarah", "david", "proposal_writer", "support"],
                         foreign=[s for other, values in SECRETS.items() if other != handle for s in values])
             for handle in SECRETS]
    site = add_site(knowledge, f"load-{uuid.uuid4().hex[:6]}", ["https://shop.example"])
    users += [VirtualUser(name=f"visitor{i}", url=f"{loaded.ws}?site_key={site['site_key']}", personas=["support"],
                          foreign=[s for values in SECRETS.values() for s in values], origin="https://shop.example")
              for i in range(2)]
    result = asyncio.run(run_load(users, SECONDS, drop_probability=0.3))
    summary = result.summary()
    print(summary)
    assert summary["messages_sent"] >= 20 and summary["reconnects_with_resume"] >= 3
    assert summary["lost"] == 0 and summary["seq_gaps"] == 0 and summary["cross_user_leaks"] == 0
    assert summary["completed"] + summary["rejected"] == summary["messages_sent"]
    stored = stored_answers(knowledge, list(result.answers))
    assert len(stored) == len(result.answers)
    mismatched = [mid for mid, text in result.answers.items() if stored[mid][0] != text]
    assert mismatched == []  # what each client assembled (across its reconnect) is exactly what was stored
    assert summary["error_rate"] <= 0.05
