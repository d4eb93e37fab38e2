"""Ingestion through the real pipeline: chunking, embedding, idempotency, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import IngestError, UnknownCorpus
from core.settings import get_settings
from retrieval.chunking import read_document
from retrieval.corpora import add_corpus
from retrieval.ingest import ingest_paths
from retrieval.tokens import count_tokens
from store.db import Database

MD = """---
level: beginner
---
# Escrow for Beginners

## Funding
The client puts money into escrow before work starts.

## Release
The client releases the money after approving the work.
"""
HTML = """<html><head><title>Refund policy</title></head><body>
<h2>Partial refunds</h2><p>A freelancer can refund part of a payment.</p>
<script>alert('x')</script></body></html>"""


@pytest.fixture
def corpus_dir(tmp_path: Path, db: Database) -> Path:
    add_corpus(db, "test_docs", "documents written by tests")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "escrow.md").write_text(MD)
    (folder / "refunds.html").write_text(HTML)
    (folder / "notes.txt").write_text("Plain notes about withdrawals.\n\nSecond paragraph.")
    yield folder
    with db.admin() as conn:
        conn.execute("DELETE FROM documents WHERE corpus = 'test_docs'")


def _chunks(db: Database, source: str) -> list[dict]:
    with db.admin() as conn:
        return conn.execute(
            "SELECT section, anchor, text, metadata FROM chunks WHERE corpus = 'test_docs' AND source = %s "
            "ORDER BY ordinal", (source,)).fetchall()


def test_ingest_keeps_headings_as_sections_and_is_idempotent(db: Database, corpus_dir: Path) -> None:
    first = ingest_paths(db, [corpus_dir], "test_docs", progress=False)
    assert (first.files, first.added, first.unchanged) == (3, 3, 0)
    assert first.embedded == first.chunks_written > 0
    md = _chunks(db, "docs/escrow.md")
    assert [c["section"] for c in md] == ["Funding", "Release"]
    assert md[0]["anchor"] == "funding" and md[0]["metadata"] == {"level": "beginner"}
    html = _chunks(db, "docs/refunds.html")
    assert html[0]["section"] == "Partial refunds" and "alert" not in html[0]["text"]

    again = ingest_paths(db, [corpus_dir], "test_docs", progress=False)
    assert (again.unchanged, again.embedded, again.chunks_written) == (3, 0, 0)


def test_changed_file_replaces_its_chunks(db: Database, corpus_dir: Path) -> None:
    ingest_paths(db, [corpus_dir], "test_docs", progress=False)
    (corpus_dir / "escrow.md").write_text(MD.replace("## Release", "## Auto-release").replace(
        "after approving the work", "automatically after 14 days"))
    report = ingest_paths(db, [corpus_dir], "test_docs", progress=False)
    assert (report.updated, report.unchanged) == (1, 2)
    sections = [c["section"] for c in _chunks(db, "docs/escrow.md")]
    assert sections == ["Funding", "Auto-release"]
    assert not any("after approving" in c["text"] for c in _chunks(db, "docs/escrow.md"))


def test_bad_files_stop_the_run_and_leave_data_intact(db: Database, corpus_dir: Path) -> None:
    ingest_paths(db, [corpus_dir], "test_docs", progress=False)
    before = _chunks(db, "docs/escrow.md")
    (corpus_dir / "escrow.md").write_text(MD + "\n## New\nchanged text")
    (corpus_dir / "empty.md").write_text("   \n")
    with pytest.raises(IngestError, match="empty.md: file is empty"):
        ingest_paths(db, [corpus_dir], "test_docs", progress=False)
    assert _chunks(db, "docs/escrow.md") == before  # the valid change was not half-applied either
    (corpus_dir / "empty.md").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(IngestError, match="not UTF-8|binary"):
        ingest_paths(db, [corpus_dir], "test_docs", progress=False)
    with pytest.raises(IngestError, match="no such file"):
        ingest_paths(db, [corpus_dir / "missing.md"], "test_docs", progress=False)


def test_unknown_corpus_is_rejected_before_reading(db: Database, corpus_dir: Path) -> None:
    with pytest.raises(UnknownCorpus, match="unknown corpus 'nope'"):
        ingest_paths(db, [corpus_dir], "nope", progress=False)


def test_chunks_respect_the_token_budget(db: Database, tmp_path: Path) -> None:
    long_md = "# Long\n\n## Part\n\n" + "\n\n".join(
        f"Paragraph {i} explains escrow, milestones and withdrawals in some detail. " * 6 for i in range(40))
    path = tmp_path / "long.md"
    path.write_text(long_md)
    from retrieval.chunking import chunk_document

    budget = get_settings().chunk_tokens
    chunks = chunk_document(read_document(path, "long.md"), max_tokens=budget, overlap=30)
    assert len(chunks) > 5
    assert all(count_tokens(c.text) <= budget for c in chunks)
    assert all(c.section == "Part" for c in chunks)
