"""`dnsbl web` over a real ledger, asked over HTTP as a tool and a browser would,
with a real `dnsbl serve` answering what it publishes."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time
import urllib.parse

import pytest

from dnsbl.config import load_config
from dnsbl.ledger.access import Access
from dnsbl.ledger.config import parse_ledger
from dnsbl.ledger.store import open_store
from dnsbl.ledger.tokens import new_token
from tests.helpers import (
    PASSWORD,
    Ledger,
    ServerThread,
    Web,
    login,
    make_token,
    scaled,
    set_analyst,
    wait_for,
)

ZONE = "rep.example.org"
WEB = """private_sources = ["quiet-feed"]
[ledger.web]
removal_instructions = "Write to abuse@example.org with the address."
lookup_rate = 1000
request_rate = 1000
"""


def dns_name(address: str) -> str:
    return ".".join(reversed(address.split("."))) + "." + ZONE


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request, tmp_path) -> Ledger:
    folder = tmp_path / "ledger"
    if request.param == "sqlite":
        return Ledger(folder, str(folder / "ledger.sqlite"), WEB)
    return Ledger(folder, request.getfixturevalue("postgres").new_database(), WEB)


@pytest.fixture
def sqlite_ledger(tmp_path) -> Ledger:
    folder = tmp_path / "ledger"
    return Ledger(folder, str(folder / "ledger.sqlite"), WEB)


@pytest.fixture
def start_web():
    started: list[Web] = []

    def _start(ledger: Ledger) -> Web:
        web = Web(ledger)
        started.append(web)
        return web

    yield _start
    for web in started:
        web.stop()
        print("".join(web.log))  # shown by pytest when the test failed


@pytest.fixture
def served():
    threads: list[ServerThread] = []

    def _serve(ledger: Ledger):
        ledger.ok("publish")  # the zone files exist before the server loads them
        thread = ServerThread(load_config(str(ledger.config)))
        threads.append(thread)
        return thread.start()

    yield _serve
    for thread in threads:
        thread.stop()


def test_token_create_prints_the_token_alone_and_keeps_only_its_digest(sqlite_ledger):
    token = make_token(sqlite_ledger, "--source", "cert-a", "--name", "feed1")
    listed = sqlite_ledger.json("token", "list")["tokens"]
    assert [(t["name"], t["sources"], t["read_only"], t["revoked"]) for t in listed] == [
        ("feed1", ["cert-a"], False, "")]
    raw = b"".join(p.read_bytes() for p in sqlite_ledger.folder.glob("ledger.sqlite*"))
    assert token.encode() not in raw
    with sqlite3.connect(sqlite_ledger.folder / "ledger.sqlite") as db:
        (digest,) = db.execute("SELECT digest FROM tokens").fetchone()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    status, _, err = sqlite_ledger("token", "create", "--source", "cert-a", "--name", "feed1")
    assert status == 2 and "a token named 'feed1' exists" in err
    assert sqlite_ledger.ok("token", "revoke", "feed1").strip() == "token feed1 revoked"
    assert sqlite_ledger("token", "revoke", "feed1")[0] == 1


def test_an_api_add_is_answered_by_dns_and_audited_with_the_token_name(
        ledger, start_web, served):
    token = make_token(ledger, "--source", "cert-a", "--name", "intelmq")
    client = served(ledger)
    web = start_web(ledger)
    started = time.monotonic()
    reply = web.request("POST", "/api/v1/listings", {
        "key": "198.51.99.7", "category": "botnet-cc", "reason": "C2 of family X",
        "ref": "TICKET-1"}, token)
    assert reply.status == 201, reply.text
    assert reply.json["added"] == 1
    wait_for(lambda: client.a(dns_name("198.51.99.7")) == ["127.0.0.3"], scaled(2),
             what="dnsbl serve answering the API's listing")
    assert time.monotonic() - started < scaled(2)
    again = web.request("POST", "/api/v1/listings", {
        "key": "198.51.99.7", "category": "botnet-cc", "reason": "seen again"}, token)
    assert again.status == 200 and again.json["extended"] == 1
    shown = web.request("GET", "/api/v1/listings/198.51.99.7", token=token).json
    assert [(h["action"], h["who"]) for h in shown["history"]] == [
        ("add", "token:intelmq"), ("extend", "token:intelmq")]
    assert shown["listings"][0]["entered_by"] == "token:intelmq"
    removed = web.request("DELETE", "/api/v1/listings/198.51.99.7",
                          {"reason": "cleaned up"}, token)
    assert removed.status == 200 and removed.json["removed"][0]["source"] == "cert-a"
    wait_for(lambda: client.a(dns_name("198.51.99.7")) == [], scaled(2),
             what="the removal answered by dnsbl serve")
    history = web.request("GET", "/api/v1/listings/198.51.99.7", token=token).json["history"]
    assert history[-1]["action"] == "remove" and history[-1]["why"] == "cleaned up"
    # Older evidence after the removal does not list it again: 409, nothing changed.
    old = web.request("POST", "/api/v1/listings", {
        "key": "198.51.99.7", "category": "botnet-cc", "reason": "old",
        "seen": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))},
        token)
    assert old.status == 409 and old.json["field"] == "seen", old.text
    assert web.request("DELETE", "/api/v1/listings/198.51.99.7", {"reason": "again"},
                       token).status == 404


def test_tokens_are_checked_on_every_request(sqlite_ledger, start_web):
    ledger = sqlite_ledger
    writer = make_token(ledger, "--source", "cert-a", "--name", "a")
    reader = make_token(ledger, "--source", "cert-a", "--name", "r", "--read-only")
    revoked = make_token(ledger, "--source", "cert-a", "--name", "gone")
    ledger.ok("token", "revoke", "gone")
    store = open_store(str(ledger.folder / "ledger.sqlite"))
    try:
        at = int(time.time())
        expired, record = new_token("old", ("cert-a",), False, at - 100, at - 1, "tester")
        Access(store).add_token(record)
    finally:
        store.close()
    web = start_web(ledger)
    listing = {"key": "198.51.99.8", "category": "spam", "reason": "r"}
    assert web.request("POST", "/api/v1/listings", listing).status == 401
    assert web.request("GET", "/api/v1/listings").status == 401
    for bad in ("dnsbl_not-a-token", revoked, expired):
        reply = web.request("POST", "/api/v1/listings", listing, bad)
        assert reply.status == 401 and "unknown, expired or revoked" in reply.json["error"]
    other = web.request("POST", "/api/v1/listings", {**listing, "source": "cert-b"}, writer)
    assert other.status == 403 and other.json["field"] == "source"
    assert "may not write source 'cert-b'" in other.json["error"]
    read_only = web.request("POST", "/api/v1/listings", listing, reader)
    assert read_only.status == 403 and "read-only" in read_only.json["error"]
    assert web.request("GET", "/api/v1/listings", token=reader).json["count"] == 0
    assert web.request("POST", "/api/v1/listings", listing, writer).status == 201
    assert web.request("DELETE", "/api/v1/listings/198.51.99.8",
                       {"reason": "x", "source": "cert-b"}, writer).status == 403


@pytest.mark.parametrize("body, field, text", [
    ({"key": "10.0.0.0/33", "category": "spam", "reason": "r"}, "key", "bad address"),
    ({"key": "10.0.0.1/24", "category": "spam", "reason": "r"}, "key", "host bits set"),
    ({"key": "198.51.99.9", "category": "nope", "reason": "r"}, "category", "unknown category"),
    ({"key": "198.51.99.9", "category": "spam"}, "reason", "is required"),
    ({"key": "198.51.99.9", "category": "spam", "reason": "x" * 256}, "reason", "256 bytes"),
    ({"key": "198.51.99.9", "category": "spam", "reason": "r", "expires": "2001-01-01"},
     "expires", "in the past"),
    ({"key": "198.51.99.9", "category": "spam", "reason": "r", "confidence": 101},
     "confidence", "0 to 100"),
    ({"key": "198.51.99.9", "category": "spam", "reason": "r", "colour": "red"},
     "colour", "unknown field"),
])
def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(
        sqlite_ledger, start_web, body, field, text):
    token = make_token(sqlite_ledger, "--source", "cert-a")
    web = start_web(sqlite_ledger)
    reply = web.request("POST", "/api/v1/listings", body, token)
    assert reply.status == 400 and reply.json["field"] == field, reply.text
    assert text in reply.json["error"]
    assert web.request("GET", "/api/v1/listings?all=1", token=token).json["count"] == 0


def test_bulk_ndjson_is_all_or_nothing(ledger, start_web):
    token = make_token(ledger, "--source", "cert-a")
    web = start_web(ledger)
    lines = [json.dumps({"key": f"198.51.99.{i}", "category": "scanner", "reason": "scan"})
             for i in range(1, 51)]
    broken = "\n".join([*lines[:20], '{"key": "300.1.1.1", "category": "scanner", '
                        '"reason": "x"}', *lines[20:]])
    reply = web.request("POST", "/api/v1/listings/bulk", broken, token,
                        {"Content-Type": "application/x-ndjson"})
    assert reply.status == 400 and "line 21: key: bad address '300.1.1.1'" in reply.json[
        "error"], reply.text
    assert web.request("GET", "/api/v1/listings", token=token).json["count"] == 0
    foreign = "\n".join([*lines, json.dumps({"key": "198.51.99.99", "category": "spam",
                                             "reason": "x", "source": "cert-b"})])
    assert web.request("POST", "/api/v1/listings/bulk", foreign, token).status == 403
    reply = web.request("POST", "/api/v1/listings/bulk", "\n".join(lines), token)
    assert reply.status == 200 and reply.json["added"] == 50 and reply.json["records"] == 50
    found = web.request("GET", "/api/v1/listings?category=scanner&limit=10", token=token)
    assert found.json["count"] == 10
    assert web.request("GET", "/api/v1/listings?source=cert-b", token=token).json[
        "count"] == 0
    assert web.request("GET", "/api/v1/listings?expiring_within=4d", token=token).json[
        "count"] == 50
    assert web.request("GET", "/api/v1/listings?expiring_within=1d", token=token).json[
        "count"] == 0
    assert web.request("GET", "/api/v1/listings?expiring_within=soon",
                       token=token).json["field"] == "expiring_within"


def test_oversized_bodies_are_413_and_the_openapi_description_is_served(
        sqlite_ledger, start_web):
    token = make_token(sqlite_ledger, "--source", "cert-a")
    web = start_web(sqlite_ledger)
    huge = {"key": "198.51.99.1", "category": "spam", "reason": "r", "ref": "x" * 70_000}
    reply = web.request("POST", "/api/v1/listings", huge, token)
    assert reply.status == 413 and "at most 65536" in reply.json["error"]
    spec = web.request("GET", "/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/listings", "/api/v1/listings/bulk", "/api/v1/listings/{key}"} <= set(
        spec["paths"])
    assert web.request("GET", "/api/v1/nothing").status == 404


def test_the_api_rate_limit_answers_429(tmp_path, start_web):
    folder = tmp_path / "ledger"
    ledger = Ledger(folder, str(folder / "ledger.sqlite"), "[ledger.web]\napi_rate = 3\n")
    token = make_token(ledger, "--source", "cert-a")
    web = start_web(ledger)
    statuses = [web.request("GET", "/api/v1/listings", token=token).status
                for _ in range(20)]
    assert statuses[:3] == [200] * 3 and 429 in statuses
    limited = web.request("GET", "/api/v1/listings", token=token)
    if limited.status == 429:
        assert int(limited.headers["retry-after"]) >= 1


def test_html_and_sql_in_fields_come_back_escaped_and_change_nothing_else(
        sqlite_ledger, start_web):
    token = make_token(sqlite_ledger, "--source", "cert-a")
    web = start_web(sqlite_ledger)
    nasty = "<script>alert(1)</script>'); DROP TABLE listings; --"
    for address in ("198.51.99.1", "198.51.99.2"):
        assert web.request("POST", "/api/v1/listings", {
            "key": address, "category": "spam", "reason": nasty}, token).status == 201
    page = web.request("GET", "/lookup?ip=198.51.99.1").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#39;); DROP TABLE listings; --" in page
    assert web.request("GET", "/api/v1/listings/198.51.99.1", token=token).json[
        "listings"][0]["reason"] == nasty
    assert web.request("GET", "/api/v1/listings", token=token).json["count"] == 2
    box = web.request("GET", "/lookup?ip=" + urllib.parse.quote(nasty)).text
    assert "<script>alert(1)</script>" not in box and "bad address" in box
    with_search = web.request("GET", "/api/v1/listings?source=" + urllib.parse.quote(nasty),
                              token=token)
    assert with_search.json["count"] == 0


def test_the_public_lookup_shows_what_is_published_and_nothing_not_public(
        sqlite_ledger, start_web):
    ledger = sqlite_ledger
    ledger.add("198.51.99.5", "spam", "cert-a", "sent spam", "--ref", "INTERNAL-REF-77")
    ledger.add("198.51.99.5", "scanner", "quiet-feed", "scanned ssh")
    ledger.add("10.1.2.3", "spam", "cert-a", "held by the guard")
    web = start_web(ledger)
    reply = web.request("GET", "/lookup?ip=198.51.99.5", headers={"Accept": "application/json"})
    assert reply.status == 200
    zone = reply.json["zones"][0]
    assert zone["zone"] == ZONE and zone["listed"] is True
    assert sorted((x["category"], x.get("source")) for x in zone["listings"]) == [
        ("scanner", None), ("spam", "cert-a")]
    assert reply.json["removal_instructions"].startswith("Write to abuse@example.org")
    for text in (reply.text, web.request("GET", "/lookup?ip=198.51.99.5").text):
        assert "quiet-feed" not in text and "INTERNAL-REF-77" not in text
        assert "tester" not in text  # who entered it
    page = web.request("GET", "/lookup?ip=198.51.99.5").text
    assert "is listed in rep.example.org" in page and "sent spam" in page
    assert "Write to abuse@example.org with the address." in page
    held = web.request("GET", "/lookup?ip=10.1.2.3", headers={"Accept": "application/json"})
    assert held.json["zones"][0]["listed"] is False  # not published: not listed
    bad = web.request("GET", "/lookup?ip=10.0.0.0/8", headers={"Accept": "application/json"})
    assert bad.status == 400 and bad.json["field"] == "ip"


def test_the_public_lookup_is_rate_limited_per_client(tmp_path, start_web):
    folder = tmp_path / "ledger"
    ledger = Ledger(folder, str(folder / "ledger.sqlite"), "[ledger.web]\nlookup_rate = 5\n")
    web = start_web(ledger)
    statuses = [web.request("GET", "/lookup?ip=198.51.99.1").status for _ in range(12)]
    assert statuses[:5] == [200] * 5 and 429 in statuses


def _form(web: Web, address: str) -> tuple[str, str]:
    page = web.request("GET", f"/lookup?ip={address}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    return page.cookies["dnsbl_csrf"], csrf.group(1)


def _post_form(web: Web, fields: dict[str, str], cookie: str | None):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if cookie:
        headers["Cookie"] = f"dnsbl_csrf={cookie}"
    return web.request("POST", "/lookup/request", urllib.parse.urlencode(fields),
                       headers=headers)


def test_a_removal_request_is_queued_once_and_approval_removes_the_listing(
        sqlite_ledger, start_web, served):
    ledger = sqlite_ledger
    ledger.add("198.51.99.6", "spam", "cert-a", "sent spam")
    ledger.add("198.51.99.4", "spam", "cert-a", "sent spam")
    token = make_token(ledger, "--source", "cert-a", "--name", "analyst")
    client = served(ledger)
    web = start_web(ledger)
    cookie, csrf = _form(web, "198.51.99.6")
    fields = {"ip": "198.51.99.6", "contact": "owner@example.net",
              "message": "fixed <b>it</b>", "csrf": csrf}
    assert _post_form(web, fields, None).status == 403
    assert _post_form(web, {**fields, "csrf": "forged"}, cookie).status == 403
    assert web.request("GET", "/api/v1/requests", token=token).json["requests"] == []
    first = _post_form(web, fields, cookie)
    assert first.status == 200 and "is queued for an analyst" in first.text
    second = _post_form(web, fields, cookie)
    assert "already pending" in second.text
    pending = web.request("GET", "/api/v1/requests", token=token).json["requests"]
    assert [(r["key"], r["contact"], r["message"]) for r in pending] == [
        ("198.51.99.6", "owner@example.net", "fixed <b>it</b>")]
    # Asking changes nothing by itself.
    assert client.a(dns_name("198.51.99.6")) == ["127.0.0.2"]
    assert _post_form(web, {**fields, "contact": "not an address"}, cookie).status == 400
    decided = web.request("POST", f"/api/v1/requests/{pending[0]['id']}/approve", b"",
                          token)
    assert decided.status == 200 and decided.json["request"]["state"] == "approved"
    wait_for(lambda: client.a(dns_name("198.51.99.6")) == [], scaled(2),
             what="the approved removal answered by dnsbl serve")
    history = web.request("GET", "/api/v1/listings/198.51.99.6", token=token).json["history"]
    assert history[-1]["action"] == "remove" and history[-1]["who"] == "token:analyst"
    assert f"removal request #{pending[0]['id']} from owner@example.net" in history[-1]["why"]
    # A rejection changes no listing.
    cookie, csrf = _form(web, "198.51.99.4")
    _post_form(web, {**fields, "ip": "198.51.99.4", "csrf": csrf}, cookie)
    (other,) = web.request("GET", "/api/v1/requests", token=token).json["requests"]
    assert web.request("POST", f"/api/v1/requests/{other['id']}/reject", b"",
                       token).json["request"]["state"] == "rejected"
    assert web.request("POST", f"/api/v1/requests/{other['id']}/reject", b"",
                       token).status == 404
    assert client.a(dns_name("198.51.99.4")) == ["127.0.0.2"]


def test_removal_requests_are_rate_limited_per_client(tmp_path, start_web):
    folder = tmp_path / "ledger"
    ledger = Ledger(folder, str(folder / "ledger.sqlite"), "[ledger.web]\nrequest_rate = 2\n")
    ledger.add("198.51.99.6", "spam", "cert-a", "sent spam")
    web = start_web(ledger)
    cookie, csrf = _form(web, "198.51.99.6")
    fields = {"ip": "198.51.99.6", "contact": "owner@example.net", "message": "m",
              "csrf": csrf}
    statuses = [_post_form(web, fields, cookie).status for _ in range(4)]
    assert statuses == [200, 200, 429, 429]


def test_web_listens_on_loopback_unless_configured_and_counts_requests(
        sqlite_ledger, start_web):
    assert parse_ledger({}, "/tmp").web.listen == "127.0.0.1:8080"
    web = start_web(sqlite_ledger)
    assert any(f"serving http://127.0.0.1:{web.port}" in line for line in web.log)
    sqlite_ledger.add("198.51.99.5", "spam", "cert-a", "r")
    web.request("GET", "/lookup?ip=198.51.99.5")
    web.request("GET", "/api/v1/listings")
    metrics = web.request("GET", "/metrics").text
    assert 'dnsbl_web_requests_total{route="/lookup",status="200"} 1.0' in metrics
    assert 'dnsbl_web_requests_total{route="/api/v1/listings",status="401"} 1.0' in metrics
    assert 'dnsbl_ledger_listings{category="spam",source="cert-a"} 1.0' in metrics
    assert "dnsbl_ledger_removal_requests_pending 0.0" in metrics


def test_a_change_pending_publication_is_published_when_web_stops(sqlite_ledger, start_web):
    token = make_token(sqlite_ledger, "--source", "cert-a")
    sqlite_ledger.ok("publish")
    web = start_web(sqlite_ledger)
    assert web.request("POST", "/api/v1/listings", {
        "key": "198.51.99.50", "category": "spam", "reason": "r"}, token).status == 201
    web.stop()  # at once: within the publish delay
    # uvicorn ends by re-raising the SIGTERM it handled: systemd's clean stop.
    assert web.proc.returncode in (0, -signal.SIGTERM), "".join(web.log)
    assert "Traceback" not in "".join(web.log)
    assert "198.51.99.50" in sqlite_ledger.zone_text()


def test_a_locked_ledger_answers_503_with_retry_after_and_changes_nothing(tmp_path, start_web):
    folder = tmp_path / "ledger"
    ledger = Ledger(folder, str(folder / "ledger.sqlite"), "lock_timeout = 0.5\n" + WEB)
    token = make_token(ledger, "--source", "cert-a")
    web = start_web(ledger)
    item = {"key": "198.51.99.60", "category": "spam", "reason": "r"}
    holder = sqlite3.connect(str(folder / "ledger.sqlite"), isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another writer, holding the lock
        reply = web.request("POST", "/api/v1/listings", item, token)
        assert reply.status == 503, reply.body
        assert "locked by another process" in reply.json["error"]
        assert reply.json["status"] == 503
        assert reply.headers["retry-after"] == "1"
        # Reads go on (WAL): the busy writer does not stop the lookups.
        assert web.request("GET", "/lookup?ip=198.51.99.60",
                           headers={"Accept": "application/json"}).status == 200
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert web.request("GET", "/api/v1/listings/198.51.99.60", token=token).status == 404
    assert web.request("POST", "/api/v1/listings", item, token).status == 201


def test_search_a_key_and_recent_changes_come_in_pages_over_the_api_and_ui(
        ledger, start_web):
    token = make_token(ledger, "--source", "cert-a")
    assert set_analyst(ledger, "alice", PASSWORD).returncode == 0
    web = start_web(ledger)
    keys = [f"198.51.99.{i}" for i in range(250)]
    lines = [json.dumps({"key": k, "category": "spam", "reason": "r"}) for k in keys]
    assert web.request("POST", "/api/v1/listings/bulk", "\n".join(lines),
                       token).json["records"] == 250

    def walk(path: str, items: str, cursor: str, param: str) -> tuple[list, list[int]]:
        found, sizes, at = [], [], None
        while True:
            reply = web.request("GET", path + (f"&{param}={at}" if at is not None else ""),
                                token=token)
            assert reply.status == 200, reply.body
            found += reply.json[items]
            sizes.append(len(reply.json[items]))
            at = reply.json[cursor]
            if at is None:
                return found, sizes
            assert len(sizes) < 10, "the pages never end"

    listed, sizes = walk("/api/v1/listings?limit=100", "listings", "next_offset", "offset")
    assert sizes == [100, 100, 50] and sorted(x["key"] for x in listed) == sorted(keys)
    inside, sizes = walk("/api/v1/listings/198.51.99.0/24?limit=120", "listings",
                         "next_offset", "offset")
    assert sizes == [120, 120, 10] and len({x["key"] for x in inside}) == 250
    changes, sizes = walk("/api/v1/changes?limit=100", "changes", "next_before", "before")
    ids = [c["id"] for c in changes]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    assert sum(c["action"] == "add" for c in changes) == 250 and sizes[0] == 100
    for bad_page, field in (("limit=0", "limit"), ("limit=1001", "limit"),
                            ("offset=-1", "offset"), ("offset=x", "offset")):
        reply = web.request("GET", f"/api/v1/listings?{bad_page}", token=token)
        assert reply.status == 400 and reply.json["field"] == field, bad_page
    # The analysts' pages: 100 rows, and a link to the rest.
    _, cookies = login(web, "alice", PASSWORD)
    cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    home = web.request("GET", "/ui", headers=cookie).text
    recent = re.search(r'<table id="recent">(.*?)</table>', home, re.S).group(1)
    assert recent.count("<tr><td>") == 100
    older = re.search(r'id="older" href="([^"]+)"', home).group(1)
    rest = web.request("GET", older.replace("&amp;", "&"), headers=cookie).text
    shown = re.search(r'<table id="recent">(.*?)</table>', rest, re.S).group(1)
    assert shown.count("<tr><td>") == 100 and 'id="older"' in rest
    search = web.request("GET", "/ui/search?q=198.51.99.0/24", headers=cookie).text
    assert search.count('class="live"') == 100
    more = re.search(r'id="more" href="([^"]+)"', search).group(1).replace("&amp;", "&")
    last = web.request("GET", more, headers=cookie).text
    last = web.request("GET", re.search(r'id="more" href="([^"]+)"', last).group(1).replace(
        "&amp;", "&"), headers=cookie).text
    assert last.count('class="live"') == 50 and 'id="more"' not in last
