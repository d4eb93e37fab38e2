"""Faults: the model's endpoint fails in every way we know, and the database restarts mid-conversation.

The service runs under uvicorn with the real OpenAI-compatible provider pointed at a local mock
endpoint (harness/mock_llm.py) that we tell how to fail. The user must see a typed error or a
completed answer; the user's message and any partial answer are kept; re-sending the same frame
retries.
"""

from __future__ import annotations

import time

import httpx
import pytest

from harness.mock_llm import MockLLM, MockServer, expected_answer, token_text
from server.auth import issue_token
from store.db import Database
from tests.test_server import message, open_ws, recv, send, text_of, until

TOKENS = 20


@pytest.fixture(scope="module")
def mock_llm():
    server = MockServer(MockLLM(tokens=TOKENS, rate=400, ttft=0.01))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def faulty(knowledge, mock_llm):
    """The app with the real OpenAI-compatible provider (1 s timeout, 1 retry) against the mock."""
    from agents.llm import OpenAICompatibleProvider
    from core.settings import get_settings
    from harness.live import LiveServer
    from server.services import Services

    settings = get_settings().model_copy(update={"openai_base_url": mock_llm.base_url, "openai_api_key": "sk-mock",
                                                 "mentor_model": "mock", "llm_timeout_s": 1.0,
                                                 "llm_max_retries": 1, "user_messages_per_minute": 1000})
    server = LiveServer(Services(settings=settings, db=knowledge, provider=OpenAICompatibleProvider(settings)))
    yield server
    server.stop()


@pytest.fixture
def ws(faulty, demo_ids):
    socket, _ = open_ws(faulty, issue_token(faulty.services.settings, demo_ids["mateo"]))
    yield socket
    socket.close()


def _stored(db: Database, message_id: int) -> dict:
    with db.admin() as conn:
        return conn.execute("SELECT content, status, reply_to FROM messages WHERE id = %s", (message_id,)).fetchone()


def _fails_then_retry_completes(ws, db: Database, mock_llm, *behaviours: str, persona: str = "marcus",
                                code: str = "llm_unavailable") -> list[dict]:
    mock_llm.queue(*behaviours)
    client_id = message(ws, "How do I find my first clients?", persona=persona)
    events = until(ws, "done", timeout=30)
    error = next(e for e in events if e["type"] == "error")
    assert error["code"] == code and error["retryable"] is True and error["seq"] is not None
    assert events[-1]["finish_reason"] == "error"
    ack = events[0]
    failed = _stored(db, ack["message_id"])
    assert failed["status"] == "error" and failed["content"] == text_of(events)  # the partial answer is kept
    assert _stored(db, ack["user_message_id"]) is not None  # so is the user's message
    conversation = ack["conversation_id"]
    message(ws, "How do I find my first clients?", persona=persona, client_id=client_id, conversation_id=conversation)
    retry = until(ws, "done", timeout=30)
    assert retry[0]["type"] == "ack" and retry[0]["duplicate"] is False
    assert retry[0]["user_message_id"] == ack["user_message_id"] and retry[0]["message_id"] != ack["message_id"]
    assert retry[-1]["finish_reason"] == "stop" and text_of(retry) == expected_answer(TOKENS)
    assert _stored(db, retry[0]["message_id"])["status"] == "complete"
    return events


def test_a_first_byte_later_than_the_timeout_is_one_timeout_error_and_a_resend_retries(ws, db, mock_llm) -> None:
    """No first byte within MENTOR_LLM_TIMEOUT: one request, one timeout error (not retries reported as
    "unreachable" after several timeouts); the user's re-send retries."""
    before = len(mock_llm.mock.requests)
    events = _fails_then_retry_completes(ws, db, mock_llm, "timeout", code="llm_timeout")
    assert len(mock_llm.mock.requests) == before + 2  # the timed-out one, then the user's retry
    assert next(e for e in events if e["type"] == "error")["message"] == (
        "The language model did not start answering in time. Please try again.")


def test_headers_then_no_data_past_the_timeout_is_a_timeout_not_a_broken_stream(ws, db, mock_llm) -> None:
    """llama-server sends its headers before it has read the prompt: a first token later than the timeout
    is still a timeout (`llm_timeout`), not "broke off"."""
    events = _fails_then_retry_completes(ws, db, mock_llm, "silent", code="llm_timeout")
    assert next(e for e in events if e["type"] == "error")["message"] == (
        "The language model did not start answering in time. Please try again.")


def test_500_twice_is_a_retryable_error_worded_for_the_user(ws, db, mock_llm) -> None:
    events = _fails_then_retry_completes(ws, db, mock_llm, "500", "500")
    message_text = next(e for e in events if e["type"] == "error")["message"]
    assert message_text == "The language model failed to answer. Please try again."
    assert "127.0.0.1" not in message_text and "mock" not in message_text


def test_stream_dropped_mid_answer_keeps_the_partial_answer(ws, db, mock_llm) -> None:
    events = _fails_then_retry_completes(ws, db, mock_llm, "drop")
    partial = text_of(events)
    assert partial == expected_answer(TOKENS // 2) and token_text(TOKENS // 2) not in partial


def test_429_then_success_is_invisible_to_the_user(ws, mock_llm) -> None:
    mock_llm.queue("429")
    message(ws, "How do I find my first clients?", persona="marcus")
    events = until(ws, "done", timeout=30)
    assert not [e for e in events if e["type"] == "error"]
    assert text_of(events) == expected_answer(TOKENS) and events[-1]["finish_reason"] == "stop"


def test_a_request_the_endpoint_refuses_is_not_retried(ws, mock_llm) -> None:
    """A 400 (here: an unknown model) says the request itself is wrong: one attempt, and the endpoint's
    own explanation in a non-retryable error."""
    mock_llm.queue("400")
    before = len(mock_llm.mock.requests)
    message(ws, "How do I find my first clients?", persona="marcus")
    events = until(ws, "done", timeout=30)
    error = next(e for e in events if e["type"] == "error")
    assert error["code"] == "llm_unavailable" and error["retryable"] is False
    # the endpoint's own words ("The model `nope` does not exist") are for the operator's log, not the user
    assert "does not exist" not in error["message"] and "operator" in error["message"]
    assert len(mock_llm.mock.requests) == before + 1


def test_malformed_tool_call_is_reported_and_the_answer_completes(ws, mock_llm) -> None:
    mock_llm.queue("bad_tool")
    message(ws, "What do React developers charge?", persona="david")
    events = until(ws, "done", timeout=30)
    bad = [e for e in events if e["type"] == "tool_result" and e["id"] == "call_bad"]
    assert bad and "malformed arguments" in bad[0]["error"] and bad[0]["data"] is None
    assert text_of(events) == expected_answer(TOKENS) and events[-1]["finish_reason"] == "stop"


# -- the database restarts -----------------------------------------------------------------------

@pytest.fixture
def own_database(tmp_path):
    """A PostgreSQL of this test's own (so restarting it disturbs nothing else), migrated and seeded."""
    from store.embedded import EmbeddedServer
    from store.migrate import migrate
    from store.seed import seed

    server = EmbeddedServer(tmp_path)
    database = Database.from_url(server.start())
    migrate(database)
    seed(database, scale=0.1)
    yield server, database
    database.close()
    server.stop()


def _wait_ready(http: str, want: int, timeout: float = 30) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        answer = httpx.get(f"{http}/readyz", timeout=10)
        if answer.status_code == want:
            return answer.json()
        time.sleep(0.2)
    raise AssertionError(f"/readyz never answered {want}")


def test_database_restart_during_a_conversation(own_database) -> None:
    from agents.testing import ScriptedProvider
    from core.settings import get_settings
    from harness.live import LiveServer
    from server.services import Services
    from store.users import list_demo_users

    pg, database = own_database
    settings = get_settings().model_copy(update={"user_messages_per_minute": 1000})
    live = LiveServer(Services(settings=settings, db=database, provider=ScriptedProvider(delay_s=0.05)))
    try:
        user = next(u["id"] for u in list_demo_users(database) if u["handle"] == "mateo")
        ws, _ = open_ws(live, issue_token(settings, user))
        message(ws, "How do I find my first clients?", persona="marcus")
        first = until(ws, "done")
        conversation = first[0]["conversation_id"]
        assert first[-1]["finish_reason"] == "stop"

        # mid-turn: the database goes away while tokens stream
        message(ws, "And how do I keep them?", persona="marcus", conversation_id=conversation)
        until(ws, "token")
        started = time.perf_counter()
        pg.stop()
        events = []
        while not any(e["type"] == "error" for e in events):
            events.append(recv(ws, timeout=30))
        error = events[-1]
        assert error["code"] == "database_unavailable" and error["retryable"] is True and error["seq"] is None
        cut_message = error["message_id"]
        assert _wait_ready(live.http, 503)["database"] is False
        probe = time.perf_counter()
        assert httpx.get(f"{live.http}/readyz", timeout=10).status_code == 503
        assert time.perf_counter() - probe < 5  # readiness answers promptly, not after a pool timeout

        # outside a turn: a typed error, the connection stays usable
        message(ws, "Are you there?", persona="marcus", conversation_id=conversation)
        down = recv(ws, timeout=30)
        assert down["type"] == "error" and down["code"] == "database_unavailable" and down["retryable"] is True
        send(ws, type="ping")
        assert recv(ws)["type"] == "pong"

        # the database comes back: the same service recovers, no restart
        pg.start()  # same data directory and socket
        assert _wait_ready(live.http, 200)["database"] is True
        message(ws, "Are you there?", persona="marcus", conversation_id=conversation)
        again = until(ws, "done")
        assert again[-1]["finish_reason"] == "stop" and not [e for e in again if e["type"] == "error"]
        deadline = time.time() + 20
        while _stored(database, cut_message)["status"] == "streaming" and time.time() < deadline:
            time.sleep(0.2)
        cut = _stored(database, cut_message)
        assert cut["status"] == "error" and cut["content"]  # closed, partial answer kept
        print(f"outage handled in {time.perf_counter() - started:.1f} s")
        ws.close()
        # a reconnecting client can still resume the whole conversation
        ws, _ = open_ws(live, issue_token(settings, user))
        send(ws, type="resume", conversation_id=conversation, after_seq=0)
        replay = []
        while not replay or replay[-1].get("message_id") != again[-1]["message_id"] or replay[-1]["type"] != "done":
            replay.append(recv(ws))
        seqs = [e["seq"] for e in replay]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
        ws.close()
    finally:
        live.stop()


def test_readiness_reports_a_missing_schema_as_a_typed_error(admin_db) -> None:
    from core.errors import DatabaseUnavailable
    from store.users import list_demo_users

    with pytest.raises(DatabaseUnavailable, match="mentor setup"):
        list_demo_users(admin_db)

