"""`mentor` — the command line: a thin front door over the service's layers. One module per command
group registers its commands on the shared app (cli/common.py); errors are handled once, in each
command's `handle_errors`. Nothing imports this package."""

from __future__ import annotations

import logging
import sys

from cli import chat, data, evals, knowledge, report, serve  # noqa: F401  (each registers its commands)
from cli.common import app, open_db

__all__ = ["app", "main"]


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        app()
    finally:
        # Close the pool before the exit hook stops the embedded PostgreSQL; otherwise the
        # pool's reconnect thread can race the shutdown and log "terminating connection" warnings.
        if open_db.cache_info().currsize:
            open_db().close()
