"""Two server checkouts (or two settings) measured by burst_bench.py in interleaved pairs.

The host's speed drifts by tens of percent over an hour, more than most changes move a burst's figures:
a change is only compared with its baseline run right before or after it. Each pair runs A then B
(B then A on odd pairs, so neither side always runs on a warmer machine), and the summary gives each
side's median and how many pairs each won.

    .venv/bin/python benchmarks/burst_pairs.py --home HOME --pairs 4 --a-root OTHER_CHECKOUT
    .venv/bin/python benchmarks/burst_pairs.py --home HOME --pairs 4 --a-env MENTOR_TURN_SETUP_SLOTS=64
    .venv/bin/python benchmarks/burst_pairs.py --home HOME --pairs 4 --b-args="--workers 2"

Prints JSON: every run's key figures, then the summary. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(home: Path, root: Path, env: dict[str, str], extra: list[str]) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "burst_bench.py"), "--home", str(home), "--root", str(root),
           *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, check=False)
    if done.returncode != 0:
        raise SystemExit(f"burst_bench.py failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout)
    busy = result.get("cores_busy_until_p95_first_token") or {}
    return {"first_token_p50": result["first_token_s"]["p50"], "first_token_p95": result["first_token_s"]["p95"],
            "answer_x_ideal_p95": result["answer_time_x_ideal"]["p95"], "answers_exact": result["answers_exact"],
            "completed": result["completed"], "errors": result["errors"], "server_cpu_s": result["server_cpu_s"],
            "cores_busy": busy.get("total")}


def summary(runs: list[dict], key: str) -> dict:
    a = [r["a"][key] for r in runs]
    b = [r["b"][key] for r in runs]
    return {"a_median": round(statistics.median(a), 3), "b_median": round(statistics.median(b), 3),
            "b_lower_in": sum(y < x for x, y in zip(a, b, strict=True)),
            "a_lower_in": sum(x < y for x, y in zip(a, b, strict=True)), "pairs": len(runs)}


def env_setting(item: str) -> tuple[str, str]:
    """An --a-env/--b-env value: NAME=VALUE."""
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {item!r}")
    return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="a set-up MENTOR_HOME")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--a-root", type=Path, default=ROOT, help="side A's checkout (default: this one)")
    parser.add_argument("--b-root", type=Path, default=ROOT, help="side B's checkout (default: this one)")
    parser.add_argument("--a-env", action="append", default=[], type=env_setting, metavar="NAME=VALUE")
    parser.add_argument("--b-env", action="append", default=[], type=env_setting, metavar="NAME=VALUE")
    parser.add_argument("--a-args", default="", help="more burst_bench.py arguments for side A")
    parser.add_argument("--b-args", default="", help="more burst_bench.py arguments for side B")
    parser.add_argument("--args", default="", help="burst_bench.py arguments for both sides, e.g. --args='--tokens 1'")
    args = parser.parse_args()
    if args.pairs < 1:
        raise SystemExit("--pairs must be at least 1")
    sides = {"a": (args.a_root, dict(args.a_env), shlex.split(args.args) + shlex.split(args.a_args)),
             "b": (args.b_root, dict(args.b_env), shlex.split(args.args) + shlex.split(args.b_args))}
    runs = []
    for n in range(args.pairs):
        pair = {}
        for side in ("a", "b") if n % 2 == 0 else ("b", "a"):
            pair[side] = run_once(args.home, *sides[side])
            print(json.dumps({"pair": n + 1, "side": side, **pair[side]}), file=sys.stderr, flush=True)
        runs.append(pair)
    print(json.dumps({"a": {"root": str(args.a_root), "env": sides["a"][1], "args": sides["a"][2]},
                      "b": {"root": str(args.b_root), "env": sides["b"][1], "args": sides["b"][2]},
                      "runs": runs,
                      "first_token_p95": summary(runs, "first_token_p95"),
                      "first_token_p50": summary(runs, "first_token_p50"),
                      "answer_x_ideal_p95": summary(runs, "answer_x_ideal_p95"),
                      "all_exact": all(r[s]["answers_exact"] == r[s]["completed"] and not r[s]["errors"]
                                       for r in runs for s in ("a", "b"))}, indent=2))


if __name__ == "__main__":
    main()
