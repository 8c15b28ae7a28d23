"""The sampled query log, written by a real server."""

from __future__ import annotations

import ipaddress
import json
import signal

import dns.rcode
import pytest

from tests.helpers import ServerThread, run_cli, samples, value, wait_for


def entries(path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_query_log_samples_and_explains(process, tmp_path, zone_file):
    log_path = tmp_path / "queries.jsonl"
    zone = zone_file([":3:Listed $", "192.0.2.0/24", "!192.0.2.128/25"])
    server = process("--zone", f"bl.test:ip4set:{zone}", "--listen", "127.0.0.1:0",
                     "--query-log", str(log_path), "--query-log-sample", "2")
    client = server.wait_listening()
    names = [f"{i}.2.0.192.bl.test" for i in range(1, 5)] + [
        f"{i}.2.0.192.bl.test" for i in range(200, 204)] + ["x.bl.test", "9.9.9.9.other.test"]
    for name in names:
        client.query(name, "A")
    wait_for(lambda: len(entries(log_path)) == 5)
    logged = entries(log_path)
    # Every second query, in order.
    assert [e["qname"] for e in logged] == names[1::2]
    first = logged[0]
    assert first["client"] == "127.0.0.1" and first["qtype"] == "A"
    assert first["rcode"] == "NOERROR"
    assert first["matched"] == [{"dataset": f"ip4set:{zone}", "entry": "192.0.2.0/24"}]
    assert logged[2]["rcode"] == "NXDOMAIN" and "matched" not in logged[2]  # excluded
    assert logged[4]["rcode"] == "REFUSED"

    # logrotate: move the file away, SIGHUP, and the server writes a new one.
    log_path.rename(tmp_path / "queries.jsonl.1")
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: log_path.exists())
    for _ in range(2):
        assert client.query("1.2.0.192.bl.test").rcode() == dns.rcode.NOERROR
    wait_for(lambda: len(entries(log_path)) == 1)
    assert server.stop() == 0


def test_query_log_that_cannot_be_opened_stops_startup(zone_file, tmp_path):

    result = run_cli("serve", "--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
                     "--listen", "127.0.0.1:0", "--metrics", "none",
                     "--query-log", str(tmp_path / "no" / "such" / "dir.log"))
    assert result.returncode == 3
    assert "cannot open query log" in result.stderr and "Traceback" not in result.stderr


def test_entries_the_writer_cannot_take_are_dropped_and_counted(tmp_path, zone_file,
                                                                monkeypatch):
    from dnsbl import querylog
    from dnsbl.config import Listen, ServerConfig, with_overrides

    # A queue of three and a writer that only wakes to stop: it cannot keep up.
    monkeypatch.setattr(querylog, "MAX_PENDING", 3)
    monkeypatch.setattr(querylog, "FLUSH_INTERVAL", 60)
    log_path = tmp_path / "queries.jsonl"
    config = with_overrides(
        ServerConfig(listen=(Listen("127.0.0.1", 0),), query_log=str(log_path)),
        zones=[f"bl.test:ip4set:{zone_file(['127.0.0.2'])}"])
    thread = ServerThread(config, metrics=Listen("127.0.0.1", 0))
    client = thread.start()
    try:
        names = [f"{i}.0.0.127.bl.test" for i in range(1, 11)]
        for name in names:
            client.query(name)
        assert value(samples(thread.server.metrics_port), "dnsbl_query_log_dropped_total") == 7
        assert entries(log_path) == []  # nothing written on the query path
    finally:
        thread.stop()
    # Stopping writes what was queued: the first three.
    assert [e["qname"] for e in entries(log_path)] == names[:3]


def test_matched_entry_for_ipv6_and_names(process, tmp_path, zone_file):
    log_path = tmp_path / "queries.jsonl"
    v6 = zone_file([":2:v6 $", "2605:6001:42::/52", "!2605:6001:42::bead", "2001:db8::5"])
    names = zone_file([":2:name $", "example.com", "*.wild.test", ".both.test",
                         "!no.both.test"])
    server = process("--zone", f"v6.test:ip6trie:{v6}", "--zone", f"dbl.test:dnset:{names}",
                     "--listen", "127.0.0.1:0", "--query-log", str(log_path))
    client = server.wait_listening()

    def nibbles(address: str) -> str:
        return ipaddress.ip_address(address).reverse_pointer.removesuffix(".ip6.arpa")

    asked = [
        (f"{nibbles('2605:6001:42::1')}.v6.test", "2605:6001:42::/52"),
        (f"{nibbles('2001:db8::5')}.v6.test", "2001:db8::5/128"),
        (f"{nibbles('2605:6001:42::bead')}.v6.test", None),  # excluded
        (f"{nibbles('2001:db8::6')}.v6.test", None),
        ("example.com.dbl.test", "example.com"),
        ("EXAMPLE.com.dbl.test", "example.com"),
        ("a.b.wild.test.dbl.test", "*.wild.test"),
        # ".both.test" lists the name and those under it: the part that matched.
        ("both.test.dbl.test", "both.test"),
        ("a.both.test.dbl.test", "*.both.test"),
        ("no.both.test.dbl.test", None),  # excluded
        ("www.example.com.dbl.test", None),  # not a wildcard entry
    ]
    for name, entry in asked:
        assert bool(client.query(name).answer) == (entry is not None), name
    wait_for(lambda: len(entries(log_path)) == len(asked))
    for logged, (name, entry) in zip(entries(log_path), asked, strict=True):
        assert logged["qname"] == name
        dataset = f"ip6trie:{v6}" if name.endswith(".v6.test") else f"dnset:{names}"
        if entry is None:
            assert "matched" not in logged, logged
        else:
            assert logged["matched"] == [{"dataset": dataset, "entry": entry}], logged
    assert server.stop() == 0


def test_entries_lost_to_a_full_disk_are_counted(process, zone_file):
    """/dev/full takes the open and fails every write with ENOSPC, as a full
    disk does; what is lost shows in dnsbl_query_log_dropped_total."""
    import os


    if not os.access("/dev/full", os.W_OK):
        pytest.skip("/dev/full is not writable here")
    server = process("--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
                     "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
                     "--query-log", "/dev/full")
    client = server.wait_listening()
    for i in range(1, 7):
        client.query(f"{i}.0.0.127.bl.test")

    def dropped() -> float:
        return value(samples(server.metrics_port), "dnsbl_query_log_dropped_total")

    wait_for(lambda: dropped() == 6, timeout=10)
    client.query("7.0.0.127.bl.test")
    wait_for(lambda: dropped() == 7, timeout=10)
    assert server.stop() == 0
    said = [line for line in "".join(server.log).splitlines() if "query log /dev/full" in line]
    assert len(said) == 1 and "No space left on device" in said[0]  # once, not per batch


def test_the_server_side_does_not_import_the_cli_explainer():
    # The query log shares what a question asks the data with `dnsbl query`
    # through dnsbl.keys, not by importing the command's module.
    import subprocess
    import sys

    code = ("import sys, dnsbl.querylog, dnsbl.server; print(sorted(m for m in "
            "('dnsbl.explain', 'dnsbl.cli', 'dnslib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=60)
    assert out.stdout.strip() == "[]"
