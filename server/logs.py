"""JSON structured logs, one object per line, with request and conversation ids when known.

No secret reaches a log line: query strings (old clients may still put a token, a site key or a visitor
id there) are redacted from every message, uvicorn's own "WebSocket /ws/chat?..." lines included.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_EXTRA = ("request_id", "conversation_id", "path", "status", "duration_ms", "backend", "persona", "client", "detail")


_QUERY = re.compile(r"(/[^\s\"'?]*)\?[^\s\"']*")


def redact(text: str) -> str:
    """`/ws/chat?token=eyJ...` -> `/ws/chat?[redacted]`."""
    return _QUERY.sub(r"\1?[redacted]", text)


class RedactQueries(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": round(time.time(), 3), "level": record.levelname.lower(), "logger": record.name,
                 "msg": record.getMessage()}
        for key in _EXTRA:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactQueries())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # our middleware logs requests
    # one line per model request from the HTTP client, on the hot path of every turn; the turn's own
    # "turn finished" line (duration, persona) says the same, and errors still come through
    logging.getLogger("httpx").setLevel(logging.WARNING)
