"""Hybrid search: pgvector HNSW (cosine) + PostgreSQL full-text, fused with reciprocal rank fusion.

The vector side finds paraphrases; the full-text side (websearch syntax: all words must match,
"quoted phrases", -exclusions) adds precise hits for exact terms such as plan names or "PayPal fee".
Measured on tests/test_search.py's questions: fusing OR-semantics full-text pulled in noise and lost
two questions that vector + AND full-text answers (17/18 in the top 5), so it is not used.

The same function backs `mentor search` and the agents' knowledge tool. It runs as the anonymous
application role: knowledge is public.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from core.errors import InvalidArgument
from retrieval.corpora import require_corpora
from retrieval.embedder import get_embedder
from store.db import HNSW_EF_SEARCH, Database

RRF_K = 60


class SearchHit(BaseModel):
    chunk_id: int
    corpus: str
    title: str
    source: str
    section: str
    anchor: str
    text: str
    score: float = Field(description="reciprocal-rank-fusion score; higher is better")
    distance: float | None = Field(None, description="cosine distance of the vector match (0 = same meaning)")
    vector_rank: int | None = None
    text_rank: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


def _filters(corpora: list[str] | None, metadata: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    if corpora:
        clauses.append("corpus = ANY(%(corpora)s)")
        params["corpora"] = corpora
    if metadata:
        clauses.append("metadata @> %(meta)s::jsonb")
        params["meta"] = json.dumps(metadata)
    return (" AND ".join(clauses) or "TRUE"), params


def balanced(hits: list[SearchHit], k: int) -> list[SearchHit]:
    """k hits taken in turn from each corpus present (best first within each), so one corpus's dense
    cluster (157 near-identical market-rate chunks) cannot crowd the lessons out of a persona's sources."""
    by_corpus: dict[str, list[SearchHit]] = {}
    for hit in hits:
        by_corpus.setdefault(hit.corpus, []).append(hit)
    picked: list[SearchHit] = []
    # the corpus with the closest match leads each round (cosine distance compares across corpora; RRF scores don't)
    queues = sorted(by_corpus.values(), key=lambda q: q[0].distance if q[0].distance is not None else 2.0)
    while len(picked) < k and any(queues):
        for queue in queues:
            if queue and len(picked) < k:
                picked.append(queue.pop(0))
    return picked


def search(
    db: Database,
    query: str,
    *,
    corpora: list[str] | None = None,
    k: int = 5,
    metadata: dict[str, Any] | None = None,
    candidates: int = 50,
    vector: np.ndarray | None = None,
) -> list[SearchHit]:
    """Top-k chunks for `query`, optionally limited to corpora and a metadata subset (JSON containment).

    `vector` is the query's embedding when the caller already has it (computed while other work ran).
    """
    query = query.strip()
    if not query:
        raise InvalidArgument("search text is empty")
    if not 1 <= k <= 100:
        raise InvalidArgument(f"k must be between 1 and 100, got {k}")
    if corpora:
        require_corpora(db, corpora)
    where, params = _filters(corpora, metadata)
    pool = max(candidates, k)
    vector = get_embedder().submit_query(query).result() if vector is None else vector
    params |= {"v": vector, "pool": pool, "q": query}
    with db.as_user(None) as conn:
        if 2 * pool > HNSW_EF_SEARCH:  # a pooled session searches HNSW_EF_SEARCH wide; wider for a big pool
            conn.execute(f"SET LOCAL hnsw.ef_search = {2 * pool}")
        vec_sql = (f"SELECT id, embedding <=> %(v)s AS distance FROM chunks WHERE {where} "
                   "ORDER BY embedding <=> %(v)s LIMIT %(pool)s")
        vec_rows = conn.execute(vec_sql, params).fetchall()
        if (corpora or metadata) and len(vec_rows) < pool:
            # A filtered HNSW scan can stop short; fall back to an exact scan of the filtered rows.
            # "+ 0" makes the ordering an expression no index can serve. (SET enable_indexscan is not
            # enough: psycopg prepares repeated statements and a cached plan ignores the setting.)
            exact_sql = vec_sql.replace("ORDER BY embedding <=> %(v)s", "ORDER BY (embedding <=> %(v)s) + 0")
            vec_rows = conn.execute(exact_sql, params).fetchall()
        vec_ids = [r["id"] for r in vec_rows]
        distances = {r["id"]: float(r["distance"]) for r in vec_rows}
        text_ids = [
            r["id"]
            for r in conn.execute(
                f"""WITH q AS (SELECT websearch_to_tsquery('english', %(q)s) AS tsq)
                    SELECT id FROM chunks, q WHERE {where} AND tsv @@ q.tsq
                    ORDER BY ts_rank_cd(tsv, q.tsq) DESC, id LIMIT %(pool)s""",
                params,
            )
        ]
        scores: dict[int, float] = {}
        vrank = {cid: i + 1 for i, cid in enumerate(vec_ids)}
        trank = {cid: i + 1 for i, cid in enumerate(text_ids)}
        for ranks in (vrank, trank):
            for cid, rank in ranks.items():
                scores[cid] = scores.get(cid, 0.0) + 1.0 / (RRF_K + rank)
        top = sorted(scores, key=lambda cid: (-scores[cid], vrank.get(cid, 10**9)))[:k]
        rows = {
            r["id"]: r
            for r in conn.execute(
                "SELECT id, corpus, title, source, section, anchor, text, metadata FROM chunks WHERE id = ANY(%s)",
                (top,),
            )
        }
    return [
        SearchHit(
            chunk_id=cid,
            corpus=rows[cid]["corpus"],
            title=rows[cid]["title"],
            source=rows[cid]["source"],
            section=rows[cid]["section"],
            anchor=rows[cid]["anchor"],
            text=rows[cid]["text"],
            score=round(scores[cid], 6),
            distance=round(distances[cid], 4) if cid in distances else None,
            vector_rank=vrank.get(cid),
            text_rank=trank.get(cid),
            metadata=rows[cid]["metadata"] or {},
        )
        for cid in top
        if cid in rows
    ]
