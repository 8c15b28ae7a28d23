"""Sightings: a real `dnsbl serve` logs sampled queries, `dnsbl ledger sightings`
takes them in, `show` and the analysts' sightings page report them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from dnsbl.config import load_config
from dnsbl.ledger.sighted import Sightings
from dnsbl.ledger.sightings import take_in
from dnsbl.ledger.store import open_store
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


def test_dnsbl_web_follows_the_servers_query_log_through_rotation_and_restarts(
        tmp_path, process):
    folder = tmp_path / "ledger"
    log = tmp_path / "queries.log"
    ledger = Ledger(folder, str(folder / "ledger.sqlite"),
                    f'[ledger.sightings]\nlogs = ["{log}"]\ninterval = 0.2\n')
    ledger.config.write_text(f'query_log = "{log}"\nquery_log_sample = 2\n'
                             + ledger.config.read_text())
    ledger.add("198.51.99.40", "spam", "cert-a", "spam")
    ledger.ok("publish")
    token = make_token(ledger, "--source", "cert-a", "--read-only")
    assert set_analyst(ledger, "alice", PASSWORD).returncode == 0
    server = process("--config", str(ledger.config))
    client = server.wait_listening()
    webs: list[Web] = []
    try:
        webs.append(Web(ledger))

        def lookups() -> int:
            reply = webs[-1].request("GET", "/api/v1/listings/198.51.99.40", token=token)
            assert reply.status == 200, reply.body
            return sum(s["lookups"] for s in reply.json["sightings"])

        def ask(times: int) -> None:
            for _ in range(times):
                assert client.a(dns_name("198.51.99.40")) == ["127.0.0.2"]

        ask(10)  # 1 in 2 logged: 5 lines, 10 lookups
        wait_for(lambda: lookups() == 10, scaled(15), what="10 lookups taken in by dnsbl web")
        # logrotate: the log is renamed, the server goes on writing to it until
        # SIGHUP makes it open a new one. Both files' lines count, once.
        os.rename(log, tmp_path / "queries.log.1")
        ask(4)
        server.proc.send_signal(signal.SIGHUP)
        wait_for(log.exists, scaled(10), what="the server's new query log")
        ask(6)
        wait_for(lambda: lookups() == 20, scaled(15), what="both files taken in")
        # A restart reads on from where the last run stopped: nothing twice.
        webs[-1].stop()
        ask(2)
        webs.append(Web(ledger))
        wait_for(lambda: lookups() == 22, scaled(15), what="the lines written meanwhile")
        _, cookies = login(webs[-1], "alice", PASSWORD)
        page = webs[-1].request("GET", "/ui/sightings?days=1", headers={
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}).text
        rows = re.findall(r'q=([^"]+)">[^<]+</a></td><td>(\d+)</td><td>(\d+)</td>', page)
        assert rows == [("198.51.99.40", "22", "1")]
        search = webs[-1].request("GET", "/ui/search?q=198.51.99.40", headers={
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}).text
        assert re.search(r"<td>198\.51\.99\.40</td><td>22</td><td>1</td>", search), search
        assert lookups() == 22
    finally:
        for web in webs:
            web.stop()
            print("".join(web.log))


def test_two_readers_of_one_log_never_count_a_line_twice(tmp_path):
    folder = tmp_path / "ledger"
    ledger = Ledger(folder, str(folder / "ledger.sqlite"))
    ledger.add("198.51.99.40", "spam", "cert-a", "spam")
    ledger.ok("publish")
    config = load_config(str(ledger.config)).ledger
    zone_file = next(iter(sorted((folder / "published").glob("*.zone"))))
    log = tmp_path / "queries.log"
    log.write_text("".join(json.dumps({
        "time": 1_700_000_000 + i, "client": "192.0.2.1", "matched": [
            {"dataset": f"ip4set:{zone_file}", "entry": "198.51.99.40"}]}) + "\n"
        for i in range(3)))
    first, second = open_store(config.database), open_store(config.database)
    try:
        where = (str(log.stat().st_dev), log.stat().st_ino)
        # The second reader looked at the log before the first took it in...
        started = {where: Sightings(second).log_offset(*where)}
        assert take_in(first, config, [str(log)], 1)["matches"] == 3
        # ...so what it read from there is refused, not added again.
        seen = {("198.51.99.40", 1_700_000_000 // 86400): [3, 1, 1, {"192.0.2.1"}]}
        assert not Sightings(second).add(seen, {where: log.stat().st_size}, started)
        assert take_in(second, config, [str(log)], 1)["matches"] == 0
        assert Sightings(first).top(limit=5)[0][1] == 3
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("table, message", [
    ('logs = "q.log"\nevery = 1', "[ledger.sightings]: unknown setting(s): every"),
    ("logs = [1]", "[ledger.sightings]: logs must be a list of strings"),
    ("sample = -1", "[ledger.sightings]: sample must be a whole number, 1 or more"),
    ("interval = 0", "[ledger.sightings]: interval must be a number of seconds above 0, not 0"),
])
def test_bad_sightings_settings_are_refused_by_dnsbl_web_naming_them(tmp_path, table,
                                                                     message):
    folder = tmp_path / "ledger"
    ledger = Ledger(folder, str(folder / "ledger.sqlite"), f"[ledger.sightings]\n{table}\n")
    done = subprocess.run([sys.executable, "-m", "dnsbl", "web", "--config",
                           str(ledger.config)], capture_output=True, text=True,
                          timeout=scaled(60))
    assert done.returncode != 0 and f"{ledger.config}: {message}" in done.stderr, done.stderr
