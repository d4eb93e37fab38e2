"""`mentor serve` as a user starts it: a real process, a real port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_starts_logs_its_backend_and_becomes_ready(knowledge) -> None:  # type: ignore[no-untyped-def]
    port = _free_port()
    env = {**os.environ, "MENTOR_LLM": "openai", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "MENTOR_MODEL": "m"}
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, ready = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        assert ready is not None and ready.json()["ready"] is True, proc.stderr.read() if proc.poll() else ""
        assert ready.json()["backend"] == "openai-compatible:m"
        assert httpx.get(f"http://127.0.0.1:{port}/").text.startswith("<!doctype html>")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert '"msg": "LLM backend active"' in err and '"backend": "openai-compatible:m"' in err


def test_serve_refuses_a_port_in_use(db) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot listen on 127.0.0.1:") and "in use" in lines[0]
