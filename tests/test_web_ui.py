"""The analysts' pages of `dnsbl web` over HTTP: login, sessions, CSRF, changes."""

from __future__ import annotations

import re

import pytest

from tests.helpers import PASSWORD, Ledger, Web, form, login, make_token, set_analyst


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
