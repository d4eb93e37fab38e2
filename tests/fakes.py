"""A scripted chat model for server and browser tests: streams a fixed reply, word by word."""

from __future__ import annotations

import time

from agents.llm import ChatProvider, ModelReply
from evals.mock_llm import ThreadedServer

REPLY = ("Here is what the records show. **Fees** depend on your plan, and the numbers above come from the "
         "platform's own data [1]. Ask me about rates, proposals or payments any time; I can also open a "
         "ticket if you need a person.")
HOSTILE = "Careful: <img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script> stays text."


class ScriptedProvider(ChatProvider):
    name = "scripted-test-model"
    supports_tools = False

    def __init__(self, delay_s: float = 0.03, finish: str = "stop") -> None:
        self.delay_s = delay_s
        self.finish = finish  # "length": as if the model hit its token limit

    def stream(self, messages, *, tools=None, temperature=0.4, max_tokens=400, cancel=None, options=None):  # type: ignore[no-untyped-def]
        question = messages[-1].content if messages else ""
        text = HOSTILE if "xss" in str(question).lower() else REPLY
        sent = []
        for word in text.split(" "):
            if cancel is not None and cancel.is_set():
                break
            piece = word if not sent else " " + word
            sent.append(piece)
            yield piece
            time.sleep(self.delay_s)
        yield ModelReply(text="".join(sent), finish_reason="cancelled" if cancel is not None and cancel.is_set()
                         else self.finish)


def serve(db, provider=None, **overrides) -> LiveServer:  # type: ignore[no-untyped-def]
    """The real app on `db` in this process: demo mode on (the page signs in as demo users), settings
    overridden as given, the scripted model unless another provider is given."""
    from core.settings import get_settings
    from server.services import Services

    settings = get_settings().model_copy(update={"demo": True, **overrides})
    return LiveServer(Services(settings=settings, db=db, provider=provider or ScriptedProvider()))


class LiveServer(ThreadedServer):
    """uvicorn serving create_app(services) in a background thread on a free port."""

    def __init__(self, services) -> None:  # type: ignore[no-untyped-def]
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
