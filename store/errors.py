"""Typed errors the service raises for bad input or a broken environment.

Every one carries a one-line, user-facing message; the CLI prints it and exits non-zero
without a traceback, and nothing has been written when it is raised.
"""

from __future__ import annotations


class MentorError(Exception):
    """Base class: a problem the user can fix, with a one-line explanation."""

    code = "error"
    exit_code = 1


class ConfigError(MentorError):
    code = "bad_config"
    exit_code = 2


class DatabaseUnavailable(MentorError):
    code = "database_unavailable"
    exit_code = 3
    retryable = True  # the server may come back; the service reconnects on its own


class PgvectorMissing(MentorError):
    code = "pgvector_missing"
    exit_code = 3


class DataDirInUse(MentorError):
    code = "data_dir_in_use"
    exit_code = 3


class UnknownCorpus(MentorError):
    code = "unknown_corpus"


class IngestError(MentorError):
    code = "ingest_failed"


class NotFound(MentorError):
    code = "not_found"


class InvalidArgument(MentorError):
    code = "invalid_argument"


class Conflict(MentorError):
    """The request clashes with the record's state (e.g. it belongs to someone else): HTTP 409."""

    code = "conflict"


class WorkerFenced(MentorError):
    """This worker's lease expired and another worker fenced it off (store/workers.py): it closed this
    worker's answers, so nothing more of them may be stored, and the worker must end itself."""

    code = "worker_fenced"
    exit_code = 3
