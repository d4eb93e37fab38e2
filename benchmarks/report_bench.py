"""How long the operator's figures and knowledge gaps take over many conversations.

Writes N synthetic support conversations (a question, an answer, its token and `done` events; some
handed off, some rated, some re-asked, 20 customers so each has many conversations) into a set-up
MENTOR_HOME, then times `compute` (GET /api/admin/stats) and `gaps` (GET /api/admin/gaps) twice: the first
run embeds every customer message once (message_vectors), the second reads them back.

    .venv/bin/python benchmarks/report_bench.py --home /tmp/benchhome --conversations 3000

Prints JSON; asserts nothing. The synthetic rows are tagged (conversation title 'report-bench') and
deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUESTIONS = ["How do I withdraw my earnings?", "When will my payout arrive?", "Can I change my plan to Pro?",
             "How do I open a dispute?", "Is there a fee on refunds?", "Do you offer health insurance?",
             "Can I book a video call inside the app?", "How do I delete my account?", "What are the commission "
             "rates?", "Can I get paid in euros?"]


def fill(db, n: int) -> None:
    with db.admin() as conn:
        users = [r["id"] for r in conn.execute("SELECT id FROM users WHERE role = 'freelancer' ORDER BY id LIMIT 20")]
        for i in range(n):
            cid, uid, q = str(uuid.uuid4()), users[i % len(users)], QUESTIONS[i % len(QUESTIONS)] + f" ({i})"
            conn.execute("INSERT INTO conversations (id, user_id, persona, title, created_at) VALUES "
                         "(%s, %s, 'support', 'report-bench', now() - make_interval(mins => %s))", (cid, uid, i))
            qid = conn.execute("INSERT INTO messages (conversation_id, user_id, role, content) VALUES "
                               "(%s, %s, 'user', %s) RETURNING id", (cid, uid, q)).fetchone()["id"]
            answer = "I couldn't find this in the help center." if i % 7 == 0 else "Withdrawals take 3 days."
            aid = conn.execute("INSERT INTO messages (conversation_id, user_id, role, content, reply_to) VALUES "
                               "(%s, %s, 'assistant', %s, %s) RETURNING id", (cid, uid, answer, qid)).fetchone()["id"]
            done = {"type": "done", "usage": {"prompt_tokens": 500, "completion_tokens": 40, "total_tokens": 540,
                                              "cached_tokens": 200}, "provider": "openai-compatible:gpt-4o-mini",
                    "grounding": {"figures": 1, "unsupported": []}, "finish_reason": "stop"}
            conn.execute("INSERT INTO conversation_events (conversation_id, seq, message_id, type, payload) VALUES "
                         "(%s, 1, %s, 'token', '{\"type\": \"token\", \"delta\": \"x\"}'), (%s, 2, %s, 'done', %s)",
                         (cid, aid, cid, aid, json.dumps(done)))
            if i % 5 == 0:
                conn.execute("INSERT INTO feedback (message_id, user_id, rating) VALUES (%s, %s, %s)",
                             (aid, uid, 1 + i % 5))
            if i % 11 == 0:
                conn.execute("INSERT INTO messages (conversation_id, user_id, role, content) VALUES "
                             "(%s, %s, 'user', %s)", (cid, uid, q.lower()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--conversations", type=int, default=3000)
    args = parser.parse_args()
    os.environ["MENTOR_HOME"] = args.home
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from agents.reports.gaps import gaps
    from agents.reports.stats import compute
    from core.settings import get_settings
    from store.db import Database

    db = Database.connect()
    started = time.perf_counter()
    fill(db, args.conversations)
    result = {"conversations": args.conversations, "fill_s": round(time.perf_counter() - started, 1)}
    try:
        for run in ("first", "second"):
            t = time.perf_counter()
            stats = compute(db, get_settings(), 7)
            result[f"stats_{run}_s"] = round(time.perf_counter() - t, 2)
            t = time.perf_counter()
            found = gaps(db, 7)
            result[f"gaps_{run}_s"] = round(time.perf_counter() - t, 2)
        result["support_conversations"] = stats.personas["support"].conversations
        result["gaps"] = len(found)
    finally:
        with db.admin() as conn:
            conn.execute("DELETE FROM feedback WHERE message_id IN (SELECT m.id FROM messages m JOIN conversations c "
                         "ON c.id = m.conversation_id WHERE c.title = 'report-bench')")
            conn.execute("DELETE FROM conversations WHERE title = 'report-bench'")
        db.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
