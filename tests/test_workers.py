"""What crosses workers, through PostgreSQL LISTEN/NOTIFY: two app instances on one database.

A second tab on another worker follows an answer live; a cancel sent to another worker stops it (only
the owner's); an answer left streaming by a worker that died is closed as `interrupted` by a live one,
and re-sending the message retries it.
"""

from __future__ import annotations

import time
import uuid

from store import conversations as convs
from store.conversations import Caller
from tests.fakes import REPLY
from tests.test_server import message, open_ws, recv, send, text_of, until


def test_a_second_tab_on_another_worker_follows_the_answer_live(live_slow, live_other_worker, demo_ids) -> None:  # type: ignore[no-untyped-def]
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


def test_cancel_reaches_the_worker_running_the_turn(live_slow, live_other_worker, demo_ids) -> None:  # type: ignore[no-untyped-def]
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


def test_an_answer_a_dead_worker_left_streaming_ends_interrupted_and_a_resend_retries(live, demo_ids) -> None:  # type: ignore[no-untyped-def]
    from server.auth import issue_token

    db = live.services.db
    mateo = Caller(user_id=demo_ids["mateo"])
    client_id = uuid.uuid4().hex
    dead_worker = 4242  # no live worker holds this id's lock
    start = convs.start_turn(db, mateo, persona="support", text="How do withdrawals work?", client_id=client_id,
                             conversation_id=None, worker_id=dead_worker)
    convs.append_events(db, [convs.NewEvent(start.conversation_id, mateo.user_id, start.assistant_message_id,
                                            {"type": "token", "delta": "Withdrawals take"})])
    with db.admin() as conn:  # it has been quiet for a while
        conn.execute("UPDATE conversations SET updated_at = now() - interval '1 minute' WHERE id = %s",
                     (start.conversation_id,))

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


def test_a_follower_never_sees_an_answer_still_streaming_once_its_done_is_stored(db, demo_ids) -> None:  # type: ignore[no-untyped-def]
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
            seq = convs.append_events(db, [convs.NewEvent(conv, caller.user_id, start.assistant_message_id,
                                                          {"type": "token", "delta": f"w{i}"})])[0]
            after[0] = seq
            convs.append_events(db, [convs.NewEvent(conv, caller.user_id, start.assistant_message_id,
                                                    {"type": "done", "finish_reason": "stop"},
                                                    finish=(f"w{i}", "complete", None))])
            start = convs.start_turn(db, caller, persona="support", text=f"q{i}", client_id=uuid.uuid4().hex,
                                     conversation_id=conv)
    finally:
        finished.set()
        follower.join()
    assert reads[0] > 150 and not stale
