"""Knowledge management without a shell (issue 27): uploads (PDF among them) over HTTP, a website imported
from its sitemap and kept in sync (only what changed is fetched and embedded, what left is pruned, hand
uploads untouched), the impact report, safe fetching, jobs that outlive their worker, and the support bot
answering from the new text.

The website is a real one: `http.server` serving a folder in this process, allowed with
MENTOR_IMPORT_ALLOW=127.0.0.1 on the test's server (and refused without it).
"""

from __future__ import annotations

import http.server
import io
import threading
import time
from pathlib import Path

import httpx
import pytest

from core.errors import FetchRefused
from server.auth import issue_token
from tests.test_server import message, open_ws, until

CORPUS = "help_center"
NAV = "<header><nav><a href='/'>Home</a> Lumenpay navigation menu</nav></header>"


def page(title: str, sections: dict[str, str]) -> str:
    body = "".join(f"<h2>{h}</h2><p>{t}</p>" for h, t in sections.items())
    return (f"<html><head><title>{title}</title></head><body>{NAV}<main><h1>{title}</h1>{body}</main>"
            "<footer>Copyright Lumenpay</footer></body></html>")


PAYOUTS = {
    "Lumen wallet payouts": "Payouts to a Lumen wallet arrive within 9 business days after the client approves.",
    "Payout fees": "A Lumen wallet payout costs a flat fee of 0.40 euro, whatever the amount.",
    "Payout limits": "One Lumen wallet payout may carry at most 4,000 euro; larger sums are split.",
}
REFUNDS = {"Gift card refunds": "Refunds to a Lumen gift card are credited at once, with no fee."}
DISPUTES = {"Opening a Lumen dispute": "Open a Lumen dispute from the order page within 30 days."}


class Site:
    """A static website in a folder, served by http.server, that remembers what it was asked."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log: list[tuple[str, int]] = []
        site = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_request(self, code="-", size="-"):
                site.log.append((self.path, int(code) if str(code).isdigit() else 0))

            def do_GET(self):
                if self.path == "/trickle":  # headers a byte at a time: a fetch must still end in its time
                    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 40:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.1)
                    return
                while self.path.startswith("/slow/"):  # a page that takes its time (0.5 s a /slow), as far ones do
                    time.sleep(0.5)
                    self.path = self.path.removeprefix("/slow")
                if self.path.startswith("/redirect-to/"):
                    self.send_response(302)
                    self.send_header("Location", "http://" + self.path.removeprefix("/redirect-to/"))
                    self.end_headers()
                    return
                super().do_GET()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def write(self, name: str, text: str | bytes, *, mtime: float | None = None) -> None:
        path = self.root / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        if mtime is not None:
            import os

            os.utime(path, (mtime, mtime))

    def sitemap(self, pages: dict[str, str]) -> None:
        urls = "".join(f"<url><loc>{self.url}/{name}</loc><lastmod>{lastmod}</lastmod></url>"
                       for name, lastmod in pages.items())
        self.write("sitemap.xml", '<?xml version="1.0" encoding="UTF-8"?>'
                   f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>')

    def asked(self) -> list[str]:
        asked, self.log = [p for p, _ in self.log], []
        return asked

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def site(tmp_path: Path):
    served = Site(tmp_path)
    yield served
    served.stop()


@pytest.fixture(scope="module")
def server(knowledge):
    from agents.composer import COMPOSER
    from harness.live import serve

    live = serve(knowledge, COMPOSER, import_allow="127.0.0.1", user_messages_per_minute=1000)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def strict_server(knowledge):
    """MENTOR_IMPORT_ALLOW unset, as by default: nothing private may be fetched."""
    from harness.live import serve

    live = serve(knowledge, import_allow="")
    yield live
    live.stop()


@pytest.fixture
def cleanup(knowledge):
    """Whatever a test imported or uploaded into the help center goes afterwards (the other tests read it)."""
    yield
    with knowledge.admin() as conn:
        conn.execute("DELETE FROM knowledge_sources")
        conn.execute("DELETE FROM documents WHERE source LIKE 'uploads/%'")


def admin(server, demo_ids) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(server.services.settings, demo_ids['olivia'])}"}


def call(server, headers, method: str, path: str, **kwargs) -> httpx.Response:
    return httpx.request(method, server.http + path, headers=headers, timeout=120, **kwargs)


def finished(server, headers, job_id: int, timeout: float = 180) -> dict:
    """The job once it is no longer running (the sync runs on the server's own thread)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = call(server, headers, "GET", f"/api/knowledge/jobs/{job_id}").json()
        if job["status"] != "running":
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still running after {timeout} s: {job}")


def ask_support(server, user_id: int, text: str) -> tuple[str, list[dict], int]:
    ws, _ = open_ws(server, issue_token(server.services.settings, user_id))
    message(ws, text, persona="support")
    events = until(ws, "done", timeout=90)
    ws.close()
    answer = "".join(e["delta"] for e in events if e["type"] == "token")
    done = next(e for e in events if e["type"] == "done")
    return answer, [e for e in events if e["type"] == "citation"], done["message_id"]


class CountingEmbedder:
    """The real embedder, counting the texts ingestion gives it (questions go another way)."""

    def __init__(self, real) -> None:
        self.real, self.texts = real, 0

    def embed(self, texts, **kwargs):
        self.texts += len(texts)
        return self.real.embed(texts, **kwargs)


def test_a_site_is_imported_resynced_pruned_and_the_bot_quotes_the_new_text(server, site, demo_ids, knowledge,
                                                                            cleanup, monkeypatch) -> None:
    import retrieval.ingest
    from retrieval.embedder import get_embedder

    counting = CountingEmbedder(get_embedder())
    monkeypatch.setattr(retrieval.ingest, "get_embedder", lambda: counting)
    headers = admin(server, demo_ids)
    site.write("payouts.html", page("Lumen wallet payouts", PAYOUTS))
    site.write("refunds.html", page("Lumen gift card refunds", REFUNDS))
    site.write("disputes.html", page("Lumen disputes", DISPUTES))
    site.sitemap({"payouts.html": "2026-11-01", "refunds.html": "2026-11-01", "disputes.html": "2026-11-01"})
    # a document uploaded by hand into the same corpus: no sync may touch it
    hand = call(server, headers, "POST", "/api/knowledge", data={"corpus": CORPUS},
                files=[("files", ("lumen-contacts.md", b"# Lumen contacts\n\nCall Lumen support on weekdays.\n"))])
    assert hand.status_code == 201, hand.text
    counting.texts = 0

    created = call(server, headers, "POST", "/api/knowledge/sources",
                   json={"corpus": CORPUS, "sitemap_url": f"{site.url}/sitemap.xml"})
    assert created.status_code == 202, created.text
    source_id = created.json()["source_id"]
    first = finished(server, headers, created.json()["job_id"])
    assert first["status"] == "done", first
    assert (first["added"], first["updated"], first["unchanged"], first["removed"]) == (3, 0, 0, 0)
    assert first["progress"] == {"done": 3, "total": 3} and first["errors"] == []
    assert counting.texts == first["embedded"] == 5  # three sections of payouts, one each of the others
    docs = {d["source"]: d for d in call(server, headers, "GET", f"/api/knowledge?corpus={CORPUS}").json()}
    payouts_url = f"{site.url}/payouts.html"
    assert docs[payouts_url]["origin"] == str(source_id) and docs[payouts_url]["chunks"] == 3
    assert docs["uploads/lumen-contacts.md"]["origin"] == "upload"
    shown = call(server, headers, "GET", f"/api/knowledge/{docs[payouts_url]['id']}").json()
    assert shown["title"] == "Lumen wallet payouts"
    indexed = " ".join(c["text"] for c in shown["chunks_detail"])
    assert "9 business days" in indexed and "navigation menu" not in indexed and "Copyright" not in indexed
    old_ids = {c["section"]: c["id"] for c in shown["chunks_detail"]}

    # a customer asks; the bot answers from the page as it is now, and cites it
    answer, citations, old_answer = ask_support(server, demo_ids["ana"], "How long do Lumen wallet payouts take?")
    assert "9 business days" in answer and any(c["source"] == payouts_url for c in citations), (answer, citations)

    # the site changes: one section of payouts is rewritten, disputes leaves the sitemap, refunds is as it was
    site.write("payouts.html", page("Lumen wallet payouts", {
        **PAYOUTS, "Lumen wallet payouts": "Payouts to a Lumen wallet now arrive within 2 business days."}))
    (site.root / "disputes.html").unlink()
    site.sitemap({"payouts.html": "2026-12-01", "refunds.html": "2026-11-01"})
    site.asked()
    counting.texts = 0
    sync = call(server, headers, "POST", f"/api/knowledge/sources/{source_id}/sync")
    assert sync.status_code == 202, sync.text
    second = finished(server, headers, sync.json()["job_id"])
    assert second["status"] == "done", second
    assert (second["added"], second["updated"], second["unchanged"], second["removed"]) == (0, 1, 1, 1)
    assert counting.texts == second["embedded"] == 1  # only the rewritten section
    # the sitemap's unchanged lastmod spared refunds a request; disputes was not asked for either
    assert sorted(site.asked()) == ["/payouts.html", "/sitemap.xml"]
    shown = call(server, headers, "GET", f"/api/knowledge/{docs[payouts_url]['id']}").json()
    new_ids = {c["section"]: c["id"] for c in shown["chunks_detail"]}
    assert new_ids["Payout fees"] == old_ids["Payout fees"] and new_ids["Payout limits"] == old_ids["Payout limits"]
    assert new_ids["Lumen wallet payouts"] != old_ids["Lumen wallet payouts"]
    listed = {d["source"] for d in call(server, headers, "GET", f"/api/knowledge?corpus={CORPUS}").json()}
    assert f"{site.url}/disputes.html" not in listed and "uploads/lumen-contacts.md" in listed

    # the impact report: the answer that cited the rewritten text, with its conversation and date
    impact = [i for i in second["impact"] if i["message_id"] == old_answer]
    assert impact and impact[0]["change"] == "changed" and "9 business days" in impact[0]["snippet"]
    assert impact[0]["conversation_id"] and impact[0]["cited_at"]

    answer, citations, _ = ask_support(server, demo_ids["ana"], "How long do Lumen wallet payouts take?")
    assert "2 business days" in answer and "9 business days" not in answer, answer
    assert any(c["source"] == payouts_url for c in citations)

    # nothing changed: conditional requests, nothing embedded
    site.sitemap({"payouts.html": "2026-12-01", "refunds.html": "2026-11-01"})
    third = finished(server, headers, call(server, headers, "POST", f"/api/knowledge/sources/{source_id}/sync")
                     .json()["job_id"])
    counts = ("added", "updated", "unchanged", "removed", "embedded")
    assert [third[k] for k in counts] == [0, 0, 2, 0, 0]


def test_pages_without_lastmod_are_asked_conditionally_and_404s_are_pruned(server, site, demo_ids, cleanup) -> None:
    headers = admin(server, demo_ids)
    site.write("a.html", page("Lumen page A", {"About A": "Lumen page A explains wallet top-ups."}), mtime=1.7e9)
    site.write("b.txt", "Lumen page B lists the supported banks.", mtime=1.7e9)
    created = call(server, headers, "POST", "/api/knowledge/sources",
                   json={"corpus": CORPUS, "urls": [f"{site.url}/a.html", f"{site.url}/b.txt"]}).json()
    assert finished(server, headers, created["job_id"])["added"] == 2
    (site.root / "b.txt").unlink()
    site.asked()
    job = finished(server, headers, call(server, headers, "POST",
                                         f"/api/knowledge/sources/{created['source_id']}/sync").json()["job_id"])
    assert (job["unchanged"], job["removed"], job["embedded"]) == (1, 1, 0), (job, site.log)
    assert sorted(site.log) == [("/a.html", 304), ("/b.txt", 404)]  # asked if modified since; gone


def test_a_sync_that_cannot_read_its_sitemap_fails_and_removes_nothing(server, site, demo_ids, cleanup) -> None:
    headers = admin(server, demo_ids)
    site.write("a.html", page("Lumen page A", {"About A": "Lumen page A explains wallet top-ups."}))
    site.sitemap({"a.html": "2026-11-01"})
    created = call(server, headers, "POST", "/api/knowledge/sources",
                   json={"corpus": CORPUS, "sitemap_url": f"{site.url}/sitemap.xml"}).json()
    assert finished(server, headers, created["job_id"])["added"] == 1
    site.write("sitemap.xml", "<html>this is not a sitemap</html>")
    job = finished(server, headers, call(server, headers, "POST",
                                         f"/api/knowledge/sources/{created['source_id']}/sync").json()["job_id"])
    assert job["status"] == "failed" and "not a sitemap" in job["reason"]
    source = call(server, headers, "GET", f"/api/knowledge/sources/{created['source_id']}").json()
    assert source["documents"] == 1 and source["last_job"]["status"] == "failed"


# --- safe fetching -------------------------------------------------------------------------------------------

def test_loopback_private_and_metadata_addresses_are_refused(strict_server, site, demo_ids) -> None:
    from core.settings import get_settings
    from retrieval.fetch import Fetcher, Policy

    policy = Policy("")
    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.9", "169.254.169.254", "100.100.100.200", "::1",
                    "fd00:ec2::254", "::ffff:127.0.0.1", "0.0.0.0", "224.0.0.1"):
        with pytest.raises(FetchRefused):
            policy.check_address("example", address)
    policy.check_address("example", "93.184.215.14")  # a public address passes
    for url in ("file:///etc/passwd", "gopher://example.com/", "http://user:secret@example.com/"):
        with pytest.raises(FetchRefused):
            policy.check_url(url)

    site.write("a.html", page("Lumen page A", {"About A": "text"}))
    with Fetcher(get_settings().model_copy(update={"import_allow": ""})) as fetcher, pytest.raises(FetchRefused):
        fetcher.get(f"{site.url}/a.html")  # a loopback URL, not listed
    with Fetcher(get_settings().model_copy(update={"import_allow": ""})) as fetcher, pytest.raises(FetchRefused):
        fetcher.get(f"http://localhost:{site.url.rsplit(':', 1)[1]}/a.html")  # a name resolving to loopback
    # allowed: 127.0.0.1 only; a redirect from it to another loopback address is refused after the redirect
    allowed = get_settings().model_copy(update={"import_allow": "127.0.0.1"})
    with Fetcher(allowed) as fetcher:
        assert fetcher.get(f"{site.url}/a.html").status == 200
        port = site.url.rsplit(":", 1)[1]
        with pytest.raises(FetchRefused, match="127.0.0.2"):
            fetcher.get(f"{site.url}/redirect-to/127.0.0.2:{port}/a.html")
        with pytest.raises(FetchRefused, match="169.254.169.254"):
            fetcher.get(f"{site.url}/redirect-to/169.254.169.254/latest/meta-data/")
    assert ("/redirect-to/127.0.0.2:" + port + "/a.html", 302) in site.log

    # over the API, the source is refused at once, and nothing is created
    headers = admin(strict_server, demo_ids)
    refused = call(strict_server, headers, "POST", "/api/knowledge/sources",
                   json={"corpus": CORPUS, "sitemap_url": f"{site.url}/sitemap.xml"})
    assert refused.status_code == 400 and refused.json()["detail"]["code"] == "fetch_refused", refused.text
    assert "MENTOR_IMPORT_ALLOW" in refused.json()["detail"]["message"]
    assert call(strict_server, headers, "GET", "/api/knowledge/sources").json() == []


def test_limits_on_size_type_and_redirects(site) -> None:
    from core.settings import get_settings
    from retrieval.fetch import Fetcher, FetchFailed

    site.write("big.html", "<p>" + "x" * 5000 + "</p>")
    site.write("image.png", b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    settings = get_settings().model_copy(update={"import_allow": "127.0.0.1", "import_max_bytes": 2048,
                                                 "import_max_redirects": 1})
    port = site.url.rsplit(":", 1)[1]
    with Fetcher(settings) as fetcher:
        with pytest.raises(FetchRefused, match="limit"):
            fetcher.get(f"{site.url}/big.html")
        with pytest.raises(FetchRefused, match="image/png"):
            fetcher.get(f"{site.url}/image.png")
        with pytest.raises(FetchRefused, match="redirects"):
            fetcher.get(f"{site.url}/redirect-to/127.0.0.1:{port}/redirect-to/127.0.0.1:{port}/big.html")
        with pytest.raises(FetchFailed):
            fetcher.get("http://127.0.0.1:9/")  # nothing listens on the discard port


def test_a_sitemap_with_entities_is_refused(site) -> None:
    from core.settings import get_settings
    from retrieval.fetch import Fetcher
    from retrieval.sitemap import read_sitemap

    site.write("bomb.xml", '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
                           '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><urlset><url><loc>&b;</loc></url></urlset>')
    with Fetcher(get_settings().model_copy(update={"import_allow": "127.0.0.1"})) as fetcher, \
            pytest.raises(FetchRefused, match="entities"):
        read_sitemap(fetcher, f"{site.url}/bomb.xml", 100)


# --- uploads and PDFs --------------------------------------------------------------------------------------

def make_pdf(*, encrypt: str | None = None, empty_page: bool = True) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    story = [Paragraph("Lumen fee handbook", styles["Title"]),
             Paragraph("Lumen card refunds", styles["Heading2"]),
             Paragraph("A refund to a Lumen card reaches the card within eleven business days.", styles["BodyText"]),
             Paragraph("Lumen fees by plan", styles["Heading2"]),
             Table([["Plan", "Lumen fee", "Payout days"], ["Starter", "12%", "14"], ["Studio", "6%", "3"]],
                   style=TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.black)]))]
    if empty_page:
        story += [PageBreak(), Spacer(1, 1), PageBreak()]
    story += [Paragraph("Lumen escalations", styles["Heading2"]),
              Paragraph("Ask for a Lumen specialist when a refund is late.", styles["BodyText"])]
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4, encrypt=encrypt).build(story)
    return out.getvalue()


def blank_pdf() -> bytes:
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    c = canvas.Canvas(out)
    c.showPage()
    c.save()
    return out.getvalue()


def test_pdf_upload_keeps_text_headings_and_table_rows(server, demo_ids, cleanup) -> None:
    headers = admin(server, demo_ids)
    sent = call(server, headers, "POST", "/api/knowledge", data={"corpus": CORPUS},
                files=[("files", ("lumen-fees.pdf", make_pdf(), "application/pdf"))])
    assert sent.status_code == 201, sent.text
    [doc] = sent.json()["documents"]
    assert (doc["title"], doc["source"], doc["status"]) == ("Lumen fee handbook", "uploads/lumen-fees.pdf", "added")
    assert doc["chunks"] == 3
    chunks = call(server, headers, "GET", f"/api/knowledge/{doc['id']}").json()["chunks_detail"]
    assert [c["section"] for c in chunks] == ["Lumen card refunds", "Lumen fees by plan", "Lumen escalations"]
    table = chunks[1]["text"]
    assert "| Plan | Lumen fee | Payout days |" in table and "| Studio | 6% | 3 |" in table
    # the same file again: unchanged, nothing embedded
    again = call(server, headers, "POST", "/api/knowledge", data={"corpus": CORPUS},
                 files=[("files", ("lumen-fees.pdf", make_pdf(), "application/pdf"))]).json()
    assert again["documents"][0]["status"] in ("unchanged", "updated") and again["embedded"] == 0


@pytest.mark.parametrize(("name", "content", "status", "code"), [
    ("corrupt.pdf", make_pdf()[:600], 422, "unreadable_document"),
    ("locked.pdf", make_pdf(encrypt="secret"), 422, "encrypted_document"),
    ("scan.pdf", blank_pdf(), 422, "empty_document"),
    ("empty.md", b"", 422, "empty_document"),
    ("notes.docx", b"PK\x03\x04 not read", 415, "unsupported_type"),
    ("binary.txt", b"\x00\x01\x02", 422, "unreadable_document"),
])
def test_a_bad_file_is_named_and_nothing_of_its_upload_is_written(server, demo_ids, knowledge, cleanup, name,
                                                                  content, status, code) -> None:
    headers = admin(server, demo_ids)
    sent = call(server, headers, "POST", "/api/knowledge", data={"corpus": CORPUS},
                files=[("files", ("good-lumen-note.md", b"# Lumen note\n\nA good file.\n")),
                       ("files", (name, content))])
    assert sent.status_code == status, sent.text
    detail = sent.json()["detail"]
    assert detail["code"] == code and name in detail["message"], detail
    with knowledge.admin() as conn:
        assert conn.execute("SELECT count(*) AS n FROM documents WHERE source LIKE 'uploads/%'").fetchone()["n"] == 0


def test_upload_limits_auth_and_delete(server, demo_ids, knowledge, cleanup) -> None:
    headers = admin(server, demo_ids)
    limit = server.services.settings.upload_max_bytes
    big = call(server, headers, "POST", "/api/knowledge", data={"corpus": CORPUS},
               files=[("files", ("huge.txt", b"a" * (limit + 10)))])
    assert big.status_code == 413 and "huge.txt" in big.json()["detail"]["message"], big.text
    unknown = call(server, headers, "POST", "/api/knowledge", data={"corpus": "no_such_corpus"},
                   files=[("files", ("a.md", b"# A\n\ntext\n"))])
    assert unknown.status_code == 404 and unknown.json()["detail"]["code"] == "unknown_corpus"
    agent = {"Authorization": f"Bearer {issue_token(server.services.settings, demo_ids['ben'])}"}
    for who, expected in ((agent, 403), ({}, 401)):
        assert call(server, who, "GET", "/api/knowledge").status_code == expected
        assert call(server, who, "POST", "/api/knowledge", data={"corpus": CORPUS},
                    files=[("files", ("a.md", b"# A\n\ntext\n"))]).status_code == expected

    sent = call(server, headers, "POST", "/api/knowledge", data={"corpus": CORPUS},
                files=[("files", ("../../etc/lumen-passwd.md", b"# Lumen path\n\nNot a path trick.\n"))]).json()
    doc = sent["documents"][0]
    assert doc["source"] == "uploads/lumen-passwd.md"
    gone = call(server, headers, "DELETE", f"/api/knowledge/{doc['id']}")
    assert gone.status_code == 200 and gone.json()["deleted"] == doc["id"]
    assert call(server, headers, "GET", f"/api/knowledge/{doc['id']}").status_code == 404
    assert call(server, headers, "DELETE", f"/api/knowledge/{doc['id']}").status_code == 404
    with knowledge.admin() as conn:
        left = conn.execute("SELECT count(*) AS n FROM chunks WHERE document_id = %s", (doc["id"],)).fetchone()
        assert left["n"] == 0


# --- jobs -----------------------------------------------------------------------------------------------

def test_one_sync_at_a_time_a_dead_workers_job_fails_and_can_be_rerun(server, site, demo_ids, knowledge,
                                                                     cleanup) -> None:
    from store import knowledge as store

    headers = admin(server, demo_ids)
    site.write("a.html", page("Lumen page A", {"About A": "Lumen page A explains wallet top-ups."}))
    with knowledge.admin() as conn:
        source = store.create_source(conn, CORPUS, None, [f"{site.url}/a.html"], None)
        job = store.start_job(conn, source["id"], "manual")  # as if a worker had started it, then died
    busy = call(server, headers, "POST", f"/api/knowledge/sources/{source['id']}/sync")
    assert busy.status_code == 409 and str(job["id"]) in busy.json()["detail"]["message"]
    with knowledge.admin() as conn:
        conn.execute("UPDATE knowledge_jobs SET heartbeat_at = now() - interval '10 minutes' WHERE id = %s",
                     (job["id"],))
    failed = call(server, headers, "GET", f"/api/knowledge/jobs/{job['id']}").json()
    assert failed["status"] == "failed" and failed["reason"].startswith("interrupted")
    rerun = call(server, headers, "POST", f"/api/knowledge/sources/{source['id']}/sync")
    assert rerun.status_code == 202 and finished(server, headers, rerun.json()["job_id"])["added"] == 1


def test_a_stopping_worker_ends_its_sync_as_interrupted_and_it_can_be_rerun(server, site, knowledge,
                                                                            cleanup) -> None:
    import asyncio

    from server.knowledge_jobs import KnowledgeJobs
    from store import knowledge as store

    for i in range(8):
        site.write(f"p{i}.html", page(f"Lumen page {i}", {f"About {i}": f"Lumen page {i} explains wallet top-ups."}))
    with knowledge.admin() as conn:
        source = store.create_source(conn, CORPUS, None, [f"{site.url}/slow/p{i}.html" for i in range(8)], None)
    worker = KnowledgeJobs(knowledge, server.services.settings)
    job_id = worker.start_and_run(source["id"])
    deadline = time.time() + 60
    while time.time() < deadline:  # under way: some pages done, not all
        with knowledge.admin() as conn:
            job = store.get_job(conn, job_id)
        if job["done"] >= 1:
            break
        time.sleep(0.05)
    asyncio.run(worker.stop())  # as the worker's shutdown does: the sync ends after the page it is on
    with knowledge.admin() as conn:
        job = store.get_job(conn, job_id)
    assert job["status"] == "failed" and job["reason"].startswith("interrupted"), job
    assert job["done"] < 8
    rerun = KnowledgeJobs(knowledge, server.services.settings)
    second = rerun.start_and_run(source["id"])
    deadline = time.time() + 120
    while time.time() < deadline:
        with knowledge.admin() as conn:
            job = store.get_job(conn, second)
        if job["status"] != "running":
            break
        time.sleep(0.2)
    assert job["status"] == "done" and job["added"] + job["unchanged"] + job["updated"] == 8, job
    asyncio.run(rerun.stop())


def test_scheduled_syncs_are_claimed_by_exactly_one_worker(server, site, knowledge, cleanup) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from server.knowledge_jobs import KnowledgeJobs
    from store import knowledge as store

    site.write("a.html", page("Lumen page A", {"About A": "Lumen page A explains wallet top-ups."}))
    with knowledge.admin() as conn:
        source = store.create_source(conn, CORPUS, None, [f"{site.url}/a.html"], 24)
        conn.execute("UPDATE knowledge_sources SET next_sync_at = now() - interval '1 minute' WHERE id = %s",
                     (source["id"],))
    workers = [KnowledgeJobs(knowledge, server.services.settings) for _ in range(4)]
    barrier = threading.Barrier(4)

    def tick(worker):
        barrier.wait()
        return worker.tick()

    with ThreadPoolExecutor(4) as pool:
        started = [job for jobs in pool.map(tick, workers) for job in jobs]
    assert len(started) == 1
    with knowledge.admin() as conn:
        row = conn.execute("SELECT next_sync_at > now() + interval '23 hours' AS later FROM knowledge_sources "
                           "WHERE id = %s", (source["id"],)).fetchone()
        assert row["later"]
    deadline = time.time() + 120
    while time.time() < deadline:
        with knowledge.admin() as conn:
            job = store.get_job(conn, started[0])
        if job["status"] != "running":
            break
        time.sleep(0.2)
    assert job["status"] == "done" and job["trigger"] == "scheduled" and job["added"] == 1
    assert all(w.tick() == [] for w in workers)  # nothing is due any more


def test_the_same_from_the_command_line(site, knowledge, cleanup, tmp_path) -> None:
    """`mentor knowledge upload|list|show|rm|import|sync|sources|job`, run as a user would (the real executable)."""
    import json
    import os
    import subprocess
    import sys

    def mentor(*args: str, allow: str = "127.0.0.1") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli", "knowledge", *args], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "MENTOR_IMPORT_ALLOW": allow})

    pdf = tmp_path / "lumen-fees.pdf"
    pdf.write_bytes(make_pdf())
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(make_pdf(encrypt="secret"))
    refused = mentor("upload", str(pdf), str(locked), "--corpus", CORPUS)
    assert refused.returncode != 0 and "locked.pdf" in refused.stderr and "encrypted" in refused.stderr
    sent = mentor("upload", str(pdf), "--corpus", CORPUS, "--json")
    assert sent.returncode == 0, sent.stderr
    [doc] = json.loads(sent.stdout)["documents"]
    assert doc["chunks"] == 3 and doc["source"] == "uploads/lumen-fees.pdf"
    listed = json.loads(mentor("list", "--corpus", CORPUS, "--json").stdout)
    assert any(d["id"] == doc["id"] and d["origin"] == "upload" for d in listed)
    shown = mentor("show", str(doc["id"]))
    assert "| Studio | 6% | 3 |" in shown.stdout

    site.write("a.html", page("Lumen page A", {"About A": "Lumen page A explains wallet top-ups."}))
    site.sitemap({"a.html": "2026-11-01"})
    blocked = mentor("import", "--sitemap", f"{site.url}/sitemap.xml", "--corpus", CORPUS, allow="")
    assert blocked.returncode != 0 and "MENTOR_IMPORT_ALLOW" in blocked.stderr
    assert "no sources" in mentor("sources").stdout  # refused before anything was created
    imported = mentor("import", "--sitemap", f"{site.url}/sitemap.xml", "--corpus", CORPUS)
    assert imported.returncode == 0, imported.stderr
    assert "1 added" in imported.stdout
    source_id = json.loads(mentor("sources", "--json").stdout)[0]["id"]
    again = json.loads(mentor("sync", str(source_id), "--json").stdout)
    assert (again["status"], again["unchanged"], again["embedded"]) == ("done", 1, 0)
    assert f"job {again['id']}" in mentor("job", str(again["id"])).stdout
    removed = mentor("rm", str(doc["id"]))
    assert removed.returncode == 0 and "removed document" in removed.stdout
    assert mentor("show", str(doc["id"])).returncode != 0


def test_imported_pages_are_read_from_their_article_on_held_out_help_centers() -> None:
    """evals/heldout/web_pages: twelve help-center pages in their platforms' real markup. Every article
    sentence is indexed; of the furniture (menus, ratings, related articles, dates, credits) at most 5% on
    the pages the heuristic was tuned on and reported on, and at most 20% on the four written afterwards
    (10.3% when written; trafilatura 2.3 leaks 13.8% there, the whole page 41.4%)."""
    from evals.web_extraction import _ours, score

    scores = score(lambda html: _ours(html, True))
    assert all(split["kept"] == 1.0 for split in scores.values()), scores
    assert scores["tune"]["leaked"] <= 0.05 and scores["report"]["leaked"] <= 0.05, scores
    assert scores["fresh"]["leaked"] <= 0.2, scores



def test_what_the_first_probe_found(server, strict_server, site, demo_ids, knowledge, cleanup) -> None:
    """A newcomer's and an attacker's probe of the first version: a gzip bomb for a sitemap, headers trickled
    past the page's whole time, a malformed <loc> failing the whole sync, 500s for bad URLs, IPv6 forms that
    carry a loopback address, bodies read before the caller was known, pages in Latin-1, long file names."""
    import gzip
    import socket

    from core.settings import get_settings
    from retrieval.fetch import Fetcher, FetchFailed, Policy
    from retrieval.sitemap import read_sitemap

    allowed = get_settings().model_copy(update={"import_allow": "127.0.0.1", "import_timeout_s": 2.0})
    site.write("bomb.xml.gz", gzip.compress(b"<urlset><!--" + b" " * 60_000_000 + b"--></urlset>", 9))
    with Fetcher(allowed) as fetcher:
        with pytest.raises(FetchRefused, match="unpacks to more than"):
            read_sitemap(fetcher, f"{site.url}/bomb.xml.gz", 100)
        started = time.monotonic()
        with pytest.raises(FetchFailed, match="in all"):
            fetcher.get(f"{site.url}/trickle")
        assert time.monotonic() - started < 3.5  # cut at the page's 2 s, not at each byte's read timeout
    for address in ("64:ff9b::7f00:1", "2002:7f00:1::", "2001:0:4136:e378:8000:63bf:80ff:fffe"):
        with pytest.raises(FetchRefused):
            Policy("").check_address("example", address)

    headers = admin(server, demo_ids)
    for url in ("http://exa\u0000mple.com/", "http://example.com:99999/s.xml", "http://[::1/x", "http://a b/"):
        refused = call(server, headers, "POST", "/api/knowledge/sources", json={"corpus": CORPUS, "urls": [url]})
        assert refused.status_code == 400 and refused.json()["detail"]["code"] == "fetch_refused", (url, refused.text)

    # one bad <loc> is that URL's error; the other pages are imported
    site.write("a.html", page("Lumen page A", {"About A": "Lumen page A explains wallet top-ups."}))
    site.write("sitemap.xml", '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
               f'<url><loc>http://[::1/x</loc></url><url><loc>{site.url}/a.html</loc></url></urlset>')
    created = call(server, headers, "POST", "/api/knowledge/sources",
                   json={"corpus": CORPUS, "sitemap_url": f"{site.url}/sitemap.xml"}).json()
    job = finished(server, headers, created["job_id"])
    assert job["status"] == "done" and job["added"] == 1 and len(job["errors"]) == 1, job
    assert "[::1/x" in job["errors"][0]["error"]
    history = call(server, headers, "GET", f"/api/knowledge/sources/{created['source_id']}/jobs").json()
    assert [j["id"] for j in history] == [created["job_id"]]
    gone = call(server, headers, "DELETE", f"/api/knowledge/sources/{created['source_id']}")
    assert gone.status_code == 200 and gone.json()["documents"] == 1 and gone.json()["impact"] == []

    # nobody's body is read before they are known: an upload without a token is 401 at once; a chunked body 411
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.sendall(b"POST /api/knowledge HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                    b"Content-Length: 50000000\r\n\r\n--b\r\n")
        raw.settimeout(30)
        assert raw.recv(100).startswith(b"HTTP/1.1 401")
    chunked = httpx.post(server.http + "/api/knowledge/sources", headers=headers,
                         content=iter([b'{"corpus": "help_center", ', b'"urls": ["https://example.com/"]}']))
    assert chunked.status_code == 411 and chunked.json()["detail"]["code"] == "length_required"

    # a page in Latin-1, and a long file name that keeps its type
    latin = "<html><head><meta charset='iso-8859-1'><title>Lumen caf\xe9</title></head><body><main><h1>Lumen caf\xe9" \
            "</h1><p>La cr\xe8me br\xfbl\xe9e Lumen co\xfbte cinq \xe9cus.</p></main></body></html>"
    sent = call(server, headers, "POST", "/api/knowledge", data={"corpus": CORPUS},
                files=[("files", ("a" * 300 + ".html", latin.encode("latin-1")))])
    assert sent.status_code == 201, sent.text
    doc = sent.json()["documents"][0]
    assert doc["title"] == "Lumen café" and doc["source"].endswith(".html") and len(doc["source"]) <= 208
    text = call(server, headers, "GET", f"/api/knowledge/{doc['id']}").json()["chunks_detail"][0]["text"]
    assert "crème brûlée" in text


def test_a_long_page_keeps_its_job_alive_and_others_wait(server, site, demo_ids, knowledge, cleanup,
                                                       monkeypatch) -> None:
    """The heartbeat beats while a page takes long (here: a server that takes 3 s to answer, with the stale
    limit at 2 s and beats every 0.5 s): no look at the job fails it, and a second sync waits its turn (409)."""
    from store import knowledge as store

    monkeypatch.setattr(store, "JOB_STALE_S", 2)
    monkeypatch.setattr(store, "HEARTBEAT_S", 0.5)
    headers = admin(server, demo_ids)
    site.write("a.html", page("Lumen page A", {"About A": "Lumen page A explains wallet top-ups."}))
    with knowledge.admin() as conn:
        source = store.create_source(conn, CORPUS, None, [f"{site.url}/slow/a.html",
                                     f"{site.url}/slow/slow/slow/slow/slow/slow/a.html"], None)
    job_id = call(server, headers, "POST", f"/api/knowledge/sources/{source['id']}/sync").json()["job_id"]
    deadline = time.time() + 60
    seen_running = 0
    while time.time() < deadline:
        job = call(server, headers, "GET", f"/api/knowledge/jobs/{job_id}").json()  # each look checks staleness
        if job["status"] != "running":
            break
        seen_running += 1
        if seen_running == 5:
            busy = call(server, headers, "POST", f"/api/knowledge/sources/{source['id']}/sync")
            assert busy.status_code == 409, busy.text
        time.sleep(0.3)
    assert job["status"] == "done" and job["added"] == 2, job
    assert seen_running >= 5
