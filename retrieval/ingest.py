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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue

import numpy as np
import psycopg
from tqdm import tqdm

from core.errors import IngestError
from core.settings import Settings, get_settings
from retrieval.chunking import SUPPORTED, Chunk, EmptyDocument, ParsedDocument, chunk_document, read_document
from retrieval.corpora import require_corpora
from retrieval.embedder import get_embedder
from store.db import Database

# folders documentation tools build into or vendor from (Jekyll's _site and partials, MkDocs' snippets,
# node_modules, build output): their files are copies, templates or code, never pages of their own
BUILD_FOLDERS = frozenset({"node_modules", "_site", "_includes", "_layouts", "_data", "_sass", "build", "dist",
                           "snippets", "includes", "__pycache__"})
NAVIGATION_FILES = frozenset({"SUMMARY.md"})  # GitBook's table of contents
CHUNKER_VERSION = "4"  # 2: heading paths, whole code blocks and tables, readable search text; 3: dialects cleaned;
# 4: HTML FAQ questions (<summary>) kept, HTML line breaks not kept, split config pieces keep their key path


@dataclass
class IngestReport:
    corpus: str
    files: int = 0
    unchanged: int = 0
    added: int = 0
    updated: int = 0
    chunks_written: int = 0
    embedded: int = 0
    seconds: float = 0.0
    sources: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why) a folder held but we did not read
    dialects: dict[str, int] = field(default_factory=dict)  # Markdown dialect -> documents read in it


@dataclass
class PreparedDocument:
    doc: ParsedDocument
    content_hash: str


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


def _waves(todo: list[tuple[PreparedDocument, list[Chunk]]]) -> Iterator[list[tuple[PreparedDocument, list[Chunk]]]]:
    wave: list[tuple[PreparedDocument, list[Chunk]]] = []
    size = 0
    for item in todo:
        wave.append(item)
        size += len(item[1])
        if size >= WAVE_CHUNKS:
            yield wave
            wave, size = [], 0
    if wave:
        yield wave


def _write_wave(conn: psycopg.Connection, corpus: str, wave: list[tuple[PreparedDocument, list[Chunk]]],
                vectors: np.ndarray, report: IngestReport) -> None:
    position = 0
    for item, chunks in wave:
        doc = item.doc
        row = conn.execute(
            """INSERT INTO documents (corpus, source, title, content_hash, metadata) VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (corpus, source) DO UPDATE
               SET title = EXCLUDED.title, content_hash = EXCLUDED.content_hash,
                   metadata = EXCLUDED.metadata, ingested_at = now()
               RETURNING id, (xmax = 0) AS inserted""",
            (corpus, doc.source, doc.title, item.content_hash,
             json.dumps({**doc.metadata, **({"dialect": doc.dialect} if doc.dialect else {})}, default=str)),
        ).fetchone()
        conn.execute("DELETE FROM chunks WHERE document_id = %s", (row["id"],))
        with conn.cursor().copy(
            "COPY chunks (document_id, corpus, ordinal, title, section, anchor, source, text, search_text,"
            " token_count, metadata, embedding) FROM STDIN"
        ) as copy:
            for chunk in chunks:
                vec = vectors[position]
                position += 1
                copy.write_row((
                    row["id"], corpus, chunk.ordinal, chunk.title, chunk.section, chunk.anchor, doc.source,
                    chunk.text, chunk.search_text, chunk.token_count, json.dumps(chunk.metadata, default=str),
                    "[" + ",".join(f"{x:.7f}" for x in vec) + "]",
                ))
        report.chunks_written += len(chunks)
        report.sources.append(doc.source)
        if row["inserted"]:
            report.added += 1
        else:
            report.updated += 1


def ingest_paths(db: Database, paths: list[Path], corpus: str, *, progress: bool = True) -> IngestReport:
    settings = get_settings()
    require_corpora(db, [corpus])
    skipped: list[tuple[str, str]] = []
    prepared = prepare_files(paths, settings, skipped)
    report = ingest_documents(db, corpus, prepared, settings=settings, progress=progress)
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
) -> IngestReport:
    """Write the documents whose hash changed; skip the rest. One transaction for the whole batch."""
    settings = settings or get_settings()
    started = time.perf_counter()
    report = IngestReport(corpus=corpus, files=len(prepared))
    with db.admin() as conn:
        existing = {
            r["source"]: r["content_hash"]
            for r in conn.execute("SELECT source, content_hash FROM documents WHERE corpus = %s", (corpus,))
        }
    todo: list[tuple[PreparedDocument, list[Chunk]]] = []
    for item in prepared:
        if existing.get(item.doc.source) == item.content_hash:
            report.unchanged += 1
            continue
        chunks = chunk_document(item.doc, max_tokens=settings.chunk_tokens, overlap=settings.chunk_overlap)
        todo.append((item, chunks))
    report.embedded = sum(len(chunks) for _, chunks in todo)
    with db.admin() as conn, tqdm(total=report.embedded, desc=f"embedding {corpus}", unit="chunk",
                                  disable=not progress, leave=False) as bar:
        # Embedding (torch) and writing (PostgreSQL maintaining the HNSW index, another process) overlap:
        # each wave of documents is embedded while the previous one is written, all in one transaction.
        queue: Queue[tuple[list[tuple[PreparedDocument, list[Chunk]]], np.ndarray] | None] = Queue(maxsize=2)
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
                texts = [c.search_text for _, chunks in wave for c in chunks]
                queue.put((wave, get_embedder().embed(texts, batch_size=settings.embed_batch, on_batch=bar.update)))
        finally:
            queue.put(None)
            writer.join()
        if failure:
            raise failure[0]
    report.seconds = round(time.perf_counter() - started, 2)
    return report
