"""Property-based fuzzing (hypothesis) of WebSocket frames and `/v1` bodies against the running server.

Whatever arrives, the server answers with a typed error (or a normal event), never crashes, keeps
the connection usable, and other connections are unaffected.
"""

from __future__ import annotations

import json
import uuid

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.auth import issue_token
from server.protocol import CLIENT_TYPES
from tests.test_server import message, open_ws, recv, send, text_of, until

SERVER_TYPES = {"ready", "ack", "token", "tool_call", "tool_result", "citation", "handoff", "done", "error", "pong",
                "feedback_saved"}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20)
frame_fields = st.dictionaries(
    st.sampled_from(["client_id", "text", "persona", "conversation_id", "after_seq", "message_id", "rating",
                     "comment", "project_id", "mode", "implemented", "extra"]),
    json_values | st.uuids().map(str) | st.sampled_from(["support", "david", "marcus", "nobody", "chat"]),
    max_size=6)
typed_frames = st.builds(lambda kind, fields: {**fields, "type": kind},
                         st.sampled_from([*CLIENT_TYPES, "hello", "", "MESSAGE"]) | json_values, frame_fields)
raw_frames = (typed_frames.map(json.dumps) | json_values.map(json.dumps) | st.text(max_size=300)
              | st.binary(max_size=300))


def _check(event: dict) -> None:
    assert event["type"] in SERVER_TYPES, event
    if event["type"] == "error":
        assert isinstance(event["code"], str) and event["code"] and isinstance(event["message"], str)
        assert isinstance(event["retryable"], bool)


def test_websocket_frames_never_crash_the_server(live, demo_ids) -> None:
    settings_ = live.services.settings
    bystander, _ = open_ws(live, issue_token(settings_, demo_ids["sofia"]))
    ws, _ = open_ws(live, issue_token(settings_, demo_ids["nora"]))
    seen: dict[str, int] = {}

    @FUZZ
    @given(raw_frames)
    def fuzz(frame: str | bytes) -> None:
        ws.send(frame)
        send(ws, type="ping")  # a valid frame after each: resets the abuse counter, marks the end of replies
        while True:
            event = recv(ws, timeout=30)
            _check(event)
            seen[event.get("code") or event["type"]] = seen.get(event.get("code") or event["type"], 0) + 1
            if event["type"] == "pong":
                break

    fuzz()
    print("replies:", dict(sorted(seen.items(), key=lambda kv: -kv[1])))
    assert seen.get("bad_json", 0) + seen.get("invalid_frame", 0) + seen.get("unknown_type", 0) > 50
    # the fuzzed connection still works, and so does a bystander's
    for sock in (ws, bystander):
        send(sock, type="cancel")  # stop anything a fuzzed frame may have started, and wait until it has
        while (event := recv(sock, timeout=60))["type"] != "done" and event.get("code") != "nothing_to_cancel":
            pass
        message(sock, "How long until I can withdraw my earnings?", persona="support",
                client_id=f"after-fuzz-{uuid.uuid4().hex}")
        events = until(sock, "done", timeout=60)
        assert events[-1]["type"] == "done" and text_of(events)
        sock.close()
    assert httpx.get(f"{live.http}/healthz").status_code == 200


v1_bodies = (st.dictionaries(
    st.sampled_from(["model", "messages", "stream", "temperature", "max_tokens", "user", "tools", "n"]),
    json_values | st.sampled_from(["support", "david", "nobody"])
    | st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool", "robot"]),
                                      "content": json_values | st.text(max_size=30000)}), max_size=4),
    max_size=6) | json_values)


def test_v1_bodies_get_typed_errors_never_a_500(live, demo_ids) -> None:
    token = issue_token(live.services.settings, demo_ids["mateo"])
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=live.http, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:

        @FUZZ
        @given(v1_bodies, st.booleans())
        def fuzz(body, as_bytes: bool) -> None:
            content = json.dumps(body).encode()
            if as_bytes:
                content = content[: len(content) // 2]  # truncated JSON
            answer = client.post("/v1/chat/completions", content=content, headers={"content-type": "application/json"})
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            assert answer.status_code < 500, answer.text
            if answer.status_code >= 400:
                error = answer.json()["error"]
                assert error["message"] and error["type"] == ("rate_limit_error" if answer.status_code == 429
                                                              else "invalid_request_error")

        fuzz()
        print("statuses:", statuses)
        # another user (the fuzzed one may have used up its per-minute allowance on valid bodies)
        ok = client.post("/v1/chat/completions", json={"model": "support", "messages": [
            {"role": "user", "content": "What commission do I pay?"}]},
            headers={"Authorization": f"Bearer {issue_token(live.services.settings, demo_ids['sofia'])}"})
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]
