"""Sites vouch only for their own users: a third-party site's signed `sub` is its own user id, a support
identity of that site that reads no marketplace records unless the marketplace user linked it; a
first-party site (the marketplace's own pages) vouches for marketplace users."""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from server.auth import add_site, issue_token
from store.db import Database
from store.handoffs import customer_card
from tests.test_security import _widget
from tests.test_server import message, until


def _token(site: dict, sub: str) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 600}, site["secret"], algorithm="HS256")


def _account_tools(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] in ("tool_call", "tool_result") and e["name"] in (
        "my_account", "my_orders", "my_payments")]


def test_a_third_party_sites_token_for_a_marketplace_user_id_reads_none_of_their_rows(
        live, db: Database, demo_ids) -> None:
    site = add_site(db, "portfolio", ["https://portfolio.example"])
    mateo = demo_ids["mateo"]
    ws, ready = _widget(live, site, "https://portfolio.example", _token(site, str(mateo)))
    # the site's own user "2", not marketplace user 2: no user, no visitor id to keep
    assert ready["type"] == "ready" and ready["user"] is None and ready["site_user"] == str(mateo)
    assert ready["visitor_id"] is None
    message(ws, "Which plan am I on, and what did I pay recently?", persona="support")
    events = until(ws, "done")
    ws.close()
    assert not _account_tools(events), _account_tools(events)  # the account tools never ran
    assert "mateo@example.com" not in str(events)
    conversation = events[0]["conversation_id"]
    with db.admin() as conn:
        row = conn.execute("SELECT user_id, visitor_id, site_id FROM conversations WHERE id = %s",
                           (conversation,)).fetchone()
    assert row["user_id"] is None and row["visitor_id"].startswith("su.") and row["site_id"] == site["id"]
    card = customer_card(db, conversation)
    assert card["visitor"] and card["site_user"] == str(mateo)
    assert card["site"] == {"name": "portfolio", "first_party": False}
    # the same identity on the next visit (another device): it owns its conversation and can resume it
    ws2, _ = _widget(live, site, "https://portfolio.example", _token(site, str(mateo)))
    ws2.send(json.dumps({"type": "resume", "conversation_id": conversation, "after_seq": 0}))
    replay = until(ws2, "done")
    ws2.close()
    assert replay[0]["type"] == "ack" and replay[0]["conversation_id"] == conversation


def test_a_first_party_sites_token_reads_the_users_rows_and_the_card_says_so(
        live, db: Database, demo_ids) -> None:
    site = add_site(db, "marketplace", ["https://www.market.example"], first_party=True)
    mateo = demo_ids["mateo"]
    ws, ready = _widget(live, site, "https://www.market.example", _token(site, str(mateo)))
    assert ready["user"]["id"] == mateo and ready["site_user"] is None
    message(ws, "Which plan am I on?", persona="support")
    events = until(ws, "done")
    ws.close()
    account = next(e for e in events if e["type"] == "tool_result" and e["name"] == "my_account")
    assert account["data"]["email"] == "mateo@example.com"
    card = customer_card(db, events[0]["conversation_id"])
    assert card["user_id"] == mateo and card["site"] == {"name": "marketplace", "first_party": True}


def test_a_marketplace_user_links_a_third_party_identity_and_only_they_can(
        live, db: Database, demo_ids) -> None:
    site = add_site(db, "partner", ["https://partner.example"])
    settings = live.services.settings
    mateo, sofia = demo_ids["mateo"], demo_ids["sofia"]
    as_mateo = {"Authorization": f"Bearer {issue_token(settings, mateo)}"}
    as_sofia = {"Authorization": f"Bearer {issue_token(settings, sofia)}"}
    theirs = _token(site, "partner-user-77")
    with httpx.Client(base_url=live.http, timeout=10) as client:
        linked = client.post("/api/me/site-links", headers=as_mateo,
                             json={"site_key": site["site_key"], "user_token": theirs})
        assert linked.status_code == 201, linked.text
        assert linked.json()["external_id"] == "partner-user-77"
        # someone else cannot take the identity over, and a token the site did not sign links nothing
        taken = client.post("/api/me/site-links", headers=as_sofia,
                            json={"site_key": site["site_key"], "user_token": theirs})
        assert taken.status_code == 409 and taken.json()["detail"]["code"] == "conflict"
        forged = jwt.encode({"sub": "partner-user-78", "exp": int(time.time()) + 600}, "x" * 40, algorithm="HS256")
        refused = client.post("/api/me/site-links", headers=as_sofia,
                              json={"site_key": site["site_key"], "user_token": forged})
        assert refused.status_code == 400 and refused.json()["detail"]["code"] == "invalid_site_token"
        assert [link["external_id"] for link in client.get("/api/me/site-links", headers=as_mateo).json()] == [
            "partner-user-77"]
        ws, ready = _widget(live, site, "https://partner.example", theirs)
        assert ready["user"]["id"] == mateo  # linked: the widget on that site now knows him
        # ... as a support customer only: the site cannot reach his profile or revenue through the mentors
        assert [p["id"] for p in ready["personas"]] == ["support"]
        message(ws, "How do I grow my business?", persona="marcus")
        assert until(ws, "error")[-1]["code"] == "forbidden"
        message(ws, "Which plan am I on?", persona="support")
        linked_turn = until(ws, "done")
        assert next(e for e in linked_turn if e.get("name") == "my_account" and e["type"] == "tool_result")[
            "data"]["email"] == "mateo@example.com"
        link_id = linked.json()["id"]
        assert client.delete(f"/api/me/site-links/{link_id}", headers=as_sofia).status_code == 404
        assert client.delete(f"/api/me/site-links/{link_id}", headers=as_mateo).status_code == 204
        # the socket opened while linked: its next message is the site's identity again, with no records
        message(ws, "Which plan am I on?", persona="support")
        after = until(ws, "done")
        ws.close()
        assert not _account_tools(after) and "mateo@example.com" not in str(after)
        assert after[0]["conversation_id"] != linked_turn[0]["conversation_id"]
    ws, ready = _widget(live, site, "https://partner.example", theirs)
    ws.close()
    assert ready["user"] is None and ready["site_user"] == "partner-user-77"


@pytest.mark.parametrize(("sub", "why"), [
    ("has space", "sub must be a string of"), ("", "sub must be a string of"), ("x" * 129, "sub must be a string of"),
    ("né", "sub must be a string of"), (2, "Subject must be a string"), (None, "has no 'sub' claim")])
def test_a_third_party_sub_that_is_no_plain_id_is_refused_saying_why(live, db: Database, sub, why: str) -> None:
    site = add_site(db, f"odd-{why[:5]}-{len(str(sub))}", ["https://odd.example"])
    claims = {"exp": int(time.time()) + 600} | ({} if sub is None else {"sub": sub})
    ws, reply = _widget(live, site, "https://odd.example", jwt.encode(claims, site["secret"], algorithm="HS256"))
    assert reply["type"] == "error" and reply["code"] == "unauthorized", reply
    assert why in reply["message"], reply  # the cause, not "not signed with this site's secret"
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)


@pytest.mark.parametrize(("exp", "why"), [
    (2999 * 10**7, "valid for too long"),  # a token that works for centuries is refused
    ("2000000000", "exp must be a number"),
    (None, "has no 'exp' claim")])
def test_a_site_token_must_expire_soon_with_a_numeric_exp(live, db: Database, exp, why: str) -> None:
    site = add_site(db, f"exp-{why[:5]}", ["https://exp.example"])
    claims = {"sub": "partner-user-9"} | ({} if exp is None else {"exp": exp})
    ws, reply = _widget(live, site, "https://exp.example", jwt.encode(claims, site["secret"], algorithm="HS256"))
    assert reply["type"] == "error" and reply["code"] == "unauthorized" and why in reply["message"], reply
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)
