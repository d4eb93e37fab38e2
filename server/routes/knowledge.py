"""`/api/knowledge`: the bot's knowledge without a shell — upload files, import a website and keep it in sync,
see what each sync changed and which past answers cited text that is no longer there. Admins only.

Uploads are all or nothing: every file of a request is read and parsed first, and one bad file (broken,
empty, encrypted, too large, of a type we do not read) answers a typed 4xx naming it, with nothing written;
then all are written in one transaction. Documents uploaded by hand are never touched by a sync.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field, model_validator

from core.errors import InvalidArgument, NotFound
from retrieval.corpora import require_corpora
from retrieval.fetch import Policy
from retrieval.uploads import MAX_FILES, Upload, outcome, upload_documents
from server.deps import Admin, Svc
from server.knowledge_jobs import SERVER_EMBED_BATCH
from server.protocol import NoNul
from store import knowledge

router = APIRouter(prefix="/api/knowledge", tags=["knowledge"])
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
Corpus = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,40}$", description="a corpus name, e.g. help_center")]
CORPUS_NAME = re.compile(r"^[a-z][a-z0-9_]{1,40}$")


@router.get("/corpora")
async def corpora(admin: Admin, s: Svc) -> list[dict[str, Any]]:
    """The corpora, with their document and chunk counts (what an upload or an import can go into)."""
    def read() -> list[dict[str, Any]]:
        with s.db.service() as conn:
            return knowledge.corpus_stats(conn)

    return await asyncio.to_thread(read)


# --- sources and jobs (declared before /{document_id}, which would read "sources" as an id) ---------------

class SourceBody(BaseModel):
    corpus: Corpus
    sitemap_url: NoNul | None = Field(None, max_length=2000, description="a sitemap (or sitemap index) to follow")
    urls: list[Annotated[str, Field(max_length=2000)]] = Field(default_factory=list, max_length=1000,
                                                               description="pages to import, instead of a sitemap")
    every_hours: int | None = Field(None, ge=1, le=8760, description="re-sync this often; unset: only on request")

    @model_validator(mode="after")
    def _one_way_in(self) -> SourceBody:
        if bool(self.sitemap_url) == bool(self.urls):
            raise ValueError("give either sitemap_url or urls (one of them)")
        self.urls = list(dict.fromkeys(u.strip() for u in self.urls))
        return self


@router.post("/sources", status_code=202)
async def create_source(body: SourceBody, admin: Admin, s: Svc) -> dict[str, int]:
    """Import a website (a sitemap, or a list of URLs) into a corpus, now and every `every_hours`."""
    await asyncio.to_thread(require_corpora, s.db, [body.corpus])
    urls = [body.sitemap_url] if body.sitemap_url else body.urls
    await asyncio.to_thread(Policy(s.settings.import_allow).preflight, urls)

    def create() -> dict[str, int]:
        with s.db.service() as conn:
            source = knowledge.create_source(conn, body.corpus, body.sitemap_url, body.urls, body.every_hours)
        return {"source_id": source["id"], "job_id": s.knowledge.start_and_run(source["id"], "created")}

    return await asyncio.to_thread(create)


@router.get("/sources")
async def list_sources(admin: Admin, s: Svc) -> list[dict[str, Any]]:
    """Every source with its page count and its last sync (status and counts)."""
    def read() -> list[dict[str, Any]]:
        with s.db.service() as conn:
            return knowledge.list_sources(conn)

    return await asyncio.to_thread(read)


@router.get("/sources/{source_id}")
async def get_source(source_id: Id, admin: Admin, s: Svc) -> dict[str, Any]:
    def read() -> dict[str, Any] | None:
        with s.db.service() as conn:
            return knowledge.get_source(conn, source_id)

    found = await asyncio.to_thread(read)
    if found is None:
        raise NotFound(f"no knowledge source {source_id}")
    return found


@router.delete("/sources/{source_id}")
async def delete_source(source_id: Id, admin: Admin, s: Svc) -> dict[str, Any]:
    """The source and every page it imported (documents uploaded by hand stay), with the past answers that
    cited them (`impact`)."""
    def remove() -> dict[str, Any] | None:
        with s.db.service() as conn:
            found = knowledge.get_source(conn, source_id)
            impacts = knowledge.delete_source(conn, source_id) if found else None
            if impacts is None:
                return None
            return {"deleted": source_id, "documents": found["documents"], "impact": impacts}

    result = await asyncio.to_thread(remove)
    if result is None:
        raise NotFound(f"no knowledge source {source_id}")
    return result


@router.get("/sources/{source_id}/jobs")
async def source_jobs(source_id: Id, admin: Admin, s: Svc) -> list[dict[str, Any]]:
    """A source's last 20 syncs, newest first, each with its counts and how many past answers it impacted."""
    def read() -> list[dict[str, Any]] | None:
        with s.db.service() as conn:
            if knowledge.get_source(conn, source_id) is None:
                return None
            knowledge.fail_stale_jobs(conn)
            return [knowledge.job_view(j) for j in knowledge.source_jobs(conn, source_id)]

    jobs = await asyncio.to_thread(read)
    if jobs is None:
        raise NotFound(f"no knowledge source {source_id}")
    return jobs


@router.post("/sources/{source_id}/sync", status_code=202)
async def sync_source(source_id: Id, admin: Admin, s: Svc) -> dict[str, int]:
    """Sync now: only what changed is fetched and embedded; 409 while a sync of it runs (naming that job)."""
    return {"job_id": await asyncio.to_thread(s.knowledge.start_and_run, source_id, "manual")}


@router.get("/jobs/{job_id}")
async def get_job(job_id: Id, admin: Admin, s: Svc) -> dict[str, Any]:
    """A sync's status, progress, counts, errors per URL, and its impact report (past answers that cited text
    it changed or removed)."""
    def read() -> dict[str, Any] | None:
        with s.db.service() as conn:
            knowledge.fail_stale_jobs(conn)
            return knowledge.get_job(conn, job_id)

    job = await asyncio.to_thread(read)
    if job is None:
        raise NotFound(f"no knowledge job {job_id}")
    return knowledge.job_view(job)


# --- documents -----------------------------------------------------------------------------------------------

UPLOAD_SCHEMA = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["files", "corpus"],
    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"},
                             "description": "Markdown, HTML, text or PDF files (at most 20)"},
                   "corpus": {"type": "string", "pattern": "^[a-z][a-z0-9_]{1,40}$"}}}}}}}


@router.post("", status_code=201, openapi_extra=UPLOAD_SCHEMA)
async def upload(request: Request, admin: Admin, s: Svc) -> dict[str, Any]:
    """Upload files into a corpus: each becomes a document (re-uploading a name replaces it, and only its
    changed text is embedded again). All or nothing: a bad file is named in a 4xx and nothing is written.
    The body is read only after the caller is known to be an admin."""
    limit = s.settings.upload_max_bytes
    try:
        form = await request.form(max_files=MAX_FILES + 1, max_fields=10)
    except Exception as exc:  # noqa: BLE001 - multipart errors (python-multipart, starlette) are the sender's
        raise InvalidArgument(f"the body is not a multipart form with files and corpus ({exc})") from None
    try:
        corpus = form.get("corpus")
        if not isinstance(corpus, str) or not CORPUS_NAME.match(corpus):
            raise InvalidArgument("corpus: a corpus name is needed (lower case letters, digits and _)")
        parts = form.getlist("files")
        if not parts:
            raise InvalidArgument("files: no files in the upload (send them as `files` parts)")
        read = []
        for part in parts:
            if isinstance(part, str):
                raise InvalidArgument("files: each part must be a file with a file name")
            raw = await part.read(limit + 1)  # one byte over is enough to refuse it, by name
            read.append(Upload(part.filename, raw, part.content_type))
    finally:
        await form.close()
    report = await asyncio.to_thread(upload_documents, s.db, corpus, read, s.settings, connect=s.db.service,
                                     batch_size=SERVER_EMBED_BATCH)
    return outcome(report)


@router.get("")
async def list_documents(admin: Admin, s: Svc,
                         corpus: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{1,40}$")] = None,
                         limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
                         offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> list[dict[str, Any]]:
    """Documents (of a corpus, or all): id, corpus, title, source, chunks, sha256, ingested_at, origin
    (`upload`, or the id of the source that imported it)."""
    def read() -> list[dict[str, Any]]:
        with s.db.service() as conn:
            return knowledge.list_documents(conn, corpus, limit=limit, offset=offset)

    return await asyncio.to_thread(read)


@router.get("/{document_id}")
async def get_document(document_id: Id, admin: Admin, s: Svc) -> dict[str, Any]:
    """A document and its chunks, in order."""
    def read() -> dict[str, Any] | None:
        with s.db.service() as conn:
            return knowledge.get_document(conn, document_id)

    found = await asyncio.to_thread(read)
    if found is None:
        raise NotFound(f"no document {document_id}")
    found["chunks_detail"] = found.pop("chunk_list")
    return found


@router.delete("/{document_id}")
async def delete_document(document_id: Id, admin: Admin, s: Svc) -> dict[str, Any]:
    """Remove a document and its chunks. Past answers keep their citations' stored snippets; they are
    listed (`impact`) so an operator sees what the bot said from it."""
    def remove() -> dict[str, Any] | None:
        with s.db.service() as conn:
            return knowledge.delete_document(conn, document_id)

    found = await asyncio.to_thread(remove)
    if found is None:
        raise NotFound(f"no document {document_id}")
    return {"deleted": found["id"], "source": found["source"], "corpus": found["corpus"], "impact": found["impacts"]}
