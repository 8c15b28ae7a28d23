"""The analysts' pages of `dnsbl web` over HTTP: login, sessions, CSRF, changes."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import urllib.parse

import pytest

from tests.helpers import (
    PASSWORD,
    Ledger,
    Web,
    form,
    free_port,
    login,
    make_token,
    scaled,
    set_analyst,
    wait_for,
)


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    folder = tmp_path / "ledger"
    ledger = Ledger(folder, str(folder / "ledger.sqlite"))
    assert set_analyst(ledger, "alice", PASSWORD).returncode == 0
    return ledger


@pytest.fixture
def web(ledger):
    web = Web(ledger)
    yield web
    web.stop()
    print("".join(web.log))


def csrf_of(web: Web, path: str, cookies: dict[str, str]) -> str:
    page = web.request("GET", path, headers={
        "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})
    assert page.status == 200, page.text
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def test_a_short_password_is_refused_and_none_is_stored_in_clear(ledger):
    done = set_analyst(ledger, "bob", "short")
    assert done.returncode == 2 and "at least 12 characters" in done.stderr
    raw = b"".join(p.read_bytes() for p in ledger.folder.glob("ledger.sqlite*"))
    assert PASSWORD.encode() not in raw and b"scrypt$" in raw


def test_login_gives_no_hint_and_repeated_failures_are_slowed(web):
    assert web.request("GET", "/ui").status == 303  # to the login page
    wrong_name, _ = login(web, "mallory", PASSWORD)
    wrong_password, _ = login(web, "alice", "not the password")
    assert wrong_name.status == wrong_password.status == 401
    assert "wrong name or password" in wrong_name.text
    def page(reply) -> str:
        return re.sub(r'value="[^"]+"', "", reply.text)

    assert page(wrong_name) == page(wrong_password)
    statuses = [login(web, "alice", f"guess {i}")[0].status for i in range(5)]
    assert statuses[-1] == 429 and 401 in statuses
    # Even the right password waits now: the client is slowed, not told.
    assert login(web, "alice", PASSWORD)[0].status == 429


def test_a_session_changes_listings_and_every_form_needs_its_csrf_token(web, ledger):
    reply, cookies = login(web, "alice", PASSWORD)
    assert reply.status == 303 and reply.headers["location"] == "/ui"
    session = [c.strip() for c in reply.headers.get("set-cookie", "").split(";")]
    assert "HttpOnly" in session and "SameSite=strict" in session and "Path=/ui" in session
    csrf = csrf_of(web, "/ui", cookies)
    add = {"key": "198.51.99.20", "category": "spam", "source": "cert-a",
           "reason": "<i>spam</i> run", "csrf": csrf}
    assert form(web, "/ui/add", {**add, "csrf": ""}, cookies).status == 403
    assert form(web, "/ui/add", {**add, "csrf": "0" * 64}, cookies).status == 403
    assert ledger("show", "198.51.99.20")[0] == 1  # nothing was added
    done = form(web, "/ui/add", add, cookies)
    assert done.status == 303
    page = web.request("GET", done.headers["location"], headers={
        "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}).text
    assert "&lt;i&gt;spam&lt;/i&gt; run" in page and "web:alice" in page
    removal = {"key": "198.51.99.20", "category": "spam", "source": "cert-a",
               "reason": "false positive", "csrf": csrf}
    assert form(web, "/ui/remove", {**removal, "csrf": ""}, cookies).status == 403
    assert form(web, "/ui/remove", removal, cookies).status == 303
    shown = ledger.json("show", "198.51.99.20")
    assert [(h["action"], h["who"]) for h in shown["history"]] == [
        ("add", "web:alice"), ("remove", "web:alice")]
    make_token(ledger, "--source", "cert-a", "--name", "feed")
    assert "feed" in web.request("GET", "/ui/tokens", headers={
        "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}).text
    assert form(web, "/ui/tokens/revoke", {"name": "feed", "csrf": ""}, cookies).status == 403
    assert form(web, "/ui/tokens/revoke", {"name": "feed", "csrf": csrf},
                cookies).status == 303
    assert ledger.json("token", "list")["tokens"][0]["revoked"]
    assert form(web, "/ui/logout", {"csrf": csrf}, cookies).status == 303
    assert web.request("GET", "/ui", headers={
        "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}).status == 303


def test_tokens_are_made_in_the_ui_shown_once_and_revoked_there(web, ledger):
    _, cookies = login(web, "alice", PASSWORD)
    cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    csrf = csrf_of(web, "/ui/tokens", cookies)
    fields = {"name": "misp-feed", "sources": "cert-a, cert-b", "expires": "30d"}
    assert form(web, "/ui/tokens", fields, cookies).status == 403  # no CSRF token
    assert ledger.json("token", "list")["tokens"] == []
    made = form(web, "/ui/tokens", {**fields, "csrf": csrf}, cookies)
    assert made.status == 201 and made.headers["cache-control"] == "no-store"
    secret = re.search(r'<code id="secret">(dnsbl_[A-Za-z0-9_-]{43})</code>', made.text).group(1)
    assert secret not in web.request("GET", "/ui/tokens", headers=cookie).text
    [kept] = ledger.json("token", "list")["tokens"]
    assert kept["name"] == "misp-feed" and kept["sources"] == ["cert-a", "cert-b"]
    assert kept["expires"] and not kept["read_only"] and kept["who"] == "web:alice"
    item = {"key": "198.51.99.30", "category": "spam", "source": "cert-b", "reason": "r"}
    assert web.request("POST", "/api/v1/listings", item, secret).status == 201
    assert web.request("POST", "/api/v1/listings", {**item, "source": "cert-c"},
                       secret).status == 403
    reader = form(web, "/ui/tokens", {"sources": "cert-a", "read_only": "1", "csrf": csrf},
                  cookies)
    read_only = re.search(r'<code id="secret">([^<]+)</code>', reader.text).group(1)
    assert web.request("POST", "/api/v1/listings", {**item, "source": "cert-a"},
                       read_only).status == 403
    # A name taken, or HTML for a name: 400, said on the page, escaped, nothing made.
    taken = form(web, "/ui/tokens", {**fields, "csrf": csrf}, cookies)
    assert taken.status == 400 and "a token named &#39;misp-feed&#39; exists" in taken.text
    html = form(web, "/ui/tokens", {"name": "<b>x y</b>", "sources": "cert-a",
                                     "csrf": csrf}, cookies)
    assert html.status == 400 and "<b>" not in html.text and "&lt;b&gt;x y" in html.text
    assert len(ledger.json("token", "list")["tokens"]) == 2
    # Revoked in the UI: the API refuses it at once.
    assert form(web, "/ui/tokens/revoke", {"name": "misp-feed", "csrf": csrf},
                cookies).status == 303
    assert web.request("GET", "/api/v1/listings", token=secret).status == 401


NASTY = "<script>alert(1)</script>'); DROP TABLE listings; --"


def test_html_and_sql_from_the_public_and_the_search_box_reach_analysts_escaped(web, ledger):
    ledger.add("198.51.99.6", "spam", "cert-a", "sent spam")
    page = web.request("GET", "/lookup?ip=198.51.99.6")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    # A contact with markup is refused, and said escaped; a message with it is kept.
    odd = form(web, "/lookup/request", {"ip": "198.51.99.6", "message": "m", "csrf": csrf,
                                        "contact": "<b>x</b>'@example.net"}, page.cookies)
    assert odd.status == 400 and "contact:" in odd.text and "<b>x</b>" not in odd.text
    asked = form(web, "/lookup/request", {"ip": "198.51.99.6", "contact": "o@example.net",
                                          "message": NASTY, "csrf": csrf}, page.cookies)
    assert asked.status == 200 and "<script>" not in asked.text
    _, cookies = login(web, "alice", PASSWORD)
    cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    queue = web.request("GET", "/ui/requests", headers=cookie).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#39;); DROP TABLE listings" in queue
    assert "<script>" not in queue
    # The analysts' search box: escaped, refused as an address, nothing changed.
    box = web.request("GET", "/ui/search?q=" + urllib.parse.quote(NASTY), headers=cookie)
    assert box.status == 400 and "<script>" not in box.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in box.text and "bad address" in box.text
    assert ledger.json("show", "198.51.99.6")["listings"][0]["reason"] == "sent spam"
    # A form body over max_body: 413, as a page, and nothing added.
    huge = form(web, "/ui/add", {"key": "198.51.99.7", "category": "spam", "source": "a",
                                 "reason": "x" * 70_000, "csrf": csrf_of(web, "/ui", cookies)},
                cookies)
    assert huge.status == 413 and "<html" in huge.text.lower()
    assert ledger("show", "198.51.99.7")[0] == 1


def _web_process(ledger: Ledger) -> subprocess.Popen:
    """`dnsbl web --config` as its configuration says, without --listen."""
    return subprocess.Popen([sys.executable, "-m", "dnsbl", "web", "--config",
                             str(ledger.config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _end(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(scaled(20))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()


def test_dnsbl_web_listens_on_loopback_unless_configured(ledger):
    proc = _web_process(ledger)
    try:
        timer = threading.Timer(scaled(30), proc.kill)  # a bounded wait for its first line
        timer.start()
        try:
            first = proc.stdout.readline()
        finally:
            timer.cancel()
        assert first.startswith("dnsbl web: serving http://127.0.0.1:8080 "), first
    finally:
        _end(proc)
    port = free_port()
    ledger.config.write_text(ledger.config.read_text().replace(
        "[ledger.categories.spam]", f'[ledger.web]\nlisten = "127.0.0.2:{port}"\n\n'
                                    "[ledger.categories.spam]"))
    configured = _web_process(ledger)
    try:
        def answers() -> bool:
            if configured.poll() is not None:
                raise AssertionError(configured.stdout.read())
            try:
                socket.create_connection(("127.0.0.2", port), 1).close()
                return True
            except OSError:
                return False

        wait_for(answers, scaled(30), what="dnsbl web on the configured address")
    finally:
        _end(configured)


def test_the_home_page_lists_what_expires_within_two_days(web, ledger):
    ledger.add("198.51.99.50", "spam", "cert-a", "soon", "--expires", "1d")
    ledger.add("198.51.99.51", "spam", "cert-a", "later", "--expires", "5d")
    _, cookies = login(web, "alice", PASSWORD)
    home = web.request("GET", "/ui", headers={
        "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}).text
    expiring = re.search(r'<table id="expiring">(.*?)</table>', home, re.S).group(1)
    assert "198.51.99.50" in expiring and "198.51.99.51" not in expiring
    recent = re.search(r'<table id="recent">(.*?)</table>', home, re.S).group(1)
    assert recent.index("198.51.99.51") < recent.index("198.51.99.50")  # newest first
