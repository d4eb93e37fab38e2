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


def test_serve_starts_logs_its_backend_and_becomes_ready(knowledge, db) -> None:
    """Ready once the database and the model answer; not ready within seconds of the model going away."""
    from harness.mock_llm import MockLLM, MockServer

    port, model = _free_port(), MockServer(MockLLM())
    env = {**os.environ, "MENTOR_LLM": "openai", "OPENAI_BASE_URL": model.base_url, "MENTOR_MODEL": "mock",
           "MENTOR_DB_POOL_MAX": "5"}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)], env=env,
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
        assert ready.json()["backend"] == "openai-compatible:mock"
        assert httpx.get(f"http://127.0.0.1:{port}/").text.startswith("<!doctype html>")
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text  # a lone worker: the default slots
        assert "mentor_turn_setup_slots 96.0" in scraped and "mentor_turn_setup_slots_busy 0.0" in scraped
        with db.admin() as conn:  # its whole pool is open before the first user comes (a burst waits for none)
            held = conn.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name ~ %s AND "
                                "usename = 'mentor_service'", (f"^mentor/{proc.pid}/[0-9a-f]+$",)).fetchone()["n"]
        assert held == 5
        model.stop()  # the model endpoint goes away: readiness says so (it probes at most every 5 s)
        deadline = time.time() + 30
        while httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code != 503:
            assert time.time() < deadline, "still ready with the model gone"
            time.sleep(0.5)
        gone = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json()
        assert gone["database"] is True and gone["model"] is False and gone["model_detail"]["reachable"] is False
    finally:
        model.stop()
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert '"msg": "LLM backend active"' in err and '"backend": "openai-compatible:mock"' in err


def test_serve_refuses_a_port_in_use(db) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "cli", "serve", "--port", str(port)],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot listen on 127.0.0.1:") and "in use" in lines[0]


def test_stopping_serve_stops_the_embedded_database(tmp_path) -> None:
    """SIGTERM or Ctrl-C (SIGINT) on `mentor serve` also stops the embedded PostgreSQL it started, and the
    next start is not confused by the stopped server's pid file."""
    import signal

    from store.embedded import EmbeddedServer

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"MENTOR_HOME": str(home), "MENTOR_LLM": "composer"}
    server = EmbeddedServer(home)
    for stop in (signal.SIGTERM, signal.SIGINT):
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.3)
            pid = server.postmaster_pid()
            assert pid is not None, proc.stderr.read() if proc.poll() is not None else "no postmaster"
        finally:
            proc.send_signal(stop)
            proc.communicate(timeout=60)
        deadline = time.time() + 30
        while server.postmaster_pid() is not None and time.time() < deadline:
            time.sleep(0.2)
        assert server.postmaster_pid() is None, f"PostgreSQL still running after {stop.name}"
