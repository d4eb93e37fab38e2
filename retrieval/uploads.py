"""Files uploaded by hand (the API, the /admin panel, `mentor knowledge upload`): each becomes the document
`uploads/<its name>` of a corpus; uploading the name again replaces it (only its changed text is embedded).

All or nothing: every file is read and parsed before anything is written, so one bad file (broken, empty,
encrypted, too large, of a type we do not read) raises a typed error naming it, and nothing is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import DocumentTooLarge, InvalidArgument
from core.settings import Settings
from retrieval.chunking import TYPES_NAMED, kind_of, parse_document
from retrieval.corpora import require_corpora
from retrieval.ingest import Connect, IngestReport, PreparedDocument, content_hash, ingest_documents
from store.db import Database

PREFIX = "uploads/"
MAX_FILES = 20


@dataclass
class Upload:
    filename: str | None
    raw: bytes
    content_type: str | None = None


def upload_name(filename: str | None) -> str:
    """An upload's own name, without any folder a browser or a client put in front (no path tricks)."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".")
    if not name:
        raise InvalidArgument("every file needs a name (its type is read from it: " + TYPES_NAMED + ")")
    if len(name) > 200:  # shortened before its suffix, which tells its type
        stem, dot, suffix = name.rpartition(".")
        name = stem[:200 - len(suffix) - 1] + dot + suffix if dot and len(suffix) <= 10 else name[:200]
    return name


def prepare_uploads(files: list[Upload], settings: Settings) -> list[PreparedDocument]:
    if not files:
        raise InvalidArgument("no files in the upload")
    if len(files) > MAX_FILES:
        raise InvalidArgument(f"at most {MAX_FILES} files in one upload")
    prepared: list[PreparedDocument] = []
    names: set[str] = set()
    for upload in files:
        name = upload_name(upload.filename)
        if name in names:
            raise InvalidArgument(f"{name}: two files of this upload have this name")
        names.add(name)
        if len(upload.raw) > settings.upload_max_bytes:
            raise DocumentTooLarge(f"{name}: larger than {settings.upload_max_bytes:,} bytes (MENTOR_UPLOAD_MAX_BYTES)")
        kind = kind_of(name) or kind_of(name, upload.content_type)
        prepared.append(PreparedDocument(parse_document(upload.raw, name, PREFIX + name, kind=kind),
                                         content_hash(upload.raw, settings)))
    return prepared


def upload_documents(db: Database, corpus: str, files: list[Upload], settings: Settings, *,
                     connect: Connect | None = None, batch_size: int | None = None,
                     progress: bool = False) -> IngestReport:
    require_corpora(db, [corpus])
    prepared = prepare_uploads(files, settings)
    return ingest_documents(db, corpus, prepared, settings=settings, progress=progress, connect=connect,
                            batch_size=batch_size)


def outcome(report: IngestReport) -> dict:
    """What an upload answers: each document's id, title, source, chunk count and status, and the past
    answers that cited text it replaced."""
    return {"corpus": report.corpus, "embedded": report.embedded,
            "documents": [{"id": d.id, "title": d.title, "source": d.source, "chunks": d.chunks, "status": d.status}
                          for d in report.documents],
            "impact": report.impacts}
