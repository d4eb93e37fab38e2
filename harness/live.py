"""The real app served in this process for tests (uvicorn in a thread, on a free port), on a given database and
model: the scripted one unless a test passes another."""

from __future__ import annotations

from agents.testing import ScriptedProvider
from harness.mock_llm import ThreadedServer


def serve(db, provider=None, **overrides) -> LiveServer:
    """The real app on `db` in this process: demo mode on (the page signs in as demo users), settings
    overridden as given, the scripted model unless another provider is given."""
    from core.settings import get_settings
    from server.services import Services

    settings = get_settings().model_copy(update={"demo": True, **overrides})
    return LiveServer(Services(settings=settings, db=db, provider=provider or ScriptedProvider()))


class LiveServer(ThreadedServer):
    """uvicorn serving create_app(services) in a background thread on a free port."""

    def __init__(self, services) -> None:
        from server.app import create_app

        self.services = services
        super().__init__(create_app(services), name="test-server", log_level="warning", ws="websockets-sansio",
                         lifespan="on")
        if services.settings.demo:  # what `mentor serve` does at start-up for its configured public origin
            from server.demo import ensure_demo_site

            with services.db.admin() as conn:  # test servers share one database: keep the others' origins
                row = conn.execute("SELECT origins FROM sites WHERE name = 'demo'").fetchone()
            ensure_demo_site(services.db, sorted({*(row["origins"] if row else []), self.http}))

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat"
