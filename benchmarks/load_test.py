"""Bounded load test against a real `mentor serve` and the mock model: all personas, widget visitors,
clients that drop mid-answer and resume, for a fixed time. Reports lost messages, cross-user data,
seq gaps, error rate and turn times (the same checks tests/test_load.py runs for 20 s in CI).

    .venv/bin/python benchmarks/load_test.py --home /tmp/evalhome --seconds 120 --users 24
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import uuid
from pathlib import Path

from ws_stream_bench import service_stack

from harness.load import VirtualUser, run_load, stored_answers

SECRETS = {1: ["Nora Bennett", "nora@example.com", "2599.86"], 2: ["Mateo Alvarez", "mateo@example.com", "122435.11"],
           3: ["Sofia Lindqvist", "sofia@example.com", "340112.32"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="a set-up MENTOR_HOME")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--users", type=int, default=24, help="virtual users; every fourth is a widget visitor")
    parser.add_argument("--drop", type=float, default=0.3, help="share of turns whose client drops and resumes")
    parser.add_argument("--tokens", type=int, default=60)
    parser.add_argument("--rate", type=float, default=50.0)
    args = parser.parse_args()

    from core.settings import Settings
    from server.auth import add_site, issue_token
    from store.db import Database

    settings = Settings(mentor_home=args.home)
    with service_stack(args.home, tokens=args.tokens, rate=args.rate, ttft=0.1) as (_, _, port):
        db = Database.connect(settings)
        site = add_site(db, f"load-{uuid.uuid4().hex[:6]}", ["https://shop.example"])
        ws = f"ws://127.0.0.1:{port}/ws/chat"
        users = []
        for i in range(args.users):
            if i % 4 == 3:
                users.append(VirtualUser(f"visitor{i}", f"{ws}?site_key={site['site_key']}", ["support"],
                                         [s for v in SECRETS.values() for s in v], origin="https://shop.example"))
            else:
                uid = 1 + i % 3
                users.append(VirtualUser(f"user{uid}-{i}", f"{ws}?token={issue_token(settings, uid)}",
                                         ["marcus", "sarah", "david", "proposal_writer", "support"],
                                         [s for other, v in SECRETS.items() if other != uid for s in v]))
        result = asyncio.run(run_load(users, args.seconds, drop_probability=args.drop))
        stored = stored_answers(db, list(result.answers))
        summary = {"cores": os.cpu_count(), "seconds": args.seconds, "virtual_users": args.users, **result.summary(),
                   "answers_differing_from_database": sum(stored.get(m, ("",))[0] != t
                                                          for m, t in result.answers.items())}
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
