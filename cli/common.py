"""The `mentor` command's shared parts: the Typer apps each command group registers on, error handling,
the process's one database connection.

Every command turns a MentorError (bad input, broken environment) into one `error: ...` line on
stderr and its exit code, never a traceback, and has `--help`.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from core.errors import MentorError

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
warnings.filterwarnings("ignore", module="platformdirs")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(help="AI mentor and chat-agent service.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database: migrations and consistency checks.", no_args_is_help=True)
corpus_app = typer.Typer(help="Knowledge corpora.", no_args_is_help=True)
sites_app = typer.Typer(help="Sites that embed the support widget.", no_args_is_help=True)
staff_app = typer.Typer(help="Support staff: who may use the inbox.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(corpus_app, name="corpus")
app.add_typer(sites_app, name="sites")
app.add_typer(staff_app, name="staff")
report_app = typer.Typer(help="The operator's reports: resolution, handoffs, latency, cost, knowledge gaps.",
                         no_args_is_help=True)
app.add_typer(report_app, name="report")
knowledge_app = typer.Typer(help="The bots' knowledge: documents, uploads, website sources and their syncs.",
                            no_args_is_help=True)
app.add_typer(knowledge_app, name="knowledge")

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MentorError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


@functools.lru_cache(maxsize=1)
def open_db():
    """One connected database per process (commands run once; tests invoke many in-process)."""
    from store.db import Database

    return Database.connect()


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))
