"""What a knowledge re-sync costs, against a full re-import: a local site of N pages (three sections each)
served by http.server, imported from its sitemap into a scratch corpus, then synced three times:

- unchanged, sitemap `lastmod` as before: no page is fetched at all;
- unchanged, no `lastmod` in the sitemap: every page is asked conditionally (If-Modified-Since → 304);
- one section rewritten on `--changed` pages (their `lastmod` moved): only those pages are fetched and only
  the rewritten sections embedded.

    .venv/bin/python benchmarks/sync_bench.py --home /tmp/benchhome --pages 200 --changed 5

Prints JSON (seconds, pages fetched, chunks embedded per sync); asserts nothing. The scratch corpus and its
source are removed at the end.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = "sync_bench"


def page(i: int, version: int = 0) -> str:
    sections = "".join(
        f"<h2>Topic {i}.{s}</h2><p>Page {i} section {s} explains how feature {i}-{s} works"
        f"{' (revised ' + str(version) + ')' if s == 0 and version else ''}: " + "details " * 40 + "</p>"
        for s in range(3))
    return (f"<html><head><title>Page {i}</title></head><body><nav>menu</nav><main><h1>Page {i}</h1>{sections}"
            "</main></body></html>")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--changed", type=int, default=5)
    args = parser.parse_args()
    os.environ["MENTOR_HOME"] = args.home
    os.environ["MENTOR_IMPORT_ALLOW"] = "127.0.0.1"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from retrieval.corpora import add_corpus
    from retrieval.sync import run_sync, start_sync
    from store import knowledge
    from store.db import Database

    root = Path(tempfile.mkdtemp(prefix="sync-bench-"))
    asked: list[int] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_request(self, code="-", size="-"):
            asked.append(int(code) if str(code).isdigit() else 0)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def sitemap(lastmods: dict[int, str] | None) -> None:
        urls = "".join(f"<url><loc>{base}/p{i}.html</loc>" + (f"<lastmod>{lastmods[i]}</lastmod>" if lastmods else "")
                       + "</url>" for i in range(args.pages))
        (root / "sitemap.xml").write_text(
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>')

    for i in range(args.pages):
        (root / f"p{i}.html").write_text(page(i))
        os.utime(root / f"p{i}.html", (1.7e9, 1.7e9))
    lastmods = {i: "2026-11-01" for i in range(args.pages)}
    sitemap(lastmods)
    db = Database.connect()
    add_corpus(db, CORPUS, "sync benchmark (scratch)")
    result: dict = {"pages": args.pages, "changed": args.changed}
    with db.admin() as conn:
        source = knowledge.create_source(conn, CORPUS, f"{base}/sitemap.xml", [], None)

    def sync(label: str) -> None:
        asked.clear()
        started = time.perf_counter()
        job = run_sync(db, source["id"], start_sync(db.admin, source["id"]))
        result[label] = {"seconds": round(time.perf_counter() - started, 2), "requests": len(asked),
                         "fetched_whole": asked.count(200), "not_modified": asked.count(304),
                         **{k: job[k] for k in ("status", "added", "updated", "unchanged", "removed", "embedded")}}

    try:
        sync("import")
        sync("resync_unchanged_lastmod")
        sitemap(None)
        sync("resync_unchanged_conditional")
        for i in range(args.changed):
            (root / f"p{i}.html").write_text(page(i, version=1))
            lastmods[i] = "2026-12-01"
        sitemap(lastmods)
        sync("resync_changed")
    finally:
        with db.admin() as conn:
            knowledge.delete_source(conn, source["id"])
            conn.execute("DELETE FROM documents WHERE corpus = %s", (CORPUS,))
            conn.execute("DELETE FROM corpora WHERE name = %s", (CORPUS,))
        db.close()
        server.shutdown()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
