"""Retrieval benchmark: embedding throughput, HNSW build time, query latency and recall@10.

Generates N synthetic chunks (default 100,000) from templates over the real skill catalogue, embeds
them with the real model, loads them into a throwaway embedded PostgreSQL, builds the same HNSW
index the service uses, then times top-10 queries and compares them with exact search.
Prints numbers; asserts nothing.

    .venv/bin/python benchmarks/retrieval_bench.py --n 100000 --queries 200
    .venv/bin/python benchmarks/retrieval_bench.py --reuse /tmp/mentor-bench-XXXX --langchain   # needs .[bench]

`--langchain` loads the same texts and vectors into langchain-postgres `PGVector` in the same server
and times `similarity_search_with_score_by_vector` on the same query vectors: as it ships (no
vector index: exact scan) and with the same HNSW index added, reported side by side as ratios.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

from store.catalog import INDUSTRIES, SKILL_CATALOG  # noqa: E402

TOPICS = ["pricing", "proposals", "scope changes", "late payments", "milestones", "retainers", "niche choice",
          "client calls", "rate increases", "portfolio reviews", "escrow releases", "disputes", "withdrawals"]
VERBS = ["explains how to handle", "gives a checklist for", "shows an example of", "compares options for",
         "warns about mistakes in", "describes a process for"]


def make_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    skills = [s for _, (_, names) in SKILL_CATALOG.items() for s in names]
    return [
        f"{rng.choice(skills)} freelancers working with {rng.choice(INDUSTRIES).lower()} clients: this note "
        f"{rng.choice(VERBS)} {rng.choice(TOPICS)}, with a budget of ${rng.randint(2, 400) * 25} "
        f"and about {rng.randint(4, 300)} hours of work. Case {i}."
        for i in range(n)
    ]


def make_queries(n: int, seed: int) -> list[str]:
    rng = random.Random(seed + 1)
    skills = [s for _, (_, names) in SKILL_CATALOG.items() for s in names]
    return [f"how should a {rng.choice(skills)} freelancer deal with {rng.choice(TOPICS)}?" for _ in range(n)]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def build(args: argparse.Namespace, embedder, results: dict[str, object]) -> str:
    """Embed N synthetic chunks, load them into a fresh embedded PostgreSQL and build the HNSW index."""
    import psycopg
    from pgvector.psycopg import register_vector

    from store.db import start_embedded

    texts = make_texts(args.n, args.seed)
    embedder.embed(texts[:64])  # warm-up
    started = time.perf_counter()
    done = 0

    def progress(k: int) -> None:
        nonlocal done
        done += k
        if done % 10_000 < k:
            print(f"  embedded {done}/{args.n} ({done / (time.perf_counter() - started):.0f}/s)", file=sys.stderr)

    vectors = embedder.embed(texts, batch_size=args.batch, on_batch=progress)
    embed_s = time.perf_counter() - started
    results["embed_seconds"] = round(embed_s, 1)
    results["embed_chunks_per_second"] = round(args.n / embed_s, 1)

    home = Path(tempfile.mkdtemp(prefix="mentor-bench-"))
    url = start_embedded(home)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute("CREATE TABLE bench (id integer PRIMARY KEY, embedding vector(384) NOT NULL)")
        t = time.perf_counter()
        with conn.cursor().copy("COPY bench (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "vector"])
            for i, vec in enumerate(vectors):
                copy.write_row((i, vec))
        results["load_seconds"] = round(time.perf_counter() - t, 1)
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        t = time.perf_counter()
        conn.execute(
            f"CREATE INDEX ON bench USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {args.m}, ef_construction = {args.ef_construction})"
        )
        results["hnsw_build_seconds"] = round(time.perf_counter() - t, 1)
        results["index_mb"] = round(conn.execute(
            "SELECT pg_relation_size('bench_embedding_idx')").fetchone()[0] / 2**20, 1)
    return url


def pgvector_side_by_side(args: argparse.Namespace, url: str, queries, truth: list[list[int]],
                          ours: dict[str, object]) -> dict[str, object]:
    """The same vectors through langchain-postgres PGVector: load time, latency and recall, and ratios to ours."""
    import numpy as np
    import psycopg
    from langchain_core.embeddings import Embeddings
    from langchain_postgres import PGVector
    from pgvector.psycopg import register_vector

    class Unused(Embeddings):  # every call below passes vectors; PGVector still wants an Embeddings object
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            raise NotImplementedError

        def embed_query(self, text: str) -> list[float]:
            raise NotImplementedError

    out: dict[str, object] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        ids_vectors = conn.execute("SELECT id, embedding FROM bench ORDER BY id").fetchall()
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'lc'").fetchone()
        if not exists:
            conn.execute("CREATE DATABASE lc")
    lc_url = url.replace("postgresql://", "postgresql+psycopg://").replace("/postgres?", "/lc?")
    texts = make_texts(args.n, args.seed)
    store = PGVector(Unused(), connection=lc_url, collection_name="bench", embedding_length=384,
                     pre_delete_collection=True, use_jsonb=True)
    t = time.perf_counter()
    for start in range(0, len(ids_vectors), 2000):
        part = ids_vectors[start:start + 2000]
        store.add_embeddings([texts[i] for i, _ in part], [v.tolist() for _, v in part],
                             ids=[str(i) for i, _ in part])
    out["load_seconds"] = round(time.perf_counter() - t, 1)

    def measure(label: str) -> dict[str, float]:
        times, recall = [], []
        for q, exact in zip(queries, truth, strict=True):
            t = time.perf_counter()
            docs = store.similarity_search_with_score_by_vector(q.tolist(), k=10)
            times.append((time.perf_counter() - t) * 1000)
            recall.append(len({int(d.id) for d, _ in docs} & set(exact)) / 10)
        return {"query_p50_ms": round(percentile(times, 50), 2), "query_p95_ms": round(percentile(times, 95), 2),
                "recall_at_10": round(float(np.mean(recall)), 4)}

    out["as_shipped_no_index"] = measure("exact")
    with psycopg.connect(lc_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '2GB'")
        t = time.perf_counter()
        conn.execute(f"CREATE INDEX IF NOT EXISTS lc_hnsw ON langchain_pg_embedding USING hnsw "
                     f"(embedding vector_cosine_ops) WITH (m = {args.m}, ef_construction = {args.ef_construction})")
        out["hnsw_build_seconds"] = round(time.perf_counter() - t, 1)
        conn.execute("ALTER DATABASE lc SET hnsw.ef_search = 100")
    store._engine.dispose()  # new sessions pick up ef_search
    out["with_hnsw_ef_search_100"] = measure("hnsw")
    mine = ours.get("ef_search_100") or {}
    if mine:
        out["ratio_p50_pgvector_to_ours"] = {
            "as_shipped": round(out["as_shipped_no_index"]["query_p50_ms"] / mine["query_p50_ms"], 1),
            "with_hnsw": round(out["with_hnsw_ef_search_100"]["query_p50_ms"] / mine["query_p50_ms"], 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="chunks to generate")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[40, 100, 200])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--langchain", action="store_true", help="also run langchain-postgres PGVector side by side")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="data directory of an earlier run: skip embedding, loading and the build; "
                             "measure queries only")
    args = parser.parse_args()

    import numpy as np
    import psycopg
    from pgvector.psycopg import register_vector

    from retrieval.embedder import get_embedder
    from store.db import start_embedded

    results: dict[str, object] = {"n": args.n, "queries": args.queries, "m": args.m,
                                  "ef_construction": args.ef_construction, "ef_search": args.ef_search}
    embedder = get_embedder()
    url = start_embedded(args.reuse) if args.reuse else build(args, embedder, results)
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        results["rows"] = conn.execute("SELECT count(*) FROM bench").fetchone()[0]
        queries = embedder.embed(make_queries(args.queries, args.seed))
        # Exact search first: "+ 0" makes the ORDER BY an expression the index cannot serve. (SET
        # enable_indexscan = off is not enough: psycopg prepares a statement after 5 runs and the
        # cached plan keeps using the index.)
        exact_times, truth = [], []
        for q in queries:
            t = time.perf_counter()
            truth.append([r[0] for r in conn.execute(
                "SELECT id FROM bench ORDER BY (embedding <=> %s) + 0 LIMIT 10", (q,))])
            exact_times.append((time.perf_counter() - t) * 1000)
        results["exact_query_p50_ms"] = round(percentile(exact_times, 50), 2)
        for ef in args.ef_search:
            conn.execute(f"SET hnsw.ef_search = {ef}")
            times, recall = [], []
            for q, exact in zip(queries, truth, strict=True):
                t = time.perf_counter()
                ids = [r[0] for r in conn.execute("SELECT id FROM bench ORDER BY embedding <=> %s LIMIT 10", (q,))]
                times.append((time.perf_counter() - t) * 1000)
                recall.append(len(set(ids) & set(exact)) / 10)
            results[f"ef_search_{ef}"] = {"query_p50_ms": round(percentile(times, 50), 2),
                                          "query_p95_ms": round(percentile(times, 95), 2),
                                          "recall_at_10": round(float(np.mean(recall)), 4)}
    if args.langchain:
        results["langchain_postgres"] = pgvector_side_by_side(args, url, queries, truth, results)
    t = time.perf_counter()
    for text in make_queries(50, args.seed + 7):
        embedder.embed_query(text)
    results["query_embed_ms"] = round((time.perf_counter() - t) / 50 * 1000, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
