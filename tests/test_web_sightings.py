"""Sightings: a real `dnsbl serve` logs sampled queries, `dnsbl ledger sightings`
takes them in, `show` and the analysts' sightings page report them."""

from __future__ import annotations

import json
import os
import re

from dnsbl.config import load_config
from tests.helpers import PASSWORD, Ledger, ServerThread, Web, login, scaled, set_analyst, wait_for

ZONE = "rep.example.org"


def dns_name(address: str) -> str:
    return ".".join(reversed(address.split("."))) + "." + ZONE


def test_sightings_from_the_query_log_scaled_counted_once_and_across_rotation(tmp_path):
    folder = tmp_path / "ledger"
    ledger = Ledger(folder, str(folder / "ledger.sqlite"))
    log = tmp_path / "queries.log"
    ledger.config.write_text(f'query_log = "{log}"\nquery_log_sample = 2\n'
                             + ledger.config.read_text())
    ledger.add("198.51.99.40", "spam", "cert-a", "spam")
    ledger.add("198.51.99.0/24", "scanner", "cert-b", "scanning net")
    ledger.add("198.51.99.41", "spam", "cert-a", "never asked")
    server = ServerThread(load_config(str(ledger.config)))
    web = None
    try:
        client = server.start()
        for _ in range(10):
            assert client.a(dns_name("198.51.99.40")) == ["127.0.0.2", "127.0.0.4"]
        for _ in range(4):
            client.a(dns_name("203.0.114.9"))  # not listed: no sighting

        def logged() -> int:
            return log.read_text().count("\n") if log.exists() else 0

        wait_for(lambda: logged() >= 7, scaled(10), what="the sampled query log")
        out = ledger.json("sightings", str(log))
        assert out["lines"] == 7 and out["bad"] == 0
        shown = ledger.json("show", "198.51.99.40")["sightings"]
        by_key = {s["key"]: s for s in shown}
        # 5 sampled lines of the address, 1 in 2 logged: 10 lookups, one resolver.
        assert by_key["198.51.99.40"]["lookups"] == 10
        assert by_key["198.51.99.0/24"]["lookups"] == 10
        assert by_key["198.51.99.40"]["resolvers"] == 1
        assert by_key["198.51.99.40"]["first"] <= by_key["198.51.99.40"]["last"]
        # .41 was never asked: only the /24 around it was seen.
        assert [s["key"] for s in ledger.json("show", "198.51.99.41")["sightings"]] == [
            "198.51.99.0/24"]
        # Read again: nothing counted twice.
        assert ledger.json("sightings", str(log))["lines"] == 0
        assert ledger.json("show", "198.51.99.40")["sightings"][0]["lookups"] == 10
        # Rotation: the log moves away, the server reopens a new file (SIGHUP's work).
        os.rename(log, tmp_path / "queries.log.1")
        server.server.query_log.reopen()
        wait_for(log.exists, scaled(10), what="the server's new query log")
        for _ in range(4):
            client.a(dns_name("198.51.99.40"))
        wait_for(lambda: logged() >= 2, scaled(10), what="the new log after rotation")
        ledger.ok("sightings", str(tmp_path / "queries.log.1"), str(log))
        lookups = {s["key"]: s["lookups"] for s in ledger.json("show", "198.51.99.40")[
            "sightings"]}
        assert lookups["198.51.99.40"] == 14
        text = ledger.ok("show", "198.51.99.40")
        assert re.search(r"198\.51\.99\.40  14 lookup\(s\) from 1 resolver\(s\)", text), text

        # The analysts' sightings page ranks them.
        assert set_analyst(ledger, "alice", PASSWORD).returncode == 0
        web = Web(ledger)
        _, cookies = login(web, "alice", PASSWORD)
        page = web.request("GET", "/ui/sightings?days=1", headers={
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}).text
        rows = re.findall(r'q=([^"]+)">[^<]+</a></td><td>(\d+)</td><td>(\d+)</td>', page)
        assert sorted(rows) == [("198.51.99.0/24", "14", "1"), ("198.51.99.40", "14", "1")]
    finally:
        if web is not None:
            web.stop()
        server.stop()


def test_sightings_follow_the_log_through_a_rotation_until_sigterm(tmp_path):
    folder = tmp_path / "ledger"
    ledger = Ledger(folder, str(folder / "ledger.sqlite"))
    log = tmp_path / "queries.log"
    ledger.config.write_text(f'query_log = "{log}"\n' + ledger.config.read_text())
    ledger.add("198.51.99.40", "spam", "cert-a", "spam")
    server = ServerThread(load_config(str(ledger.config)))
    follower = None
    try:
        client = server.start()
        follower = ledger.process("sightings", "--follow", "0.1", "--json", str(log))

        def lookups() -> int:
            seen = ledger.json("show", "198.51.99.40")["sightings"]
            return seen[0]["lookups"] if seen else 0

        for _ in range(3):
            client.a(dns_name("198.51.99.40"))
        wait_for(lambda: lookups() == 3, scaled(10), what="3 lookups followed")
        # Rotation: lines still going to the old file, then the new one.
        os.rename(log, tmp_path / "queries.log.1")
        for _ in range(2):
            client.a(dns_name("198.51.99.40"))
        wait_for(lambda: lookups() == 5, scaled(10), what="the rotated file's last lines")
        server.server.query_log.reopen()
        wait_for(log.exists, scaled(10), what="the server's new query log")
        for _ in range(4):
            client.a(dns_name("198.51.99.40"))
        wait_for(lambda: lookups() == 9, scaled(10), what="the new file followed")
        follower.terminate()
        out, err = follower.communicate(timeout=scaled(20))
        assert follower.returncode == 0, err
        assert json.loads(out)["lines"] == 9
    finally:
        if follower is not None and follower.poll() is None:
            follower.kill()
            follower.communicate()
        server.stop()
