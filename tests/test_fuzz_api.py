"""Every route of the OpenAPI schema, fuzzed (issue 33): malformed and valid path, query and body values,
sent anonymously, as a freelancer and as a support agent, never get a 500, and every error is the family's
typed JSON with a request id and the security headers.

Schemathesis draws the requests from the app's own schema (its negative mode breaks each constraint on
purpose); the operations are listed from the schema at collection, so a new route is fuzzed without a
change here. It runs against a real server on the session database, as a user of its own.
"""

from __future__ import annotations

import json
import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from server.app import create_app
from server.auth import issue_token
from server.middleware import CSP

SCHEMA = schemathesis.openapi.from_dict(create_app().openapi())
OPERATIONS = [(path, method.upper()) for path, ops in SCHEMA.raw_schema["paths"].items() for method in ops]
# per operation and mode: ~1,500 requests in all, under a minute here; MENTOR_FUZZ_EXAMPLES=300 for a deep run
EXAMPLES = int(os.environ.get("MENTOR_FUZZ_EXAMPLES", "30"))


@pytest.fixture(scope="module")
def fuzzed(knowledge):
    """A server with limits high enough that the fuzz meets the routes, not the rate limiter."""
    from harness.live import serve

    server = serve(knowledge, user_messages_per_minute=10_000, address_messages_per_minute=100_000)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def callers(fuzzed, knowledge) -> dict[str, dict[str, str]]:
    """Anonymous, a freelancer and an agent of the fuzz's own (the demo users' allowances stay untouched)."""
    with knowledge.admin() as conn:
        ids = {}
        for handle, role in (("fuzz_user", "freelancer"), ("fuzz_agent", "agent")):
            row = conn.execute("SELECT id FROM users WHERE handle = %s", (handle,)).fetchone() or conn.execute(
                """INSERT INTO users (id, handle, name, email, role, plan_id, country)
                   VALUES ((SELECT max(id) + 1 FROM users), %s, %s, %s, %s, 'free', 'IE') RETURNING id""",
                (handle, handle.replace("_", " ").title(), f"{handle}@example.com", role)).fetchone()
            ids[handle] = row["id"]
    settings_ = fuzzed.services.settings
    return {"anonymous": {},
            **{h: {"Authorization": f"Bearer {issue_token(settings_, i)}"} for h, i in ids.items()}}


def header(response, name: str) -> str | None:
    return (response.headers.get(name.lower()) or [None])[0]  # schemathesis: lower-cased names, lists of values


def assert_typed(response, path: str) -> None:
    assert response.status_code < 500, f"{response.status_code} {response.request.method} {response.request.url}: " \
                                       f"{response.text[:400]}"
    assert header(response, "x-request-id") and header(response, "X-Content-Type-Options") == "nosniff"
    assert header(response, "Content-Security-Policy") == CSP
    if response.status_code >= 400:
        body = response.json()
        error = body["error"] if path.startswith("/v1/") else body["detail"]
        assert error["request_id"] == header(response, "x-request-id") and error["code"], body


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_no_route_answers_a_500_to_anything(fuzzed, callers, path: str, method: str) -> None:
    operation = SCHEMA[path][method]
    cases = operation.as_strategy(schemathesis.GenerationMode.NEGATIVE) | operation.as_strategy()

    @settings(max_examples=EXAMPLES * 2, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=cases, who=st.sampled_from(sorted(callers)))
    def fuzz(case, who: str) -> None:
        assert_typed(case.call(base_url=fuzzed.http, headers=callers[who], timeout=30), path)

    fuzz()


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/api/inbox/not-a-uuid", None),
    ("GET", "/api/inbox/%C3%84", None),
    ("POST", "/api/inbox/%C2%86%C3%A9/claim", None),
    ("POST", "/api/inbox/00000000-0000-0000-0000-000000000000/messages", {"text": "a\u0000b"}),
    ("POST", "/api/inbox/00000000-0000-0000-0000-000000000000/notes", {"text": "\ud800"}),
    ("POST", "/api/me/site-links", {"site_key": "\u0000", "user_token": "x"}),
    ("POST", "/api/messages/1/feedback", {"rating": 1, "comment": "\ud800"}),
    ("POST", "/v1/chat/completions", {"model": "support", "messages": [{"role": "user", "content": [
        {"type": "text", "text": 123}]}]}),
])
def test_the_reproductions_get_typed_errors(fuzzed, callers, method: str, path: str, body) -> None:
    """Each crash reported or found by the fuzz, kept as a named case: 4xx in the family's shape."""
    who = callers["fuzz_agent"] if path.startswith("/api/inbox") else callers["fuzz_user"]
    content = json.dumps(body) if body is not None else None  # "\ud800" goes out as JSON's escape, as a client sends
    response = httpx.request(method, f"{fuzzed.http}{path}", content=content, timeout=30,
                             headers={**who, "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error" if path.startswith("/v1/") else "detail"]
    assert error["request_id"] == response.headers["x-request-id"]
