"""Regression tests for the findings of the security probe (issue 10), one section per finding."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import jwt
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from server.auth import add_site, issue_token
from store.db import Database
from tests.test_server import _rejected, message, open_ws, recv, send, text_of, until

ROOT = os.geteuid() == 0


def _as_nobody(script: str) -> subprocess.CompletedProcess:
    """Run a Python snippet as the unprivileged `nobody` user, with the system interpreter."""
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                           script], capture_output=True, text=True, timeout=60)


# 1. Local users could become database superuser ----------------------------------------------------------

@pytest.mark.skipif(not ROOT or not Path("/usr/bin/python3").exists(), reason="needs root to act as another user")
def test_another_os_user_cannot_reach_the_embedded_database(tmp_path: Path) -> None:
    from store.embedded import EmbeddedServer

    home = tmp_path / ("long-mentor-home-" + "x" * 90) / "mentor"  # ~140 characters: too long for a socket
    ancestors = [p for p in home.parents if p != Path("/")]
    for p in ancestors[1:]:
        p.mkdir(parents=True, exist_ok=True)
    tmp_path.chmod(0o755)  # let `nobody` walk up to MENTOR_HOME, so only our protections stand in the way
    home.parent.mkdir(mode=0o755, exist_ok=True)
    before = {p: stat.S_IMODE(p.stat().st_mode) for p in ancestors if p.exists()}
    server = EmbeddedServer(home)
    try:
        uri = server.start()
        assert len(str(home / "run" / ".s.PGSQL.5432")) > 107 and str(server.socket_dir).startswith("/tmp/mentor-")
        with psycopg.connect(uri) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        # the password is required even by whoever can reach the socket
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(uri.replace(server.password, "wrong"))
        assert stat.S_IMODE((home / "run").stat().st_mode) == 0o700
        assert stat.S_IMODE(server.socket_dir.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
        probe = _as_nobody("import socket; s = socket.socket(socket.AF_UNIX); "
                           f"s.connect({str(server.socket_dir / '.s.PGSQL.5432')!r})")
        assert probe.returncode != 0 and "PermissionError" in probe.stderr, probe.stderr
        listing = _as_nobody(f"import os; os.listdir({str(home / 'run')!r})")  # the real directory, too
        assert listing.returncode != 0 and "PermissionError" in listing.stderr, listing.stderr
        leaked = _as_nobody(f"open({str(server.password_file)!r}).read()")
        assert leaked.returncode != 0 and "PermissionError" in leaked.stderr
        # nothing outside MENTOR_HOME had its permissions changed
        assert {p: stat.S_IMODE(p.stat().st_mode) for p in before} == before
        assert not any(p.name.startswith("runtime-") for p in Path("/tmp").iterdir()
                       if p.stat().st_mtime > time.time() - 60 and stat.S_IMODE(p.stat().st_mode) & 0o077)
    finally:
        server.stop()


# 2. Bearer secrets in the logs -----------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_token_site_key_or_visitor_id_reaches_the_log(knowledge, demo_ids) -> None:
    from core.settings import get_settings

    port = _free_port()
    origin = f"http://127.0.0.1:{port}"
    site = add_site(knowledge, "logs", [origin])
    env = {**os.environ, "MENTOR_PUBLIC_URL": origin}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    token = issue_token(get_settings(), demo_ids["mateo"])
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"{origin}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        ws_url = f"ws://127.0.0.1:{port}/ws/chat"
        with connect(f"{ws_url}?token={token}", open_timeout=10) as ws:  # an old client: token in the URL
            assert json.loads(ws.recv(timeout=10))["user"]["handle"] == "mateo"
        with connect(ws_url, subprotocols=["mentor.v1", f"bearer.{token}"], open_timeout=10) as ws:  # the page
            assert ws.subprotocol == "mentor.v1" and json.loads(ws.recv(timeout=10))["user"]["handle"] == "mateo"
        with connect(f"{ws_url}?site_key={site['site_key']}", origin=origin, open_timeout=10) as ws:
            visitor = json.loads(ws.recv(timeout=10))["visitor_id"]
        with connect(f"{ws_url}?site_key={site['site_key']}&visitor_id={visitor}", origin=origin,
                     open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["visitor_id"] == visitor
        httpx.get(f"{origin}/api/conversations?token={token}")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "WebSocket /ws/chat?[redacted]" in err  # uvicorn's connection lines are there, without their query
    for secret in (token, token.split(".")[2], site["site_key"], visitor):
        assert secret not in err


# 3. /v1 had no rate limit, token budget or size cap --------------------------------------------------------

def _v1(server, token: str, **body) -> httpx.Response:
    return httpx.post(f"{server.http}/v1/chat/completions", headers={"Authorization": f"Bearer {token}"},
                      json={"model": "support", **body}, timeout=60)


@pytest.fixture(scope="module")
def v1_strict(knowledge):
    """Its own instance (and rate limiter): 3 messages a minute, a 500-token budget."""
    from agents.testing import ScriptedProvider
    from harness.live import serve

    server = serve(knowledge, ScriptedProvider(delay_s=0), user_messages_per_minute=3, conversation_token_budget=500)
    yield server
    server.stop()


def test_v1_shares_the_websockets_limits(v1_strict, live, demo_ids) -> None:
    live_strict = v1_strict
    token = issue_token(live_strict.services.settings, demo_ids["nora"])
    ask = [{"role": "user", "content": "What commission do I pay?"}]
    statuses = [_v1(live_strict, token, messages=ask).status_code for _ in range(4)]
    assert statuses[:3] == [200, 200, 200] and statuses[3] == 429  # 3 per minute in this instance
    limited = _v1(live_strict, token, messages=ask)
    assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
    other = issue_token(live.services.settings, demo_ids["sofia"])
    long_text = [{"role": "user", "content": "x" * (live.services.settings.max_message_chars + 1)}]
    assert _v1(live, other, messages=long_text).json()["error"]["code"] == "message_too_long"
    many = [{"role": "user", "content": "hi"}] * (live.services.settings.max_messages_per_request + 1)
    assert _v1(live, other, messages=many).json()["error"]["code"] == "too_many_messages"
    budget = issue_token(live_strict.services.settings, demo_ids["dana"])
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": "word " * 300} for i in range(5)]
    over = _v1(live_strict, budget, messages=history)  # 1,500 tokens against a 500-token budget
    assert over.status_code == 400 and over.json()["error"]["code"] == "token_budget_exceeded"
    huge = httpx.post(f"{live.http}/v1/chat/completions", headers={"Authorization": f"Bearer {other}",
                                                                  "content-type": "application/json"},
                      content=b'{"model": "support", "messages": [' + b'{"role": "user", "content": "x"},' * 200_000
                      + b'{"role": "user", "content": "x"}]}', timeout=60)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "body_too_large"


# 4. Demo mode was on by default ----------------------------------------------------------------------------

def test_demo_sign_in_and_the_demo_site_are_off_unless_asked_for(knowledge) -> None:
    from agents.testing import ScriptedProvider
    from core.settings import Settings
    from harness.live import LiveServer
    from server.services import Services

    assert Settings().demo is False
    server = LiveServer(Services(settings=Settings(), db=knowledge, provider=ScriptedProvider()))
    try:
        assert httpx.post(f"{server.http}/api/demo-login", json={"user": "sofia"}).status_code == 403
        assert httpx.get(f"{server.http}/api/demo-users").json() == []
        assert httpx.get(f"{server.http}/widget/demo").status_code == 404
    finally:
        server.stop()


def test_the_demo_page_never_edits_the_allowlist(live, db: Database) -> None:
    with db.admin() as conn:
        before = conn.execute("SELECT origins FROM sites WHERE name = 'demo'").fetchone()["origins"]
    for _ in range(5):
        page = httpx.get(f"{live.http}/widget/demo", headers={"Host": "attacker.example"})
        assert page.status_code == 404 and "attacker.example" not in str(page.headers)
    with db.admin() as conn:
        assert conn.execute("SELECT origins FROM sites WHERE name = 'demo'").fetchone()["origins"] == before
    assert httpx.get(f"{live.http}/widget/demo").status_code == 200  # its configured origin still works


# 5. Anyone could cancel anyone's turn ----------------------------------------------------------------------

def test_cancel_only_reaches_the_callers_own_turns(live, demo_ids) -> None:
    settings = live.services.settings
    owner, _ = open_ws(live, issue_token(settings, demo_ids["mateo"]))
    intruder, _ = open_ws(live, issue_token(settings, demo_ids["nora"]))
    message(owner, "How do I find my first clients?", persona="marcus")
    conversation = until(owner, "ack")[-1]["conversation_id"]
    send(intruder, type="cancel", conversation_id=conversation)
    assert recv(intruder)["code"] == "nothing_to_cancel"
    events = until(owner, "done", timeout=60)
    assert events[-1]["finish_reason"] == "stop" and text_of(events)
    send(intruder, type="resume", conversation_id=conversation, after_seq=0)
    assert recv(intruder)["code"] == "not_found"
    owner.close()
    intruder.close()


# 6. Widget abuse ---------------------------------------------------------------------------------------------

def test_visitor_ids_are_signed_and_bound_to_their_site(live, db: Database) -> None:
    one = add_site(db, "one", ["https://one.example"])
    two = add_site(db, "two", ["https://two.example"])
    ws, ready = open_ws(live, site_key=one["site_key"], origin="https://one.example")
    visitor = ready["visitor_id"]
    assert visitor.startswith(f"v1.{one['id']}.")
    message(ws, "How do withdrawals work?", persona="support")
    conversation = until(ws, "done")[0]["conversation_id"]
    ws.close()
    # the same id on another site is not that visitor: a new one is issued, the conversation stays private
    ws2, ready2 = open_ws(live, site_key=two["site_key"], origin="https://two.example", visitor_id=visitor)
    assert ready2["visitor_id"] != visitor
    send(ws2, type="resume", conversation_id=conversation, after_seq=0)
    assert recv(ws2)["code"] == "not_found"
    ws2.close()
    made_up, ready3 = open_ws(live, site_key=one["site_key"], origin="https://one.example",
                              visitor_id="v1." + str(one["id"]) + ".guess.guess")
    assert ready3["visitor_id"] not in ("", "v1." + str(one["id"]) + ".guess.guess")
    made_up.close()
    back, ready4 = open_ws(live, site_key=one["site_key"], origin="https://one.example", visitor_id=visitor)
    assert ready4["visitor_id"] == visitor
    send(back, type="resume", conversation_id=conversation, after_seq=0)
    assert recv(back)["conversation_id"] == conversation
    back.close()


def test_one_visitor_cannot_use_up_a_sites_allowance_or_flood_tickets(knowledge, db: Database) -> None:
    from agents.composer import COMPOSER
    from harness.live import serve

    server = serve(db, COMPOSER, visitor_messages_per_minute=6, site_messages_per_minute=100,
                   address_messages_per_minute=100)
    site = add_site(db, "flood", ["https://flood.example"])
    try:
        spammer, _ = open_ws(server, site_key=site["site_key"], origin="https://flood.example")
        outcomes, answers, first = [], [], None
        # three asks in one conversation, then one in each of three new ones (no conversation_id: a new one)
        for i in range(7):
            extra = {"conversation_id": first} if first and i < 3 else {}
            message(spammer, f"I want to talk to a human now, attempt {i}", persona="support", **extra)
            events = []
            while (event := recv(spammer, timeout=30))["type"] not in ("done", "error") or \
                    (event["type"] == "error" and event.get("seq") is not None):
                events.append(event)
                first = first or (event.get("conversation_id") if event["type"] == "ack" else None)
                if event["type"] == "tool_result" and event["name"] == "create_support_ticket":
                    outcomes.append("refused" if event["error"] else
                                    "joined" if event["data"]["already_open"] else "ticket")
            answers.append(text_of(events))
            if event["type"] == "error":
                outcomes.append(event["code"])
        # one open ticket per conversation; three new ones an hour per visitor, then their newest open one
        assert outcomes == ["ticket", "joined", "joined", "ticket", "ticket", "joined", "rate_limited"]
        assert "is already open" in answers[1] and "open in another conversation" in answers[5]  # and say so
        bystander, _ = open_ws(server, site_key=site["site_key"], origin="https://flood.example")
        message(bystander, "How do withdrawals work?", persona="support")
        assert until(bystander, "done")[-1]["finish_reason"] == "stop"  # the site still serves everyone else
        spammer.close()
        bystander.close()
    finally:
        server.stop()


# 7. Unhandled input dropped sockets or gave 500s -----------------------------------------------------------

def test_nesting_nul_and_huge_ids_get_typed_errors_and_the_socket_stays(live, demo_ids) -> None:
    ws, _ = open_ws(live, issue_token(live.services.settings, demo_ids["nora"]))
    ws.send("[" * 16_000 + "]" * 16_000)
    assert recv(ws)["code"] == "bad_json"
    send(ws, type="message", client_id="nul-1", text="hello\x00world", persona="support")
    assert recv(ws)["code"] == "invalid_frame"
    send(ws, type="feedback", message_id=2**70, rating=5)
    assert recv(ws)["code"] == "invalid_frame"
    send(ws, type="resume", conversation_id=str(uuid.uuid4()), after_seq=2**70)
    assert recv(ws)["code"] == "invalid_frame"
    send(ws, type="ping")
    assert recv(ws)["type"] == "pong"
    ws.close()


def test_nul_paths_huge_subjects_and_unknown_users_are_not_500s(live, demo_ids) -> None:
    settings = live.services.settings
    good = issue_token(settings, demo_ids["mateo"])
    headers = {"Authorization": f"Bearer {good}"}
    assert httpx.get(f"{live.http}/knowledge/help_center%00x.md").status_code == 404
    assert httpx.get(f"{live.http}/api/conversations/%00", headers=headers).status_code == 404
    nul = _v1(live, good, messages=[{"role": "user", "content": "fees\x00?"}])
    assert nul.status_code == 400
    deep = httpx.post(f"{live.http}/v1/chat/completions", headers={**headers, "content-type": "application/json"},
                      content=b'{"model": "support", "messages": ' + b"[" * 20_000 + b"]" * 20_000 + b"}")
    assert deep.status_code == 400 and deep.json()["error"]["code"] == "invalid_body"
    now = int(time.time())
    from server.auth import jwt_secret

    huge = jwt.encode({"sub": str(2**70), "exp": now + 600}, jwt_secret(settings), algorithm="HS256")
    ghost = issue_token(settings, 987_654_321)  # validly signed, but no such user
    for token in (huge, ghost):
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{live.http}/api/conversations", headers=auth).status_code == 401
        assert _v1(live, token, messages=[{"role": "user", "content": "hi"}]).status_code == 401
        assert _rejected(live, token=token)["code"] == "unauthorized"


# 9. No security headers ----------------------------------------------------------------------------------

def test_pages_send_security_headers(live) -> None:
    for path in ("/", "/knowledge/help_center/fees-and-commission.md", "/widget/demo", "/docs/protocol"):
        answer = httpx.get(f"{live.http}{path}")
        csp = answer.headers["content-security-policy"]
        script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
        assert "'unsafe-inline'" not in script_src and "frame-ancestors 'none'" in csp, path
        assert answer.headers["x-content-type-options"] == "nosniff"


# 10. The JWT secret was written 0644, then chmod-ed ------------------------------------------------------------

def test_secret_files_are_created_private_in_one_step(tmp_path: Path) -> None:
    from core.errors import ConfigError
    from store.secrets import read_or_create_secret

    old = os.umask(0)  # even with a permissive umask
    try:
        value = read_or_create_secret(tmp_path / "jwt_secret")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "jwt_secret").stat().st_mode) == 0o600
    assert read_or_create_secret(tmp_path / "jwt_secret") == value
    (tmp_path / "jwt_secret").chmod(0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        read_or_create_secret(tmp_path / "jwt_secret")


# 11. Defence in depth ----------------------------------------------------------------------------------------

def test_the_service_logs_in_as_a_role_that_cannot_read_tenant_data(db: Database, demo_ids) -> None:
    with db.service() as conn:
        me = conn.execute("SELECT current_user AS name, rolsuper, rolbypassrls FROM pg_roles "
                          "WHERE rolname = current_user").fetchone()
    assert me == {"name": "mentor_service", "rolsuper": False, "rolbypassrls": False}
    # an injection that escapes the tenant role lands in mentor_service: no revenue, profiles or payments
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(demo_ids["mateo"]) as conn:
        conn.execute("RESET ROLE")
        conn.execute("SELECT count(*) FROM client_projects")
    for statement in ("UPDATE users SET role = 'admin' WHERE id = app_user_id()",
                      "UPDATE schema_migrations SET checksum = 'x'",
                      "UPDATE freelancer_profiles SET total_revenue = 1",
                      "INSERT INTO orders (buyer_id, freelancer_id, amount) VALUES (app_user_id(), 1, 1)"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(demo_ids["mateo"]) as conn:
            conn.execute(statement)
    with db.admin() as conn:
        forced = {r["relname"] for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relforcerowsecurity AND relkind = 'r'")}
        policies = {r["tablename"] for r in conn.execute("SELECT tablename FROM pg_policies")}
    assert {"users", "client_projects", "proposals", "payments", "messages", "clients", "gigs"} <= forced
    assert {"clients", "gigs"} <= policies


def test_a_draft_is_private_to_its_author(db: Database, demo_ids) -> None:
    with db.admin() as conn:
        project = conn.execute("""SELECT p.id FROM projects p JOIN clients c ON c.id = p.client_id
                                  WHERE c.user_id = %s AND p.status = 'open' LIMIT 1""",
                               (demo_ids["dana"],)).fetchone()["id"]
    with db.as_user(demo_ids["mateo"]) as conn:
        draft = conn.execute("""INSERT INTO proposals (project_id, freelancer_id, cover_letter, bid_amount, bid_type,
                                status) VALUES (%s, app_user_id(), 'secret draft', 100, 'fixed', 'draft')
                                RETURNING id""", (project,)).fetchone()["id"]
    try:
        with db.as_user(demo_ids["dana"]) as conn:  # the project's client
            assert conn.execute("SELECT 1 FROM proposals WHERE id = %s", (draft,)).fetchone() is None
        with db.as_user(demo_ids["mateo"]) as conn:
            assert conn.execute("SELECT 1 FROM proposals WHERE id = %s", (draft,)).fetchone() is not None
    finally:
        with db.admin() as conn:
            conn.execute("DELETE FROM proposals WHERE id = %s", (draft,))


def test_only_public_corpora_are_served_and_metrics_can_need_a_token(live, knowledge) -> None:
    from retrieval.corpora import add_corpus
    from retrieval.ingest import ingest_paths

    add_corpus(knowledge, "internal_notes", "staff only", public=False)
    folder = Path(live.services.settings.mentor_home) / "internal"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pricing-secrets.md").write_text("# Pricing secrets\n\nOur margin on enterprise deals is 61%.\n")
    try:
        ingest_paths(knowledge, [folder], "internal_notes", progress=False)
        assert httpx.get(f"{live.http}/knowledge/internal/pricing-secrets.md").status_code == 404
        assert httpx.get(f"{live.http}/knowledge/help_center/fees-and-commission.md").status_code == 200
    finally:
        with knowledge.admin() as conn:
            conn.execute("DELETE FROM documents WHERE corpus = 'internal_notes'")
            conn.execute("DELETE FROM corpora WHERE name = 'internal_notes'")
    settings = live.services.settings
    live.services.settings = settings.model_copy(update={"metrics_token": "m" * 24})
    try:
        assert httpx.get(f"{live.http}/metrics", timeout=60).status_code == 401
        ok = httpx.get(f"{live.http}/metrics", headers={"Authorization": "Bearer " + "m" * 24}, timeout=60)
        assert ok.status_code == 200 and "mentor_" in ok.text
    finally:
        live.services.settings = settings


# 7. Verified identity in the widget and the agents' inbox ------------------------------------------------------

def _widget(live, site: dict, origin: str, user_token: str | None = None):
    """The widget's connection: site key in the URL, the site-signed user token in the protocol header."""
    protocols = ["mentor.v1"] + ([f"user.{user_token}"] if user_token else [])
    ws = connect(f"{live.ws}?site_key={site['site_key']}", origin=origin, subprotocols=protocols, open_timeout=10)
    return ws, recv(ws)


def test_a_site_signed_user_token_makes_the_visitor_that_user(live, db: Database, demo_ids) -> None:
    site = add_site(db, "market", ["https://market.example"], first_party=True)  # the marketplace's own pages
    mateo = demo_ids["mateo"]
    token = jwt.encode({"sub": str(mateo), "exp": int(time.time()) + 600}, site["secret"], algorithm="HS256")
    ws, ready = _widget(live, site, "https://market.example", token)
    assert ready["type"] == "ready" and ready["user"]["id"] == mateo and ready["visitor_id"] is None
    message(ws, "Which plan am I on and what are its fees?", persona="support")
    events = until(ws, "done")
    account = next(e for e in events if e["type"] == "tool_result" and e["name"] == "my_account")
    assert account["error"] is None and account["data"]["email"] == "mateo@example.com"  # run as them, under RLS
    ws.close()


@pytest.mark.parametrize("case", ["other_site", "expired", "alg_none", "forged", "no_exp"])
def test_a_bad_widget_user_token_is_refused_not_downgraded(live, db: Database, demo_ids, case: str) -> None:
    site = add_site(db, f"shop-{case}", ["https://shop.example"])
    other = add_site(db, f"elsewhere-{case}", ["https://elsewhere.example"])
    claims = {"sub": str(demo_ids["mateo"]), "exp": int(time.time()) + 600}
    token = {
        "other_site": lambda: jwt.encode(claims, other["secret"], algorithm="HS256"),
        "expired": lambda: jwt.encode({**claims, "exp": int(time.time()) - 5}, site["secret"], algorithm="HS256"),
        "alg_none": lambda: jwt.encode(claims, None, algorithm="none"),
        "forged": lambda: jwt.encode(claims, "x" * 43, algorithm="HS256"),
        "no_exp": lambda: jwt.encode({"sub": claims["sub"]}, site["secret"], algorithm="HS256"),
    }[case]()
    ws, reply = _widget(live, site, "https://shop.example", token)
    assert reply["type"] == "error" and reply["code"] == "unauthorized", reply
    with pytest.raises(ConnectionClosed) as closed:  # never an anonymous session instead
        ws.recv(timeout=5)
    assert closed.value.rcvd.code == 4401


def test_inbox_access_freelancer_none_agent_handoffs_only_admin_all(live, db: Database, demo_ids) -> None:
    settings = live.services.settings
    mateo = {"Authorization": f"Bearer {issue_token(settings, demo_ids['mateo'])}"}
    ana = {"Authorization": f"Bearer {issue_token(settings, demo_ids['ana'])}"}
    assert httpx.get(f"{live.http}/api/inbox", headers=mateo, timeout=10).status_code == 403
    ws, _ = open_ws(live, issue_token(settings, demo_ids["sofia"]))
    message(ws, "How do withdrawals work?", persona="support")
    private = until(ws, "done")[0]["conversation_id"]
    ws.close()
    assert httpx.get(f"{live.http}/api/inbox/{private}", headers=ana, timeout=10).status_code == 404
    assert httpx.post(f"{live.http}/api/inbox/{private}/claim", headers=ana, timeout=10).status_code == 404
    with db.as_user(demo_ids["ana"]) as conn:
        for table in ("conversations", "messages", "conversation_events", "tool_calls", "citations"):
            column = "id" if table == "conversations" else "conversation_id"
            assert conn.execute(f"SELECT count(*) AS n FROM {table} WHERE {column} = %s",
                                (private,)).fetchone()["n"] == 0, table
    with db.admin() as conn:  # an admin reads everything, under the same policies
        admin = conn.execute("SELECT id FROM users WHERE handle = 'root_admin'").fetchone() or conn.execute(
            """INSERT INTO users (id, handle, name, email, role, plan_id, country)
               VALUES ((SELECT max(id) + 1 FROM users), 'root_admin', 'Ria Admin', 'ria@example.com', 'admin',
                       'free', 'IE') RETURNING id""").fetchone()
    with db.as_user(admin["id"]) as conn:
        assert conn.execute("SELECT count(*) AS n FROM messages WHERE conversation_id = %s",
                            (private,)).fetchone()["n"] >= 2


def test_the_rate_limiters_memory_is_bounded_by_activity_not_history(monkeypatch) -> None:
    from server import limits

    limiter = limits.RateLimiter()
    clock = [1000.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock[0])
    for i in range(5000):  # a stream of fresh visitor ids, one message each
        assert limiter.hit(f"visitor:{i}", 10) is None
    clock[0] += 61  # a minute later every one of those buckets has refilled: the same as none
    for _ in range(limits.RateLimiter.SWEEP_EVERY):
        limiter.hit("address:10.0.0.1", 10_000)
    assert len(limiter) < 100
    assert limiter.hit("visitor:1", 10) is None  # a dropped bucket starts full again


def test_a_flood_of_fresh_visitors_from_one_address_is_refused_new_tickets_in_words_for_a_customer(
        knowledge, db: Database) -> None:
    from agents.composer import COMPOSER
    from harness.live import serve

    with db.admin() as conn:  # other tests' visitors came from this address too, within the hour
        before = conn.execute("""SELECT count(*) AS n FROM support_tickets t JOIN conversations c
                                 ON c.id = t.conversation_id WHERE c.client_address = '127.0.0.1'
                                 AND c.user_id IS NULL AND t.created_at > now() - interval '1 hour'""").fetchone()["n"]
    server = serve(db, COMPOSER, visitor_tickets_per_address=before + 5, address_messages_per_minute=1000,
                   site_messages_per_minute=1000)
    site = add_site(db, "crowd", ["https://crowd.example"])
    try:
        outcomes, answers = [], []
        for i in range(8):  # each a new visitor (a socket without a visitor id gets a fresh one)
            ws, _ = open_ws(server, site_key=site["site_key"], origin="https://crowd.example")
            message(ws, f"I want to talk to a human, visitor {i}", persona="support")
            events = until(ws, "done")
            result = next(e for e in events if e["type"] == "tool_result" and e["name"] == "create_support_ticket")
            outcomes.append("refused" if result["error"] else "ticket")
            answers.append(text_of(events))
            ws.close()
        assert outcomes == ["ticket"] * 5 + ["refused"] * 3  # 5 an hour from this address, then none
        assert answers[-1].startswith("Our support team has had a great many requests from here")
        with db.admin() as conn:  # nothing half-made: the refused ones left no ticket and no handoff
            n = conn.execute("""SELECT count(*) AS n FROM support_tickets t JOIN conversations c
                                ON c.id = t.conversation_id WHERE c.site_id = %s""", (site["id"],)).fetchone()["n"]
        assert n == 5
    finally:
        server.stop()
