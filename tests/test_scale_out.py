"""Scale-out for real: three `mentor serve` workers behind Debian's HAProxy (deploy/haproxy.cfg), the
database reached over TCP through DATABASE_URL, a model that streams for seconds — and one worker
killed with SIGKILL while it streams.

Every client must end with exactly one complete answer: the ones on the killed worker reconnect
through the balancer, resume from the last seq they saw, receive their turn's typed retryable
`interrupted` error (written by a surviving worker once the dead one's liveness lock is gone), and
re-send the same message, which retries it. No message lost, no answer duplicated, no seq skipped.
And the balancer takes out the killed worker only: the survivors, however busy, keep their sockets.

A frozen worker (SIGSTOP) is taken out by the balancer's check timing out, and its clients resume on
the others. Frozen for less than its lease, it keeps its answers and they finish once it runs again;
frozen for longer, the others fence it off and close its answers as `interrupted` (the clients re-send
and are answered by a survivor), and when it runs again it stores nothing more and ends itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import websockets

from harness.balancer import marked_down
from harness.mock_llm import expected_answer, wait_http
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (run.sh test "
                                                                          "installs it as root)")
CONVERSATIONS = 200
TOKENS, RATE = 60, 20.0  # each answer streams for ~3 s


class Cluster:
    """The mock model, three workers and HAProxy, as real processes."""

    def __init__(self, database_url: str, logs: Path, workers: int = 3, tokens: int = TOKENS, rate: float = RATE,
                 **settings: str) -> None:
        """`workers` < 3: the balancer's three server slots share them (one worker holds every socket)."""
        self.mock_port, self.lb_port = free_port(), free_port()
        self.ports = [free_port() for _ in range(workers)]
        self.tokens, self.rate = tokens, rate
        env = {**os.environ, "DATABASE_URL": database_url, "MENTOR_LLM": "openai", "MENTOR_MODEL": "mock",
               "OPENAI_BASE_URL": f"http://127.0.0.1:{self.mock_port}/v1", "OPENAI_API_KEY": "sk-mock",
               "MENTOR_USER_RATE": "10000", "MENTOR_GROUNDING": "flag", "HF_HUB_OFFLINE": "1",
               # each worker keeps its pool open; three share the test session's PostgreSQL (100 connections)
               "MENTOR_DB_POOL_MAX": "10", **settings}
        self.procs: list[subprocess.Popen] = []
        try:
            self._start(env, logs)
        except BaseException:
            self.stop()  # nothing left running when start-up fails
            raise

    def _start(self, env: dict[str, str], logs: Path) -> None:
        self.mock = self._spawn([sys.executable, "-m", "harness.mock_llm", "--port", str(self.mock_port),
                                 "--tokens", str(self.tokens), "--rate", str(self.rate), "--ttft", "0.05"], env,
                                logs / "mock")
        mentor = str(Path(sys.executable).parent / "mentor")
        self.workers = [self._spawn([mentor, "serve", "--port", str(p)], env, logs / f"worker{i + 1}")
                        for i, p in enumerate(self.ports)]
        for port in self.ports:
            wait_http(f"http://127.0.0.1:{port}/readyz", timeout=180)
        lb_env = {**env, "MENTOR_LB_BIND": f"127.0.0.1:{self.lb_port}",
                  **{f"MENTOR_WORKER_{i + 1}": f"127.0.0.1:{self.ports[i % len(self.ports)]}" for i in range(3)}}
        self.balancer = self._spawn(["haproxy", "-db", "-f", str(REPO / "deploy" / "haproxy.cfg")], lb_env,
                                    logs / "haproxy")
        wait_http(f"http://127.0.0.1:{self.lb_port}/healthz", timeout=30)

    def _spawn(self, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


async def converse(url: str, index: int, started: list[int], where: dict[int, dict]) -> dict:
    """One user's conversation through the balancer, reconnecting and resuming (or re-sending) as needed.

    Like the shipped client (server/static/chat-client.js), a message stays pending until its ack
    arrives: after a reconnect a pending message is sent again (the server deduplicates it by client
    id, or retries it if its attempt was closed), anything else is resumed from the last seq seen.
    `where[index]` says what the client is waiting for, for the report if it never finishes.
    """
    client_id, text = f"scale-{index}-{uuid.uuid4().hex[:8]}", f"How do I find clients for project type {index}?"
    conversation, last_seq, seqs, tokens = None, 0, [], []
    answers, interrupted, reconnects, errors = [], 0, 0, []
    pending, sent, blind_resends, kind = True, False, 0, None

    def message() -> str:
        frame = {"type": "message", "client_id": client_id, "persona": "marcus", "text": text}
        return json.dumps(frame | ({"conversation_id": conversation} if conversation else {}))

    while True:
        try:
            where[index] = {"waiting": "to connect", "reconnects": reconnects}
            async with websockets.connect(url, open_timeout=30, ping_interval=None, max_size=2**22) as ws:
                assert json.loads(await asyncio.wait_for(ws.recv(), timeout=30))["type"] == "ready"
                if pending:
                    blind_resends += sent and conversation is None  # sent before, but its ack never arrived
                    sent = True
                    await ws.send(message())
                else:
                    await ws.send(json.dumps({"type": "resume", "conversation_id": conversation,
                                              "after_seq": last_seq}))
                while True:
                    where[index] = {"waiting": f"after {kind}", "seq": last_seq, "conversation": conversation,
                                    "pending": pending, "reconnects": reconnects}
                    event = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
                    if event.get("seq") is not None:
                        seqs.append(event["seq"])
                        last_seq = event["seq"]
                    kind = event["type"]
                    if kind == "ack":
                        conversation, tokens, pending = event["conversation_id"], [], False
                    elif kind == "token":
                        if not tokens:
                            started.append(index)
                        tokens.append(event["delta"])
                    elif kind == "error" and event.get("code") == "interrupted":
                        assert event["retryable"] is True
                        interrupted += 1
                    elif kind == "error":
                        errors.append(event.get("code"))
                    elif kind == "done" and event["finish_reason"] == "stop":
                        answers.append("".join(tokens))
                        return {"conversation": conversation, "seqs": seqs, "answers": answers,
                                "interrupted": interrupted, "reconnects": reconnects, "errors": errors,
                                "blind_resends": blind_resends}
                    elif kind == "done":  # the interrupted attempt is closed: send the same message again
                        pending = True
                        await ws.send(message())
        except (websockets.WebSocketException, OSError, TimeoutError):  # dropped, or 502/503 while a worker dies
            reconnects += 1
            await asyncio.sleep(0.2 + random.random() * 0.3)
            if reconnects > 20:
                raise


def stall_report(knowledge, where: dict[int, dict], stalled: list[int], logs: Path) -> str:
    """What the clients that never finished waited for, their conversations as stored, the logs' tails."""
    lines = [f"{len(stalled)} clients never finished:"]
    lines += [f"  client {i}: {where.get(i)}" for i in stalled[:10]]
    ids = [where[i]["conversation"] for i in stalled if where.get(i, {}).get("conversation")]
    with knowledge.admin() as conn:
        for cid in ids[:5]:
            messages = conn.execute("SELECT id, role, status, worker_id FROM messages WHERE conversation_id = %s "
                                    "ORDER BY id", (cid,)).fetchall()
            events = conn.execute("SELECT seq, type, message_id FROM conversation_events WHERE conversation_id = %s "
                                  "ORDER BY seq DESC LIMIT 4", (cid,)).fetchall()
            lines.append(f"  {cid}: messages {messages}; last events {events}")
    for log in sorted(logs.iterdir()):
        if log.is_file():
            tail = log.read_text(errors="replace").splitlines()[-8:]
            lines += [f"--- {log.name}:"] + [f"  {line[:300]}" for line in tail]
    return "\n".join(lines)


def run_clients(knowledge, cluster: Cluster, count: int, logs: Path, meanwhile) -> list[dict]:
    """`count` conversations through the balancer; once half have their first token, `meanwhile()` (a
    coroutine) acts on the cluster. Every client must finish: a stalled one is reported, not waited for."""
    from core.settings import get_settings
    from server.auth import issue_token

    where: dict[int, dict] = {}

    async def scenario() -> list[asyncio.Task]:
        with knowledge.admin() as conn:
            users = [r["id"] for r in conn.execute(
                "SELECT id FROM users WHERE NOT is_demo AND role = 'freelancer' ORDER BY id LIMIT 40")]
        settings, base = get_settings(), f"ws://127.0.0.1:{cluster.lb_port}/ws/chat?token="
        started: list[int] = []
        tasks = [asyncio.create_task(converse(base + issue_token(settings, users[i % len(users)]), i, started,
                                              where)) for i in range(count)]
        deadline = time.time() + 60
        while len(started) < count // 2 and time.time() < deadline:
            await asyncio.sleep(0.05)
        await meanwhile()
        await asyncio.wait(tasks, timeout=240)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return tasks

    try:
        tasks = asyncio.run(scenario())
    finally:
        cluster.stop()  # whatever failed, no process is left running
    stalled = [i for i, task in enumerate(tasks) if task.cancelled()]
    assert not stalled, stall_report(knowledge, where, stalled, logs)
    return [task.result() for task in tasks]


def check_every_answer(knowledge, results: list[dict], count: int) -> None:
    """Exactly one complete answer per client, every token in order, seqs without a gap or repeat; the
    database holds one user message and one complete answer per conversation, none left streaming."""
    want = expected_answer(TOKENS)
    assert len(results) == count
    for r in results:
        assert r["answers"] == [want], r
        first = r["seqs"][0]
        assert r["seqs"] == list(range(first, first + len(r["seqs"]))), r
        assert first == 1 or r["blind_resends"], r  # from the first seq, unless the client never saw its ack
        assert not r["errors"], r
    ids = [r["conversation"] for r in results]
    with knowledge.admin() as conn:
        rows = conn.execute(
            """SELECT conversation_id::text AS c,
                      count(*) FILTER (WHERE role = 'user') AS asked,
                      count(*) FILTER (WHERE role = 'assistant' AND status = 'complete') AS complete,
                      count(*) FILTER (WHERE role = 'assistant' AND status = 'streaming') AS streaming
               FROM messages WHERE conversation_id = ANY(%s::uuid[]) GROUP BY conversation_id""", (ids,)).fetchall()
    assert len(rows) == count
    assert all(r["asked"] == 1 and r["complete"] == 1 and r["streaming"] == 0 for r in rows), \
        [r for r in rows if not (r["asked"] == 1 and r["complete"] == 1 and r["streaming"] == 0)][:3]


def test_three_workers_behind_haproxy_survive_a_killed_worker(knowledge, pg_server, tmp_path) -> None:
    cluster = Cluster(pg_server.tcp_uri("mentor_test"), tmp_path)

    async def kill() -> None:
        cluster.workers[1].send_signal(signal.SIGKILL)  # mid-stream: half the answers have begun

    results = run_clients(knowledge, cluster, CONVERSATIONS, tmp_path, kill)
    check_every_answer(knowledge, results, CONVERSATIONS)
    interrupted = [r for r in results if r["interrupted"]]
    assert interrupted, "the killed worker was streaming answers"
    assert all(r["reconnects"] for r in interrupted)
    # A client whose ack was lost with the killed worker, and whose re-send came after a survivor had
    # closed that attempt, got the retry's events only: what it skipped is the closed attempt, whole.
    late = [r for r in results if r["seqs"][0] != 1]
    for r in late:
        with knowledge.admin() as conn:
            skipped = conn.execute(
                """SELECT type, payload->>'code' AS code, payload->>'finish_reason' AS finish
                   FROM conversation_events WHERE conversation_id = %s AND seq < %s ORDER BY seq""",
                (r["conversation"], r["seqs"][0])).fetchall()
        assert skipped[0]["type"] == "ack", skipped
        assert [(e["type"], e["code"] or e["finish"]) for e in skipped[-2:]] == [("error", "interrupted"),
                                                                                 ("done", "error")], skipped
    # a worker that lives, however busy, keeps its sockets: only the killed one is taken out
    verdicts = marked_down(tmp_path / "haproxy")
    assert [v.split(":")[0] for v in verdicts] == ["w2"], verdicts
    print(f"{len(interrupted)} of {CONVERSATIONS} conversations were on the killed worker; all resumed and retried "
          f"({len(late)} re-sent after their ack was lost and the attempt closed)")


def freeze(cluster: Cluster, logs: Path, until, frozen_for: list[float]):
    """SIGSTOP the second worker until the balancer has taken it out and `until()` holds, then SIGCONT."""

    async def frozen() -> None:
        began = time.monotonic()
        cluster.workers[1].send_signal(signal.SIGSTOP)
        try:
            while not (marked_down(logs / "haproxy") and until()) and time.monotonic() - began < 90:
                await asyncio.sleep(0.2)
        finally:
            frozen_for.append(time.monotonic() - began)
            cluster.workers[1].send_signal(signal.SIGCONT)

    return frozen


def test_a_worker_frozen_within_its_lease_is_taken_out_and_its_answers_finish_when_it_runs_again(
        knowledge, pg_server, tmp_path) -> None:
    """SIGSTOP: nothing refuses, nothing answers. The balancer's check times out (deploy/haproxy.cfg:
    ~21 s) and cuts the worker's sockets; its clients resume on the others and wait, because the frozen
    worker still holds its liveness lock and its lease (set longer than the freeze here). Once it runs
    again (SIGCONT) its turns go on and every client gets its answer, through a survivor, with nothing
    interrupted or repeated."""
    cluster, count = Cluster(pg_server.tcp_uri("mentor_test"), tmp_path, MENTOR_WORKER_LEASE_S="120"), 30
    frozen_for: list[float] = []
    results = run_clients(knowledge, cluster, count, tmp_path, freeze(cluster, tmp_path, lambda: True, frozen_for))
    verdicts = marked_down(tmp_path / "haproxy")
    assert verdicts == ["w2: Layer7 timeout"], verdicts  # the frozen one only, by its check timing out
    check_every_answer(knowledge, results, count)
    assert not any(r["interrupted"] for r in results)
    cut = [r for r in results if r["reconnects"]]
    assert cut, "the frozen worker served some of the clients"
    print(f"taken out after {frozen_for[0]:.1f} s frozen; {len(cut)} of {count} clients resumed elsewhere")


def test_a_worker_frozen_past_its_lease_is_fenced_off_its_clients_retry_and_it_ends_when_it_runs_again(
        knowledge, pg_server, tmp_path) -> None:
    """The workers' lease as shipped (MENTOR_WORKER_LEASE_S, 15 s). A survivor fences the frozen worker
    off and closes its answers as `interrupted`; its clients, cut by the balancer, resume on the others,
    see the error and re-send, and a survivor answers. When it runs again, nothing of it is stored
    after the `done` its clients saw, and it ends itself (SIGKILL)."""
    cluster, count = Cluster(pg_server.tcp_uri("mentor_test"), tmp_path), 30

    def fenced() -> bool:
        with knowledge.admin() as conn:
            return conn.execute("SELECT count(*) AS n FROM worker_leases WHERE fenced AND app_name LIKE %s",
                                (f"mentor/{cluster.workers[1].pid}/%",)).fetchone()["n"] > 0

    frozen_for: list[float] = []
    ended: list[int | None] = []

    async def freeze_then_watch_it_end() -> None:
        await freeze(cluster, tmp_path, fenced, frozen_for)()
        deadline = time.monotonic() + 20
        while cluster.workers[1].poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        ended.append(cluster.workers[1].poll())

    results = run_clients(knowledge, cluster, count, tmp_path, freeze_then_watch_it_end)
    assert ended == [-signal.SIGKILL], (ended, (tmp_path / "worker2").read_text()[-3000:])
    assert "fenced it off; ending it" in (tmp_path / "worker2").read_text()
    verdicts = marked_down(tmp_path / "haproxy")  # taken out frozen; once it has ended, refused as well
    assert verdicts[0] == "w2: Layer7 timeout" and {v.split(":")[0] for v in verdicts} == {"w2"}, verdicts
    check_every_answer(knowledge, results, count)
    interrupted = [r for r in results if r["interrupted"]]
    assert interrupted, "the frozen worker was streaming answers"
    with knowledge.admin() as conn:  # every attempt's last event is its `done`: nothing written after it
        late = conn.execute(
            """SELECT message_id FROM conversation_events WHERE conversation_id = ANY(%s::uuid[])
                 AND message_id IS NOT NULL
               GROUP BY message_id HAVING max(seq) IS DISTINCT FROM max(seq) FILTER (WHERE type = 'done')""",
            ([r["conversation"] for r in results],)).fetchall()
    assert not late, late
    print(f"fenced off after {frozen_for[0]:.1f} s frozen; {len(interrupted)} of {count} clients re-sent "
          "their interrupted message and were answered")


async def visitor_says_hello(url: str, site_key: str, source: str, forwarded_for: str | None = None) -> str:
    """A widget visitor connecting from `source` (a loopback address of its own) sends one message:
    returns "ack" when the turn was admitted, else the error's code."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    async with websockets.connect(f"{url}?site_key={site_key}", origin="https://shop.example", open_timeout=30,
                                  local_addr=(source, 0), additional_headers=headers) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), timeout=30))["type"] == "ready"
        await ws.send(json.dumps({"type": "message", "client_id": uuid.uuid4().hex, "text": "How do I get paid?"}))
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
            if event["type"] in ("ack", "error"):
                return "ack" if event["type"] == "ack" else event["code"]


def test_visitors_behind_haproxy_have_their_own_address_and_a_sent_header_changes_nothing(
        knowledge, pg_server, tmp_path) -> None:
    """Per-address limits behind the shipped balancer: the worker trusts X-Forwarded-For from HAProxy's
    address only (MENTOR_TRUSTED_PROXIES), HAProxy sets it to the client's own address, so two visitors
    on different addresses have separate buckets; a header a visitor sends, through the balancer or
    straight to the worker, changes nothing."""
    from server.auth import add_site

    site = add_site(knowledge, "shop", ["https://shop.example"])
    cluster = Cluster(pg_server.tcp_uri("mentor_test"), tmp_path, workers=1, tokens=5, rate=200.0,
                      MENTOR_TRUSTED_PROXIES="127.0.0.1", MENTOR_ADDRESS_RATE="2", MENTOR_VISITOR_RATE="100")
    via_lb, direct = f"ws://127.0.0.1:{cluster.lb_port}/ws/chat", f"ws://127.0.0.1:{cluster.ports[0]}/ws/chat"

    async def scenario() -> dict[str, list[str]]:
        key = site["site_key"]
        first = [await visitor_says_hello(via_lb, key, "127.0.0.2") for _ in range(2)]
        first.append(await visitor_says_hello(via_lb, key, "127.0.0.2", forwarded_for="10.1.2.3"))
        second = [await visitor_says_hello(via_lb, key, "127.0.0.3")]
        straight = [await visitor_says_hello(direct, key, "127.0.0.4", forwarded_for=f"10.9.9.{i}") for i in range(3)]
        return {"first": first, "second": second, "straight": straight}

    try:
        seen = asyncio.run(scenario())
        with httpx.Client(base_url=f"http://127.0.0.1:{cluster.lb_port}",
                          transport=httpx.HTTPTransport(local_address="127.0.0.3")) as client:
            assert client.get("/healthz", headers={"X-Forwarded-For": "10.6.6.6"}).status_code == 200
    finally:
        cluster.stop()
    # two from 127.0.0.2, then its own bucket is spent, whatever header the third one sends
    assert seen["first"] == ["ack", "ack", "rate_limited"], seen
    # another address behind the same balancer has a bucket of its own (before: every visitor was 127.0.0.1)
    assert seen["second"] == ["ack"], seen
    # straight to the worker, from a peer it does not trust: the header is ignored, the peer is the client
    assert seen["straight"] == ["ack", "ack", "rate_limited"], seen
    logged = [json.loads(line) for line in (tmp_path / "worker1").read_text().splitlines() if line.startswith("{")]
    clients = {e.get("client") for e in logged if e.get("path") == "/healthz"}
    assert "127.0.0.3" in clients and "10.6.6.6" not in clients, clients
