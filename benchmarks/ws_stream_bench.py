"""Streaming through the service, against a mock model whose own timing is known.

Starts `harness/mock_llm.py` (first token after --ttft, then --rate tokens/s, --tokens distinct
tokens) and `mentor serve` (one worker) pointed at it, then measures:

1. overhead to first token: WebSocket send → first token, minus the mock's own TTFT, with the
   persona's retrieval and up-front tools on (sequential turns, default persona david);
2. --conns concurrent conversations, all streaming at once: lost or reordered tokens (each
   answer must equal the mock's token sequence), gaps between seqs, added inter-token delay
   (observed gap minus the mock's 1/rate) over the whole run and in the steady state (all conversations
   streaming; start them over --ramp seconds), server CPU per relayed token, and memory per
   connection (RSS).

    .venv/bin/python benchmarks/ws_stream_bench.py --home /tmp/evalhome --conns 500 --rate 20
    .venv/bin/python benchmarks/ws_stream_bench.py --home /tmp/evalhome --conns 500 --rate 20 --tokens 400 \
        --ramp 5 --ttft-turns 0

`--home` must be a set-up MENTOR_HOME (`mentor setup`). Prints JSON; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evals.stats import percentile as pct  # noqa: E402
from harness.mock_llm import expected_answer, wait_http  # noqa: E402
from server.gc_tuning import tune_gc  # noqa: E402

QUESTIONS = {"david": "What do React developers charge per hour?", "marcus": "How do I find my first clients?",
             "support": "How long until I can withdraw my earnings?"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (clock ticks from /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def worker_pids(server_pid: int) -> list[int]:
    """The serving process and its children (uvicorn's worker processes), not PostgreSQL."""
    pids, frontier = [server_pid], [server_pid]
    while frontier:
        parent = frontier.pop()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == parent and b"postgres" not in cmd[:200]:
                pids.append(int(proc.name))
                frontier.append(int(proc.name))
    return pids


def process_groups(server_pid: int, mock_pid: int) -> dict[str, list[int]]:
    postgres = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                and b"postgres" in (p / "cmdline").read_bytes()[:200]] if Path("/proc").exists() else []
    return {"server": worker_pids(server_pid), "mock_llm": [mock_pid], "bench_client": [os.getpid()],
            "postgres": postgres}


async def one_turn(url: str, persona: str, *, start: asyncio.Event | None = None,
                   connected: list[int] | None = None, delay: float = 0.0) -> dict:
    async with websockets.connect(url, max_size=2**22, open_timeout=60, ping_interval=None) as ws:
        json.loads(await ws.recv())  # ready
        if connected is not None:
            connected.append(1)
        if start is not None:
            await start.wait()
        await asyncio.sleep(delay)
        sent = time.perf_counter()
        await ws.send(json.dumps({"type": "message", "client_id": uuid.uuid4().hex, "persona": persona,
                                  "text": QUESTIONS[persona]}))
        tokens, times, seqs, errors = [], [], [], []
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), timeout=300))
            now = time.perf_counter()
            if event.get("seq") is not None:
                seqs.append(event["seq"])
            if event["type"] == "token":
                tokens.append(event["delta"])
                times.append(now)
            elif event["type"] == "error":
                errors.append(event["code"])
            elif event["type"] == "done":
                return {"sent": sent, "tokens": tokens, "times": times, "seqs": seqs, "errors": errors,
                        "done": now}


async def run(args: argparse.Namespace, ws_url: str, server_pid: int, mock_pid: int) -> dict:
    from core.settings import Settings
    from server.auth import issue_token

    settings = Settings(mentor_home=args.home)
    user_ids = [1, 2, 3]
    urls = [f"{ws_url}?token={issue_token(settings, uid)}" for uid in user_ids]
    results: dict[str, object] = {"cores": os.cpu_count(), "mock": {"tokens": args.tokens, "rate_per_s": args.rate,
                                                                     "ttft_s": args.ttft}}

    # 1. overhead to first token, sequential
    await one_turn(urls[0], args.persona)  # warm-up (model client, embedder, pool)
    overheads = []
    for i in range(args.ttft_turns):
        turn = await one_turn(urls[i % len(urls)], args.persona)
        overheads.append((turn["times"][0] - turn["sent"] - args.ttft) * 1000)
    if overheads:  # --ttft-turns 0 skips this part (each turn streams --tokens at --rate, one at a time)
        results["first_token_overhead_ms"] = {"persona": args.persona, "turns": len(overheads),
                                              "p50": pct(overheads, 50), "p95": pct(overheads, 95),
                                              "max": round(max(overheads), 2)}

    # 2. many conversations streaming at once
    base = rss_mb(server_pid)
    start, connected = asyncio.Event(), []
    tasks = [asyncio.create_task(one_turn(urls[i % len(urls)], args.concurrent_persona, start=start,
                                          connected=connected, delay=args.ramp * i / args.conns))
             for i in range(args.conns)]
    while len(connected) < args.conns:
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.1)
    idle = rss_mb(server_pid)
    peak = idle
    groups = process_groups(server_pid, mock_pid)
    cpu_before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    start.set()
    began = time.perf_counter()
    pending = set(tasks)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=0.5)
        peak = max(peak, rss_mb(server_pid))
    wall = time.perf_counter() - began
    cpu = {name: round(cpu_seconds(pids) - cpu_before[name], 1) for name, pids in groups.items()}
    turns = [t.result() for t in tasks if not t.exception()]
    failures = [repr(t.exception()) for t in tasks if t.exception()]
    want = expected_answer(args.tokens)
    interval = 1000 / args.rate
    added = [((b - a) * 1000 - interval)
             for turn in turns for a, b in zip(turn["times"], turn["times"][1:], strict=False)]
    first = [(turn["times"][0] - turn["sent"] - args.ttft) * 1000 for turn in turns if turn["times"]]
    # steady state: every conversation is streaming (after the last one's first token, before the first ends)
    window = (max((t["times"][0] for t in turns if t["times"]), default=0),
              min((t["done"] for t in turns), default=0))
    steady = [((b - a) * 1000 - interval) for turn in turns
              for a, b in zip(turn["times"], turn["times"][1:], strict=False) if window[0] <= a and b <= window[1]]
    results["concurrent"] = {
        "conversations": args.conns, "persona": args.concurrent_persona, "completed": len(turns),
        "failed_connections": len(failures), "failures": failures[:3],
        "errors": sum(len(t["errors"]) for t in turns),
        "answers_exact": sum("".join(t["tokens"]) == want for t in turns),
        "seq_gaps_or_reorders": sum(t["seqs"] != list(range(t["seqs"][0], t["seqs"][0] + len(t["seqs"])))
                                    for t in turns if t["seqs"]),
        "tokens_received": sum(len(t["tokens"]) for t in turns),
        "wall_s": round(wall, 1), "ideal_stream_s": round(args.ttft + (args.tokens - 1) / args.rate, 1),
        "added_inter_token_delay_ms": {"p50": pct(added, 50), "p95": pct(added, 95), "p99": pct(added, 99),
                                       "max": round(max(added), 1) if added else None},
        "first_token_overhead_ms": {"p50": pct(first, 50), "p95": pct(first, 95)},
        "ramp_s": args.ramp, "steady_window_s": round(max(0.0, window[1] - window[0]), 1),
        "steady_added_inter_token_delay_ms": {"gaps": len(steady), "p50": pct(steady, 50), "p95": pct(steady, 95),
                                              "p99": pct(steady, 99), "max": round(max(steady), 1) if steady else None},
        "server_rss_mb": {"before": round(base, 1), "connected_idle": round(idle, 1), "peak": round(peak, 1)},
        "cpu_seconds_during_streaming": cpu,
        "server_cpu_ms_per_relayed_token": round(cpu["server"] * 1000 / max(1, sum(len(t["tokens"]) for t in turns)),
                                                 3),
        "rss_per_connection_kb": {"idle": round((idle - base) * 1024 / max(1, args.conns), 1),
                                  "streaming_peak": round((peak - base) * 1024 / max(1, args.conns), 1)},
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="a set-up MENTOR_HOME")
    parser.add_argument("--conns", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="mock tokens per second per conversation")
    parser.add_argument("--ttft", type=float, default=0.2, help="mock seconds to first token")
    parser.add_argument("--ttft-turns", type=int, default=30)
    parser.add_argument("--workers", type=int, default=1, help="mentor serve --workers N")
    parser.add_argument("--ramp", type=float, default=0.0,
                        help="spread the conversations' starts over this many seconds (steady-state streaming)")
    parser.add_argument("--persona", default="david", help="persona for the first-token measurement")
    # marcus flags unsupported figures; support (strict grounding) holds tokens until a sentence ends,
    # and the mock's " w0 w1 ..." has none, so its answer would arrive as one piece
    parser.add_argument("--concurrent-persona", default="marcus")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write a py-spy profile of the server here (.svg flame graph, .txt collapsed stacks)")
    args = parser.parse_args()

    with service_stack(args.home, tokens=args.tokens, rate=args.rate, ttft=args.ttft,
                       workers=args.workers) as (server, mock, port):
        spy = None
        if args.profile:
            fmt = "raw" if args.profile.suffix == ".txt" else "flamegraph"  # raw = collapsed stacks, greppable
            spy_bin = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")  # pip install py-spy
            spy = subprocess.Popen([spy_bin, "record", "-o", str(args.profile), "--pid", str(server.pid),
                                    "--format", fmt, "--gil", "--nonblocking", "--rate", "50"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            tune_gc()  # the load generator stands for 500 clients elsewhere: its own collector pauses are not ours
            results = asyncio.run(run(args, f"ws://127.0.0.1:{port}/ws/chat", server.pid, mock.pid))
            print(json.dumps(results, indent=2))
        finally:
            if spy:
                spy.send_signal(2)
                spy.wait(timeout=60)


@contextmanager
def service_stack(home: Path, *, tokens: int, rate: float, ttft: float,
                  workers: int = 1) -> Iterator[tuple[Any, Any, int]]:
    """The mock model and `mentor serve` (one worker, limits raised) as subprocesses; yields both and the port."""
    mock_port, port = free_port(), free_port()
    env = {**os.environ, "MENTOR_HOME": str(home), "MENTOR_LLM": "openai",
           "OPENAI_BASE_URL": f"http://127.0.0.1:{mock_port}/v1", "OPENAI_API_KEY": "sk-mock", "MENTOR_MODEL": "mock",
           "MENTOR_USER_RATE": "10000", "MENTOR_SITE_RATE": "10000", "MENTOR_VISITOR_RATE": "10000",
           "MENTOR_ADDRESS_RATE": "10000", "HF_HUB_OFFLINE": "1"}
    env.pop("DATABASE_URL", None)
    py = sys.executable
    mock = subprocess.Popen([py, "-m", "harness.mock_llm", "--port", str(mock_port), "--tokens", str(tokens),
                             "--rate", str(rate), "--ttft", str(ttft)], cwd=ROOT, env=env)
    with open(home / "bench-serve.log", "w") as server_log:
        extra = ["--workers", str(workers)] if workers != 1 else []
        server = subprocess.Popen([str(Path(py).parent / "mentor"), "serve", "--port", str(port), *extra], cwd=ROOT,
                                  env=env, stdout=subprocess.DEVNULL, stderr=server_log)
        try:
            wait_http(f"http://127.0.0.1:{mock_port}/v1/models")
            wait_http(f"http://127.0.0.1:{port}/readyz")
            yield server, mock, port
        finally:
            server.terminate()
            mock.terminate()
            server.wait(timeout=30)
            mock.wait(timeout=30)


if __name__ == "__main__":
    main()
