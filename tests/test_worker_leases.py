"""A worker that stops running but keeps its database sessions (frozen, its event loop hung).

It still holds its liveness lock, so only its lease tells it apart from a slow worker: once the lease
has not been renewed in time, another worker fences it off — its sessions ended, its answers closed as
`interrupted` — and nothing it writes afterwards is stored; told so, it ends itself.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
import uuid

import psycopg
import pytest

from core.errors import WorkerFenced
from server.event_writer import EventWriter, Pending
from server.hub import Hub
from store import conversations as convs
from store import events, workers
from store.conversations import Caller
from tests.test_workers import quiet_turn_of_a_dead_worker


def lease(db, worker_id: int, app_name: str, lease_s: float = 3600.0) -> None:
    with db.admin() as conn:
        conn.execute("INSERT INTO worker_leases (id, app_name, lease_s) VALUES (%s, %s, %s)",
                     (worker_id, app_name, lease_s))


def event_count(db, message_id: int) -> int:
    with db.admin() as conn:
        return conn.execute("SELECT count(*) AS n FROM conversation_events WHERE message_id = %s",
                            (message_id,)).fetchone()["n"]


def test_a_worker_frozen_past_its_lease_is_fenced_off_and_nothing_it_writes_later_is_stored(db, demo_ids) -> None:
    mateo = Caller(user_id=demo_ids["mateo"])
    frozen, app = secrets.randbits(62) + 1, f"mentor/frozen/{secrets.token_hex(3)}"
    lease(db, frozen, app, lease_s=3)  # renewed now, and never again
    # its sessions live on: the listener holding the liveness lock, and a batch stopped mid-transaction
    listener = psycopg.connect(db.service_url(), autocommit=True, application_name=workers.session_names(app)[1])
    listener.execute("SELECT pg_advisory_lock(%s)", (frozen,))
    start = quiet_turn_of_a_dead_worker(db, mateo, uuid.uuid4().hex, worker_id=frozen, partial="Withdrawals take")
    in_flight = psycopg.connect(db.service_url(), application_name=app)
    in_flight.execute("SELECT fenced FROM worker_leases WHERE id = %s FOR SHARE", (frozen,))
    owner = psycopg.connect(db.url, autocommit=True, application_name=app)  # its admin work: another role
    me = secrets.randbits(62) + 1
    try:
        # quiet for a minute, but its lock is held and its lease current: a slow worker, left alone
        assert start.conversation_id not in convs.close_orphans(db, me)
        workers.fence_stale(db, me, db.application_name)
        with db.admin() as conn:
            assert conn.execute("SELECT fenced FROM worker_leases WHERE id = %s", (frozen,)).fetchone()["fenced"] \
                is False

        time.sleep(3.2)  # its lease_s passes
        workers.fence_stale(db, me, db.application_name)  # (a live test server's janitor may get there first)
        with db.admin() as conn:
            assert conn.execute("SELECT fenced FROM worker_leases WHERE id = %s", (frozen,)).fetchone()["fenced"]
        for session in (listener, in_flight):  # ended: the lock and the row lock it held are free
            with pytest.raises(psycopg.OperationalError):
                session.execute("SELECT 1")
        assert owner.execute("SELECT 1").fetchone()  # not the service's to end (here a superuser's): left

        # closed by us, or by a live test server's janitor — which may hold the row (SKIP LOCKED) while we look:
        # the closed state must arrive, by whichever janitor
        deadline = time.monotonic() + 30
        while True:
            convs.close_orphans(db, me)
            with db.admin() as conn:
                row = conn.execute("SELECT status, content FROM messages WHERE id = %s",
                                   (start.assistant_message_id,)).fetchone()
            if row["status"] != "streaming" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert row["status"] == "error" and row["content"] == "Withdrawals take"
        closed, _ = convs.read_on(db, start.conversation_id, 0)
        assert [e["type"] for e in closed][-2:] == ["error", "done"] and closed[-2]["code"] == "interrupted"

        # it runs again and writes the next token of that answer: refused, nothing stored after `done`
        stored = event_count(db, start.assistant_message_id)
        late = events.NewEvent(start.conversation_id, mateo.user_id, start.assistant_message_id,
                              {"type": "token", "delta": " two"})
        with pytest.raises(WorkerFenced):
            events.append_events(db, [late], writer=frozen)
        with pytest.raises(WorkerFenced):  # a writer without a lease (forgotten, or never taken) likewise
            events.append_events(db, [late], writer=secrets.randbits(62) + 1)
        assert event_count(db, start.assistant_message_id) == stored
    finally:
        for session in (listener, in_flight, owner):
            session.close()
        with db.admin() as conn:
            conn.execute("DELETE FROM worker_leases WHERE id = %s", (frozen,))


def test_each_lease_runs_for_its_own_workers_setting(db) -> None:
    patient, hasty = secrets.randbits(62) + 1, secrets.randbits(62) + 1
    lease(db, patient, f"mentor/patient/{secrets.token_hex(3)}", lease_s=60)
    lease(db, hasty, f"mentor/hasty/{secrets.token_hex(3)}", lease_s=5)
    try:
        with db.admin() as conn:
            conn.execute("UPDATE worker_leases SET renewed_at = now() - interval '30 seconds' WHERE id = ANY(%s)",
                         ([patient, hasty],))
        workers.fence_stale(db, secrets.randbits(62) + 1, db.application_name)
        with db.admin() as conn:
            fenced = {r["id"]: r["fenced"] for r in conn.execute(
                "SELECT id, fenced FROM worker_leases WHERE id = ANY(%s)", ([patient, hasty],))}
        assert fenced == {patient: False, hasty: True}
    finally:
        with db.admin() as conn:
            conn.execute("DELETE FROM worker_leases WHERE id = ANY(%s)", ([patient, hasty],))


def test_a_worker_that_learns_it_was_fenced_off_ends_itself(db, demo_ids) -> None:
    """Told by its lease renewal, or by its event writer, whichever comes first."""
    hub = Hub(db, lease_s=4)
    ended = threading.Event()
    hub.on_fenced = ended.set
    mateo = Caller(user_id=demo_ids["mateo"])
    start = convs.start_turn(db, mateo, persona="support", text="How do withdrawals work?",
                             client_id=uuid.uuid4().hex, conversation_id=None, worker_id=hub.worker_id)

    async def scenario() -> tuple[bool, Exception | None]:
        await hub.start()
        try:
            for _ in range(100):
                if hub.lease_registered:
                    break
                await asyncio.sleep(0.05)
            just_started_may_fence = hub.may_fence()  # a worker judges others' leases only once its own runs
            writer = EventWriter(db, lease=lambda: hub.worker_id, on_fenced=hub.fenced)
            stored: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            token = events.NewEvent(start.conversation_id, mateo.user_id, start.assistant_message_id,
                                   {"type": "token", "delta": "Withdrawals"})
            loop = asyncio.get_running_loop()
            writer.submit(Pending(token, loop, stored.set_result, stored.set_exception))
            await stored  # under its lease, the worker's events are stored
            with db.admin() as conn:
                conn.execute("UPDATE worker_leases SET fenced = true WHERE id = %s", (hub.worker_id,))
            refused: asyncio.Future[int] = loop.create_future()
            writer.submit(Pending(token, loop, refused.set_result, refused.set_exception))
            try:
                await refused
            except WorkerFenced as exc:
                return just_started_may_fence, exc
            return just_started_may_fence, None
        finally:
            await hub.stop()

    try:
        just_started_may_fence, refused = asyncio.run(scenario())
        assert just_started_may_fence is False
        assert isinstance(refused, WorkerFenced)
        assert ended.wait(5)
        assert event_count(db, start.assistant_message_id) == 1  # the token written before the fence, only
    finally:
        with db.admin() as conn:
            conn.execute("DELETE FROM worker_leases WHERE id = %s", (hub.worker_id,))
            conn.execute("UPDATE messages SET status = 'error' WHERE id = %s", (start.assistant_message_id,))
