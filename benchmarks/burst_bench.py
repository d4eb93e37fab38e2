"""A burst of users: N signed-in conversations start within one second, each a full turn.

The whole path a user takes: WebSocket connect and sign-in, the message, the persona's up-front tools
and retrieval (marcus: profile, learning ROI, curriculum search), the model's stream relayed token by
token, every event stored before it is sent. The model is `harness/mock_llm.py`: --tokens words at
--rate words/s after --ttft, so an ideal answer takes ttft + (tokens-1)/rate seconds and anything
above that is queueing in the service. Questions differ per conversation (a skill and a phrasing
each), so nothing is answered from a cache.

    .venv/bin/python benchmarks/burst_bench.py --home /tmp/benchhome --conns 300 --workers 1

`--home` must be a set-up MENTOR_HOME (`mentor setup`). Prints JSON; asserts nothing. Targets (issue
12): first token p95 <= 1 s, answer time p95 <= 1.3x ideal, no token lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ws_stream_bench import cpu_seconds, free_port, rss_mb, worker_pids  # noqa: E402
from evals.stats import percentile as pct  # noqa: E402
from harness.balancer import marked_down  # noqa: E402
from harness.mock_llm import expected_answer, wait_http  # noqa: E402
from server.gc_tuning import tune_gc  # noqa: E402

PHRASINGS = ["How do I find my first clients as a {skill} freelancer?",
             "What should I learn next to grow my {skill} business?",
             "How can I raise my rates for {skill} work?",
             "Which niche should a {skill} freelancer pick?",
             "How do I get repeat clients for {skill} projects?",
             "Is my {skill} learning paying off?"]
SKILLS = ["React", "WordPress", "Python", "copywriting", "product design", "SEO", "Node.js", "data analysis",
          "UX research", "Shopify", "video editing", "DevOps"]


def questions(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    pairs = [(p, s) for p in PHRASINGS for s in SKILLS]
    rng.shuffle(pairs)
    return [pairs[i % len(pairs)][0].format(skill=pairs[i % len(pairs)][1]) + ("" if i < len(pairs) else f" ({i})")
            for i in range(n)]


async def one(url: str, text: str, persona: str, delay: float, go: asyncio.Event, connected: list[int]) -> dict:
    async with websockets.connect(url, max_size=2**22, open_timeout=120, ping_interval=None) as ws:
        json.loads(await ws.recv())  # ready
        connected.append(1)
        await go.wait()
        await asyncio.sleep(delay)
        sent = time.perf_counter()
        await ws.send(json.dumps({"type": "message", "client_id": uuid.uuid4().hex, "persona": persona,
                                  "text": text}))
        tokens, first, errors, seqs, ack, evidence = [], None, [], [], None, None
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), timeout=600))
            if event.get("seq") is not None:
                seqs.append(event["seq"])
            if event["type"] == "ack":
                ack = time.perf_counter() - sent
            elif event["type"] in ("tool_result", "citation"):
                evidence = time.perf_counter() - sent
            if event["type"] == "token":
                first = first or time.perf_counter()
                tokens.append(event["delta"])
            elif event["type"] == "error":
                errors.append(event["code"])
            elif event["type"] == "done":
                return {"first": (first - sent) if first else None, "first_at": first,
                        "answer": time.perf_counter() - sent, "ack": ack, "evidence": evidence,
                        "worker": ws.response.headers.get("x-mentor-worker"),
                        "text": "".join(tokens), "errors": errors, "seqs": seqs}


def database_counters(home: Path) -> dict[str, int]:
    """PostgreSQL's own counts: transactions committed, and updates of `conversations` (seq numbers),
    how many of them HOT (in place on their page, no new index entries)."""
    from core.settings import Settings
    from store.db import Database

    db = Database.connect(Settings(mentor_home=home))
    try:
        with db.admin() as conn:
            row = conn.execute(
                """SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())
                          AS transactions, n_tup_upd AS conversation_updates, n_tup_hot_upd AS hot_updates
                   FROM pg_stat_user_tables WHERE relname = 'conversations'""").fetchone()
    finally:
        db.close()  # its connection is not left open through the burst
    return dict(row)


def postgres_pids() -> list[int]:
    def is_postgres(proc: Path) -> bool:
        try:
            return b"postgres" in (proc / "cmdline").read_bytes()[:200]
        except OSError:  # it exited while we looked (e.g. the backend of a connection just closed)
            return False

    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and is_postgres(p)]


async def burst(args: argparse.Namespace, port: int, pids: list[int], servers: list[int], mock_pid: int,
                on_start: Callable[[], None] = lambda: None) -> dict:
    from core.settings import Settings
    from server.auth import issue_token

    settings = Settings(mentor_home=args.home)
    users = list(range(1, args.users + 1))
    base = f"ws://127.0.0.1:{port}/ws/chat"
    urls = [f"{base}?token={issue_token(settings, users[i % len(users)])}" for i in range(args.conns)]
    texts = questions(args.conns)
    # warm-up: a few turns at once (so every worker gets some), first-use costs (pools, caches) not counted
    go, connected = asyncio.Event(), []
    go.set()
    await asyncio.gather(*[one(urls[i], "How do I find clients?", args.persona, 0, go, connected)
                           for i in range(4 * max(args.workers, args.balancer))])

    go, connected = asyncio.Event(), []
    rng = random.Random(1)
    tasks = [asyncio.create_task(one(urls[i], texts[i], args.persona, rng.uniform(0, args.spread), go, connected))
             for i in range(args.conns)]
    while len(connected) < args.conns and not any(t.done() for t in tasks):
        await asyncio.sleep(0.05)
    counters_before = database_counters(args.home)
    on_start()  # e.g. the profiler: the burst only, not the warm-up's first-use costs
    others = {"postgres": postgres_pids(), "mock_llm": [mock_pid], "bench_client": [os.getpid()]}
    others_before = {k: cpu_seconds(v) for k, v in others.items()}
    cpu_before = cpu_seconds(pids)
    per_pid_before = {p: cpu_seconds([p]) for p in pids}
    rss_before = sum(rss_mb(p) for p in pids)
    names = {pid: _name(pid, servers) for pid in pids}
    roles: dict[str, list[int]] = {}
    for pid, name in names.items():  # the worker(s) and their embedding processes apart: one GIL each
        roles.setdefault(name.split(":")[0], []).append(pid)
    timeline = CpuTimeline({**roles, **others})
    began = time.perf_counter()
    go.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    wall = time.perf_counter() - began
    timeline.stop()
    cpu = cpu_seconds(pids) - cpu_before
    per_process = {names[p]: round(cpu_seconds([p]) - per_pid_before[p], 1) for p in pids}
    others_cpu = {k: round(cpu_seconds(v) - others_before[k], 1) for k, v in others.items()}
    await asyncio.sleep(2)  # idle backends report their statistics within a second
    counters = {k: v - counters_before[k] for k, v in database_counters(args.home).items()}
    turns = [r for r in results if isinstance(r, dict)]
    failures = [repr(r) for r in results if not isinstance(r, dict)]
    ideal = args.ttft + (args.tokens - 1) / args.rate
    want = expected_answer(args.tokens)
    firsts = [t["first"] for t in turns if t["first"] is not None]
    ratios = [t["answer"] / ideal for t in turns]
    relayed = sum(len(t["seqs"]) for t in turns)
    # how busy the cores were while the burst waited for its first tokens (until 95% of turns had one)
    window_end = pct([t["first_at"] for t in turns if t["first_at"] is not None], 95, 6) or began
    busy = timeline.busy(began, window_end)
    return {
        "conversations": args.conns, "workers": args.workers, "balanced_processes": args.balancer,
        "persona": args.persona,
        "started_within_s": args.spread, "ideal_answer_s": round(ideal, 2),
        "completed": len(turns), "failed_connections": len(failures), "failures": failures[:3],
        "errors": sum(len(t["errors"]) for t in turns),
        "answers_exact": sum(t["text"] == want for t in turns),
        "first_token_s": {"p50": pct(firsts, 50, 3), "p95": pct(firsts, 95, 3), "max": round(max(firsts), 3)
                          if firsts else None},
        "ack_s": {"p50": pct([t["ack"] for t in turns if t["ack"]], 50, 3),
                  "p95": pct([t["ack"] for t in turns if t["ack"]], 95, 3)},
        "evidence_ready_s": {"p50": pct([t["evidence"] for t in turns if t["evidence"]], 50, 3),
                             "p95": pct([t["evidence"] for t in turns if t["evidence"]], 95, 3)},
        "answer_time_x_ideal": {"p50": pct(ratios, 50, 3), "p95": pct(ratios, 95, 3),
                                "max": round(max(ratios), 3) if ratios else None},
        "burst_wall_s": round(wall, 1),
        "conversations_per_worker": dict(Counter(t["worker"] for t in turns)),
        # a live worker marked down by the balancer's health check has its sockets cut (deploy/haproxy.cfg)
        "workers_marked_down": marked_down(args.home / "burst-haproxy.log") if args.balancer else None,
        "server_cpu_s": round(cpu, 1), "server_cpu_by_process_s": per_process, "events_relayed": relayed,
        "server_cpu_ms_per_event": round(cpu * 1000 / max(1, relayed), 3),
        "server_rss_mb_before": round(rss_before, 1),
        "other_cpu_s": others_cpu, "cores": os.cpu_count(), "database": counters,
        "cores_busy_until_p95_first_token": {"window_s": round(window_end - began, 2), **busy,
                                             "total": round(sum(busy.values()), 2)},
    }


class CpuTimeline:
    """Each group of processes' CPU, sampled on a thread every `every_s`: how many of the cores each group
    used in a window of the burst. Whether the machine was saturated while turns waited for their first
    token tells queueing behind our own locks apart from queueing for the CPU."""

    def __init__(self, groups: dict[str, list[int]], every_s: float = 0.05) -> None:
        self.groups, self.every_s = groups, every_s
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.done = threading.Event()
        self.sample()
        self.thread = threading.Thread(target=self.run, daemon=True, name="cpu-timeline")
        self.thread.start()

    def sample(self) -> None:
        self.samples.append((time.perf_counter(), {g: cpu_seconds(p) for g, p in self.groups.items()}))

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            self.sample()

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        self.sample()

    def busy(self, start: float, end: float) -> dict[str, float]:
        """Cores used by each group between the samples nearest `start` and `end` (ticks of 10 ms)."""
        def nearest(t: float) -> tuple[float, dict[str, float]]:
            return min(self.samples, key=lambda s: abs(s[0] - t))

        (t0, a), (t1, b) = nearest(start), nearest(end)
        return {g: round((b[g] - a[g]) / (t1 - t0), 2) if t1 > t0 else 0.0 for g in self.groups}


def _name(pid: int, servers: list[int]) -> str:
    """A process's role: a serving process (one worker, or uvicorn's supervisor), one of the supervisor's
    workers, an embedding process (a worker's child), or multiprocessing's resource tracker."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return str(pid)
    if pid in servers:
        role = "server"
    elif "resource_tracker" in cmd:
        role = "tracker"
    elif parent in servers and "--workers" in Path(f"/proc/{parent}/cmdline").read_text(errors="replace"):
        role = "worker"
    else:
        role = "embedder"
    return f"{role}:{pid}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="a set-up MENTOR_HOME")
    parser.add_argument("--conns", type=int, default=300)
    parser.add_argument("--spread", type=float, default=1.0, help="seconds over which the messages are sent")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--balancer", type=int, default=0, metavar="N",
                        help="instead: N one-worker `mentor serve` processes behind HAProxy (deploy/haproxy.cfg)")
    parser.add_argument("--users", type=int, default=100, help="distinct signed-in users the conversations use")
    parser.add_argument("--persona", default="marcus")
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--ttft", type=float, default=0.05)
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy profile of a worker during the burst: .svg flame graph, .txt collapsed stacks")
    parser.add_argument("--profile-rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="the checkout whose server runs (another one measures an older commit)")
    args = parser.parse_args()

    mock_port, port = free_port(), free_port()
    env = {**os.environ, "MENTOR_HOME": str(args.home), "MENTOR_LLM": "openai",
           "OPENAI_BASE_URL": f"http://127.0.0.1:{mock_port}/v1", "OPENAI_API_KEY": "sk-mock",
           "MENTOR_MODEL": "mock", "MENTOR_USER_RATE": "10000", "HF_HUB_OFFLINE": "1"}
    env.pop("DATABASE_URL", None)
    py = sys.executable
    mock = subprocess.Popen([py, "-m", "harness.mock_llm", "--port", str(mock_port), "--tokens", str(args.tokens),
                             "--rate", str(args.rate), "--ttft", str(args.ttft)], cwd=ROOT, env=env)
    servers, balancer = [], None
    with open(args.home / "burst-serve.log", "w") as log:
        if args.balancer:  # N one-worker processes on one database, behind HAProxy (deploy/haproxy.cfg)
            from core.settings import Settings
            from store.db import Database

            env["DATABASE_URL"] = Database.connect(Settings(mentor_home=args.home)).url  # started here, once
            ports = [free_port() for _ in range(args.balancer)]
            servers = [subprocess.Popen([py, "-m", "cli", "serve", "--port", str(p)], cwd=args.root, env=env,
                                        stdout=subprocess.DEVNULL, stderr=log) for p in ports]
            shipped = (ROOT / "deploy" / "haproxy.cfg").read_text()  # its three `server` lines -> N
            lb_config = args.home / "burst-haproxy.cfg"
            lb_config.write_text("\n".join(line for line in shipped.splitlines() if not line.strip().startswith(
                "server w")) + "".join(f'\n    server w{i + 1} "127.0.0.1:{p}"' for i, p in enumerate(ports)) + "\n")
            lb_env = {**env, "MENTOR_LB_BIND": f"127.0.0.1:{port}"}
        else:
            serve = [py, "-m", "cli", "serve", "--port", str(port)]
            if args.workers != 1:
                serve += ["--workers", str(args.workers)]
            servers = [subprocess.Popen(serve, cwd=args.root, env=env, stdout=subprocess.DEVNULL, stderr=log)]
    spy: list[subprocess.Popen] = []
    try:
        wait_http(f"http://127.0.0.1:{mock_port}/v1/models")
        if args.balancer:
            for p in ports:
                wait_http(f"http://127.0.0.1:{p}/readyz", timeout=300)
            with open(args.home / "burst-haproxy.log", "w") as lb_log:  # its health checks' verdicts
                balancer = subprocess.Popen(["haproxy", "-db", "-f", str(lb_config)], env=lb_env,
                                            stdout=lb_log, stderr=subprocess.STDOUT)
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=300)
        pids = [p for server in servers for p in worker_pids(server.pid)]

        def start_profile() -> None:
            if not args.profile:
                return
            spy_bin = shutil.which("py-spy") or str(Path(py).parent / "py-spy")  # pip install py-spy
            fmt = "raw" if args.profile.suffix == ".txt" else "flamegraph"  # raw = collapsed stacks, greppable
            target = pids[0] if args.workers == 1 else pids[1]  # the server, or its first worker
            spy.append(subprocess.Popen([spy_bin, "record", "-o", str(args.profile), "--pid", str(target),
                                         "--format", fmt, "--rate", str(args.profile_rate), "--nonblocking",
                                         "--gil"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(0.5)  # attached before the first message goes

        import uvloop  # the load generator shares the 2 cores: keep its own cost per event low
        tune_gc()  # and its collector's pauses (it stands for 300 clients elsewhere) out of the figures

        print(json.dumps(uvloop.run(burst(args, port, pids, [s.pid for s in servers], mock.pid,
                                                      start_profile)), indent=2))
    finally:
        for profiler in spy:
            profiler.send_signal(2)
            profiler.wait(timeout=60)
        procs = ([balancer] if balancer else []) + servers + [mock]
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
