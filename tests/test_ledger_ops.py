"""The ledger where the machine works against it (a full disk, a read-only
ledger), what serve's /metrics says of a publish, and the ledger's own
allowlist. Over the real CLI, real SQLite files and a real server."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from tests.helpers import ROOT, Ledger, ledger_name, samples, value, wait_for

#: A ledger made by this dnsbl, taken back to schema version 1: the tables
#: of later versions dropped.
BACK_TO_V1 = ("DROP TABLE allowlist; DROP TABLE tokens; DROP TABLE removal_requests; "
              "DROP TABLE analysts; DROP TABLE sessions; DROP TABLE sightings; "
              "DROP TABLE sighting_resolvers; DROP TABLE sighting_files; "
              "PRAGMA user_version = 1")


def _dump(database: Path) -> list[str]:
    """Everything in an SQLite ledger, as SQL: equal dumps, equal ledgers."""
    with tempfile.TemporaryDirectory() as scratch:  # opening it would leave a -shm
        copy = Path(scratch) / database.name
        for suffix in ("", "-wal"):
            if Path(f"{database}{suffix}").exists():
                shutil.copyfile(f"{database}{suffix}", f"{copy}{suffix}")
        db = sqlite3.connect(copy)
        try:
            return list(db.iterdump())
        finally:
            db.close()


def _zones(ledger: Ledger) -> dict[str, bytes]:
    folder = ledger.zone.parent
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


def _full_disk() -> None:
    """In the child: no file may grow past one byte, as on a full disk (EFBIG
    instead of ENOSPC, and no signal: the write fails and the program says so)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, 1))


def _cli(ledger: Ledger, *args: str, preexec=None, as_nobody: bool = False
         ) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dnsbl", "ledger", "--config", str(ledger.config),
               "--by", "tester", *args]
    if as_nobody:
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT,
                          preexec_fn=preexec)


@pytest.fixture
def sqlite_ledger(tmp_path) -> Ledger:
    ledger = Ledger(tmp_path / "l", str(tmp_path / "l" / "ledger.sqlite"))
    ledger.ok("add", "203.0.114.90", "--category", "spam", "--source", "a", "--reason", "r")
    return ledger


@pytest.mark.parametrize("command", ["add", "import", "publish"])
def test_a_full_disk_is_one_message_and_changes_nothing(sqlite_ledger, command):
    ledger = sqlite_ledger
    database = ledger.folder / "ledger.sqlite"
    if command == "add":
        args = ["add", "203.0.114.91", "--category", "spam", "--source", "a", "--reason", "r"]
    elif command == "import":
        args = ["import", ledger.write("feed.txt", "203.0.114.92\n203.0.114.93\n"),
                "--format", "plain", "--source", "feed", "--category", "scanner"]
    else:  # a publish with something to write
        ledger.add("203.0.114.94", "spam", "a", "r", "--no-publish")
        args = ["publish"]
    before, zones = _dump(database), _zones(ledger)
    result = _cli(ledger, *args, preexec=_full_disk)
    assert result.returncode == 3, result
    [line] = result.stderr.strip().splitlines()
    assert "full" in line and "nothing was changed" in line or "the old files stay" in line, line
    assert _dump(database) == before
    assert _zones(ledger) == zones
    # The same command with room on the disk goes through.
    assert _cli(ledger, *args).returncode == 0


@pytest.fixture
def read_only_ledger(request) -> Iterator[tuple[Ledger, bool]]:
    """A ledger in a folder this test's CLI cannot write: (ledger, run as nobody);
    with the schema of an older dnsbl when the test is parametrized ``old``."""
    folder = Path(tempfile.mkdtemp(prefix="dnsbl-ro-"))  # not under root's 0700 tmp_path
    os.chmod(folder, 0o755)
    ledger = Ledger(folder / "l", str(folder / "l" / "ledger.sqlite"))
    as_nobody = os.geteuid() == 0  # root writes anything: ask as nobody instead
    try:
        ledger.add("203.0.114.90", "spam", "a", "r")
        if getattr(request, "param", "") == "old":  # as written before the allowlist
            db = sqlite3.connect(folder / "l" / "ledger.sqlite")
            try:
                db.executescript(BACK_TO_V1)
            finally:
                db.close()
        if as_nobody and shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv (Debian: util-linux)")
        os.chmod(folder / "l" / "ledger.sqlite", 0o444)
        os.chmod(folder / "l", 0o555)
        yield ledger, as_nobody
    finally:
        os.chmod(folder / "l", 0o755)
        shutil.rmtree(folder)


@pytest.mark.parametrize("read_only_ledger", ["current", "old"], indirect=True)
def test_a_read_only_ledger_can_be_read_and_refuses_writes_in_one_line(read_only_ledger):
    ledger, as_nobody = read_only_ledger
    database = ledger.folder / "ledger.sqlite"
    assert not list(ledger.folder.glob("ledger.sqlite-*"))  # no -wal, no -shm to lean on
    before, zones = _dump(database), _zones(ledger)
    shown = _cli(ledger, "show", "203.0.114.90", as_nobody=as_nobody)
    assert shown.returncode == 0, shown
    assert "203.0.114.90  spam  a  live" in shown.stdout
    listed = _cli(ledger, "list", as_nobody=as_nobody)
    assert listed.returncode == 0 and "203.0.114.90" in listed.stdout, listed
    for args in (["add", "203.0.114.91", "--category", "spam", "--source", "a",
                  "--reason", "r"],
                 ["remove", "203.0.114.90", "--reason", "r"]):
        result = _cli(ledger, *args, as_nobody=as_nobody)
        assert result.returncode == 3, result
        [line] = result.stderr.strip().splitlines()
        assert line.endswith("the ledger is read-only here; nothing was changed"), line
    assert _dump(database) == before and _zones(ledger) == zones


# -- what the guard held back, for Prometheus --------------------------------------------

def held(seen: dict, reason: str) -> float:
    return value(seen, "dnsbl_ledger_held_back", reason=reason)


def entries(seen: dict, category: str) -> float:
    return value(seen, "dnsbl_ledger_published_entries", category=category,
                 zone="rep.example.org")


def test_serve_exports_what_the_last_publish_held_back_and_wrote(tmp_path, process):
    probe = Ledger(tmp_path / "probe", str(tmp_path / "probe" / "ledger.sqlite"))
    allow = probe.write("allow.txt", "203.0.114.53\n")
    ledger = Ledger(tmp_path / "l", str(tmp_path / "l" / "ledger.sqlite"),
                    f"allowlist = [{json.dumps(allow)}]")
    for key, category in (("127.0.0.1", "spam"), ("10.1.2.3", "spam"), ("11.0.0.0/8", "spam"),
                          ("203.0.114.53", "spam"), ("203.0.114.7", "spam"),
                          ("203.0.115.8", "spam"), ("2001:67c::/48", "scanner")):
        ledger.ok("add", key, "--category", category, "--source", "a", "--reason", "r",
                  "--no-publish")
    server = process("--config", str(ledger.config), "--metrics", "127.0.0.1:0")
    server.wait_listening()  # serve publishes at start-up
    seen = samples(server.metrics_port)
    assert {reason: held(seen, reason) for reason in
            ("never", "special_purpose", "too_wide", "allowlist", "warninglist")} == {
        "never": 1, "special_purpose": 1, "too_wide": 1, "allowlist": 1, "warninglist": 0}
    assert (entries(seen, "spam"), entries(seen, "scanner"), entries(seen, "botnet-cc")) \
        == (2, 1, 0)
    assert value(seen, "dnsbl_ledger_last_publish_timestamp_seconds") > 0
    # A change by an analyst publishes one file; the next scrape counts it.
    ledger.ok("add", "203.0.114.9", "--category", "botnet-cc", "--source", "a", "--reason", "r")
    ledger.ok("remove", "203.0.114.53", "--reason", "ours after all")
    seen = samples(server.metrics_port)
    assert entries(seen, "botnet-cc") == 1 and held(seen, "allowlist") == 0
    assert (entries(seen, "spam"), held(seen, "never")) == (2, 1)
    assert server.stop() == 0


# -- the allowlist kept in the ledger --------------------------------------------------

def test_the_ledgers_own_allowlist_is_audited_and_honoured_at_publish(
        make_ledger, served):  # noqa: F811
    ledger = make_ledger()
    ledger.ok("add", "203.0.114.7", "--category", "spam", "--source", "a", "--reason", "r")
    _, client = served(ledger)
    assert client.a(ledger_name("203.0.114.7")) == ["127.0.0.2"]
    out = ledger.ok("allow", "add", "203.0.114.0/24", "--reason", "our mail relays")
    assert "203.0.114.0/24 is allowlisted" in out
    held = ledger.json("publish")["published"]["held"]
    assert [(h["key"], h["why"]) for h in held] == [
        ("203.0.114.7", "allowlist in the ledger: 203.0.114.0/24 (our mail relays)")]
    wait_for(lambda: client.query(ledger_name("203.0.114.7")).rcode() == dns.rcode.NXDOMAIN, 10,
             "held back by the ledger's allowlist")
    status, _, err = ledger("add", "203.0.114.8", "--category", "spam", "--source", "a",
                            "--reason", "r")
    assert status == 0 and "203.0.114.8 will not be published: allowlist in the ledger" in err
    [entry] = ledger.json("allow", "list")["allowlist"]
    assert (entry["key"], entry["who"], entry["why"]) == (
        "203.0.114.0/24", "tester", "our mail relays")
    ledger.ok("allow", "remove", "203.0.114.0/24", "--reason", "relays moved")
    wait_for(lambda: client.a(ledger_name("203.0.114.7")) == ["127.0.0.2"], 10, "listed again")
    history = ledger.json("history", "203.0.114.0/24")["history"]
    assert [(e["action"], e["who"], e["why"]) for e in history] == [
        ("allow", "tester", "our mail relays"), ("unallow", "tester", "relays moved")]
    assert ledger.json("allow", "list")["allowlist"] == []
    status, out, _ = ledger("allow", "remove", "203.0.114.0/24", "--reason", "again")
    assert status == 1 and "not on the ledger's allowlist" in out
    status, _, err = ledger("allow", "add", "203.0.114.0/33", "--reason", "r")
    assert status == 2 and len(err.strip().splitlines()) == 1 and "203.0.114.0/33" in err


def test_a_ledger_of_the_previous_schema_gains_the_allowlist_on_first_use(sqlite_ledger):
    database = sqlite_ledger.folder / "ledger.sqlite"
    db = sqlite3.connect(database)
    try:
        db.executescript(BACK_TO_V1)
    finally:
        db.close()
    sqlite_ledger.ok("allow", "add", "203.0.114.90", "--reason", "ours")
    assert sqlite_ledger.json("allow", "list")["allowlist"][0]["key"] == "203.0.114.90"
    assert "203.0.114.90" not in sqlite_ledger.zone_text()
    assert sqlite_ledger.json("show", "203.0.114.90")["listings"][0]["active"]
