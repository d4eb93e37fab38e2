"""`mentor serve --workers 2` for real: uvicorn's process manager, one database over TCP, and a human
handoff whose customer and support agent are served by different worker processes.

Which worker served a connection is told by its `X-Mentor-Worker` header (the worker's pid), so the test
knows the customer's socket and every one of the agent's requests and sockets are on the other process:
joining, typing, replies, read receipts and the bot's return all cross processes through PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from harness.mock_llm import wait_http
from tests.conftest import REPO, free_port
from tests.test_server import message, recv, send, until

WORKER = "x-mentor-worker"


@pytest.fixture(scope="module")
def two_workers(knowledge, pg_server, tmp_path_factory) -> Iterator[str]:
    """`mentor serve --workers 2` on the session's database (over TCP), answering with the composer."""
    port, log = free_port(), tmp_path_factory.mktemp("workers") / "serve.log"
    env = {**os.environ, "DATABASE_URL": pg_server.tcp_uri("mentor_test"), "MENTOR_LLM": "composer"}
    with open(log, "w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "mentor"), "serve", "--workers", "2",
                                 "--port", str(port)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=180)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def socket_off(url: str, worker: str | None, **kwargs) -> ClientConnection:
    """A WebSocket on any worker but `worker` (the kernel hands each new connection to one of them)."""
    for _ in range(60):
        ws = connect(url, open_timeout=10, **kwargs)
        if ws.response.headers[WORKER] != worker:
            return ws
        ws.close()
    raise AssertionError("every connection landed on the same worker")


class Agent:
    """Ana's HTTP requests, each on a kept-alive connection to a worker other than the customer's."""

    def __init__(self, base: str, token: str, avoid: str) -> None:
        self.base, self.headers, self.avoid = f"http://{base}", {"Authorization": f"Bearer {token}"}, avoid
        self.client: httpx.Client | None = None

    def __call__(self, method: str, path: str, **kwargs) -> httpx.Response:
        for _ in range(60):  # pin a connection (a harmless GET) before a request that changes anything
            if self.client is None:
                self.client = httpx.Client(base_url=self.base, headers=self.headers, timeout=20)
            if self.client.get("/healthz").headers[WORKER] != self.avoid:
                break
            self.client.close()
            self.client = None
        assert self.client is not None
        response = self.client.request(method, path, **kwargs)
        assert response.headers[WORKER] != self.avoid, "the agent's request reached the customer's worker"
        return response


def test_a_handoff_across_two_worker_processes(two_workers, knowledge, demo_ids) -> None:
    from core.settings import get_settings
    from server.auth import issue_token

    with knowledge.admin() as conn:  # a customer of its own (others' tickets-per-hour allowance is spared)
        customer_id = conn.execute(
            """SELECT id FROM users u WHERE NOT is_demo AND role = 'freelancer'
                 AND EXISTS (SELECT 1 FROM payments p WHERE p.user_id = u.id) ORDER BY id DESC OFFSET 6 LIMIT 1""",
        ).fetchone()["id"]
    settings = get_settings()
    ws_base = f"ws://{two_workers}"
    customer = socket_off(f"{ws_base}/ws/chat", None, subprotocols=["mentor.v1",
                                                                  f"bearer.{issue_token(settings, customer_id)}"])
    home = customer.response.headers[WORKER]
    assert recv(customer)["type"] == "ready"
    message(customer, "I want to talk to a person about my payout", persona="support")
    first = until(customer, "done", timeout=60)
    conversation = first[0]["conversation_id"]
    assert any(e["type"] == "handoff" for e in first)

    ana_token = issue_token(settings, demo_ids["ana"])
    ana = Agent(two_workers, ana_token, avoid=home)
    assert conversation in [h["conversation_id"] for h in ana("GET", "/api/inbox").json()]
    inbox = socket_off(f"{ws_base}/ws/inbox", home, subprotocols=["mentor.v1", f"bearer.{ana_token}"])
    assert recv(inbox)["type"] == "ready"

    claimed = ana("POST", f"/api/inbox/{conversation}/claim")
    assert claimed.status_code == 200, claimed.text
    assert until(customer, "agent_joined", timeout=10)[-1]["agent"]["name"] == "Ana Ruiz"
    send(inbox, type="watch", conversation_id=conversation, after_seq=0)
    until(inbox, "agent_joined", timeout=10)

    send(customer, type="typing", conversation_id=conversation)
    assert until(inbox, "typing", timeout=10)[-1]["who"] == "customer"
    send(inbox, type="typing", conversation_id=conversation)
    assert until(customer, "typing", timeout=10)[-1]["who"] == "agent"

    assert ana("POST", f"/api/inbox/{conversation}/messages",
               json={"text": "Found it: your payout arrives tomorrow."}).status_code == 201
    reply = until(customer, "agent_message", timeout=10)[-1]
    assert reply["text"].startswith("Found it")
    send(customer, type="read", conversation_id=conversation, upto_seq=reply["seq"])
    assert until(inbox, "read", timeout=10)[-1]["upto_seq"] == reply["seq"]

    message(customer, "Thank you! Is there a fee?", persona="support", conversation_id=conversation)
    ack = until(customer, "ack", timeout=10)[-1]  # after its own read receipt, echoed
    assert ack["message_id"] is None  # the bot is silent while Ana owns it
    assert any(e["type"] == "ack" and e["text"] == "Thank you! Is there a fee?" for e in until(inbox, "ack", 10))

    assert ana("POST", f"/api/inbox/{conversation}/release").status_code == 200
    until(customer, "agent_left", timeout=10)
    message(customer, "How long do withdrawals take?", persona="support", conversation_id=conversation)
    answer = until(customer, "done", timeout=60)
    assert answer[-1]["finish_reason"] == "stop" and any(e["type"] == "token" for e in answer)
    inbox.close()
    customer.close()


def test_each_worker_process_gets_its_own_64_setup_slots(two_workers) -> None:
    """A lone worker has 96 (tests/test_serve.py); two on one host do better with 64 each (README)."""
    slots: dict[str, str] = {}
    for _ in range(60):  # a new connection each time: the kernel hands it to either process
        scraped = httpx.get(f"http://{two_workers}/metrics", timeout=10)
        slots[scraped.headers[WORKER]] = next(line for line in scraped.text.splitlines()
                                              if line.startswith("mentor_turn_setup_slots "))
        if len(slots) == 2:
            break
    assert list(slots.values()) == ["mentor_turn_setup_slots 64.0"] * 2, slots
