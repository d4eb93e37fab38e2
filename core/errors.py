"""Typed errors the service raises for bad input or a broken environment.

Every one carries a one-line, user-facing message; the CLI prints it and exits with `exit_code`
without a traceback, the HTTP APIs answer `http_status` in their family's shape (server/errors.py),
and nothing has been written when it is raised.
"""

from __future__ import annotations


class MentorError(Exception):
    """Base class: a problem the user can fix, with a one-line explanation."""

    code = "error"
    exit_code = 1
    http_status = 400
    retryable = False


class ConfigError(MentorError):
    code = "bad_config"
    exit_code = 2
    http_status = 500


class DatabaseUnavailable(MentorError):
    code = "database_unavailable"
    exit_code = 3
    http_status = 503
    retryable = True  # the server may come back; the service reconnects on its own


class PgvectorMissing(MentorError):
    code = "pgvector_missing"
    exit_code = 3
    http_status = 503


class DataDirInUse(MentorError):
    code = "data_dir_in_use"
    exit_code = 3
    http_status = 503


class UnknownCorpus(MentorError):
    code = "unknown_corpus"
    http_status = 404


class IngestError(MentorError):
    code = "ingest_failed"
    http_status = 422


class EmptyDocument(IngestError):
    """A document with no text of its own (a category page, an `_index.md` of front matter only, a scanned
    PDF): a folder ingest skips it and says so; named on its own, it is an error."""

    code = "empty_document"


class UnsupportedDocument(IngestError):
    """A file of a type we do not read (HTTP 415), named with the types we do."""

    code = "unsupported_type"
    http_status = 415


class UnreadableDocument(IngestError):
    """A file we read but cannot parse: a broken PDF, text that is not UTF-8, a binary file."""

    code = "unreadable_document"


class EncryptedDocument(IngestError):
    """A PDF locked with a password: its text cannot be read without it."""

    code = "encrypted_document"


class DocumentTooLarge(IngestError):
    code = "file_too_large"
    http_status = 413


class FetchRefused(MentorError):
    """An import URL we will not fetch: a private, loopback, link-local or metadata address, a scheme other
    than http(s), too many redirects, too large, too slow, or a content type we do not read."""

    code = "fetch_refused"


class NotFound(MentorError):
    code = "not_found"
    http_status = 404


class InvalidArgument(MentorError):
    code = "invalid_argument"


class Unauthorized(MentorError):
    """No valid credentials: a missing, forged or expired token, an unknown site key."""

    code = "unauthorized"
    http_status = 401


class Forbidden(MentorError):
    """Valid credentials, but not for this (a freelancer on the inbox, demo sign-in with demo mode off)."""

    code = "forbidden"
    http_status = 403


class Conflict(MentorError):
    """The request clashes with the record's state (e.g. it belongs to someone else): HTTP 409."""

    code = "conflict"
    http_status = 409


class WorkerFenced(MentorError):
    """This worker's lease expired and another worker fenced it off (store/workers.py): it closed this
    worker's answers, so nothing more of them may be stored, and the worker must end itself."""

    code = "worker_fenced"
    exit_code = 3
    http_status = 503
