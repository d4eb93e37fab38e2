"""What crosses workers, through PostgreSQL LISTEN/NOTIFY: two app instances on one database.

A second tab on another worker follows an answer live; a cancel sent to another worker stops it (only
the owner's); an answer left streaming by a worker that died is closed as `interrupted` by a live one,
and re-sending the message retries it.
"""

from __future__ import annotations

import time
import uuid

from agents.testing import REPLY
from store import conversations as convs
from store import events
from store.conversations import Caller
from tests.test_server import message, open_ws, recv, send, text_of, until


def test_a_second_tab_on_another_worker_follows_the_answer_live(live_slow, live_other_worker, demo_ids) -> None:
    from server.auth import issue_token

    token = issue_token(live_slow.services.settings, demo_ids["mateo"])
    first, _ = open_ws(live_slow, token)
    message(first, "How do I find my first clients?", persona="marcus")
    started = until(first, "token")
    conversation, seen = started[0]["conversation_id"], started[-1]["seq"]
    second, _ = open_ws(live_other_worker, token)  # another worker, same user: a second tab
    send(second, type="resume", conversation_id=conversation, after_seq=seen)
    followed = until(second, "done", timeout=60)
    finished = until(first, "done", timeout=60)
    first.close()
    second.close()
    assert text_of(started) + text_of(finished) == REPLY
    assert text_of(started) + text_of(followed) == REPLY  # every later token, in order, from the other worker
    seqs = [e["seq"] for e in followed]
    assert seqs == list(range(seen + 1, seen + 1 + len(seqs)))
    assert len([e for e in followed if e["type"] == "token"]) > 5  # followed as it streamed, not one replay


def test_cancel_reaches_the_worker_running_the_turn(live_slow, live_other_worker, demo_ids) -> None:
    from server.auth import issue_token

    settings = live_slow.services.settings
    first, _ = open_ws(live_slow, issue_token(settings, demo_ids["mateo"]))
    message(first, "How do I find my first clients?", persona="marcus")
    conversation = until(first, "token")[0]["conversation_id"]

    stranger, _ = open_ws(live_other_worker, issue_token(settings, demo_ids["sofia"]))
    send(stranger, type="cancel", conversation_id=conversation)
    assert recv(stranger)["code"] == "nothing_to_cancel"  # not theirs: nothing happens
    stranger.close()

    owner, _ = open_ws(live_other_worker, issue_token(settings, demo_ids["mateo"]))
    send(owner, type="cancel", conversation_id=conversation)
    done = until(first, "done", timeout=10)[-1]
    assert done["finish_reason"] == "cancelled"
    owner.close()
    first.close()


def quiet_turn_of_a_dead_worker(db, caller: Caller, client_id: str, worker_id: int,
                                partial: str | None = None) -> convs.TurnStart:
    """A turn stored by a worker no live process holds the lock of (having streamed `partial`, if given),
    quiet for a minute since: a live worker's janitor is to close it."""
    start = convs.start_turn(db, caller, persona="support", text="How do withdrawals work?", client_id=client_id,
                             conversation_id=None, worker_id=worker_id)
    if partial is not None:
        events.append_events(db, [events.NewEvent(start.conversation_id, caller.user_id, start.assistant_message_id,
                                                {"type": "token", "delta": partial})])
    with db.admin() as conn:
        conn.execute("UPDATE conversations SET updated_at = now() - interval '1 minute' WHERE id = %s",
                     (start.conversation_id,))
    return start


def test_an_answer_a_dead_worker_left_streaming_ends_interrupted_and_a_resend_retries(live, demo_ids) -> None:
    from server.auth import issue_token

    db = live.services.db
    mateo = Caller(user_id=demo_ids["mateo"])
    client_id = uuid.uuid4().hex
    start = quiet_turn_of_a_dead_worker(db, mateo, client_id, worker_id=4242, partial="Withdrawals take")

    ws, _ = open_ws(live, issue_token(live.services.settings, mateo.user_id))
    began = time.monotonic()
    send(ws, type="resume", conversation_id=start.conversation_id, after_seq=0)
    events = until(ws, "done", timeout=20)
    error = next(e for e in events if e["type"] == "error")
    assert error["code"] == "interrupted" and error["retryable"] is True and error["seq"] is not None
    assert events[-1]["finish_reason"] == "error"
    assert time.monotonic() - began < 10  # a live worker closed it within a janitor round or two
    with db.admin() as conn:
        row = conn.execute("SELECT status, content FROM messages WHERE id = %s",
                           (start.assistant_message_id,)).fetchone()
    assert row["status"] == "error" and row["content"] == "Withdrawals take"  # the partial answer is kept

    message(ws, "How do withdrawals work?", persona="support", client_id=client_id,
            conversation_id=start.conversation_id)
    retried = until(ws, "done", timeout=30)
    assert retried[0]["type"] == "ack" and retried[0]["duplicate"] is False
    assert retried[0]["message_id"] != start.assistant_message_id  # a new attempt at the same message
    assert retried[-1]["finish_reason"] == "stop" and text_of(retried)
    ws.close()


def test_a_client_that_never_saw_its_ack_resends_and_gets_a_new_answer_in_the_same_conversation(live, demo_ids) -> None:
    """The worker died before the ack reached the client, and a live one closed the answer before the
    client came back: re-sending without a conversation id retries the stored message where it is."""
    from server.auth import issue_token

    db = live.services.db
    mateo = Caller(user_id=demo_ids["mateo"])
    client_id = uuid.uuid4().hex
    start = quiet_turn_of_a_dead_worker(db, mateo, client_id, worker_id=4243)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # a live worker's janitor closes it
        with db.admin() as conn:
            status = conn.execute("SELECT status FROM messages WHERE id = %s",
                                  (start.assistant_message_id,)).fetchone()["status"]
        if status == "error":
            break
        time.sleep(0.2)
    assert status == "error"

    ws, _ = open_ws(live, issue_token(live.services.settings, mateo.user_id))
    message(ws, "How do withdrawals work?", persona="support", client_id=client_id)  # no conversation id
    retried = until(ws, "done", timeout=30)
    ack = retried[0]
    assert ack["type"] == "ack" and ack["conversation_id"] == start.conversation_id
    assert ack["message_id"] != start.assistant_message_id and ack["user_message_id"] == start.user_message_id
    seqs = [e["seq"] for e in retried if e.get("seq") is not None]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and seqs[0] > 1  # past the closed attempt, no gap
    assert retried[-1]["finish_reason"] == "stop" and text_of(retried)
    with db.admin() as conn:
        asked = conn.execute("SELECT count(*) AS n FROM messages WHERE conversation_id = %s AND role = 'user'",
                             (start.conversation_id,)).fetchone()["n"]
    assert asked == 1
    ws.close()


def test_a_follower_never_sees_an_answer_still_streaming_once_its_done_is_stored(db, demo_ids) -> None:
    """`read_on` gives a follower (resume, a second tab) the events and the answer still streaming. Were
    they read at different moments, an answer ending in between would be reported streaming with its
    `done` already in the events, and the follower would go on to relay the next answer too — one a
    socket may already be relaying (seen once in the scale-out test: a retried answer sent twice)."""
    import threading

    caller = Caller(user_id=demo_ids["mateo"])
    first = convs.start_turn(db, caller, persona="support", text="q", client_id=uuid.uuid4().hex,
                             conversation_id=None)
    conv, finished, stale = first.conversation_id, threading.Event(), []
    after, reads = [0], [0]  # the follower's seq, set by the writer below; the follower's read count

    def follow() -> None:
        while not finished.is_set():
            events, streaming = convs.read_on(db, conv, after[0])
            reads[0] += 1
            if streaming is not None and any(e["type"] == "done" and e["message_id"] == streaming for e in events):
                stale.append(streaming)

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        start = first
        for i in range(150):  # answers start and end while the follower reads
            seq = events.append_events(db, [events.NewEvent(conv, caller.user_id, start.assistant_message_id,
                                                          {"type": "token", "delta": f"w{i}"})])[0]
            after[0] = seq
            events.append_events(db, [events.NewEvent(conv, caller.user_id, start.assistant_message_id,
                                                    {"type": "done", "finish_reason": "stop"},
                                                    finish=(f"w{i}", "complete", None))])
            start = convs.start_turn(db, caller, persona="support", text=f"q{i}", client_id=uuid.uuid4().hex,
                                     conversation_id=conv)
    finally:
        finished.set()
        follower.join()
    assert reads[0] > 150 and not stale


def test_one_batch_of_events_is_stored_whole_or_not_at_all(db, knowledge, demo_ids) -> None:
    """What a turn's events leave behind, from one batch over two conversations: seqs in the order the
    events came, the tool call and the citations, the finished answer; and a batch naming a conversation
    that does not exist stores nothing (the writer then retries its events one by one)."""
    import pytest

    from core.errors import NotFound

    mateo, sofia = Caller(user_id=demo_ids["mateo"]), Caller(user_id=demo_ids["sofia"])
    one = convs.start_turn(db, mateo, persona="marcus", text="q", client_id=uuid.uuid4().hex, conversation_id=None)
    two = convs.start_turn(db, sofia, persona="marcus", text="q", client_id=uuid.uuid4().hex, conversation_id=None)
    with db.admin() as conn:
        chunk = conn.execute("SELECT id, source FROM chunks ORDER BY id LIMIT 1").fetchone()
        gone = conn.execute("SELECT coalesce(max(id), 0) + 1000 AS id FROM chunks").fetchone()["id"]
        before = {r["id"]: r["last_seq"] for r in conn.execute(
            "SELECT id::text, last_seq FROM conversations WHERE id = ANY(%s::uuid[])",
            ([one.conversation_id, two.conversation_id],))}

    def event(turn, caller, payload, finish=None):
        return events.NewEvent(turn.conversation_id, caller.user_id, turn.assistant_message_id, payload, finish)

    usage = {"prompt_tokens": 12, "completion_tokens": 3}
    batch = [event(one, mateo, {"type": "tool_result", "name": "get_profile", "args": {"x": 1},
                                "data": {"rate": 45}, "error": None}),
             event(two, sofia, {"type": "token", "delta": "Hi"}),
             event(one, mateo, {"type": "citation", "chunk_id": chunk["id"], "source": chunk["source"],
                                "title": "T", "snippet": "S"}),
             event(one, mateo, {"type": "citation", "chunk_id": gone, "source": "old.md", "title": "T2",
                                "snippet": "S2"}),
             event(one, mateo, {"type": "token", "delta": "Hello"}),
             event(two, sofia, {"type": "done", "finish_reason": "stop"}, ("Hi", "complete", usage)),
             event(one, mateo, {"type": "done", "finish_reason": "stop"}, ("Hello", "complete", None))]
    seqs = events.append_events(db, batch, notify=True)
    first_one, first_two = before[one.conversation_id] + 1, before[two.conversation_id] + 1
    assert seqs == [first_one, first_two, first_one + 1, first_one + 2, first_one + 3, first_two + 1, first_one + 4]
    with db.admin() as conn:
        stored = conn.execute("SELECT seq, type, payload FROM conversation_events WHERE conversation_id = %s "
                              "AND seq >= %s ORDER BY seq", (one.conversation_id, first_one)).fetchall()
        assert [r["type"] for r in stored] == ["tool_result", "citation", "citation", "token", "done"]
        assert stored[3]["payload"] == {"type": "token", "delta": "Hello"}
        tool = conn.execute("SELECT name, args, result, error, user_id FROM tool_calls WHERE message_id = %s",
                            (one.assistant_message_id,)).fetchone()
        assert tool == {"name": "get_profile", "args": {"x": 1}, "result": {"rate": 45}, "error": None,
                        "user_id": mateo.user_id}
        cited = conn.execute("SELECT chunk_id, source FROM citations WHERE message_id = %s ORDER BY id",
                             (one.assistant_message_id,)).fetchall()
        assert cited == [{"chunk_id": chunk["id"], "source": chunk["source"]}, {"chunk_id": None, "source": "old.md"}]
        answers = {r["id"]: r for r in conn.execute(
            "SELECT id, content, status, usage FROM messages WHERE id = ANY(%s)",
            ([one.assistant_message_id, two.assistant_message_id],))}
        assert answers[two.assistant_message_id] == {"id": two.assistant_message_id, "content": "Hi",
                                                     "status": "complete", "usage": usage}
        assert answers[one.assistant_message_id]["content"] == "Hello" and answers[one.assistant_message_id][
            "usage"] is None

    nowhere = str(uuid.uuid4())
    with pytest.raises(NotFound, match=nowhere):
        events.append_events(db, [event(two, sofia, {"type": "token", "delta": "lost?"}),
                                 events.NewEvent(nowhere, mateo.user_id, None, {"type": "token", "delta": "x"})])
    with db.admin() as conn:
        assert conn.execute("SELECT last_seq FROM conversations WHERE id = %s",
                            (two.conversation_id,)).fetchone()["last_seq"] == first_two + 1
        assert conn.execute("SELECT count(*) AS n FROM conversation_events WHERE conversation_id = %s AND seq > %s",
                            (two.conversation_id, first_two + 1)).fetchone()["n"] == 0


def test_the_event_writer_stores_a_lone_event_at_once_and_gathers_a_busy_moment(db, demo_ids) -> None:
    """MENTOR_EVENT_COMMIT_MS: a batch begins at most that often. An event after a quiet spell is stored
    at once; the events that come while a batch was just written wait for the interval and go together."""
    import asyncio

    from server.event_writer import EventWriter, Pending

    caller = Caller(user_id=demo_ids["mateo"])
    turns = [convs.start_turn(db, caller, persona="support", text="q", client_id=uuid.uuid4().hex,
                              conversation_id=None) for _ in range(6)]
    batches: list[set[str]] = []
    writer = EventWriter(db, on_batch=batches.append, commit_interval_s=0.5)

    async def store(turn, text: str) -> float:
        loop, done = asyncio.get_running_loop(), asyncio.get_running_loop().create_future()
        writer.submit(Pending(events.NewEvent(turn.conversation_id, caller.user_id, turn.assistant_message_id,
                                             {"type": "token", "delta": text}), loop, done.set_result,
                              done.set_exception))
        await done
        return time.monotonic()

    async def scenario() -> tuple[float, list[float]]:
        began = time.monotonic()
        first = await store(turns[0], "alone") - began
        rest = await asyncio.gather(*[store(turn, "together") for turn in turns[1:]])
        await asyncio.sleep(0.05)  # the batch callbacks run after the events are handed back
        return first, [t - began for t in rest]

    first, rest = asyncio.run(scenario())
    assert first < 0.3  # nothing was being written: no wait
    assert all(t >= 0.45 for t in rest)  # the interval since the first batch began
    assert batches == [{turns[0].conversation_id}, {t.conversation_id for t in turns[1:]}]
