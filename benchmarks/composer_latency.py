"""The grounded composer's latency: time from the end of retrieval (the last up-front event) to the first
token, and the whole turn, over every question of the eval sets (`MENTOR_HOME` set up with `mentor setup`).

    .venv/bin/python benchmarks/composer_latency.py [--rounds 2]

Round 1 starts with cold caches (each quoted unit is embedded once per process); later rounds are warm.
Prints numbers per persona; asserts nothing. Target (issue 9): first token <= 100 ms after retrieval.
"""

from __future__ import annotations

import argparse
import time

from agents.composer import COMPOSER
from agents.requests import TurnRequest
from agents.runtime import run_turn
from evals.cases import load_sets
from evals.stats import percentile
from retrieval.search import search
from store.db import Database
from store.users import list_demo_users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    db = Database.connect()
    users = {u["handle"]: u["id"] for u in list_demo_users(db)}
    search(db, "warm up", k=1)  # the embedding model is loaded at service start, not during a turn
    try:
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no} ({'cold' if round_no == 1 else 'warm'} unit cache)")
            print(f"{'persona':16} {'turns':>5} {'first token after retrieval p50/p95/max ms':>44} "
                  f"{'turn p50/p95 ms':>18}")
            for eval_set in load_sets():
                after, totals = [], []
                for case in eval_set.cases:
                    req = TurnRequest(persona=eval_set.persona, text=case.question, project_id=case.project,
                                      mode=case.mode, user_id=users.get(case.user) if case.user else None)
                    started = time.perf_counter()
                    gathered = first = None
                    for event in run_turn(req, db=db, provider=COMPOSER):
                        now = time.perf_counter()
                        if event.type in ("tool_result", "citation", "handoff") and first is None:
                            gathered = now  # the evidence before the answer (a saved draft comes after it)
                        elif event.type == "token" and first is None:
                            first = now
                    totals.append((time.perf_counter() - started) * 1000)
                    if first is not None and gathered is not None:
                        after.append((first - gathered) * 1000)
                    with db.admin() as conn:  # drafts and tickets the turns created
                        conn.execute("DELETE FROM proposals WHERE status = 'draft' AND created_at > now() - "
                                     "interval '1 hour' AND rationale ? 'cover_letter_source'")
                        conn.execute("DELETE FROM support_tickets WHERE created_at > now() - interval '1 hour' "
                                     "AND transcript LIKE %s", (f"%{case.question[:40]}%",))
                print(f"{eval_set.persona:16} {len(after):>5} {percentile(after, 50):>20.1f} / "
                      f"{percentile(after, 95):.1f} / {max(after):.1f}{percentile(totals, 50):>12.0f} / "
                      f"{percentile(totals, 95):.0f}")
    finally:
        db.close()


if __name__ == "__main__":
    main()
