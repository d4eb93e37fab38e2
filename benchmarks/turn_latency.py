"""Turn latency against a running `mentor serve`: time to ack, first token, done; tokens per second.

    .venv/bin/mentor serve &                       # the configured model (the grounded composer by default)
    .venv/bin/python benchmarks/turn_latency.py --user mateo --persona david --turns 3

Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from websockets.sync.client import connect

QUESTIONS = {
    "david": "What do Figma designers charge?",
    "marcus": "Which of my skills should I focus on?",
    "support": "How long until I can withdraw my earnings?",
    "sarah": "How do I handle a client who keeps adding scope?",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/chat")
    parser.add_argument("--user", default="mateo")
    parser.add_argument("--persona", default="david")
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()
    mentor = Path(sys.executable).parent / "mentor"
    token = subprocess.run([str(mentor), "token", args.user], capture_output=True, text=True, check=True).stdout.strip()
    ack_s, first_s, total_s, rates = [], [], [], []
    with connect(f"{args.url}?token={token}", open_timeout=30) as ws:
        json.loads(ws.recv())  # ready
        for _ in range(args.turns):
            started = time.perf_counter()
            ws.send(json.dumps({"type": "message", "client_id": uuid.uuid4().hex, "persona": args.persona,
                                "text": QUESTIONS.get(args.persona, "Hello")}))
            first = None
            while True:
                event = json.loads(ws.recv(timeout=300))
                now = time.perf_counter() - started
                if event["type"] == "ack":
                    ack_s.append(now)
                elif event["type"] == "token" and first is None:
                    first = now
                elif event["type"] == "done":
                    total_s.append(now)
                    first_s.append(first or now)
                    generating = now - (first or now)
                    if generating > 0:
                        rates.append(event["usage"]["completion_tokens"] / generating)
                    provider = event["provider"]
                    break
    print(json.dumps({"persona": args.persona, "turns": args.turns, "provider": provider,
                      "ack_ms_median": round(statistics.median(ack_s) * 1000, 1),
                      "first_token_s_median": round(statistics.median(first_s), 2),
                      "turn_s_median": round(statistics.median(total_s), 2),
                      "completion_tokens_per_s_median": round(statistics.median(rates), 1) if rates else None},
                     indent=2))


if __name__ == "__main__":
    main()
