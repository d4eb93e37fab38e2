"""A scripted chat model for server and browser tests: streams a fixed reply, word by word."""

from __future__ import annotations

import threading
import time

from agents.llm import ChatProvider, ModelReply

REPLY = ("Here is what the records show. **Fees** depend on your plan, and the numbers above come from the "
         "platform's own data [1]. Ask me about rates, proposals or payments any time; I can also open a "
         "ticket if you need a person.")
HOSTILE = "Careful: <img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script> stays text."


class ScriptedProvider(ChatProvider):
    name = "scripted-test-model"
    supports_tools = False

    def __init__(self, delay_s: float = 0.03) -> None:
        self.delay_s = delay_s

    def stream(self, messages, *, tools=None, temperature=0.4, max_tokens=400, cancel=None):  # type: ignore[no-untyped-def]
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
                         else "stop")


class LiveServer:
    """uvicorn serving create_app(services) in a background thread on a free port."""

    def __init__(self, services) -> None:  # type: ignore[no-untyped-def]
        import socket

        import uvicorn

        from server.app import create_app

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.services = services
        config = uvicorn.Config(create_app(services), host="127.0.0.1", port=self.port, log_level="warning",
                                ws="websockets-sansio", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.05)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
