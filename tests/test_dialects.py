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
def dialect_corpus(knowledge, tmp_path_factory):
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


def test_no_chunk_holds_markup_and_the_dialect_is_on_the_document(dialect_corpus) -> None:
    db, _, report = dialect_corpus
    assert report.files == 5 and report.dialects == {"docusaurus": 1, "gitbook": 1, "hugo": 1, "jekyll": 1,
                                                     "mkdocs": 1}
    with db.admin() as conn:
        chunks = conn.execute("SELECT source, text, search_text FROM chunks WHERE corpus = 'dialects' "
                              "ORDER BY source, ordinal").fetchall()
        documents = {r["source"]: r for r in conn.execute(
            "SELECT source, title, metadata FROM documents WHERE corpus = 'dialects'")}
    assert chunks
    for chunk in chunks:
        assert not [m for m in MARKUP if m in chunk["text"] or m in chunk["search_text"]], chunk
    assert documents["help/docusaurus.mdx"]["metadata"] == {"sidebar_position": 3, "dialect": "docusaurus"}
    assert documents["help/hugo.md"]["title"] == "Shipping abroad"
    gitbook = [c["text"] for c in chunks if c["source"] == "help/gitbook.md"]
    assert "How refunds work on Parcelly" in gitbook[0]  # the front matter's description opens the first chunk
    # a link to a document beside it points at that document's page; one to a missing file keeps its words
    assert any("[customs rules](/knowledge/help/hugo.md#customs-forms)" in t for t in gitbook)
    assert any("Disputes" in t for t in gitbook) and not any("disputes/README" in t for t in gitbook)


def test_a_folder_ingest_names_what_it_skipped_and_why(dialect_corpus) -> None:
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
def test_text_inside_the_constructs_is_found_under_its_real_section(dialect_corpus, question, section, words) -> None:
    db = dialect_corpus[0]
    hits = search(db, question, corpora=["dialects"], k=3)
    assert any(h.section == section and words in h.text for h in hits), [(h.section, h.text[:80]) for h in hits]


def test_an_answer_quotes_the_text_not_the_markup_and_cites_the_section(dialect_corpus) -> None:
    db: Database = dialect_corpus[0]
    persona = get_persona("support").model_copy(update={"corpora": ["dialects"]})
    events = [e.model_dump() for e in iterate_blocking(Turn(
        TurnRequest(persona="support", text="How long do refunds to a card take to show up?"), persona, db,
        COMPOSER, None, None).run())]
    answer = "".join(e["delta"] for e in events if e["type"] == "token")
    assert "10 business days" in answer and not [m for m in MARKUP if m in answer], answer
    assert any(e["type"] == "citation" and e["section"] == "Asking for a refund" for e in events)


CASES = [  # (what an operator's help center holds, what the cleaned text must show, what it must not)
    ("Use `{{< hint >}}` or `{% hint %}` in inline code; `&nbsp;` stays.\n\nNext line.",
     ["`{{< hint >}}`", "`{% hint %}`", "`&nbsp;`", "\n\nNext line."], ["**Note:**"]),
    ("````md\n```\n:::note\ninner\n:::\n```\n````\n", [":::note\ninner\n:::"], ["**Note:**"]),
    ("{% raw %}Liquid `{{ page.title }}` and {% if x %} stay literal.{% endraw %}",
     ["`{{ page.title }}` and {% if x %} stay literal."], []),
    ("Before.\n{% comment %}\nInternal: the 2019 pricing.\n{% endcomment %}\nAfter.", ["Before.", "After."],
     ["2019 pricing"]),
    ('{% include note.html title="Studio deposits" content="A $50 deposit holds a session." %}',
     ["**Studio deposits:** A $50 deposit holds a session."], ["{%"]),
    ('Welcome to {{ site.title }}. Email {{ site.email | default: "help@looper.example" }}.',
     ["Welcome to. Email help@looper.example."], ["{{"]),
    (':::note{title="Webhook retries"}\nRetried eight times.\n:::', ['**Note:** **Webhook retries** Retried eight'],
     [":::"]),
    ("::::info[Due dates]\n:::danger[Late invoices]\nLate fees apply.\n:::\nNet-30 is the default.\n::::",
     ["**Note:** **Due dates**", "**Warning:** **Late invoices** Late fees apply."], [":::"]),
    ('> :::note\n> Quoted admonition.\n> :::\n\n> {% hint style="warning" %}\n> Quoted hint.\n> {% endhint %}',
     ["> **Note:** Quoted admonition.", "> **Warning:** Quoted hint."], [":::", "{%"]),
    ('!!! note inline end "Sidebar"\n    Side text.', ["**Note:** **Sidebar** Side text."], ["!!!"]),
    ("Reply within four hours.[^1]\n\n[^1]: Business hours only.\n\n*[KYC]: Know Your Customer",
     ["Reply within four hours.", "Business hours only."], ["[^1]", "*[KYC]"]),
    ('![Screenshot](shot.png){ width="300" loading=lazy }\n\nText.', ["Text."], ["width", "{"]),
    ('See [shipping]({{< ref "shipping/rates.md" >}}) and [orders]({% link _docs/cancel.md %}).',
     ["See shipping and orders."], ["]()"]),
    ('## Rates\n\n{% hint style="info" %}\n#### Minimum rate\nAt least $35 an hour.\n{% endhint %}',
     ["#### Minimum rate\n**Note:** At least $35 an hour."], ["**Note:** ####"]),
    ('=== "Linux"\n\n\t```bash\n\tchmod +x run.sh\n\t```\n\n\tSecond paragraph.\n',
     ["```bash\nchmod +x run.sh\n```", "\nSecond paragraph."], ["\t"]),
    ("{% highlight ruby %}\nputs 1\n{% endhighlight %}", ["```ruby\nputs 1\n```"], ["highlight"]),
    ('## Shipping\n\n{% tabs %}\n{% tab title="Small parcel" %}\nUnder 2 kg.\n{% endtab %}\n{% endtabs %}\n\n'
     "Insurance is extra.", ["### Small parcel\n\nUnder 2 kg.", "## Shipping\n\nInsurance is extra."], []),
    ('{{< tab "Small parcel" >}}\nUnder 2 kg.\n{{< /tab >}}', ["Small parcel"], []),
    ('{{< details title="Breakage claims" >}}\nClaim within 7 days.\n{{< /details >}}',
     ["**Breakage claims:** Claim within 7 days."], []),
    ('{{% notice tip "Return label" %}}\nPrint it.\n{{% /notice %}}', ["**Tip:** **Return label** Print it."], []),
]


@pytest.mark.parametrize(("text", "shows", "hides"), CASES)
def test_a_construct_keeps_its_text_and_loses_its_markup(text: str, shows: list[str], hides: list[str]) -> None:
    clean = normalise(text, "help/page.md").text
    for wanted in shows:
        assert wanted in clean, clean
    for unwanted in hides:
        assert unwanted not in clean, clean


def test_crlf_front_matter_and_a_hugo_tab_name_the_dialect_right() -> None:
    clean = normalise("---\r\ntitle: Only CRLF\r\ndescription: Read me.\r\n---\r\n\r\nBody.\r\n", "help/crlf.md")
    assert (clean.title, clean.description, clean.text) == ("Only CRLF", "Read me.", "Body.\n")
    assert normalise('{{% tab title="Card" %}}\nPaid by card.\n{{% /tab %}}', "help/t.md").dialect == "hugo"


def test_a_page_with_no_text_of_its_own_is_skipped_in_a_folder_and_named(db, tmp_path) -> None:
    folder = tmp_path / "docs"
    (folder / "guides").mkdir(parents=True)
    (folder / "guides" / "index.mdx").write_text("---\ntitle: Guides\n---\n\nimport DocCardList from '@theme/D';\n\n"
                                                 "<DocCardList />\n")
    (folder / "guides" / "payouts.md").write_text("# Payouts\n\nPayouts arrive on Fridays.\n")
    (folder / "SUMMARY.md").write_text("* [Payouts](guides/payouts.md)\n")
    (folder / "node_modules").mkdir()
    (folder / "node_modules" / "x.md").write_text("# vendored\n\ntext\n")
    add_corpus(db, "dialects_empty", "tests", public=False)
    try:
        report = ingest_paths(db, [folder], "dialects_empty", progress=False)
    finally:
        with db.admin() as conn:
            conn.execute("DELETE FROM documents WHERE corpus = 'dialects_empty'")
            conn.execute("DELETE FROM corpora WHERE name = 'dialects_empty'")
    assert report.files == 1
    reasons = {Path(name.rstrip("/")).name: why for name, why in report.skipped}
    assert "no text of its own" in reasons["index.mdx"] and "navigation" in reasons["SUMMARY.md"]
    assert "build" in reasons["node_modules"]
