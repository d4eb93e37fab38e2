"""`mentor knowledge list|show|rm|upload|import|sync|sources|job`: the /admin Knowledge panel without a browser,
on the same functions (retrieval/uploads.py, retrieval/sync.py, store/knowledge.py), as the database owner."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import echo_json, handle_errors, knowledge_app, open_db
from core.errors import InvalidArgument, NotFound

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (as the API answers).")]


def _impact(rows: list[dict]) -> None:
    if rows:
        typer.echo(f"{len(rows)} past answer(s) cited text that changed or went:")
    for row in rows:
        typer.echo(f"  {row['cited_at']:%Y-%m-%d} conversation {row['conversation_id']} message {row['message_id']} "
                   f"({row['change']}): {row['source']} — {row['snippet'][:80]!r}")


@knowledge_app.command("list")
@handle_errors
def list_(corpus: Annotated[str | None, typer.Option(help="Only this corpus.")] = None,
          as_json: AsJson = False) -> None:
    """Documents: id, corpus, chunks, origin (upload, or the source id that imported it), title, source."""
    from retrieval.corpora import require_corpora
    from store import knowledge

    if corpus:
        require_corpora(open_db(), [corpus])
    with open_db().admin() as conn:
        rows = knowledge.list_documents(conn, corpus, limit=100_000)
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['id']:>6}  {r['corpus']:<14}{r['chunks']:>5} chunks  {r['origin']:<7} {r['title'][:40]:<40}  "
                   f"{r['source']}")
    if not rows:
        typer.echo("no documents" + (f" in {corpus}" if corpus else ""))


@knowledge_app.command()
@handle_errors
def show(document_id: Annotated[int, typer.Argument(min=1)], as_json: AsJson = False) -> None:
    """A document and its chunks."""
    from store import knowledge

    with open_db().admin() as conn:
        doc = knowledge.get_document(conn, document_id)
    if doc is None:
        raise NotFound(f"no document {document_id}")
    if as_json:
        echo_json(doc)
        return
    typer.echo(f"{doc['title']} ({doc['corpus']}, {doc['source']}, origin {doc['origin']}, sha256 "
               f"{doc['sha256'][:12]}…, {doc['chunks']} chunks, ingested {doc['ingested_at']:%Y-%m-%d %H:%M})")
    for chunk in doc["chunk_list"]:
        typer.echo(f"\n[{chunk['ordinal']}] {chunk['section'] or '(no section)'} — {chunk['token_count']} tokens\n"
                   f"{chunk['text']}")


@knowledge_app.command()
@handle_errors
def rm(document_id: Annotated[int, typer.Argument(min=1)]) -> None:
    """Remove a document and its chunks (past answers keep their citations' snippets; they are listed)."""
    from store import knowledge

    with open_db().admin() as conn:
        doc = knowledge.delete_document(conn, document_id)
    if doc is None:
        raise NotFound(f"no document {document_id}")
    typer.echo(f"removed document {document_id}: {doc['source']} ({doc['chunks']} chunks)")
    _impact(doc["impacts"])


@knowledge_app.command()
@handle_errors
def upload(files: Annotated[list[Path], typer.Argument(help="Markdown, HTML, text or PDF files.")],
           corpus: Annotated[str, typer.Option(help="The corpus to add them to.")] = "help_center",
           as_json: AsJson = False) -> None:
    """Upload files as the /admin panel does: each becomes `uploads/<name>`; all or nothing."""
    from core.settings import get_settings
    from retrieval.uploads import Upload, outcome, upload_documents

    read = []
    for path in files:
        if path.is_dir():
            raise InvalidArgument(f"{path}: a folder; name its files, or use `mentor ingest FOLDER --corpus C`")
        if not path.is_file():
            raise InvalidArgument(f"{path}: no such file")
        read.append(Upload(path.name, path.read_bytes()))
    result = outcome(upload_documents(open_db(), corpus, read, get_settings(), progress=not as_json))
    if as_json:
        echo_json(result)
        return
    for doc in result["documents"]:
        typer.echo(f"{doc['status']:<9} document {doc['id']}: {doc['title']} ({doc['chunks']} chunks) "
                   f"as {doc['source']}")
    typer.echo(f"{result['embedded']} chunks embedded")
    _impact(result["impact"])


def _run(source_id: int, trigger: str, as_json: bool) -> None:
    from tqdm import tqdm

    from retrieval.sync import run_sync, start_sync
    from store import knowledge

    db = open_db()
    job_id = start_sync(db.admin, source_id, trigger)
    with tqdm(total=0, desc=f"syncing source {source_id}", unit="page", disable=as_json, leave=False) as bar:
        def on_page(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        job = run_sync(db, source_id, job_id, on_page=on_page)
    if as_json:
        echo_json(knowledge.job_view(job) if "done" in job else job)
    else:
        typer.echo(f"job {job['id']} {job['status']}: {job['added']} added, {job['updated']} updated, "
                   f"{job['unchanged']} unchanged, {job['removed']} removed; {job['embedded']} chunks embedded"
                   + (f" — {job['reason']}" if job.get("reason") else ""))
        for error in job.get("errors", []):
            typer.echo(f"  error: {error['error']}")
        _impact(job.get("impact", []))
    if job["status"] != "done":
        raise typer.Exit(1)


@knowledge_app.command("import")
@handle_errors
def import_(urls: Annotated[list[str] | None, typer.Argument(help="Pages to import (instead of --sitemap).")] = None,
            corpus: Annotated[str, typer.Option(help="The corpus to import into.")] = "help_center",
            sitemap: Annotated[str | None, typer.Option(help="A sitemap (or sitemap index) URL.")] = None,
            every_hours: Annotated[int | None, typer.Option(min=1, max=8760, help="Re-sync this often (a running "
                                                            "`mentor serve` does it).")] = None,
            as_json: AsJson = False) -> None:
    """Import a website into a corpus and keep it as a source that `sync` (or the schedule) refreshes."""
    from core.settings import get_settings
    from retrieval.corpora import require_corpora
    from retrieval.fetch import Policy
    from store import knowledge

    if bool(sitemap) == bool(urls):
        raise InvalidArgument("give either --sitemap URL or page URLs (one of them)")
    db = open_db()
    require_corpora(db, [corpus])
    Policy(get_settings().import_allow).preflight([sitemap] if sitemap else urls or [])
    with db.admin() as conn:
        source = knowledge.create_source(conn, corpus, sitemap, list(dict.fromkeys(urls or [])), every_hours)
    if not as_json:
        typer.echo(f"source {source['id']} created in {corpus}")
    _run(source["id"], "created", as_json)


@knowledge_app.command()
@handle_errors
def sync(source_id: Annotated[int, typer.Argument(min=1)], as_json: AsJson = False) -> None:
    """Sync a source now: only what changed is fetched and embedded; what left is removed."""
    _run(source_id, "manual", as_json)


@knowledge_app.command()
@handle_errors
def sources(as_json: AsJson = False) -> None:
    """The sources: where from, into which corpus, how often, and their last sync."""
    from store import knowledge

    with open_db().admin() as conn:
        rows = knowledge.list_sources(conn)
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        last = r["last_job"]
        typer.echo(f"{r['id']:>4}  {r['corpus']:<14}{r['documents']:>5} pages  "
                   f"{'every ' + str(r['every_hours']) + ' h' if r['every_hours'] else 'on request':<12} "
                   f"{r['sitemap_url'] or ', '.join(r['urls'])[:80]}"
                   + (f"  — last sync {last['started_at']:%Y-%m-%d %H:%M} {last['status']}" if last else ""))
    if not rows:
        typer.echo("no sources (`mentor knowledge import --sitemap URL` adds one)")


@knowledge_app.command()
@handle_errors
def job(job_id: Annotated[int, typer.Argument(min=1)], as_json: AsJson = False) -> None:
    """A sync job: status, counts, errors per URL and its impact report."""
    from store import knowledge

    with open_db().admin() as conn:
        knowledge.fail_stale_jobs(conn)
        found = knowledge.get_job(conn, job_id)
    if found is None:
        raise NotFound(f"no knowledge job {job_id}")
    if as_json:
        echo_json(knowledge.job_view(found))
        return
    typer.echo(f"job {found['id']} (source {found['source_id']}, {found['trigger']}) {found['status']}: "
               f"{found['done']}/{found['total']} pages; {found['added']} added, {found['updated']} updated, "
               f"{found['unchanged']} unchanged, {found['removed']} removed"
               + (f" — {found['reason']}" if found["reason"] else ""))
    for error in found["errors"]:
        typer.echo(f"  error: {error['error']}")
    _impact(found["impact"])
