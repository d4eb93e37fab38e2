"""The worker's cost of storing a batch of conversation events (server/event_writer.py's group commit).

One `append_events` batch of 1, 10, 50 and 200 token events over as many conversations: the worker's
Python CPU per batch and per event (the event loop shares its GIL with the writer thread), PostgreSQL's
CPU per batch (all its processes: the backend, the WAL writer), and the wall time per batch.

    .venv/bin/python benchmarks/event_store_bench.py --home HOME

`--home` must be a set-up MENTOR_HOME (`mentor setup`); the benchmark adds its own conversations there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="a set-up MENTOR_HOME")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    os.environ["MENTOR_HOME"] = str(args.home)
    from benchmarks.burst_bench import postgres_pids
    from benchmarks.ws_stream_bench import cpu_seconds
    from core.settings import get_settings
    from store import conversations as convs
    from store import events
    from store.db import Database

    db = Database.connect(get_settings())
    with db.admin() as conn:
        user = conn.execute("SELECT id FROM users ORDER BY id LIMIT 1").fetchone()["id"]
    caller = convs.Caller(user_id=user)
    turns = [convs.start_turn(db, caller, persona="marcus", text="bench", client_id=uuid.uuid4().hex,
                              conversation_id=None) for _ in range(200)]
    result = {}
    for size in (1, 10, 50, 200):
        items = [events.NewEvent(t.conversation_id, user, t.assistant_message_id, {"type": "token", "delta": f" w{i}"})
                 for i, t in enumerate(turns[:size])]
        for _ in range(10):  # warm: prepared statements, caches
            events.append_events(db, items, notify=True)
        rounds = args.rounds if size < 100 else max(1, args.rounds // 4)
        pg_pids = postgres_pids()
        cpu, pg_cpu, wall = time.process_time(), cpu_seconds(pg_pids), time.perf_counter()
        for _ in range(rounds):
            events.append_events(db, items, notify=True)
        cpu_ms = (time.process_time() - cpu) / rounds * 1000
        result[f"batch_{size}"] = {"python_cpu_ms": round(cpu_ms, 3), "python_cpu_us_per_event": round(
            cpu_ms * 1000 / size, 1), "postgres_cpu_ms": round((cpu_seconds(pg_pids) - pg_cpu) / rounds * 1000, 3),
            "wall_ms": round((time.perf_counter() - wall) / rounds * 1000, 2)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
