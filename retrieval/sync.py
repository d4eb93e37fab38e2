"""Knowledge sources: a website's pages (a sitemap, or a list of URLs) imported into a corpus and kept in
sync with it.

A sync asks each page's server only for what changed: a page whose sitemap `lastmod` is the one seen last
time is not fetched at all, the others are fetched conditionally (If-None-Match / If-Modified-Since: 304 is
unchanged), and a page fetched whole whose bytes hash the same is unchanged too. A changed page keeps every
chunk whose text it still has (retrieval/ingest.py): only new text is embedded. Pages that left the sitemap
(or the URL list), or answer 404/410, are removed — never when the sitemap itself could not be read, and
never a document uploaded by hand. The answers that cited text a sync changed or removed are its impact
report. A job's state is in the database: its counts as it goes, and a heartbeat, so a job whose process
died is told apart and failed (store.knowledge.fail_stale_jobs).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from core.errors import Conflict, FetchRefused, IngestError, NotFound
from core.settings import Settings, get_settings
from retrieval.chunking import kind_of, parse_document
from retrieval.fetch import Fetcher, FetchFailed
from retrieval.ingest import Connect, IngestReport, PageOrigin, PreparedDocument, content_hash, ingest_documents
from retrieval.sitemap import Listed, read_sitemap
from store import knowledge
from store.db import Database

log = logging.getLogger("mentor.knowledge")
BATCH_PAGES = 16  # pages written (and embedded) per transaction: progress shows, and a failure loses little


def start_sync(connect: Connect, source_id: int, trigger: str = "manual") -> int:
    """A new running job for the source; Conflict (naming it) when one is already running."""
    with connect() as conn:
        if conn.execute("SELECT 1 FROM knowledge_sources WHERE id = %s", (source_id,)).fetchone() is None:
            raise NotFound(f"no knowledge source {source_id}")
        knowledge.fail_stale_jobs(conn)
        job = knowledge.start_job(conn, source_id, trigger)
        if job is None:
            raise Conflict(f"knowledge source {source_id} is being synced already (job "
                           f"{knowledge.running_job(conn, source_id)}); wait for it to finish")
        return job["id"]


class Interrupted(Exception):
    """The process running the sync is stopping: the job ends after the page it was on."""


class _Run:
    def __init__(self, db: Database, connect: Connect, source: dict, job_id: int, settings: Settings,
                 batch_size: int | None, on_page: Callable[[int, int], None] | None,
                 stop: threading.Event | None) -> None:
        self.db, self.connect, self.source, self.job_id = db, connect, source, job_id
        self.settings, self.batch_size, self.on_page, self.stop = settings, batch_size, on_page, stop
        self.counts = {"done": 0, "total": 0, "added": 0, "updated": 0, "unchanged": 0, "removed": 0, "embedded": 0}
        self.errors: list[dict] = []
        self.batch: list[PreparedDocument] = []

    def beat(self) -> None:
        with self.connect() as conn:
            if not knowledge.progress(conn, self.job_id, **self.counts):  # no longer running: failed meanwhile
                raise Interrupted("interrupted: the job was marked failed while it ran (its process was frozen "
                                  "past the heartbeat's limit); sync again to re-run it")
            knowledge.add_errors(conn, self.job_id, self.errors)
        self.errors = []
        if self.on_page:
            self.on_page(self.counts["done"], self.counts["total"])

    def error(self, url: str, message: str) -> None:
        self.errors.append({"url": url, "error": message})

    def flush(self) -> None:
        if not self.batch:
            return

        def record(conn: psycopg.Connection, report: IngestReport) -> None:
            knowledge.add_impacts(conn, self.job_id, report.impacts)
            counts = {k: self.counts[k] + getattr(report, k) for k in ("added", "updated", "unchanged", "embedded")}
            knowledge.progress(conn, self.job_id, **counts)

        report = ingest_documents(self.db, self.source["corpus"], self.batch, settings=self.settings, progress=False,
                                  connect=self.connect, batch_size=self.batch_size, on_written=record)
        for key in ("added", "updated", "unchanged", "embedded"):
            self.counts[key] += getattr(report, key)
        self.batch = []

    def run(self) -> None:
        source, settings = self.source, self.settings
        with self.connect() as conn:
            known = knowledge.source_pages(conn, source["id"])
        with Fetcher(settings) as fetcher:
            if source["sitemap_url"]:
                listed = read_sitemap(fetcher, source["sitemap_url"], settings.import_max_pages)
            else:
                listed = [Listed(url) for url in source["urls"]]
            if not listed:
                raise FetchFailed(f"{source['sitemap_url']}: the sitemap lists no pages (nothing was removed)")
            with self.connect() as conn:  # a page another origin holds under the same name is not ours to replace
                taken = {r["source"]: r["source_id"] for r in conn.execute(
                    """SELECT source, source_id FROM documents WHERE corpus = %s AND source = ANY(%s)
                       AND source_id IS DISTINCT FROM %s""", (source["corpus"], [p.url for p in listed], source["id"]))}
            self.counts["total"] = len(listed)
            self.beat()
            gone: list[int] = []
            for page in listed:
                if self.stop is not None and self.stop.is_set():
                    self.flush()
                    raise Interrupted("interrupted: the worker running it stopped; sync again to re-run it")
                self.page(fetcher, page, known.get(page.url), taken, gone)
                self.counts["done"] += 1
                if len(self.batch) >= BATCH_PAGES:
                    self.flush()
                self.beat()
            self.flush()
        listed_urls = {p.url for p in listed}
        gone += [old["id"] for url, old in known.items() if url not in listed_urls]
        if gone:
            with self.connect() as conn:
                knowledge.add_impacts(conn, self.job_id, knowledge.remove_pages(conn, gone))
                self.counts["removed"] += len(gone)
                knowledge.progress(conn, self.job_id, **self.counts)
        self.beat()

    def page(self, fetcher: Fetcher, page: Listed, old: dict | None, taken: dict[str, int | None],
             gone: list[int]) -> None:
        url = page.url
        if url in taken:
            owner = taken[url]
            self.error(url, f"{url}: knowledge source {owner} imported this page into the corpus already; it is left "
                            "to that source" if owner else f"{url}: a document uploaded by hand has this name in "
                            "the corpus; it is left as it is")
            return
        if old is not None and page.lastmod and old["lastmod"] == page.lastmod:
            self.counts["unchanged"] += 1  # the sitemap says it has not changed since we read it
            return
        try:
            fetched = fetcher.get(url, etag=old["etag"] if old else None,
                                  last_modified=old["last_modified"] if old else None)
        except (FetchRefused, FetchFailed) as exc:
            self.error(url, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - whatever one odd URL raises is that URL's error, not the sync's
            self.error(url, f"{url}: {type(exc).__name__}: {exc}")
            return
        if fetched.status == 304:
            self.counts["unchanged"] += 1
            if old is not None and page.lastmod != old["lastmod"]:
                with self.connect() as conn:
                    conn.execute("UPDATE documents SET lastmod = %s WHERE id = %s", (page.lastmod, old["id"]))
            return
        if fetched.status in (404, 410):
            if old is not None:
                gone.append(old["id"])
            else:
                self.error(url, f"{url}: HTTP {fetched.status}, no such page")
            return
        try:
            doc = parse_document(fetched.body, url, url, kind=kind_of(url, fetched.content_type), main_content=True,
                                 encoding=fetched.charset)
        except IngestError as exc:
            self.error(url, str(exc))
            return
        origin = PageOrigin(self.source["id"], fetched.etag, fetched.last_modified, page.lastmod)
        self.batch.append(PreparedDocument(doc, content_hash(fetched.body, self.settings), origin))


class _Heartbeat:
    """Tells the other processes this job's process is alive while a page takes long (a big page to embed, a
    slow server): every HEARTBEAT_S, whatever the job is doing. A job whose heartbeat stops (its process died
    or froze) is failed by the next look after knowledge.JOB_STALE_S."""

    def __init__(self, connect: Connect, job_id: int) -> None:
        self.connect, self.job_id = connect, job_id
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"knowledge-heartbeat-{job_id}", daemon=True)

    def _beat(self) -> None:
        while not self.done.wait(knowledge.HEARTBEAT_S):
            try:
                with self.connect() as conn:
                    knowledge.progress(conn, self.job_id)
            except Exception:  # noqa: BLE001 - the database may be away a moment; the next beat tries again
                log.warning("knowledge sync %s: heartbeat failed", self.job_id, exc_info=True)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def run_sync(db: Database, source_id: int, job_id: int, *, connect: Connect | None = None,
             settings: Settings | None = None, batch_size: int | None = None,
             on_page: Callable[[int, int], None] | None = None, stop: threading.Event | None = None) -> dict:
    """Run a started job to its end, done or failed (never left running); returns the job."""
    connect = connect or db.admin
    settings = settings or get_settings()
    try:
        with connect() as conn:
            source = knowledge.get_source(conn, source_id)
        if source is None:
            raise NotFound(f"no knowledge source {source_id}")
        with _Heartbeat(connect, job_id):
            _Run(db, connect, source, job_id, settings, batch_size, on_page, stop).run()
        status, reason = "done", None
    except (FetchRefused, FetchFailed, IngestError, NotFound, Conflict, Interrupted) as exc:
        status, reason = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - recorded on the job (and logged), never left running
        log.exception("knowledge sync %s failed", job_id)
        status, reason = "failed", f"{type(exc).__name__}: {exc}"
    try:
        with connect() as conn:
            knowledge.finish_job(conn, job_id, status, reason)
            return knowledge.get_job(conn, job_id)
    except Exception:  # noqa: BLE001 - the database went: the heartbeat will tell (fail_stale_jobs)
        log.exception("knowledge sync %s: could not record its end", job_id)
        return {"id": job_id, "status": status, "reason": reason}
