"""The reputation ledger over its real CLI, real SQLite files and a real
PostgreSQL, and the zones it publishes served by the real server."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dns.rcode
import pytest

from dnsbl.ledger.store import MIGRATIONS
from tests.helpers import (
    LEDGER_ZONE,
    ROOT,
    Ledger,
    ledger_name,
    wait_for,
)

#: A report time within every category's lifetime.
RECENT = int(time.time()) - 3600



# -- add, repeat, remove --------------------------------------------------------------

def test_add_is_published_and_served_with_every_category(ledger, served):
    ledger.add("203.0.114.7", "spam", "cert-a", "spam run", "--ref", "TICKET-1",
               "--confidence", "80")
    ledger.add("203.0.114.7", "botnet-cc", "cert-b", "C2 for $family")
    ledger.add("2001:67c:10::/48", "scanner", "cert-a", "scans ssh")
    thread, client = served(ledger)
    assert client.a(ledger_name("203.0.114.7")) == ["127.0.0.2", "127.0.0.3"]
    assert client.txt(ledger_name("203.0.114.7")) == [
        "botnet-cc: C2 for $family (source cert-b, since "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}) "
        "https://rep.example.org/lookup?ip=203.0.114.7",
        f"spam: spam run (source cert-a, since {time.strftime('%Y-%m-%d', time.gmtime())}) "
        "https://rep.example.org/lookup?ip=203.0.114.7"]
    v6 = ".".join(reversed("2001067c00100000000000000000abcd")) + "." + LEDGER_ZONE
    assert client.a(v6) == ["127.0.0.4"]
    assert client.query(ledger_name("203.0.114.8")).rcode() == dns.rcode.NXDOMAIN
    # RFC 5782 test point, one A per category.
    assert client.a(ledger_name("127.0.0.2")) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert client.query(ledger_name("127.0.0.1")).rcode() == dns.rcode.NXDOMAIN


def test_a_repeat_report_extends_instead_of_duplicating(ledger):
    first = ledger.json("add", "203.0.114.7", "--category", "spam", "--source", "cert-a",
                        "--reason", "one", "--expires", "1d")
    assert (first["added"], first["extended"]) == (1, 0)
    again = ledger.json("add", "203.0.114.7", "--category", "spam", "--source", "cert-a",
                        "--reason", "two", "--expires", "5d")
    assert (again["added"], again["extended"]) == (0, 1)
    other = ledger.json("add", "203.0.114.7", "--category", "spam", "--source", "cert-b",
                        "--reason", "three")
    assert other["added"] == 1  # another source keeps its own record
    shown = ledger.json("show", "203.0.114.7")
    mine = [x for x in shown["listings"] if x["source"] == "cert-a"]
    assert len(mine) == 1 and len(shown["listings"]) == 2
    assert mine[0]["reason"] == "two" and mine[0]["expires"] == again["expires"]
    assert mine[0]["first_seen"] <= mine[0]["last_seen"]
    assert [e["action"] for e in shown["history"] if e["source"] == "cert-a"] == \
        ["add", "extend"]
    assert all(e["who"] == "tester" for e in shown["history"])
    assert "(source cert-a, cert-b, since" in ledger.zone_text()


def test_removal_sticks_against_old_evidence_and_yields_to_new(ledger, served):
    ledger.add("203.0.114.9", "spam", "cert-a", "spam")
    removed = ledger.json("remove", "203.0.114.9", "--reason", "owner cleaned up")
    assert [r["source"] for r in removed["removed"]] == ["cert-a"]
    assert "203.0.114.9" not in ledger.zone_text()
    old = ledger.write("old.csv", "key,category,source,reason,last_seen\n"
                       "203.0.114.9,spam,feed-x,seen again,2020-01-01T00:00:00Z\n")
    result = ledger.json("import", old, "--format", "csv")
    assert result["held_by_removal"] == 1 and result["added"] == 0
    assert "203.0.114.9" not in ledger.zone_text()
    newer = ledger.write("new.csv", "key,category,source,reason\n"
                         "203.0.114.9,spam,feed-x,new evidence\n")
    time.sleep(0)  # the removal and the new report may share a second: see below
    result = ledger.json("import", newer, "--format", "csv", "--seen",
                         str(int(time.time()) + 1))
    assert result["added"] == 1
    _, client = served(ledger)
    assert client.a(ledger_name("203.0.114.9")) == ["127.0.0.2"]
    history = ledger.json("history", "203.0.114.9")["history"]
    assert [e["action"] for e in history] == ["add", "remove", "add"]
    assert history[1]["why"] == "owner cleaned up"


def test_removing_what_is_not_listed_changes_nothing(ledger):
    status, out, _ = ledger("remove", "203.0.114.10", "--reason", "x")
    assert status == 1 and "no live listing" in out
    assert ledger.json("history")["history"] == []


def test_show_finds_the_networks_around_a_key(ledger):
    ledger.ok("add", "203.0.114.0/24", "--category", "spam", "--source", "a", "--reason", "net")
    ledger.ok("add", "203.0.114.5", "--category", "scanner", "--source", "b", "--reason", "one")
    ledger.ok("add", "203.0.115.5", "--category", "scanner", "--source", "b", "--reason", "no")
    ledger.ok("remove", "203.0.114.5", "--reason", "gone")
    shown = ledger.json("show", "203.0.114.5")
    assert [(x["key"], x["active"]) for x in shown["listings"]] == [
        ("203.0.114.0/24", True), ("203.0.114.5", False)]
    assert {e["action"] for e in shown["history"]} == {"add", "remove"}
    inside = ledger.json("show", "203.0.114.0/24")
    assert {x["key"] for x in inside["listings"]} == {"203.0.114.0/24", "203.0.114.5"}
    text = ledger.ok("show", "203.0.114.5")
    assert "removed" in text and "history:" in text
    status, out, _ = ledger("show", "198.18.0.1")
    assert status == 1 and "never listed" in out


def test_list_filters(ledger):
    ledger.ok("add", "203.0.114.1", "--category", "spam", "--source", "a", "--reason", "x",
              "--expires", "1h")
    ledger.ok("add", "203.0.114.2", "--category", "scanner", "--source", "b", "--reason", "y")
    keys = lambda *f: [x["key"] for x in ledger.json("list", *f)["listings"]]  # noqa: E731
    assert keys() == ["203.0.114.1", "203.0.114.2"]
    assert keys("--category", "scanner") == ["203.0.114.2"]
    assert keys("--source", "a") == ["203.0.114.1"]
    assert keys("--expiring-within", "2h") == ["203.0.114.1"]
    assert keys("--added-since", "1h") == ["203.0.114.1", "203.0.114.2"]
    assert keys("--added-since", "2999-01-01") == []


# -- the guard -----------------------------------------------------------------------

def test_guard_holds_back_special_allowlisted_and_wide_and_says_so(make_ledger, served):
    probe = make_ledger()
    allow = probe.write("allow.txt", "# partner resolvers\n203.0.114.53  # resolver\n")
    warn = probe.write("warn.json", json.dumps({
        "name": "List of known public DNS resolvers", "type": "cidr",
        "list": ["9.9.9.9/32", "2620:fe::fe", "dns.quad9.net"]}))
    ledger = make_ledger(f"allowlist = [{json.dumps(allow)}]\n"
                         f"warninglists = [{json.dumps(warn)}]\n")
    for key in ("127.0.0.1", "10.1.2.3", "11.0.0.0/8", "203.0.114.53", "9.9.9.9",
                "203.0.114.7"):
        status, _, err = ledger("add", key, "--category", "spam", "--source", "a",
                                "--reason", "r")
        assert status == 0
        assert (key == "203.0.114.7") == ("will not be published" not in err), (key, err)
    held = ledger.json("publish")["published"]
    reasons = {h["key"]: h["why"] for h in held["held"]}
    assert set(reasons) == {"127.0.0.1", "10.1.2.3", "11.0.0.0/8", "203.0.114.53", "9.9.9.9"}
    assert "special-purpose 10.0.0.0/8" in reasons["10.1.2.3"]
    assert "/8 is wider than spam allows (/24)" in reasons["11.0.0.0/8"]
    assert "allowlist" in reasons["203.0.114.53"]
    assert "MISP warninglist 'List of known public DNS resolvers'" in reasons["9.9.9.9"]
    assert held["entries"][LEDGER_ZONE] == 1
    text = ledger.ok("publish")
    assert "held back 5 listing(s)" in text
    # --force publishes one listing past the guard, and says so in the history.
    ledger.ok("add", "10.1.2.3", "--category", "spam", "--source", "a", "--reason", "r",
              "--force")
    ledger.ok("add", "127.0.0.1", "--category", "spam", "--source", "a", "--reason", "r",
              "--force")
    _, client = served(ledger)
    assert client.a(ledger_name("10.1.2.3")) == ["127.0.0.2"]
    assert client.query(ledger_name("127.0.0.1")).rcode() == dns.rcode.NXDOMAIN
    assert client.query(ledger_name("9.9.9.9")).rcode() == dns.rcode.NXDOMAIN
    assert client.query(ledger_name("11.1.1.1")).rcode() == dns.rcode.NXDOMAIN
    actions = [e["action"] for e in ledger.json("history", "10.1.2.3")["history"]]
    assert actions == ["add", "extend", "force"]


# -- expiry -----------------------------------------------------------------------------

def test_an_expired_listing_stops_being_answered_after_the_next_publish(ledger, served):
    ledger.ok("add", "203.0.114.20", "--category", "spam", "--source", "a", "--reason", "r",
              "--expires", "2s")
    ledger.ok("add", "203.0.114.21", "--category", "spam", "--source", "a", "--reason", "r")
    thread, client = served(ledger)
    assert client.a(ledger_name("203.0.114.20")) == ["127.0.0.2"]
    expires = ledger.json("show", "203.0.114.20")["listings"][0]["expires"]
    wait_for(lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) > expires, 10,
             "the listing's expiry")
    ledger.ok("publish")
    thread.check()
    assert client.query(ledger_name("203.0.114.20")).rcode() == dns.rcode.NXDOMAIN
    assert client.a(ledger_name("203.0.114.21")) == ["127.0.0.2"]


# -- bad input ------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["add", "10.0.0.0/33", "--category", "spam"], "bad address '10.0.0.0/33'"),
    # "¹" passes str.isdigit(), and int() then refuses it: one line, not a traceback.
    (["add", "10.0.0.0/\u00b9", "--category", "spam"], "bad address '10.0.0.0/\u00b9'"),
    (["add", "203.0.114.1/24", "--category", "spam"],
     "host bits set in '203.0.114.1/24' (the network is 203.0.114.0/24)"),
    (["add", "203.0.114.1", "--category", "nope"], "unknown category 'nope' (known: spam"),
    (["add", "203.0.114.1", "--category", "spam", "--expires", "2001-01-01"],
     "expiry '2001-01-01' is in the past"),
    (["add", "203.0.114.1", "--category", "spam", "--confidence", "101"],
     "confidence must be a whole number from 0 to 100"),
])
def test_bad_input_is_one_clear_message_and_changes_nothing(ledger, args, message):
    ledger.ok("add", "203.0.114.99", "--category", "spam", "--source", "a", "--reason", "r")
    before, zone = ledger.export(), ledger.zone_text()
    if "--source" not in args:
        args = [*args, "--source", "a", "--reason", "r"]
    status, out, err = ledger(*args)
    assert status == 2 and out == ""
    assert err.strip() == f"dnsbl ledger: {message}" or message in err
    assert len(err.strip().splitlines()) == 1
    assert ledger.export() == before and ledger.zone_text() == zone


def test_a_reason_over_255_bytes_is_refused(ledger):
    status, _, err = ledger("add", "203.0.114.1", "--category", "spam", "--source", "a",
                            "--reason", "é" * 128)
    assert status == 2 and "reason is 256 bytes; at most 255" in err
    assert ledger.json("history")["history"] == []


def test_an_import_is_all_or_nothing_and_names_each_bad_line(ledger):
    ledger.ok("add", "203.0.114.99", "--category", "spam", "--source", "a", "--reason", "r")
    before, zone = ledger.export(), ledger.zone_text()
    feed = ledger.write("feed.txt", "# feed\n203.0.114.1\n203.0.114.2\n10.0.0.0/33\n"
                        "203.0.114.3 # ok\n203.0.114.1/24\n")
    status, out, err = ledger("import", feed, "--format", "plain", "--source", "f",
                              "--category", "spam")
    assert status == 2
    assert f"{feed}:4: bad address '10.0.0.0/33'" in err
    assert f"{feed}:6: host bits set in '203.0.114.1/24'" in err
    assert "2 bad line(s); nothing imported" in err
    assert ledger.export() == before and ledger.zone_text() == zone
    result = ledger.json("import", feed, "--format", "plain", "--source", "f",
                         "--category", "spam", "--skip-bad")
    assert (result["added"], result["skipped"]) == (3, 2)
    assert f"{feed}:4: bad address '10.0.0.0/33'" in result["bad"]


def test_a_file_in_the_wrong_format_is_refused(ledger):
    feed = ledger.write("feed.json", '{"source.ip": "203.0.114.1"}\n')
    status, _, err = ledger("import", feed, "--format", "csv", "--source", "f",
                            "--category", "spam")
    assert status == 2 and f"{feed}:1: no key column in the header" in err
    status, _, err = ledger("import", feed, "--format", "misp-json", "--source", "f")
    assert status == 2 and "not a MISP attribute export" in err
    assert ledger.json("history")["history"] == []


# -- import formats ---------------------------------------------------------------------

def test_intelmq_events_import_with_their_categories_and_sources(ledger):
    # Times relative to now: a fixed date would expire the listings as the calendar moves on.
    seen = datetime.fromtimestamp(RECENT, UTC)
    events = [
        {"source.ip": "203.0.114.30", "classification.type": "c2-server",
         "feed.provider": "Shadowserver", "feed.accuracy": 90.0,
         "time.source": seen.isoformat(), "feed.name": "Botnet-Drone"},
        {"source.network": "203.0.114.128/25", "classification.type": "scanner",
         "feed.provider": "Abuse.ch", "time.source": (seen + timedelta(minutes=30)).isoformat(),
         "event_description.text": "scanning 22/tcp"},
        {"source.ip": "2001:67c:10::5", "classification.type": "spam",
         "feed.provider": "Spamtrap"},
    ]
    feed = ledger.write("events.jsonl", "".join(json.dumps(e) + "\n" for e in events))
    result = ledger.json("import", feed, "--format", "intelmq", "--source", "intelmq")
    assert result["added"] == 3
    got = {(x["key"], x["category"], x["source"], x["confidence"])
           for x in ledger.json("list")["listings"]}
    assert got == {("203.0.114.30", "botnet-cc", "Shadowserver", 90),
                   ("203.0.114.128/25", "scanner", "Abuse.ch", 100),
                   ("2001:67c:10::5", "spam", "Spamtrap", 100)}
    c2 = ledger.json("show", "203.0.114.30")["listings"][0]
    assert c2["first_seen"] == seen.strftime("%Y-%m-%dT%H:%M:%SZ")
    bad = ledger.write("bad.jsonl", json.dumps({"source.ip": "203.0.114.31",
                                                "classification.type": "ddos"}) + "\n")
    status, _, err = ledger("import", bad, "--format", "intelmq", "--source", "i")
    assert status == 2 and "classification.type 'ddos' maps to no category" in err


def test_misp_attribute_exports_import_json_and_csv(ledger):
    attributes = {"response": {"Attribute": [
        {"type": "ip-dst", "value": "203.0.114.40", "timestamp": str(RECENT),
         "comment": "C2 of a loader", "uuid": "5f0c-1",
         "Tag": [{"name": "tlp:green"}, {"name": 'rsit:malicious-code="c2-server"'}]},
        {"type": "ip-src", "value": "203.0.114.41", "timestamp": str(RECENT),
         "Event": {"info": "spam wave"},
         "Tag": [{"name": 'rsit:abusive-content="spam"'}]},
        {"type": "domain", "value": "bad.example", "timestamp": str(RECENT)},
    ]}}
    feed = ledger.write("misp.json", json.dumps(attributes))
    result = ledger.json("import", feed, "--format", "misp-json", "--source", "misp-cert")
    assert result["added"] == 2
    csv_feed = ledger.write("misp.csv", (
        "uuid,event_id,category,type,value,comment,to_ids,date,object_relation,"
        "attribute_tag,object_uuid,object_name,object_meta_category\n"
        f"5f0c-3,7,Network activity,ip-src,203.0.114.42,scans,1,{RECENT},,"
        '"tlp:white,scanner",,,\n'
        f"5f0c-4,7,Network activity,domain,bad.example,,1,{RECENT},,,,,\n"))
    result = ledger.json("import", csv_feed, "--format", "misp-csv", "--source", "misp-cert")
    assert result["added"] == 1
    got = {(x["key"], x["category"], x["source"], x["reason"], x["ref"])
           for x in ledger.json("list")["listings"]}
    assert got == {
        ("203.0.114.40", "botnet-cc", "misp-cert", "C2 of a loader", "misp:5f0c-1"),
        ("203.0.114.41", "spam", "misp-cert", "spam wave", ""),
        ("203.0.114.42", "scanner", "misp-cert", "scans", "misp:5f0c-3")}


def test_export_then_import_gives_the_same_published_zone(make_ledger):
    one, two = make_ledger(), make_ledger()
    one.ok("add", "203.0.114.50", "--category", "spam", "--source", "cert-a",
           "--reason", 'quotes " and, commas', "--ref", "T-1", "--confidence", "70")
    one.ok("add", "203.0.114.50", "--category", "spam", "--source", "cert-b", "--reason", "b")
    one.add("2001:67c:20::/48", "botnet-cc", "cert-a", "ünïcode reason", "--force")
    for fmt in ("json", "csv"):
        other = make_ledger() if fmt == "csv" else two
        exported = one.write(f"export.{fmt}", one.ok("export", "--format", fmt))
        result = other.json("import", exported, "--format", fmt)
        assert result["added"] == 3
        assert other.export() == one.export()
        assert other.zone_text() == one.zone_text() != ""


# -- the server ------------------------------------------------------------------------

@pytest.mark.slow
def test_serve_publishes_at_start_and_answers_an_add_within_2_seconds(ledger, process):
    text = ledger.config.read_text().replace("publish_interval = 0", "publish_interval = 1")
    ledger.config.write_text(text)
    server = process("--config", str(ledger.config))
    client = server.wait_listening()
    assert client.a(ledger_name("127.0.0.2")) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    added = time.monotonic()
    ledger.ok("add", "203.0.114.60", "--category", "spam", "--source", "a", "--reason", "r",
              "--expires", "3s")
    wait_for(lambda: client.a(ledger_name("203.0.114.60")) == ["127.0.0.2"], 10, "listed")
    assert time.monotonic() - added < 2 * (os.getloadavg()[0] / (os.cpu_count() or 1) + 1)
    # No publish by hand: the server's timer drops it once expired.
    wait_for(lambda: client.query(ledger_name("203.0.114.60")).rcode() == dns.rcode.NXDOMAIN, 20,
             "expired by the publish timer")
    assert server.stop() == 0


# -- concurrency and crashes --------------------------------------------------------------

def test_two_imports_at_once_lose_no_update(ledger):
    ledger.ok("publish")
    files = []
    for part in range(2):
        lines = [f"203.{part}.{i // 250}.{i % 250 + 1}\n" for i in range(3000)]
        lines += ["198.18.200.1\n"]  # in both: one listing per source
        files.append(ledger.write(f"feed{part}.txt", "".join(lines)))
    procs = [ledger.process("--json", "import", f, "--format", "plain", "--source",
                            f"feed{i}", "--category", "spam", "--no-publish")
             for i, f in enumerate(files)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert [r["added"] for r in results] == [3001, 3001]
    listings = ledger.json("list")["listings"]
    assert len(listings) == 6002
    assert len(ledger.json("history")["history"]) == 6002 + 1  # and the first publish


def test_kill_9_during_an_import_changes_nothing(ledger, tmp_path):
    ledger.ok("add", "203.0.114.70", "--category", "spam", "--source", "a", "--reason", "r")
    before, zone = ledger.export(), ledger.zone_text()
    fifo = tmp_path / "feed.fifo"
    os.mkfifo(fifo)
    proc = ledger.process("import", str(fifo), "--format", "plain", "--source", "f",
                          "--category", "spam")
    with open(fifo, "w") as writer:
        for i in range(20000):  # more than a batch: some are staged already
            writer.write(f"203.1.{i // 250}.{i % 250 + 1}\n")
        writer.flush()
        proc.kill()  # while it waits for the rest of the file
        proc.communicate(timeout=10)
    assert proc.returncode == -9
    assert ledger.export() == before and ledger.zone_text() == zone
    ledger.ok("add", "203.0.114.71", "--category", "spam", "--source", "a", "--reason", "r")


def test_kill_9_during_a_publish_leaves_the_served_zone_whole(ledger, served):
    lines = "".join(f"203.2.{i // 250}.{i % 250 + 1}\n" for i in range(60000))
    feed = ledger.write("big.txt", lines)
    ledger.ok("import", feed, "--format", "plain", "--source", "f", "--category", "spam",
              "--no-publish")
    ledger.ok("publish")
    published = ledger.zone_text()
    thread, client = served(ledger)
    ledger.add("203.0.114.80", "scanner", "a", "r", "--no-publish")
    temp = ledger.zone.parent
    proc = ledger.process("publish")
    wait_for(lambda: any(p.name.endswith(".tmp") for p in temp.iterdir()) or
             proc.poll() is not None, 60, "publish writing its temporary file", every=0.001)
    proc.kill()
    proc.communicate(timeout=10)
    if proc.returncode != -9:
        pytest.skip("publish finished before it could be killed (a very fast machine)")
    assert ledger.zone_text() == published
    thread.check()
    assert client.a(ledger_name("203.2.0.1")) == ["127.0.0.2"]
    assert ledger.ok("publish")
    assert not any(p.name.endswith(".tmp") for p in temp.iterdir())
    thread.check()
    assert client.a(ledger_name("203.0.114.80")) == ["127.0.0.4"]


def test_a_locked_ledger_is_one_message_and_exit_3(tmp_path):
    ledger = Ledger(tmp_path / "l", str(tmp_path / "l" / "ledger.sqlite"),
                    "lock_timeout = 0.2")
    ledger.ok("add", "203.0.114.90", "--category", "spam", "--source", "a", "--reason", "r")
    before, zone = ledger.export(), ledger.zone_text()
    holder = sqlite3.connect(tmp_path / "l" / "ledger.sqlite", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        status, _, err = ledger("add", "203.0.114.91", "--category", "spam", "--source", "a",
                                "--reason", "r")
    finally:
        holder.close()
    assert status == 3
    assert err.strip().endswith("the ledger is locked by another process (waited 0.2 s); "
                                "try again when it has finished")
    assert ledger.export() == before and ledger.zone_text() == zone


def test_the_audit_table_is_append_only(tmp_path):
    ledger = Ledger(tmp_path / "l", str(tmp_path / "l" / "ledger.sqlite"))
    ledger.ok("add", "203.0.114.90", "--category", "spam", "--source", "a", "--reason", "r")
    db = sqlite3.connect(tmp_path / "l" / "ledger.sqlite")
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM audit")
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_a_read_only_ledger_is_one_message_and_exit_3():
    folder = Path(tempfile.mkdtemp(prefix="dnsbl-ro-"))  # not under root's 0700 tmp_path
    try:
        os.chmod(folder, 0o755)
        ledger = Ledger(folder / "l", str(folder / "l" / "ledger.sqlite"))
        ledger.add("203.0.114.90", "spam", "a", "r")
        before, zone = ledger.export(), ledger.zone_text()
        command = [sys.executable, "-m", "dnsbl", "ledger", "--config", str(ledger.config),
                   "add", "203.0.114.91", "--category", "spam", "--source", "a",
                   "--reason", "r"]
        if os.geteuid() == 0:  # root writes anything: ask as nobody instead
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv (Debian: util-linux)")
            command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                       *command]
        else:
            for path in (folder / "l" / "ledger.sqlite", folder / "l"):
                os.chmod(path, 0o555 if path.is_dir() else 0o444)
        result = subprocess.run(command, capture_output=True, text=True, timeout=60,
                                cwd=ROOT)
        assert result.returncode == 3, result
        assert result.stderr.strip().endswith(
            "the ledger is read-only here; nothing was changed")
        assert len(result.stderr.strip().splitlines()) == 1
        os.chmod(folder / "l", 0o755)
        assert ledger.export() == before and ledger.zone_text() == zone
    finally:
        os.chmod(folder / "l", 0o755)
        shutil.rmtree(folder)


def test_a_long_reason_is_cut_to_fit_one_txt_string(ledger, served):
    ledger.ok("add", "203.0.114.95", "--category", "spam", "--source", "s" * 60,
              "--reason", "é" * 127)
    status, out, _ = ledger("publish")
    assert status == 0
    _, client = served(ledger)
    [txt] = client.txt(ledger_name("203.0.114.95"))
    assert len(txt.encode("latin-1")) <= 255
    assert txt.endswith("https://rep.example.org/lookup?ip=203.0.114.95")
    check = subprocess.run([sys.executable, "-m", "dnsbl", "check", "--config",
                            str(ledger.config)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "0 problem(s)" in check.stdout, check.stdout


def test_serve_with_a_ledger_it_cannot_open_and_nothing_published_says_so(tmp_path):
    ledger = Ledger(tmp_path / "l", str(tmp_path / "nowhere" / "ledger.sqlite"))
    command = [sys.executable, "-m", "dnsbl", "serve", "--config", str(ledger.config),
               "--metrics", "none", "--workers", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    [line] = result.stderr.strip().splitlines()
    assert "cannot start:" in line and "cannot create the ledger: no folder" in line
