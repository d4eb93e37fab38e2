"""`mentor ingest`: files -> sections -> token chunks -> embeddings -> PostgreSQL, idempotently.

Every file is read and parsed before anything is written, so one bad file stops the run with
existing data untouched. A document is identified by (corpus, source); its content hash (file
bytes + chunking settings) decides whether it needs work: unchanged files cost no embedding,
changed files have their chunks replaced in the same transaction that records the new hash.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue

import numpy as np
import psycopg
from tqdm import tqdm

from core.errors import Conflict, IngestError
from core.settings import Settings, get_settings
from retrieval.chunking import SUPPORTED, Chunk, EmptyDocument, ParsedDocument, chunk_document, read_document
from retrieval.corpora import require_corpora
from retrieval.embedder import get_embedder
from store.db import Database

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]

# folders documentation tools build into or vendor from (Jekyll's _site and partials, MkDocs' snippets,
# node_modules, build output): their files are copies, templates or code, never pages of their own
BUILD_FOLDERS = frozenset({"node_modules", "_site", "_includes", "_layouts", "_data", "_sass", "build", "dist",
                           "snippets", "includes", "__pycache__"})
NAVIGATION_FILES = frozenset({"SUMMARY.md"})  # GitBook's table of contents
CHUNKER_VERSION = "4"  # 2: heading paths, whole code blocks and tables, readable search text; 3: dialects cleaned;
# 4: HTML FAQ questions (<summary>) kept, HTML line breaks not kept, split config pieces keep their key path


@dataclass
class DocumentOutcome:
    id: int
    source: str
    title: str
    chunks: int
    status: str  # added | updated | unchanged


@dataclass
class IngestReport:
    corpus: str
    files: int = 0
    unchanged: int = 0
    added: int = 0
    updated: int = 0
    chunks_written: int = 0
    embedded: int = 0  # chunks embedded: only those whose text is new (a changed document keeps the rest)
    seconds: float = 0.0
    sources: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why) a folder held but we did not read
    dialects: dict[str, int] = field(default_factory=dict)  # Markdown dialect -> documents read in it
    documents: list[DocumentOutcome] = field(default_factory=list)
    replaced_chunks: list[int] = field(default_factory=list)  # ids of chunks whose text changed (now deleted)
    impacts: list[dict] = field(default_factory=list)  # past answers citing them (store.knowledge.cited)


@dataclass
class PageOrigin:
    """Where a page fetched for a knowledge source came from, and what its server said (next time's
    conditional request); a document without one was uploaded by hand, and no sync touches it."""

    source_id: int
    etag: str | None = None
    last_modified: str | None = None
    lastmod: str | None = None


@dataclass
class PreparedDocument:
    doc: ParsedDocument
    content_hash: str
    origin: PageOrigin | None = None


def discover_files(paths: Iterable[Path], skipped: list[tuple[str, str]] | None = None) -> list[tuple[Path, str]]:
    """Expand folders; return (file, source key) pairs. Source = path relative to the argument's parent.
    Every file a folder holds that is not read goes into `skipped` with the reason, so none is lost unsaid."""
    found: list[tuple[Path, str]] = []
    skipped = skipped if skipped is not None else []
    for path in paths:
        if not path.exists():
            raise IngestError(f"{path}: no such file or directory")
        if path.is_dir():
            files = []
            for p in sorted(path.rglob("*")):
                parts = p.relative_to(path).parts
                hidden = next((part for part in parts if part.startswith(".") or part in BUILD_FOLDERS), None)
                if hidden is not None:
                    if p.name == hidden and p.is_dir():  # one line for the folder (.git, node_modules, _site)
                        skipped.append((p.as_posix() + "/", "hidden folder" if hidden.startswith(".")
                                        else "a build, theme or dependency folder, not content"))
                    elif p.name == hidden:
                        skipped.append((p.as_posix(), "hidden file"))
                elif p.is_file() and p.name in NAVIGATION_FILES:
                    skipped.append((p.as_posix(), "the site's navigation, not content"))
                elif p.is_file() and p.suffix.lower() in SUPPORTED:
                    files.append(p)
                elif p.is_file():
                    skipped.append((p.as_posix(), f"{p.suffix or 'no suffix'}: not a document type we read "
                                                  f"({', '.join(sorted(SUPPORTED))})"))
            if not files:
                raise IngestError(f"{path}: no {', '.join(sorted(SUPPORTED))} files in this folder")
            found.extend((f, f.relative_to(path.parent).as_posix()) for f in files)
        else:
            found.append((path, f"{path.parent.name}/{path.name}" if path.parent.name else path.name))
    return found


def content_hash(raw: bytes, settings: Settings) -> str:
    salt = f"|chunker={CHUNKER_VERSION}|{settings.chunk_tokens}|{settings.chunk_overlap}".encode()
    return hashlib.sha256(raw + salt).hexdigest()


def prepare_files(paths: Iterable[Path], settings: Settings,
                  skipped: list[tuple[str, str]] | None = None) -> list[PreparedDocument]:
    prepared = []
    named = {p.resolve() for p in paths if p.is_file()}
    for path, source in discover_files(paths, skipped):
        try:
            doc = read_document(path, source)
        except EmptyDocument:
            if path.resolve() in named or skipped is None:
                raise
            skipped.append((path.as_posix(), "no text of its own (an index or category page)"))
            continue
        prepared.append(PreparedDocument(doc, content_hash(path.read_bytes(), settings)))
    if not prepared:
        raise IngestError("no document with text to index: " + ", ".join(str(p) for p in paths))
    return prepared


WAVE_CHUNKS = 512  # embedded per wave; sorted by length inside a wave, so padding stays small


def chunk_key(title: str, section: str, anchor: str, text: str, metadata: dict) -> str:
    """What makes two chunks the same: a changed document keeps (and does not re-embed) every chunk whose
    key it still has, so the answers that cited it keep pointing at it."""
    return hashlib.sha256(json.dumps([title, section, anchor, text, metadata], sort_keys=True,
                                     default=str).encode()).hexdigest()


@dataclass
class _Plan:
    """One changed document: its chunks, which of them an old chunk already holds, which old ones go."""

    item: PreparedDocument
    chunks: list[Chunk]
    document_id: int | None
    keep: dict[int, int] = field(default_factory=dict)  # new ordinal -> id of the old chunk with its text
    drop: list[int] = field(default_factory=list)  # old chunks whose text is gone

    @property
    def fresh(self) -> list[Chunk]:
        return [c for c in self.chunks if c.ordinal not in self.keep]


def _plan(conn: psycopg.Connection, item: PreparedDocument, chunks: list[Chunk], document_id: int | None) -> _Plan:
    plan = _Plan(item, chunks, document_id)
    if document_id is None:
        return plan
    old: dict[str, list[int]] = {}
    for row in conn.execute("SELECT id, title, section, anchor, text, metadata FROM chunks WHERE document_id = %s"
                            " ORDER BY ordinal", (document_id,)):
        key = chunk_key(row["title"], row["section"], row["anchor"], row["text"], row["metadata"])
        old.setdefault(key, []).append(row["id"])
    for chunk in chunks:
        ids = old.get(chunk_key(chunk.title, chunk.section, chunk.anchor, chunk.text, chunk.metadata))
        if ids:
            plan.keep[chunk.ordinal] = ids.pop(0)
    plan.drop = [i for ids in old.values() for i in ids]
    return plan


def _waves(todo: list[_Plan]) -> Iterator[list[_Plan]]:
    wave: list[_Plan] = []
    size = 0
    for plan in todo:
        wave.append(plan)
        size += len(plan.fresh)
        if size >= WAVE_CHUNKS:
            yield wave
            wave, size = [], 0
    if wave:
        yield wave


def _vector(vec: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7f}" for x in vec) + "]"


def _write_wave(conn: psycopg.Connection, corpus: str, wave: list[_Plan], vectors: np.ndarray,
                report: IngestReport) -> None:
    from store.knowledge import cited

    position = 0
    for plan in wave:
        doc, origin = plan.item.doc, plan.item.origin or PageOrigin(0)
        row = conn.execute(
            """INSERT INTO documents (corpus, source, title, content_hash, metadata, source_id, etag, last_modified,
                                      lastmod)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (corpus, source) DO UPDATE
               SET title = EXCLUDED.title, content_hash = EXCLUDED.content_hash, metadata = EXCLUDED.metadata,
                   etag = EXCLUDED.etag, last_modified = EXCLUDED.last_modified, lastmod = EXCLUDED.lastmod,
                   ingested_at = now()
               RETURNING id, (xmax = 0) AS inserted""",
            (corpus, doc.source, doc.title, plan.item.content_hash,
             json.dumps({**doc.metadata, **({"dialect": doc.dialect} if doc.dialect else {})}, default=str),
             origin.source_id or None, origin.etag, origin.last_modified, origin.lastmod),
        ).fetchone()
        if plan.drop:
            report.impacts.extend(cited(conn, plan.drop, "changed"))
            report.replaced_chunks.extend(plan.drop)
            conn.execute("DELETE FROM chunks WHERE id = ANY(%s)", (plan.drop,))
        if plan.keep:  # the chunks that stay move to their new places (ordinals freed first: they are unique)
            conn.execute("UPDATE chunks SET ordinal = -1 - ordinal WHERE document_id = %s", (row["id"],))
            conn.execute("""UPDATE chunks SET ordinal = v.ordinal FROM unnest(%s::bigint[], %s::int[]) AS v(id, ordinal)
                            WHERE chunks.id = v.id""", (list(plan.keep.values()), list(plan.keep.keys())))
        with conn.cursor().copy(
            "COPY chunks (document_id, corpus, ordinal, title, section, anchor, source, text, search_text,"
            " token_count, metadata, embedding) FROM STDIN"
        ) as copy:
            for chunk in plan.fresh:
                copy.write_row((
                    row["id"], corpus, chunk.ordinal, chunk.title, chunk.section, chunk.anchor, doc.source,
                    chunk.text, chunk.search_text, chunk.token_count, json.dumps(chunk.metadata, default=str),
                    _vector(vectors[position]),
                ))
                position += 1
        report.chunks_written += len(plan.fresh)
        report.sources.append(doc.source)
        status = "added" if row["inserted"] else "updated"
        report.documents.append(DocumentOutcome(row["id"], doc.source, doc.title, len(plan.chunks), status))
        if row["inserted"]:
            report.added += 1
        else:
            report.updated += 1


def ingest_paths(db: Database, paths: list[Path], corpus: str, *, progress: bool = True,
                 connect: Connect | None = None) -> IngestReport:
    settings = get_settings()
    require_corpora(db, [corpus])
    skipped: list[tuple[str, str]] = []
    prepared = prepare_files(paths, settings, skipped)
    report = ingest_documents(db, corpus, prepared, settings=settings, progress=progress, connect=connect)
    report.skipped = skipped
    for item in prepared:
        if dialect := item.doc.dialect:
            report.dialects[dialect] = report.dialects.get(dialect, 0) + 1
    return report


def ingest_documents(
    db: Database,
    corpus: str,
    prepared: list[PreparedDocument],
    *,
    settings: Settings | None = None,
    progress: bool = True,
    connect: Connect | None = None,
    batch_size: int | None = None,
    on_written: Callable[[psycopg.Connection, IngestReport], None] | None = None,
) -> IngestReport:
    """Write the documents whose hash changed; skip the rest. One transaction for the whole batch.

    A changed document keeps every chunk whose text it still has (same id, no embedding); only new text is
    embedded, and the chunks whose text went are deleted, the answers that cited them listed in `impacts`.
    `connect`: the transaction to write in (default the owner's, `db.admin`; the server's is `db.service`).
    A document another origin owns (uploaded by hand vs imported by a source) is refused, not overwritten.
    `on_written(conn, report)` runs last in the same transaction (a sync records its impact report there).
    """
    settings = settings or get_settings()
    connect = connect or db.admin
    started = time.perf_counter()
    report = IngestReport(corpus=corpus, files=len(prepared))
    with connect() as conn, tqdm(total=0, desc=f"embedding {corpus}", unit="chunk", disable=not progress,
                                 leave=False) as bar:
        # one writer per corpus at a time: what a document holds is read and replaced in one go
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('mentor.knowledge:' || %s, 0))", (corpus,))
        existing = {
            r["source"]: r for r in conn.execute(
                """SELECT id, source, title, content_hash, source_id FROM documents
                   WHERE corpus = %s AND source = ANY(%s)""",
                (corpus, [item.doc.source for item in prepared]))
        }
        todo: list[_Plan] = []
        for item in prepared:
            old = existing.get(item.doc.source)
            owner = item.origin.source_id if item.origin else None
            if old is not None and old["source_id"] != owner:
                raise Conflict(f"{item.doc.source}: already in {corpus} "
                               + (f"from knowledge source {old['source_id']}'s import" if old["source_id"]
                                  else "as a document uploaded by hand") + "; remove that one first")
            if old is not None and old["content_hash"] == item.content_hash:
                report.unchanged += 1
                if item.origin is not None:  # what its server said this time, for the next conditional request
                    conn.execute("UPDATE documents SET etag = %s, last_modified = %s, lastmod = %s WHERE id = %s",
                                 (item.origin.etag, item.origin.last_modified, item.origin.lastmod, old["id"]))
                count = conn.execute("SELECT count(*) AS n FROM chunks WHERE document_id = %s", (old["id"],)).fetchone()
                report.documents.append(DocumentOutcome(old["id"], old["source"], old["title"], count["n"],
                                                        "unchanged"))
                continue
            chunks = chunk_document(item.doc, max_tokens=settings.chunk_tokens, overlap=settings.chunk_overlap)
            todo.append(_plan(conn, item, chunks, old["id"] if old else None))
        report.embedded = sum(len(plan.fresh) for plan in todo)
        bar.total = report.embedded
        bar.refresh()
        # Embedding (torch) and writing (PostgreSQL maintaining the HNSW index, another process) overlap:
        # each wave of documents is embedded while the previous one is written, all in one transaction.
        queue: Queue[tuple[list[_Plan], np.ndarray] | None] = Queue(maxsize=2)
        failure: list[BaseException] = []

        def write_waves() -> None:
            while (job := queue.get()) is not None:
                if not failure:
                    try:
                        _write_wave(conn, corpus, *job, report)
                    except BaseException as exc:  # re-raised by the caller's thread; the transaction rolls back
                        failure.append(exc)

        writer = threading.Thread(target=write_waves, name="ingest-writer")
        writer.start()
        try:
            for wave in _waves(todo):
                if failure:
                    break
                texts = [c.search_text for plan in wave for c in plan.fresh]
                vectors = get_embedder().embed(texts, batch_size=batch_size or settings.embed_batch,
                                               on_batch=bar.update) if texts else np.zeros((0, 384), np.float32)
                queue.put((wave, vectors))
        finally:
            queue.put(None)
            writer.join()
        if failure:
            raise failure[0]
        if on_written is not None:
            on_written(conn, report)
    report.seconds = round(time.perf_counter() - started, 2)
    return report
