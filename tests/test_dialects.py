"""Help centers as documentation tools write them (issue 36): one small document per dialect — GitBook,
Docusaurus MDX, MkDocs Material, Hugo, Jekyll — in tests/dialects/, each construct in it. After ingestion
no chunk and no answer holds their markup, the text inside the constructs is found by search under the
section it belongs to, and a folder ingest says what it skipped and why."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agents.aio import iterate_blocking
from agents.composer import COMPOSER
from agents.personas import get_persona
from agents.requests import TurnRequest
from agents.runtime import Turn
from retrieval.corpora import add_corpus
from retrieval.dialects import normalise
from retrieval.ingest import ingest_paths
from retrieval.search import search
from store.db import Database
from tests.conftest import REPO

DOCS = REPO / "tests" / "dialects"
MARKUP = ("{%", "%}", "{{<", "{{%", ":::", "!!!", "???", "===", "&#x", "&nbsp;", "import ", "<Tab", "</", "{/*",
          "<!--", "--8<--", "<figure", "](../", "+++")


@pytest.mark.parametrize(("name", "dialect", "title"), [
    ("gitbook.md", "gitbook", None), ("docusaurus.mdx", "docusaurus", "Team workspaces"), ("mkdocs.md", "mkdocs", None),
    ("hugo.md", "hugo", "Shipping abroad"), ("jekyll.md", "jekyll", "Gift cards")])
def test_each_dialect_is_recognised_and_cleaned(name: str, dialect: str, title: str | None) -> None:
    clean = normalise((DOCS / name).read_text(), f"help/{name}")
    assert clean.dialect == dialect and clean.title == title
    assert not [m for m in MARKUP if m in clean.text], clean.text
    assert "title" not in clean.metadata and "description" not in clean.metadata  # metadata, never text


@pytest.fixture(scope="module")
def dialect_corpus(knowledge, tmp_path_factory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("site") / "help"
    shutil.copytree(DOCS, folder)
    (folder / "hero.png").write_bytes(b"\x89PNG\r\n")
    (folder / ".DS_Store").write_bytes(b"\x00")
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("[core]\n")
    add_corpus(knowledge, "dialects", "documentation dialects (tests)", public=True)
    report = ingest_paths(knowledge, [folder], "dialects", progress=False)
    yield knowledge, folder, report
    with knowledge.admin() as conn:
        conn.execute("DELETE FROM documents WHERE corpus = 'dialects'")
        conn.execute("DELETE FROM corpora WHERE name = 'dialects'")


def test_no_chunk_holds_markup_and_the_dialect_is_on_the_document(dialect_corpus) -> None:  # type: ignore[no-untyped-def]
    db, _, report = dialect_corpus
    assert report.files == 5 and report.dialects == {"docusaurus": 1, "gitbook": 1, "hugo": 1, "jekyll": 1,
                                                     "mkdocs": 1}
    with db.admin() as conn:
        chunks = conn.execute("SELECT source, text, search_text FROM chunks WHERE corpus = 'dialects'").fetchall()
        documents = {r["source"]: r for r in conn.execute(
            "SELECT source, title, metadata FROM documents WHERE corpus = 'dialects'")}
    assert chunks
    for chunk in chunks:
        assert not [m for m in MARKUP if m in chunk["text"] or m in chunk["search_text"]], chunk
    assert documents["help/docusaurus.mdx"]["metadata"] == {"sidebar_position": 3, "dialect": "docusaurus"}
    assert documents["help/hugo.md"]["title"] == "Shipping abroad"
    gitbook = [c["text"] for c in chunks if c["source"] == "help/gitbook.md"]
    assert "How refunds work on Parcelly" in gitbook[0]  # the front matter's description opens the first chunk
    assert any("[shipping rules](/knowledge/help/shipping.md#returns)" in t for t in gitbook)  # links survive quoting


def test_a_folder_ingest_names_what_it_skipped_and_why(dialect_corpus) -> None:  # type: ignore[no-untyped-def]
    _, folder, report = dialect_corpus
    skipped = {Path(name).name: why for name, why in report.skipped}
    assert skipped.keys() == {"hero.png", ".DS_Store", ".git"}
    assert "not a document type" in skipped["hero.png"] and skipped[".git"] == "hidden folder"
    again = ingest_paths(dialect_corpus[0], [folder], "dialects", progress=False)
    assert (again.unchanged, again.embedded) == (5, 0)  # unchanged documents: nothing embedded again


@pytest.mark.parametrize(("question", "section", "words"), [
    ("how long until a card refund shows on my statement", "Asking for a refund", "10 business days"),
    ("how many days does a seller have to answer a refund request", "Sellers", "within 3 days"),
    ("what do extra seats in a workspace cost", "Inviting teammates", "$4 a month"),
    ("invite a teammate from my phone", "On mobile", "people icon"),
    ("lost my phone two factor recovery codes", "Turning it on", "8 recovery codes"),
    ("sms code expiry for two-factor", "SMS", "expires after 10 minutes"),
    ("parcel value that needs a customs declaration", "Customs forms", "€150"),
    ("do gift cards expire", "Redeeming a gift card", "never expire"),
])
def test_text_inside_the_constructs_is_found_under_its_real_section(dialect_corpus, question, section, words) -> None:  # type: ignore[no-untyped-def]
    db = dialect_corpus[0]
    hits = search(db, question, corpora=["dialects"], k=3)
    assert any(h.section == section and words in h.text for h in hits), [(h.section, h.text[:80]) for h in hits]


def test_an_answer_quotes_the_text_not_the_markup_and_cites_the_section(dialect_corpus) -> None:  # type: ignore[no-untyped-def]
    db: Database = dialect_corpus[0]
    persona = get_persona("support").model_copy(update={"corpora": ["dialects"]})
    events = [e.model_dump() for e in iterate_blocking(Turn(
        TurnRequest(persona="support", text="How long do refunds to a card take to show up?"), persona, db,
        COMPOSER, None, None).run())]
    answer = "".join(e["delta"] for e in events if e["type"] == "token")
    assert "10 business days" in answer and not [m for m in MARKUP if m in answer], answer
    assert any(e["type"] == "citation" and e["section"] == "Asking for a refund" for e in events)
