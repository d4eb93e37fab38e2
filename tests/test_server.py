"""The running service: WebSocket protocol, resume, limits, auth, REST and the OpenAI-compatible API."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from agents.testing import REPLY
from server.auth import issue_token
from store.db import Database


@pytest.fixture(scope="module")
def tokens(live, demo_ids) -> dict[str, str]:
    return {h: issue_token(live.services.settings, uid) for h, uid in demo_ids.items()}


def open_ws(server, token: str | None = None, **params: str):
    query = "&".join(f"{k}={v}" for k, v in ({"token": token} if token else {}).items() | params.items()
                     if k != "origin")
    ws = connect(f"{server.ws}?{query}", origin=params.get("origin"), open_timeout=10)
    ready = recv(ws)
    return ws, ready


def recv(ws, timeout: float = 20) -> dict:
    """The next frame, which must be one the protocol defines (server/protocol.py's ServerFrame)."""
    from server.protocol import SERVER_FRAMES

    frame = json.loads(ws.recv(timeout=timeout))
    SERVER_FRAMES.validate_python(frame)
    return frame


def send(ws, **frame) -> None:
    ws.send(json.dumps(frame))


def until(ws, kind: str, timeout: float = 30) -> list[dict]:
    """Receive events up to and including the first of `kind`."""
    events, deadline = [], time.time() + timeout
    while time.time() < deadline:
        try:
            event = recv(ws, timeout=max(0.01, deadline - time.time()))
        except TimeoutError:
            break
        events.append(event)
        if event["type"] == kind:
            return events
    raise AssertionError(f"no {kind} within {timeout}s; received: {[(e['type'], e.get('code')) for e in events]}")


def message(ws, text: str, **extra) -> str:
    client_id = extra.pop("client_id", uuid.uuid4().hex)
    send(ws, type="message", client_id=client_id, text=text, **extra)
    return client_id


def text_of(events: list[dict]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "token")


def test_ready_then_streamed_turn_in_seq_order(live, tokens, db: Database) -> None:
    ws, ready = open_ws(live, tokens["mateo"])
    assert ready["type"] == "ready" and ready["user"]["handle"] == "mateo"
    assert {p["id"] for p in ready["personas"]} >= {"marcus", "sarah", "david", "proposal_writer", "support"}
    client_id = message(ws, "What should I charge for React?", persona="david")
    events = until(ws, "done")
    ws.close()
    ack = events[0]
    assert ack["type"] == "ack" and ack["client_id"] == client_id and not ack["duplicate"]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # monotonic, no gaps
    kinds = [e["type"] for e in events]
    assert kinds.index("tool_result") < kinds.index("token") and kinds[-1] == "done"
    assert text_of(events) == REPLY
    done = events[-1]
    assert done["message_id"] == ack["message_id"] and done["usage"]["completion_tokens"] > 0
    with db.admin() as conn:
        stored = conn.execute("SELECT content, status FROM messages WHERE id = %s", (ack["message_id"],)).fetchone()
        user_msg = conn.execute("SELECT content FROM messages WHERE id = %s", (ack["user_message_id"],)).fetchone()
        logged = conn.execute("SELECT count(*) AS n FROM conversation_events WHERE conversation_id = %s",
                              (ack["conversation_id"],)).fetchone()
    assert stored == {"content": REPLY, "status": "complete"}
    assert user_msg["content"] == "What should I charge for React?"
    assert logged["n"] == len(events)


def test_resume_after_forced_disconnect_mid_stream(live, tokens) -> None:
    ws, _ = open_ws(live, tokens["mateo"])
    message(ws, "Tell me about fees", persona="support")
    seen = []
    while sum(e["type"] == "token" for e in seen) < 3:
        seen.append(recv(ws))
    ws.close()  # the network drops mid-answer
    conv = seen[0]["conversation_id"]
    ws2, _ = open_ws(live, tokens["mateo"])
    send(ws2, type="resume", conversation_id=conv, after_seq=seen[-1]["seq"])
    rest = until(ws2, "done")
    ws2.close()
    all_events = seen + rest
    seqs = [e["seq"] for e in all_events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no gaps, no duplicates"
    assert text_of(all_events) == REPLY


def test_resume_on_another_worker_after_the_answer_finished(live, live_other_worker, tokens) -> None:
    ws, _ = open_ws(live, tokens["mateo"])
    message(ws, "How do withdrawals work?", persona="support")
    original = until(ws, "done")
    ws.close()
    ws2, _ = open_ws(live_other_worker, tokens["mateo"])
    send(ws2, type="resume", conversation_id=original[0]["conversation_id"], after_seq=0)
    replayed = until(ws2, "done")
    ws2.close()
    assert [e["seq"] for e in replayed] == [e["seq"] for e in original]
    assert [e["type"] for e in replayed] == [e["type"] for e in original]


def test_resending_the_same_client_id_does_not_start_a_second_turn(live, tokens, db: Database) -> None:
    ws, _ = open_ws(live, tokens["nora"])
    client_id = message(ws, "What is escrow?", persona="support")
    first = until(ws, "done")
    conv = first[0]["conversation_id"]
    message(ws, "What is escrow?", persona="support", client_id=client_id, conversation_id=conv)
    again = until(ws, "done")
    ws.close()
    assert again[0]["type"] == "ack" and again[0]["duplicate"] is True
    assert again[0]["message_id"] == first[0]["message_id"]
    assert [e["seq"] for e in again[1:]] == [e["seq"] for e in first]  # the stored events, replayed
    with db.admin() as conn:
        n = conn.execute("SELECT count(*) AS n FROM messages WHERE conversation_id = %s", (conv,)).fetchone()["n"]
    assert n == 2  # one user message, one answer


def test_cancel_stops_promptly_and_keeps_the_partial_answer(live, tokens, db: Database) -> None:
    ws, _ = open_ws(live, tokens["mateo"])
    message(ws, "Give me a long answer", persona="marcus")
    events = []
    while not any(e["type"] == "token" for e in events):
        events.append(recv(ws))
    sent_at = time.time()
    send(ws, type="cancel")
    events += until(ws, "done")
    elapsed = time.time() - sent_at
    ws.close()
    done = events[-1]
    assert done["finish_reason"] == "cancelled" and elapsed < 2
    partial = text_of(events)
    assert 0 < len(partial) < len(REPLY)
    with db.admin() as conn:
        row = conn.execute("SELECT content, status FROM messages WHERE id = %s", (done["message_id"],)).fetchone()
    assert row == {"content": partial, "status": "cancelled"}


@pytest.mark.parametrize(("raw", "code"), [
    ("this is not json", "bad_json"),
    (json.dumps({"type": "dance"}), "unknown_type"),
    (json.dumps([1, 2, 3]), "invalid_frame"),
    (json.dumps({"type": "message", "text": "no client id"}), "invalid_frame"),
    (json.dumps({"type": "resume", "conversation_id": "not-a-uuid", "after_seq": 0}), "invalid_frame"),
    (json.dumps({"type": "feedback", "message_id": 1, "rating": 9}), "invalid_frame"),
    (json.dumps({"type": "message", "client_id": "c1", "text": "x" * 5000}), "text_too_long"),
    (json.dumps({"type": "message", "client_id": "c2", "text": "y" * 40_000}), "frame_too_large"),
])
def test_bad_frames_get_typed_errors_and_the_connection_stays_usable(live, tokens, raw: str, code: str) -> None:
    ws, _ = open_ws(live, tokens["sofia"])
    ws.send(raw)
    error = recv(ws)
    assert error["type"] == "error" and error["code"] == code and error["message"]
    send(ws, type="ping")
    assert recv(ws)["type"] == "pong"
    ws.close()


def test_abusive_client_is_disconnected(live, tokens) -> None:
    ws, _ = open_ws(live, tokens["sofia"])
    for _ in range(25):
        try:
            ws.send("garbage")
        except ConnectionClosed:  # the server may already have closed it: the point of the test
            break
    codes = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            codes.append(recv(ws)["code"])
    assert codes[-1] == "abusive" and closed.value.rcvd.code == 1008


def test_one_turn_at_a_time_per_connection(live, tokens) -> None:
    ws, _ = open_ws(live, tokens["sofia"])
    message(ws, "first", persona="marcus")
    message(ws, "second", persona="marcus")
    events = until(ws, "done")
    errors = [e for e in events if e["type"] == "error"]
    assert errors and errors[0]["code"] == "too_many_turns" and errors[0]["retry_after"] > 0
    ws.close()


def test_rate_limit_says_when_to_retry(live_strict, demo_ids) -> None:
    token = issue_token(live_strict.services.settings, demo_ids["dana"])
    ws, _ = open_ws(live_strict, token)
    codes = []
    for i in range(5):
        message(ws, f"hello {i}", persona="support")
        event = recv(ws)
        while event["type"] not in ("ack", "error"):
            event = recv(ws)
        codes.append(event.get("code", "ack"))
        if event["type"] == "ack":
            until(ws, "done")
    ws.close()
    assert codes[:3] == ["ack", "ack", "ack"] and codes[3] == "rate_limited"


def test_conversation_token_budget(live_strict, demo_ids) -> None:
    token = issue_token(live_strict.services.settings, demo_ids["nora"])
    ws, _ = open_ws(live_strict, token)
    message(ws, "How do fees work?", persona="support")
    first = until(ws, "done")
    assert first[-1]["usage"]["total_tokens"] > 500
    message(ws, "And withdrawals?", persona="support", conversation_id=first[0]["conversation_id"])
    error = recv(ws)
    ws.close()
    assert error["code"] == "token_budget_exceeded" and "new conversation" in error["message"]


def _rejected(server, **params) -> dict:
    ws, first = open_ws(server, **params)
    with pytest.raises(ConnectionClosed) as closed:
        recv(ws)
    assert closed.value.rcvd.code == 4401
    return first


def test_forged_expired_and_missing_tokens_are_rejected(live, demo_ids) -> None:
    import jwt

    forged = jwt.encode({"sub": str(demo_ids["mateo"]), "exp": int(time.time()) + 600}, "x" * 32, algorithm="HS256")
    expired = issue_token(live.services.settings, demo_ids["mateo"], ttl_s=-5)
    assert _rejected(live, token=forged) == {"type": "error", "code": "unauthorized", "message": "invalid token",
                                             "retryable": False, "retry_after": None, "seq": None}
    assert _rejected(live, token=expired)["message"] == "token expired"
    assert _rejected(live)["code"] == "unauthorized"


def test_widget_site_key_checks_the_origin(live, db: Database) -> None:
    from server.auth import add_site

    site = add_site(db, "acme", ["https://acme.example"])
    wrong = _rejected(live, site_key=site["site_key"], origin="https://evil.example")
    assert "not allowed" in wrong["message"]
    ws, ready = open_ws(live, site_key=site["site_key"], origin="https://acme.example")
    assert ready["user"] is None and ready["visitor_id"] and [p["id"] for p in ready["personas"]] == ["support"]
    message(ws, "Help me grow my business", persona="marcus")
    assert recv(ws)["code"] == "forbidden"
    message(ws, "I want to talk to a human", persona="support")
    events = until(ws, "done")
    ws.close()
    handoff = [e for e in events if e["type"] == "handoff"]
    assert handoff and handoff[0]["ticket_id"] > 0
    assert not [e for e in events if e["type"] == "tool_call" and e["name"] == "my_account"]
    # the same visitor can resume their conversation; another visitor cannot
    conv = events[0]["conversation_id"]
    ws2, _ = open_ws(live, site_key=site["site_key"], origin="https://acme.example", visitor_id=ready["visitor_id"])
    send(ws2, type="resume", conversation_id=conv, after_seq=0)
    assert recv(ws2)["type"] == "ack"
    ws2.close()
    ws3, _ = open_ws(live, site_key=site["site_key"], origin="https://acme.example")
    send(ws3, type="resume", conversation_id=conv, after_seq=0)
    assert recv(ws3)["code"] == "not_found"
    ws3.close()


def test_rest_conversations_feedback_drafts_and_tickets(live, tokens, db: Database) -> None:
    ws, _ = open_ws(live, tokens["mateo"])
    with db.admin() as conn:
        project = conn.execute("""SELECT p.id FROM projects p JOIN project_skills ps ON ps.project_id = p.id
                                  JOIN skills s ON s.id = ps.skill_id
                                  WHERE s.name = 'React' AND p.status = 'open' ORDER BY p.id DESC LIMIT 1""").fetchone()
    message(ws, f"Write a proposal for project {project['id']}", persona="proposal_writer")
    proposal_turn = until(ws, "done")
    message(ws, "Can I talk to a human?", persona="support")
    support_turn = until(ws, "done")
    send(ws, type="feedback", message_id=proposal_turn[-1]["message_id"], rating=5, comment="great",
         implemented=True)
    assert recv(ws)["type"] == "feedback_saved"
    ws.close()
    auth = {"authorization": f"Bearer {tokens['mateo']}"}
    with httpx.Client(base_url=live.http, headers=auth) as client:
        convs = client.get("/api/conversations").json()
        conv_id = proposal_turn[0]["conversation_id"]
        assert conv_id in [c["id"] for c in convs]
        detail = client.get(f"/api/conversations/{conv_id}").json()
        assert [m["role"] for m in detail["messages"]][:2] == ["user", "assistant"]
        assert [e["seq"] for e in detail["events"]] == sorted(e["seq"] for e in detail["events"])
        drafts = client.get("/api/proposals/drafts").json()
        saved = next(e for e in proposal_turn if e["type"] == "tool_result" and e["name"] == "save_proposal_draft")
        assert saved["data"]["proposal_id"] in [d["id"] for d in drafts]
        tickets = client.get("/api/support/tickets").json()
        handoff = next(e for e in support_turn if e["type"] == "handoff")
        assert handoff["ticket_id"] in [t["id"] for t in tickets]
        ok = client.post(f"/api/messages/{support_turn[-1]['message_id']}/feedback",
                         json={"rating": 2, "comment": "meh", "implemented": False})
        assert ok.status_code == 201
        bad = client.post(f"/api/messages/{support_turn[-1]['message_id']}/feedback", json={"rating": 7})
        assert bad.status_code == 422
    # another user cannot see or rate mateo's messages
    other = {"authorization": f"Bearer {tokens['sofia']}"}
    with httpx.Client(base_url=live.http, headers=other) as client:
        assert client.get(f"/api/conversations/{conv_id}").status_code == 404
        assert client.post(f"/api/messages/{support_turn[-1]['message_id']}/feedback",
                           json={"rating": 1}).status_code == 404
        assert client.get("/api/conversations").status_code == 200
    with httpx.Client(base_url=live.http) as client:
        assert client.get("/api/conversations").status_code == 401


def test_openai_client_against_v1(live, tokens, db: Database) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{live.http}/v1", api_key=tokens["mateo"])
    assert {"marcus", "sarah", "david", "proposal_writer", "support"} <= {m.id for m in client.models.list()}
    question = [{"role": "user", "content": "What should I charge for React work?"}]
    reply = client.chat.completions.create(model="david", messages=question)
    assert reply.choices[0].message.content == REPLY
    assert reply.usage.completion_tokens > 0
    facts = reply.model_extra["mentor"]["events"]
    rates = next(e for e in facts if e["type"] == "tool_result" and e["name"] == "market_rates")
    with db.admin() as conn:
        p50 = conn.execute("""SELECT p50 FROM market_rates m JOIN skills s ON s.id = m.skill_id
                              WHERE s.name = 'React' AND segment = 'intermediate'""").fetchone()["p50"]
    assert rates["data"]["p50"] == float(p50)
    assert reply.model_extra["mentor"]["grounding"]["unsupported"] == []
    stream = client.chat.completions.create(model="david", messages=question, stream=True)
    text, extensions, grounding = "", [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        mentor = (chunk.model_extra or {}).get("mentor") or {}
        if "event" in mentor:
            extensions.append(mentor["event"])
        grounding = mentor.get("grounding", grounding)
    assert text == REPLY
    assert grounding == {"figures": 0, "unsupported": []}  # "[1]" is a citation marker, not a figure
    assert any(e["type"] == "tool_result" and e["name"] == "market_rates" for e in extensions)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nobody", messages=question)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{live.http}/v1", api_key="forged").chat.completions.create(
            model="david", messages=question)


def test_health_ready_metrics_docs(live) -> None:
    with httpx.Client(base_url=live.http) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz").json()
        assert ready["ready"] and ready["database"] and ready["backend"] == "scripted-test-model"
        metrics = client.get("/metrics").text
        assert "mentor_turns_total" in metrics and "mentor_ws_connections" in metrics
        assert "mentor_turn_setup_wait_seconds_count" in metrics
        assert client.get("/docs").status_code == 200
        assert "/ws/chat" not in client.get("/openapi.json").json()["paths"]  # websockets live in docs/protocol.md
        assert "WebSocket protocol" in client.get("/docs/protocol").text
        assert client.get("/widget.js").headers["content-type"].startswith("application/javascript")
        assert client.get("/static/../app.py").status_code == 404
        page = client.get("/knowledge/help_center/fees-and-commission.md").text
        assert 'id="freelancer-commission"' in page


def test_authorization_header_works_for_the_websocket(live, tokens) -> None:
    ws = connect(live.ws, additional_headers={"Authorization": f"Bearer {tokens['dana']}"}, open_timeout=10)
    ready = recv(ws)
    ws.close()
    assert ready["type"] == "ready" and ready["user"]["handle"] == "dana"


def test_cli_token_and_sites(live, db: Database) -> None:
    import jwt
    from typer.testing import CliRunner

    from cli import app
    from server.auth import jwt_secret

    runner = CliRunner()
    result = runner.invoke(app, ["token", "mateo"])
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.stdout.strip(), jwt_secret(live.services.settings), algorithms=["HS256"])
    assert claims["sub"] == "2" and claims["exp"] > time.time()
    added = runner.invoke(app, ["sites", "add", "--origin", "https://shop.example", "--name", "shop"])
    assert added.exit_code == 0 and added.stdout.strip().startswith("site_")
    listed = runner.invoke(app, ["sites", "list"]).stdout
    assert "https://shop.example" in listed and "third-party" in listed
    own = runner.invoke(app, ["sites", "add", "--origin", "https://market.example", "--name", "own", "--first-party"])
    assert own.exit_code == 0 and "first-party" in own.stdout
    shop_id = next(line.split()[0] for line in listed.splitlines() if " shop " in line)
    assert runner.invoke(app, ["sites", "first-party", shop_id]).stdout.strip() == "shop: first-party"
    assert runner.invoke(app, ["sites", "first-party", shop_id, "--off"]).stdout.strip() == "shop: third-party"
    bad = runner.invoke(app, ["sites", "add", "--origin", "shop.example"])
    assert bad.exit_code != 0 and bad.stderr.startswith("error: origins must look like")


def test_resending_the_first_message_of_a_new_conversation_does_not_start_another(live, tokens,
                                                                                  db: Database) -> None:
    """The ack was lost, so the client re-sends without a conversation id: same turn, same conversation."""
    ws, _ = open_ws(live, tokens["dana"])
    client_id = message(ws, "How do milestones work?", persona="support")
    first = until(ws, "ack")
    ws.close()  # connection lost; the client never saw the ack
    ws2, _ = open_ws(live, tokens["dana"])
    message(ws2, "How do milestones work?", persona="support", client_id=client_id)
    again = until(ws2, "done")
    ws2.close()
    assert again[0]["duplicate"] is True and again[0]["conversation_id"] == first[-1]["conversation_id"]
    with db.admin() as conn:
        n = conn.execute("SELECT count(*) AS n FROM messages WHERE client_id = %s", (client_id,)).fetchone()["n"]
    assert n == 1
    # another user re-using the same client id gets their own turn
    ws3, _ = open_ws(live, tokens["sofia"])
    message(ws3, "How do milestones work?", persona="support", client_id=client_id)
    own = until(ws3, "ack")[-1]
    ws3.close()
    assert own["duplicate"] is False and own["conversation_id"] != first[-1]["conversation_id"]


def test_token_budget_check_reveals_nothing_about_other_conversations(live_strict, demo_ids) -> None:
    owner = issue_token(live_strict.services.settings, demo_ids["sofia"])
    ws, _ = open_ws(live_strict, owner)
    message(ws, "How do fees work?", persona="support")
    conv = until(ws, "done")[0]["conversation_id"]
    ws.close()
    intruder = issue_token(live_strict.services.settings, demo_ids["mateo"])
    ws2, _ = open_ws(live_strict, intruder)
    message(ws2, "hi", persona="support", conversation_id=conv)
    error = recv(ws2)
    ws2.close()
    assert error["code"] == "not_found" and "tokens" not in error["message"]


class _Failing:
    """A provider that fails the way the test asks: a typed model error, or a bug."""

    name = "failing-test-model"
    supports_tools = False
    composes = False

    def __init__(self, error: Exception) -> None:
        self.error = error

    def stream(self, messages, **kwargs):
        yield "partial "
        raise self.error


@pytest.mark.parametrize("case", ["project_required", "unknown_persona", "llm_unavailable", "internal",
                                  "persona_mismatch"])
def test_every_failure_ends_the_turn_with_a_typed_error(case: str, live, tokens, db: Database) -> None:
    from agents.llm import LLMError
    from harness.live import LiveServer
    from server.services import Services

    server = live
    if case in ("llm_unavailable", "internal"):
        error = LLMError("model endpoint answered 503", retryable=True) if case == "llm_unavailable" \
            else RuntimeError("a bug")
        server = LiveServer(Services(settings=live.services.settings, db=db, provider=_Failing(error)))
    try:
        ws, _ = open_ws(server, tokens["mateo"])
        frame = {"persona": "proposal_writer", "text": "Write me a proposal"} if case == "project_required" else \
            {"persona": "marcus", "text": "How do I grow?"}
        if case == "persona_mismatch":
            message(ws, "How do I grow?", persona="marcus")
            conversation = until(ws, "done")[0]["conversation_id"]
            message(ws, "What should I charge?", persona="david", conversation_id=conversation)
            assert recv(ws)["code"] == "persona_mismatch"  # nothing was started or stored
            return
        if case == "unknown_persona":
            frame["persona"] = "nobody"
        message(ws, frame["text"], persona=frame["persona"])
        if case == "unknown_persona":
            assert recv(ws)["code"] == "unknown_persona"  # refused before anything was stored
            return
        events = until(ws, "done", timeout=60)
        errors = [e for e in events if e["type"] == "error"]
        assert errors and errors[0]["code"] == case and events[-1]["finish_reason"] == "error"
        with db.admin() as conn:
            status = conn.execute("SELECT status FROM messages WHERE id = %s", (events[-1]["message_id"],)).fetchone()
        assert status["status"] == "error"  # never left "streaming"
        ws.close()
    finally:
        if server is not live:
            server.stop()


def test_anonymous_caller_gets_sign_in_required_and_done(live, db: Database) -> None:
    from server.auth import add_site

    site = add_site(db, "signin", ["https://signin.example"])
    ws, _ = open_ws(live, site_key=site["site_key"], origin="https://signin.example")
    message(ws, "hello", persona="marcus")
    assert recv(ws)["code"] == "forbidden"  # widget visitors talk to support only
    ws.close()


def test_a_conversation_remembers_its_project_for_follow_ups(live, tokens, db: Database) -> None:
    ws, _ = open_ws(live, tokens["mateo"])
    message(ws, "Write a proposal for project 67", persona="proposal_writer")
    first = until(ws, "done", timeout=60)
    conversation = first[0]["conversation_id"]
    assert first[0]["project_id"] == 67 and first[-1]["finish_reason"] == "stop"
    message(ws, "Make it shorter and mention my React experience", persona="proposal_writer",
            conversation_id=conversation)
    follow = until(ws, "done", timeout=60)
    assert not [e for e in follow if e["type"] == "error"] and follow[-1]["finish_reason"] == "stop"
    project = next(e for e in follow if e["type"] == "tool_result" and e["name"] == "get_project")
    assert project["data"]["id"] == 67
    ws.close()
    with db.admin() as conn:
        conn.execute("DELETE FROM proposals WHERE status = 'draft' AND project_id = 67")


def test_a_single_setup_slot_survives_every_way_a_turn_can_end(knowledge, demo_ids) -> None:
    """MENTOR_TURN_SETUP_SLOTS=1: a refused, duplicate, mismatched or failed turn gives its slot back,
    so the turns after it (two at once, too) still run; a lost slot would hang them."""
    from harness.live import serve

    server = serve(knowledge, turn_setup_slots=1, user_messages_per_minute=6)
    try:
        ws, _ = open_ws(server, issue_token(server.services.settings, demo_ids["mateo"]))
        client_id = message(ws, "How do fees work?", persona="support")
        conv = until(ws, "done")[0]["conversation_id"]
        message(ws, "How do fees work?", persona="support", client_id=client_id, conversation_id=conv)
        assert until(ws, "done")[0]["duplicate"] is True
        message(ws, "What should I charge?", persona="david", conversation_id=conv)
        assert recv(ws)["code"] == "persona_mismatch"
        message(ws, "Write me a proposal", persona="proposal_writer")  # no project: fails while preparing
        assert [e["code"] for e in until(ws, "done") if e["type"] == "error"] == ["project_required"]
        other, _ = open_ws(server, issue_token(server.services.settings, demo_ids["dana"]))
        message(ws, "And withdrawals?", persona="support", conversation_id=conv)
        message(other, "What is escrow?", persona="support")
        assert REPLY in text_of(until(ws, "done", timeout=20)) and REPLY in text_of(until(other, "done", timeout=20))
        for i in range(7):  # over the limit: refused inside the opening transaction
            message(ws, f"hello {i}", persona="support")
            if (first := recv(ws))["type"] == "error":
                break
            until(ws, "done")
        assert first["code"] == "rate_limited"
        message(other, "Thanks!", persona="support")
        assert until(other, "done", timeout=20)[-1]["finish_reason"] == "stop"
        ws.close()
        other.close()
    finally:
        server.stop()


def test_a_message_sent_the_moment_done_arrives_is_never_too_many_turns(knowledge, demo_ids) -> None:
    """One turn per connection: the turn is over for the client when `done` arrives, not when its task has
    wound down (a message sent right after `done` was refused `too_many_turns` in 2 of 32 tries)."""
    from agents.testing import ScriptedProvider
    from harness.live import serve

    server = serve(knowledge, ScriptedProvider(delay_s=0), user_messages_per_minute=1000)
    try:
        ws, _ = open_ws(server, issue_token(server.services.settings, demo_ids["dana"]))
        conversation = None
        for i in range(32):
            message(ws, f"Question {i}: how do fees work?", persona="support",
                    **({"conversation_id": conversation} if conversation else {}))
            events = until(ws, "done")
            assert not [e for e in events if e["type"] == "error"], (i, events)
            conversation = events[0]["conversation_id"]
        ws.close()
    finally:
        server.stop()
