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
