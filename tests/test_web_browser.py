"""The browser paths of `dnsbl web` in a real headless Chromium (Debian's
chromium and chromium-driver), with a real `dnsbl serve` answering."""

from __future__ import annotations

import shutil
import tempfile
import time

import pytest

from dnsbl.config import load_config
from tests.helpers import PASSWORD, Ledger, ServerThread, Web, scaled, set_analyst, wait_for

pytestmark = pytest.mark.slow
ZONE = "rep.example.org"


def dns_name(address: str) -> str:
    return ".".join(reversed(address.split("."))) + "." + ZONE


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                    "(pip install -e '.[test]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("Chromium is not installed (Debian: chromium chromium-driver)")
    from selenium.common.exceptions import SessionNotCreatedException
    from selenium.webdriver.chrome.service import Service

    def start(profile: str):
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--disable-dev-shm-usage",
                     f"--user-data-dir={profile}"):
            options.add_argument(flag)
        return webdriver.Chrome(service=Service(driver_path), options=options)

    # On a loaded host Chromium may not be up before chromedriver gives up on
    # it ("DevToolsActivePort file doesn't exist"): three tries, each with a
    # fresh profile, before that is a failure.
    profiles: list[str] = []
    try:
        for attempt in range(3):
            profiles.append(tempfile.mkdtemp(prefix="dnsbl-chromium-"))
            try:
                driver = start(profiles[-1])
                break
            except SessionNotCreatedException:
                if attempt == 2:
                    raise
    except BaseException:
        for profile in profiles:
            shutil.rmtree(profile, ignore_errors=True)
        raise
    driver.set_page_load_timeout(scaled(30))
    try:
        yield driver
    finally:
        driver.quit()
        for profile in profiles:
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def site(tmp_path):
    folder = tmp_path / "ledger"
    # dnsbl web takes the server's query log in itself, every 0.2 s.
    ledger = Ledger(folder, str(folder / "ledger.sqlite"),
                    '[ledger.web]\nremoval_instructions = "Mail abuse@example.org."\n'
                    f'[ledger.sightings]\nlogs = ["{tmp_path / "queries.log"}"]\n'
                    "interval = 0.2\n")
    ledger.config.write_text(f'query_log = "{tmp_path / "queries.log"}"\n'
                             + ledger.config.read_text())
    done = set_analyst(ledger, "alice", PASSWORD)
    assert done.returncode == 0, done.stderr
    ledger.add("198.51.99.30", "spam", "cert-a", "spam run")
    server = ServerThread(load_config(str(ledger.config)))
    web = None
    try:
        client = server.start()
        web = Web(ledger)
        yield ledger, web, client
    finally:
        if web is not None:
            web.stop()
        server.stop()


def test_lookup_request_login_add_remove_and_approve_in_a_browser(browser, site):
    from selenium.webdriver.common.by import By

    ledger, web, client = site
    base = f"http://127.0.0.1:{web.port}"

    def find(css: str):
        return browser.find_element(By.CSS_SELECTOR, css)

    # The public lookup and a removal request.
    browser.get(f"{base}/lookup")
    find("#ip").send_keys("198.51.99.30")
    find("#look").click()
    wait_for(lambda: "is listed in rep.example.org" in browser.page_source, scaled(10),
             what="the lookup result")
    assert "spam run" in browser.page_source and "Mail abuse@example.org." in find(
        "#instructions").text
    find("#contact").send_keys("owner@example.net")
    find("#text").send_keys("we fixed the relay")
    find("#send").click()
    wait_for(lambda: "is queued for an analyst" in browser.page_source, scaled(10),
             what="the request queued")

    # The analyst logs in, adds a listing: dnsbl serve answers it within 2 s.
    browser.get(f"{base}/ui/login")
    find("#name").send_keys("alice")
    find("#password").send_keys(PASSWORD)
    find("#login").click()
    wait_for(lambda: browser.find_elements(By.ID, "add-key"), scaled(10), what="the UI")
    find("#add-key").send_keys("198.51.99.31")
    find("#add-source").send_keys("cert-a")
    find("#add-reason").send_keys("brute force on ssh")
    find("#add-category").send_keys("scanner")
    added = time.monotonic()
    find("#add-submit").click()
    wait_for(lambda: client.a(dns_name("198.51.99.31")) == ["127.0.0.4"], scaled(2),
             what="dnsbl serve answering the listing added in the browser")
    assert time.monotonic() - added < scaled(2)
    wait_for(lambda: "web:alice" in browser.page_source, scaled(10), what="the history")

    # The sightings view: the address looked up three times, taken in from the
    # server's log by dnsbl web while it serves.
    for _ in range(3):
        client.a(dns_name("198.51.99.30"))

    def sighted() -> list[str]:
        find("#nav-sightings").click()
        wait_for(lambda: browser.find_elements(By.ID, "sightings"), scaled(10),
                 what="the sightings page")
        return [r.text.split()[:3] for r in browser.find_elements(
            By.CSS_SELECTOR, "#sightings tr") if "198.51.99.30" in r.text]

    wait_for(lambda: sighted() == [["198.51.99.30", "3", "1"]], scaled(10),
             what="3 lookups from 1 resolver on the sightings page")

    # A token for a partner team: shown once, and it works.
    find("#nav-tokens").click()
    wait_for(lambda: browser.find_elements(By.ID, "token-sources"), scaled(10),
             what="the tokens page")
    find("#token-name").send_keys("partner")
    find("#token-sources").send_keys("cert-b")
    find("#token-submit").click()
    wait_for(lambda: browser.find_elements(By.ID, "secret"), scaled(10), what="the secret")
    secret = find("#secret").text
    assert web.request("POST", "/api/v1/listings", {
        "key": "198.51.99.32", "category": "spam", "reason": "r"}, secret).status == 201

    # Search, then remove it with a reason.
    find("#q").clear()
    find("#q").send_keys("198.51.99.31")
    find("#search").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".remove"), scaled(10),
             what="the search result")
    find(".remove-reason").send_keys("cleaned")
    find(".remove").click()
    wait_for(lambda: client.a(dns_name("198.51.99.31")) == [], scaled(2),
             what="the removal answered")

    # Approve the removal request: the listing goes, with the request as the reason.
    browser.get(f"{base}/ui/requests")
    assert "we fixed the relay" in find("#requests").text
    find(".approve").click()
    wait_for(lambda: "No request pending." in browser.page_source, scaled(10),
             what="the queue emptied")
    wait_for(lambda: client.a(dns_name("198.51.99.30")) == [], scaled(2),
             what="the approved removal answered")
    last = ledger.json("show", "198.51.99.30")["history"][-1]
    assert last["action"] == "remove" and "we fixed the relay" in last["why"]
