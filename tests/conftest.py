"""Shared fixtures: one real PostgreSQL (the embedded one) per test session, migrated, seeded and indexed once."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# every widget test comes from 127.0.0.1: the hourly ticket allowance of one address is tried on its own server
os.environ.setdefault("MENTOR_VISITOR_TICKETS_PER_ADDRESS", "100000")
os.environ.setdefault("MENTOR_VISITOR_TICKETS_PER_SITE", "100000")
for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MENTOR_MODEL"):
    os.environ.pop(var, None)

REPO = Path(__file__).resolve().parents[1]
_SESSION_HOME: list[Path] = []  # made on first use: this module is imported twice (conftest, tests.conftest)


def session_home() -> Path:
    """The session's database and MENTOR_HOME, in one temporary directory."""
    if not _SESSION_HOME:
        _SESSION_HOME.append(Path(tempfile.mkdtemp(prefix="mentor-test-")))
    return _SESSION_HOME[0]


def pytest_sessionfinish(session, exitstatus) -> None:
    """The session's database and home go with it (after the session's fixtures stopped the server): they
    were ~90 MB a run, and 122 runs had left 11 GB in /tmp."""
    import shutil

    for home in _SESSION_HOME:
        shutil.rmtree(home, ignore_errors=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """The session's PostgreSQL, on its Unix socket and on 127.0.0.1 (the scale-out test's workers use TCP)."""
    from store.embedded import EmbeddedServer

    server = EmbeddedServer(session_home().resolve(), tcp_port=free_port())
    assert server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_url(pg_server) -> str:
    """A fresh database inside the session's server; DATABASE_URL points at it for code under test."""
    import psycopg

    with psycopg.connect(pg_server.uri(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS mentor_test")
        conn.execute("CREATE DATABASE mentor_test")
    url = pg_server.uri("mentor_test")
    os.environ["DATABASE_URL"] = url
    os.environ["MENTOR_HOME"] = str(session_home() / "home")
    from core.settings import get_settings

    get_settings.cache_clear()
    return url


@pytest.fixture(scope="session")
def db(database_url: str):
    from store.db import Database
    from store.migrate import migrate
    from store.seed import seed

    database = Database.connect()
    migrate(database)
    seed(database, scale=1.0)
    yield database
    database.close()


@pytest.fixture(scope="session")
def knowledge(db):
    """The shipped curriculum and help center plus market data, ingested through the real pipeline."""
    from retrieval.ingest import ingest_paths
    from retrieval.market import ingest_market_data
    from store.catalog import CORPUS_DIR

    for corpus in ("curriculum", "help_center"):
        ingest_paths(db, [CORPUS_DIR / corpus], corpus, progress=False)
    ingest_market_data(db, progress=False)
    return db


@pytest.fixture(scope="session")
def demo_ids(db) -> dict[str, int]:
    from store.users import list_demo_users

    return {u["handle"]: u["id"] for u in list_demo_users(db)}


@pytest.fixture
def admin_db(db, pg_server):
    """A throwaway database (dropped afterwards) for tests that need an empty or damaged schema."""
    import uuid

    import psycopg

    from store.db import Database

    name = f"scratch_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    scratch = Database.from_url(pg_server.uri(name))
    yield scratch
    scratch.close()
    with psycopg.connect(pg_server.uri(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def provider():
    from harness.llm_replies import make_provider

    return make_provider()




@pytest.fixture(scope="session")
def live(knowledge):
    """The real app under uvicorn, on the session database, with the scripted model."""
    from harness.live import serve

    server = serve(knowledge)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_other_worker(knowledge):
    """A second app instance on the same database: what a reconnecting client may land on."""
    from harness.live import serve

    server = serve(knowledge)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_strict(knowledge):
    """An instance with tiny limits, for the rate-limit and token-budget tests."""
    from harness.live import serve

    server = serve(knowledge, user_messages_per_minute=3, conversation_token_budget=500)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_composer(knowledge):
    """The app as `mentor serve` runs it offline: the grounded composer answers."""
    from agents.composer import COMPOSER
    from harness.live import serve

    server = serve(knowledge, COMPOSER)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_model(knowledge):
    """The app with the real OpenAI-compatible provider; tests script the endpoint with respx."""
    from harness.live import serve
    from harness.llm_replies import make_provider

    server = serve(knowledge, make_provider(retries=0))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_slow(knowledge):
    """An instance whose scripted model writes slowly (a reload lands mid-answer)."""
    from agents.testing import ScriptedProvider
    from harness.live import serve

    server = serve(knowledge, ScriptedProvider(delay_s=0.25))
    yield server
    server.stop()
