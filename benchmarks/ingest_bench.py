"""Ingestion throughput vs raw sentence-transformers encode on the same texts.

Generates a Markdown corpus, chunks it once to get the exact chunk texts, then times
1. raw `SentenceTransformer.encode` of those texts (same batch size, normalised), before and after;
2. `mentor ingest`'s pipeline (read, parse, chunk, embed, write to PostgreSQL) on the files.
Reports chunks/s for both and the ratio (target >= 0.9). Prints JSON; asserts nothing.

    .venv/bin/python benchmarks/ingest_bench.py --docs 300
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = ["client", "scope", "budget", "milestone", "proposal", "rate", "invoice", "escrow", "review", "revision",
         "deadline", "niche", "portfolio", "retainer", "discovery", "estimate", "buffer", "feedback", "contract",
         "payment", "withdrawal", "dispute", "evidence", "timeline"]


def make_corpus(folder: Path, docs: int, seed: int) -> None:
    rng = random.Random(seed)
    for d in range(docs):
        sections = []
        for s in range(6):
            sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
                         for _ in range(rng.randint(8, 18))]
            sections.append(f"## Section {s} of note {d}\n" + " ".join(sentences))
        (folder / f"note-{d:04d}.md").write_text(f"# Field note {d}\n\n" + "\n\n".join(sections) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mentor-ingest-bench-"))
    os.environ["MENTOR_HOME"] = str(home)
    os.environ.pop("DATABASE_URL", None)

    from core.settings import get_settings
    from retrieval.chunking import chunk_document
    from retrieval.corpora import add_corpus
    from retrieval.embedder import get_embedder
    from retrieval.ingest import ingest_paths, prepare_files
    from store.db import Database
    from store.migrate import migrate

    settings = get_settings()
    corpus_dir = home / "bench_notes"
    corpus_dir.mkdir()
    make_corpus(corpus_dir, args.docs, args.seed)
    texts = [c.text for item in prepare_files([corpus_dir], settings)
             for c in chunk_document(item.doc, max_tokens=settings.chunk_tokens, overlap=settings.chunk_overlap)]
    embedder = get_embedder()
    model = embedder.model
    model.encode(texts[:128], batch_size=settings.embed_batch, normalize_embeddings=True)  # warm-up

    def raw() -> float:
        t = time.perf_counter()
        model.encode(texts, batch_size=settings.embed_batch, normalize_embeddings=True, show_progress_bar=False)
        return time.perf_counter() - t

    raw_before = raw()
    db = Database.connect(settings)
    migrate(db)
    add_corpus(db, "bench_notes", "benchmark corpus")
    t = time.perf_counter()
    report = ingest_paths(db, [corpus_dir], "bench_notes", progress=False)
    ingest_s = time.perf_counter() - t
    raw_after = raw()
    raw_s = (raw_before + raw_after) / 2
    db.close()
    print(json.dumps({
        "cores": os.cpu_count(), "documents": args.docs, "chunks": len(texts), "chunks_written": report.chunks_written,
        "batch_size": settings.embed_batch,
        "raw_encode_seconds": [round(raw_before, 2), round(raw_after, 2)],
        "raw_encode_chunks_per_s": round(len(texts) / raw_s, 1),
        "ingest_seconds": round(ingest_s, 2), "ingest_chunks_per_s": round(report.chunks_written / ingest_s, 1),
        "ratio": round((report.chunks_written / ingest_s) / (len(texts) / raw_s), 3),
    }, indent=2))


if __name__ == "__main__":
    main()
