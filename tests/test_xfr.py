"""Zone transfer from `dnsbl serve`: AXFR and IXFR over TCP, the ACL, and
what a client that asks wrongly or stops reading gets; queries are answered
all along."""

from __future__ import annotations

import ipaddress
import random
import shutil
import socket
import struct
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest

from dnsbl.config import Listen, load_config
from tests.helpers import (
    NAMED,
    ROOT,
    Daemon,
    Named,
    ServerThread,
    Told,
    ask,
    free_port,
    scaled,
    seen,
    stop_all,
    wait_for,
)

DATA = """\
$SOA 3600 ns1.example.org hostmaster.example.org 7 1h 15m 1w 300
$NS 0 ns1.example.org
$TTL 600
:127.0.0.2:Listed: $
127.0.0.2
10.0.0.0/8 :3:Big block
!10.1.0.0/16
203.0.113.10-203.0.113.20
"""


SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ=="  # 28 bytes, base64


def config_file(tmp_path: Path, transfer: str = '["127.0.0.0/8", "::1"]',
                data: str = DATA, key: str | None = None) -> Path:
    (tmp_path / "bl.zone").write_text(data)
    path = tmp_path / "dnsbl.toml"
    tsig = f'[tsig]\n"{key}" = "{SECRET}"\n' if key else ""
    path.write_text(f"""\
{tsig}[[zone]]
name = "bl.example.org"
type = "ip4set"
files = ["bl.zone"]
transfer = {transfer}
{f'transfer_key = "{key}"' if key else ""}
""")
    return path


@pytest.fixture
def server(tmp_path):
    """start(config path, **settings) -> the ServerThread serving it, with metrics."""
    started: list[ServerThread] = []

    def start(path: Path, **settings) -> ServerThread:
        config = replace(load_config(str(path)), listen=(Listen("127.0.0.1", 0),), **settings)
        thread = ServerThread(config, metrics=Listen("127.0.0.1", 0))
        started.append(thread)
        thread.start()
        return thread

    yield start
    stop_all([t.stop for t in started])


def port(thread: ServerThread) -> int:
    assert thread.server is not None
    return thread.server.bound[0].port


def transfer_count(thread: ServerThread, kind: str, result: str) -> float:
    from urllib.request import urlopen

    assert thread.server is not None and thread.server.metrics_port is not None
    with urlopen(f"http://127.0.0.1:{thread.server.metrics_port}/metrics",
                 timeout=scaled(10)) as r:
        text = r.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines()  # over every zone
               if line.startswith("dnsbl_xfr_requests_total{") and f'kind="{kind}"' in line
               and f'result="{result}"' in line)


def exported(path: Path) -> dns.zone.Zone:
    done = subprocess.run([sys.executable, "-m", "dnsbl", "export", "--config", str(path),
                           "bl.example.org"], cwd=ROOT, capture_output=True, text=True,
                          timeout=scaled(60))
    assert done.returncode == 0, done.stderr
    return dns.zone.from_text(done.stdout, origin="bl.example.org.", relativize=False)


def test_axfr_sends_what_export_writes(tmp_path, server):
    path = config_file(tmp_path)
    thread = server(path)
    zone = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "bl.example.org.", port=port(thread),
                                           relativize=False, timeout=scaled(10)),
                             relativize=False)
    assert zone == exported(path)
    assert zone.get_rdataset("bl.example.org.", "SOA")[0].serial == 7
    # 10/8 less 10.1/16: a wildcard for each other /16, none for 10.1.
    assert zone.get_rdataset("*.2.10.bl.example.org.", "A")[0].address == "127.0.0.3"
    assert zone.get_node("*.10.bl.example.org.") is None
    assert zone.get_node("*.1.10.bl.example.org.") is None
    assert transfer_count(thread, "axfr", "ok") == 1


def test_ixfr_current_or_future_serial_is_one_soa_unknown_the_whole_zone(tmp_path, server):
    thread = server(config_file(tmp_path))
    # 3: a serial not kept (none are yet); 8: newer than ours (RFC 1982).
    for serial, whole in ((7, False), (3, True), (8, False)):
        q = dns.message.make_query("bl.example.org", "IXFR")
        q.authority.append(dns.rrset.from_text(
            "bl.example.org.", 0, "IN", "SOA",
            f"ns1.example.org. hostmaster.example.org. {serial} 1 1 1 1"))
        with socket.create_connection(("127.0.0.1", port(thread)), timeout=scaled(10)) as s:
            dns.query.send_tcp(s, q)
            r, _ = dns.query.receive_tcp(s, one_rr_per_rrset=True)
            rrsets = list(r.answer)
            while whole and rrsets[-1].rdtype != dns.rdatatype.SOA:  # more messages
                rrsets += dns.query.receive_tcp(s, one_rr_per_rrset=True)[0].answer
        assert r.rcode() == dns.rcode.NOERROR
        types = [rrset.rdtype for rrset in rrsets]
        assert types[0] == dns.rdatatype.SOA and rrsets[0][0].serial == 7
        if whole:  # the AXFR form: SOA, the records, SOA
            assert types.count(dns.rdatatype.SOA) == 2 and len(types) > 500
        else:
            assert types == [dns.rdatatype.SOA]
    assert transfer_count(thread, "ixfr", "uptodate") == 1
    assert transfer_count(thread, "ixfr", "full") == 1
    assert transfer_count(thread, "ixfr", "future") == 1


@pytest.mark.slow
def test_an_ixfr_right_after_a_change_waits_for_its_difference(tmp_path, server):
    # Big enough that the difference takes a while to make: the IXFR below
    # comes while it is being made, and must get it, not the whole zone.
    rng = random.Random(17)
    singles = {f"198.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
               for _ in range(30000)}
    data = DATA + "".join(f"{a}\n" for a in singles)
    thread = server(config_file(tmp_path, data=data), check_interval=0)
    origin = "bl.example.org."
    old = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", origin, port=port(thread),
                                          relativize=False, timeout=scaled(30)),
                            relativize=False)
    (tmp_path / "bl.zone").write_text(data + "192.0.2.1\n")
    assert thread.check()
    query, _serial = dns.xfr.make_query(old)
    dns.query.inbound_xfr("127.0.0.1", old, query, port=port(thread), timeout=scaled(60))
    assert old.get_rdataset(origin, "SOA")[0].serial == 8
    assert old.get_rdataset("1.2.0.192." + origin, "A") is not None
    wait_for(lambda: transfer_count(thread, "ixfr", "ok") == 1, timeout=scaled(20),
             what="the IXFR counted")
    assert transfer_count(thread, "ixfr", "full") == 0


@pytest.mark.parametrize("transfer", ['["10.0.0.0/8"]', "[]"])
def test_outside_the_acl_or_not_transferable_is_refused_and_counted(tmp_path, server,
                                                                    transfer):
    thread = server(config_file(tmp_path, transfer))
    q = dns.message.make_query("bl.example.org", "AXFR")
    r = dns.query.tcp(q, "127.0.0.1", port=port(thread), timeout=scaled(10))
    if transfer == "[]":  # no zone transferable: transfers are not served at all
        assert r.rcode() == dns.rcode.NOTIMP
        return
    assert r.rcode() == dns.rcode.REFUSED
    assert not r.answer
    assert transfer_count(thread, "axfr", "refused") == 1
    # A zone we do not serve: refused too.
    q = dns.message.make_query("other.example.org", "AXFR")
    assert dns.query.tcp(q, "127.0.0.1", port=port(thread),
                         timeout=scaled(10)).rcode() == dns.rcode.REFUSED


def test_axfr_over_udp_is_not_served(tmp_path, server):
    thread = server(config_file(tmp_path))
    q = dns.message.make_query("bl.example.org", "AXFR")
    r = dns.query.udp(q, "127.0.0.1", port=port(thread), timeout=scaled(10))
    assert r.rcode() == dns.rcode.NOTIMP
    r = dns.query.udp(dns.message.make_query("2.0.0.127.bl.example.org", "A"), "127.0.0.1",
                      port=port(thread), timeout=scaled(10))
    assert [rd.address for rrset in r.answer for rd in rrset] == ["127.0.0.2"]


READER = """
import socket, struct, sys
import dns.message
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=float(sys.argv[2]))
query = dns.message.make_query("bl.example.org", "AXFR").to_wire()
sock.sendall(struct.pack(">H", len(query)) + query)
stream = sock.makefile("rb")
records = soas = 0
while soas < 2:
    size, = struct.unpack(">H", stream.read(2))
    wire = stream.read(size)
    records += struct.unpack(">H", wire[6:8])[0]
    soas += wire.count(b"\\x00\\x06\\x00\\x01\\x00\\x00")  # type SOA, class IN, a TTL
print(records, dns.message.from_wire(wire).answer[-1])
"""


def big_zone(count: int) -> str:
    lines = [DATA]
    lines += [f"{10 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.1 :4:Host $" for i in range(count)]
    return "\n".join(lines).replace("10.0.0.0/8 :3:Big block\n!10.1.0.0/16\n", "") + "\n"


@pytest.mark.slow
def test_a_client_that_stops_reading_is_cut_off_and_queries_go_on(tmp_path, server):
    path = config_file(tmp_path, data=big_zone(60_000))
    thread = server(path, tcp_idle_timeout=scaled(1.0))
    # Ask for the zone and read nothing: a small receive buffer fills at once.
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", port(thread)))
        wire = dns.message.make_query("bl.example.org", "AXFR").to_wire()
        stalled.sendall(struct.pack(">H", len(wire)) + wire)
        # Meanwhile every query is answered, over UDP and over TCP.
        started = time.monotonic()
        for i in range(20):
            name = f"1.{i}.0.10.bl.example.org"
            r = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1",
                              port=port(thread), timeout=scaled(5))
            assert [rd.address for rrset in r.answer for rd in rrset] == ["127.0.0.4"]
        r = dns.query.tcp(dns.message.make_query("2.0.0.127.bl.example.org", "A"),
                          "127.0.0.1", port=port(thread), timeout=scaled(5))
        assert r.rcode() == dns.rcode.NOERROR
        assert time.monotonic() - started < scaled(10)
        # The stalled transfer ends, counted, once the idle timeout passes.
        wait_for(lambda: transfer_count(thread, "axfr", "aborted") == 1, timeout=scaled(30))
    finally:
        stalled.close()
    # And the next transfer goes through whole, to a client in a process of
    # its own (in this one it would share the interpreter lock with the
    # server) that reads as fast as a secondary: records counted, not parsed.
    done = subprocess.run([sys.executable, "-c", READER, str(port(thread)), str(scaled(60))],
                          capture_output=True, text=True, timeout=scaled(120))
    assert done.returncode == 0, done.stderr
    records, last = done.stdout.split(None, 1)
    assert int(records) > 120_000
    assert "SOA" in last
    assert transfer_count(thread, "axfr", "ok") == 1


def test_tsig_signed_transfer_and_what_a_bad_or_missing_key_gets(tmp_path, server):
    path = config_file(tmp_path, key="xfr.example.org")
    thread = server(path)
    good = dns.tsigkeyring.from_text({"xfr.example.org.": ("hmac-sha256", SECRET)})
    # dnspython checks the TSIG of every message it reads, and fails on a bad one.
    zone = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "bl.example.org.", port=port(thread),
                                           relativize=False, keyring=good,
                                           keyname="xfr.example.org.",
                                           keyalgorithm="hmac-sha256", timeout=scaled(10)),
                             relativize=False)
    assert zone == exported(path)
    assert transfer_count(thread, "axfr", "ok") == 1
    wrong = dns.tsigkeyring.from_text({
        "xfr.example.org.": ("hmac-sha256", "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==")})
    other = dns.tsigkeyring.from_text({"other.example.org.": ("hmac-sha256", SECRET)})
    for keyring, rcode in ((None, dns.rcode.REFUSED), (wrong, dns.rcode.NOTAUTH),
                           (other, dns.rcode.NOTAUTH)):
        q = dns.message.make_query("bl.example.org", "AXFR")
        if keyring is not None:
            q.use_tsig(keyring, algorithm="hmac-sha256")
        with socket.create_connection(("127.0.0.1", port(thread)), timeout=scaled(10)) as s:
            dns.query.send_tcp(s, q)
            # Read as sent: a NOTAUTH's TSIG carries no MAC to check (RFC 8945 5.3.2).
            r, _ = dns.query.receive_tcp(s, time.time() + scaled(10), keyring=False)
        assert r.rcode() == rcode, keyring
        assert not r.answer
        if rcode == dns.rcode.NOTAUTH:
            assert r.tsig_error == (dns.rcode.BADSIG if keyring is wrong else dns.rcode.BADKEY)
    assert transfer_count(thread, "axfr", "refused") == 1
    assert transfer_count(thread, "axfr", "notauth") == 2
    # Queries are still answered.
    r = dns.query.udp(dns.message.make_query("2.0.0.127.bl.example.org", "A"), "127.0.0.1",
                      port=port(thread), timeout=scaled(10))
    assert [rd.address for rrset in r.answer for rd in rrset] == ["127.0.0.2"]


def test_a_transfer_key_not_in_tsig_is_a_configuration_error(tmp_path):
    path = config_file(tmp_path, key="xfr.example.org")
    path.write_text(path.read_text().replace('"xfr.example.org" =', '"other.example.org" ='))
    done = subprocess.run([sys.executable, "-m", "dnsbl", "check", "--config", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=scaled(60))
    assert done.returncode == 2
    assert "'transfer_key' 'xfr.example.org' is not a key of [tsig]" in done.stderr


# -- the RPZ form ---------------------------------------------------------------------

RPZ_POLICY = """
rpz = { origin = "rpz.bl.example.org" }
[rpz]
default = "nxdomain"
allowlist = ["allow.txt"]
[rpz.actions]
"127.0.0.3" = "drop"
"""


def rpz_config(tmp_path: Path, transfer: str = '["127.0.0.0/8", "::1"]',
               key: str | None = None) -> Path:
    path = config_file(tmp_path, transfer, key=key)
    (tmp_path / "allow.txt").write_text("10.9.9.9\n")
    path.write_text(path.read_text() + RPZ_POLICY)
    return path


def rpz_exported(path: Path) -> dns.zone.Zone:
    done = subprocess.run([sys.executable, "-m", "dnsbl", "export", "--config", str(path),
                           "bl.example.org", "--format", "rpz", "--origin",
                           "rpz.bl.example.org"],
                          cwd=ROOT, capture_output=True, text=True, timeout=scaled(60))
    assert done.returncode == 0, done.stderr
    return dns.zone.from_text(done.stdout, origin="rpz.bl.example.org.", relativize=False)


def test_the_rpz_form_is_served_by_transfer_under_its_origin(tmp_path, server):
    path = rpz_config(tmp_path)
    thread = server(path)
    zone = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "rpz.bl.example.org.",
                                           port=port(thread), relativize=False,
                                           timeout=scaled(10)), relativize=False)
    assert zone == rpz_exported(path)
    assert zone.get_rdataset("rpz.bl.example.org.", "SOA")[0].serial == 7
    drop = zone.get_rdataset("8.0.0.0.10.rpz-ip.rpz.bl.example.org.", "CNAME")
    assert drop[0].target.to_text() == "rpz-drop."
    allowed = zone.get_rdataset("32.9.9.9.10.rpz-ip.rpz.bl.example.org.", "CNAME")
    assert allowed[0].target.to_text() == "rpz-passthru."
    assert transfer_count(thread, "axfr", "ok") == 1
    # A secondary asks the SOA before it transfers: the apex answers it, as
    # the zone's, and nothing below it is a DNSBL answer.
    r = dns.query.udp(dns.message.make_query("rpz.bl.example.org", "SOA"), "127.0.0.1",
                      port=port(thread), timeout=scaled(10))
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert r.answer[0][0].serial == 7
    r = dns.query.udp(dns.message.make_query("8.0.0.0.10.rpz-ip.rpz.bl.example.org", "A"),
                      "127.0.0.1", port=port(thread), timeout=scaled(10))
    assert r.rcode() == dns.rcode.NXDOMAIN
    # An IXFR from the current serial: up to date, one SOA at the origin.
    q = dns.message.make_query("rpz.bl.example.org", "IXFR")
    q.authority.append(dns.rrset.from_text(
        "rpz.bl.example.org.", 0, "IN", "SOA",
        "ns1.example.org. hostmaster.example.org. 7 1 1 1 1"))
    r = dns.query.tcp(q, "127.0.0.1", port=port(thread), timeout=scaled(10))
    assert [rrset.name.to_text() for rrset in r.answer] == ["rpz.bl.example.org."]
    assert transfer_count(thread, "ixfr", "uptodate") == 1


def test_the_rpz_form_follows_its_zone_serial_ixfr_and_notify(tmp_path, server, secondary):
    path = rpz_config(tmp_path)
    target = secondary.getsockname()[1]
    path.write_text(path.read_text().replace(
        "rpz = {", f'notify = ["127.0.0.1:{target}"]\nrpz = {{', 1))
    thread = server(path, check_interval=0)
    origin = "rpz.bl.example.org."
    old = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", origin, port=port(thread),
                                          relativize=False, timeout=scaled(10)),
                            relativize=False)
    told = Told(secondary)
    told.until(lambda t: len(t) == 2)  # the start's
    (tmp_path / "bl.zone").write_text(DATA + "192.0.2.1\n")
    assert thread.check()
    # Both names are told of the change, with the one serial they share.
    assert sorted(told.until(lambda t: len(t) == 4)) == [
        ("bl.example.org.", 7), ("bl.example.org.", 8), (origin, 7), (origin, 8)]
    assert thread.server is not None and thread.server.transfers is not None
    transfers = thread.server.transfers
    wait_for(lambda: 7 in transfers.kept("rpz.bl.example.org"), timeout=scaled(20),
             what="the RPZ form's difference made")
    # A secondary of the RPZ form catches up by IXFR and has the whole new form.
    query, _serial = dns.xfr.make_query(old)
    dns.query.inbound_xfr("127.0.0.1", old, query, port=port(thread), timeout=scaled(10))
    assert old == dns.zone.from_xfr(dns.query.xfr("127.0.0.1", origin, port=port(thread),
                                                  relativize=False, timeout=scaled(10)),
                                    relativize=False)
    assert old.get_rdataset(origin, "SOA")[0].serial == 8
    assert old.get_rdataset(f"32.1.2.0.192.rpz-ip.{origin}", "CNAME") is not None
    # Counted once the last message is sent, which the client may have read first.
    wait_for(lambda: transfers.counts.get(("rpz.bl.example.org", "ixfr", "ok")) == 1,
             timeout=20, what="the IXFR counted")


def rpz_soa_serial(thread: ServerThread) -> int:
    """The serial a secondary of the RPZ form sees when it polls the SOA."""
    r = dns.query.udp(dns.message.make_query("rpz.bl.example.org", "SOA"), "127.0.0.1",
                      port=port(thread), timeout=scaled(10))
    return r.answer[0][0].serial


def readyz(thread: ServerThread) -> str:
    from urllib.error import HTTPError
    from urllib.request import urlopen

    assert thread.server is not None and thread.server.metrics_port is not None
    try:
        with urlopen(f"http://127.0.0.1:{thread.server.metrics_port}/readyz",
                     timeout=scaled(10)) as r:
            return r.read().decode()
    except HTTPError as exc:  # 503: not ready, and why
        with exc:
            return exc.read().decode()


def test_an_allowlist_edit_raises_the_rpz_serial_notifies_and_goes_by_ixfr(
        tmp_path, server, secondary):
    path = rpz_config(tmp_path)
    target = secondary.getsockname()[1]
    path.write_text(path.read_text().replace(
        "rpz = {", f'notify = ["127.0.0.1:{target}"]\nrpz = {{', 1))
    thread = server(path, check_interval=1)  # the reload timer, as served
    origin = "rpz.bl.example.org."
    old = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", origin, port=port(thread),
                                          relativize=False, timeout=scaled(10)),
                            relativize=False)
    listed = f"8.0.0.0.10.rpz-ip.{origin}"  # 10.0.0.0/8 :3: (drop)
    assert old.get_rdataset(listed, "CNAME")[0].target.to_text() == "rpz-drop."
    assert rpz_soa_serial(thread) == 7
    # Only the allowlist changes, no zone file: it now names a listed address.
    (tmp_path / "allow.txt").write_text("10.9.9.9\n10.0.0.0/8  # our own network\n")
    wait_for(lambda: rpz_soa_serial(thread) == 8, timeout=30,
             what="the RPZ form's serial rising after the allowlist edit")
    # Told of serial 7 at the start, then of 8 (both names).
    Told(secondary).until(lambda t: (origin, 8) in t)
    assert thread.server is not None and thread.server.transfers is not None
    transfers = thread.server.transfers
    wait_for(lambda: 7 in transfers.kept("rpz.bl.example.org"), timeout=20,
             what="the RPZ form's difference made")
    query, _serial = dns.xfr.make_query(old)
    dns.query.inbound_xfr("127.0.0.1", old, query, port=port(thread), timeout=scaled(10))
    # Counted once the last message is sent, which the client may have read first.
    wait_for(lambda: transfers.counts.get(("rpz.bl.example.org", "ixfr", "ok")) == 1,
             timeout=20, what="the IXFR counted")
    fresh = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", origin, port=port(thread),
                                            relativize=False, timeout=scaled(10)),
                              relativize=False)
    assert old == fresh
    assert fresh.get_rdataset(origin, "SOA")[0].serial == 8
    assert fresh.get_rdataset(listed, "CNAME")[0].target.to_text() == "rpz-passthru."


def test_a_broken_allowlist_edit_is_reported_and_the_rpz_form_kept(tmp_path, server):
    path = rpz_config(tmp_path)
    thread = server(path, check_interval=0)
    origin = "rpz.bl.example.org."

    def transferred() -> dns.zone.Zone:
        return dns.zone.from_xfr(dns.query.xfr("127.0.0.1", origin, port=port(thread),
                                               relativize=False, timeout=scaled(10)),
                                 relativize=False)

    before = transferred()
    allow = tmp_path / "allow.txt"
    allow.write_text("10.0.0.0/8\n10.0.0.300\n")
    assert not thread.check()
    assert thread.server is not None and thread.server.reloader is not None
    failed = thread.server.reloader.last_check.failed
    assert f"{allow}:2: bad address '10.0.0.300'" in failed["bl.example.org"]
    assert f"{allow}:2: bad address '10.0.0.300'" in readyz(thread)
    # The previous RPZ data, serial and all, keeps being served.
    assert rpz_soa_serial(thread) == 7
    kept = transferred()
    assert kept == before
    assert kept.get_rdataset(f"8.0.0.0.10.rpz-ip.{origin}", "CNAME")[0].target.to_text() \
        == "rpz-drop."
    # Fixed, it loads, and the serial rises.
    allow.write_text("10.0.0.0/8\n")
    assert thread.check()
    assert rpz_soa_serial(thread) == 8
    assert "allowlist" not in readyz(thread)
    fixed = transferred()
    assert fixed.get_rdataset(f"8.0.0.0.10.rpz-ip.{origin}", "CNAME")[0].target.to_text() \
        == "rpz-passthru."
    assert fixed.get_rdataset(f"32.9.9.9.10.rpz-ip.{origin}", "CNAME") is None


def test_the_rpz_form_outside_the_acl_or_unsigned_is_refused_and_counted(tmp_path, server):
    thread = server(rpz_config(tmp_path, '["10.0.0.0/8"]'))
    for name in ("rpz.bl.example.org", "bl.example.org"):
        r = dns.query.tcp(dns.message.make_query(name, "AXFR"), "127.0.0.1",
                          port=port(thread), timeout=scaled(10))
        assert r.rcode() == dns.rcode.REFUSED and not r.answer, name
    assert transfer_count(thread, "axfr", "refused") == 2
    # A zone without an RPZ form has none to give.
    other = tmp_path / "other"
    other.mkdir()
    thread = server(config_file(other))
    r = dns.query.tcp(dns.message.make_query("rpz.bl.example.org", "AXFR"), "127.0.0.1",
                      port=port(thread), timeout=scaled(10))
    assert r.rcode() == dns.rcode.REFUSED
    assert transfer_count(thread, "axfr", "refused") == 1
    # With a key required, the RPZ form needs it too.
    keyed = tmp_path / "keyed"
    keyed.mkdir()
    thread = server(rpz_config(keyed, key="xfr.example.org"))
    r = dns.query.tcp(dns.message.make_query("rpz.bl.example.org", "AXFR"), "127.0.0.1",
                      port=port(thread), timeout=scaled(10))
    assert r.rcode() == dns.rcode.REFUSED
    good = dns.tsigkeyring.from_text({"xfr.example.org.": ("hmac-sha256", SECRET)})
    zone = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "rpz.bl.example.org.",
                                           port=port(thread), relativize=False, keyring=good,
                                           keyname="xfr.example.org.",
                                           keyalgorithm="hmac-sha256", timeout=scaled(10)),
                             relativize=False)
    assert zone == rpz_exported(keyed / "dnsbl.toml")


@pytest.mark.parametrize("change,message", [
    (lambda t: t.replace("transfer = [\"127.0.0.0/8\", \"::1\"]\n", ""),
     "'rpz' serves the RPZ form for transfer, so it needs 'transfer'"),
    (lambda t: t.replace('origin = "rpz.bl.example.org"', 'origin = "bl.example.org"'),
     "rpz origin 'bl.example.org' is already the name of a zone"),
    (lambda t: t.replace('"127.0.0.3" = "drop"', '"botnet" = "drop"'),
     "[rpz] actions: 'botnet' is neither a ledger category (none configured) nor an address"),
    (lambda t: t.replace('{ origin = "rpz.bl.example.org" }', '"rpz.bl.example.org"'),
     "'rpz' must be a table { origin = \"rpz.bl.example.org\" }"),
])
def test_a_bad_rpz_form_is_a_configuration_error(tmp_path, change, message):
    path = rpz_config(tmp_path)
    path.write_text(change(path.read_text()))
    done = subprocess.run([sys.executable, "-m", "dnsbl", "check", "--config", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=scaled(60))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


# -- interop: BIND 9 as a secondary, by zone transfer ---------------------------------

INTEROP_DATA = DATA + """\
10.1.2.0/24 :5:Back in
!10.1.2.128/25
172.16.0.0/12 :6:Off a boundary
!172.16.5.64/26
""" + "".join(f"198.51.{i // 256}.{i % 256} :4:Host $\n" for i in range(2000))


KEY = "xfr.example.org"


class Secondary(Named):
    """named with one secondary zone taken from ``primary`` over TSIG."""

    def __init__(self, tmp_path: Path, zone: str, primary: int, port: int = 0) -> None:
        super().__init__(tmp_path, {zone: tmp_path / "secondary.db"}, port)
        self.primary = primary

    def preamble(self) -> str:
        return f'key "{KEY}" {{ algorithm hmac-sha256; secret "{SECRET}"; }};\n'

    def zone_clause(self, name: str, path: Path) -> str:
        # BIND signs its SOA queries and its transfers with the key, and
        # takes NOTIFY from the primary's address.
        return (f'zone "{name}" {{ type secondary; file "{path}"; '
                f'primaries {{ 127.0.0.1 port {self.primary} key "{KEY}"; }}; }};\n')


def sampled(count: int, seed: int) -> list[str]:
    """Names under the zone, from the blocks, holes and beyond of INTEROP_DATA."""
    rng = random.Random(seed)
    networks = [ipaddress.ip_network(n) for n in (
        "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "172.16.0.0/12", "172.16.5.0/24",
        "198.51.0.0/21", "127.0.0.0/30", "11.0.0.0/8")]
    names = []
    while len(names) < count:
        net = networks[len(names) % len(networks)]
        address = net[rng.randrange(net.num_addresses)]
        names.append(address.reverse_pointer.removesuffix(".in-addr.arpa") + ".bl.example.org")
    return names


@pytest.mark.slow
@pytest.mark.skipif(NAMED is None, reason="named not installed (apt-get install bind9)")
def test_bind_secondary_over_tsig_answers_as_dnsbl_and_follows_by_notify_and_ixfr(tmp_path):
    bind_port = free_port()
    path = config_file(tmp_path, data=INTEROP_DATA, key=KEY)
    path.write_text(path.read_text() + f'notify = ["127.0.0.1:{bind_port}"]\n')
    thread = ServerThread(replace(load_config(str(path)), listen=(Listen("127.0.0.1", 0),),
                                  check_interval=0), metrics=Listen("127.0.0.1", 0))
    ours = thread.start()
    bind = Secondary(tmp_path, "bl.example.org", ours.port, port=bind_port)
    try:
        bind.start()
        listed = 0
        for name in sampled(1000, 1000):
            expect = seen(ask(ours.port, name, "A"), "A")
            got = ask(bind.port, name, "A")
            assert seen(got, "A") == expect, name
            if expect[0] == "not listed":
                assert got.rcode() == dns.rcode.NXDOMAIN, name
            listed += expect[0] == "listed"
        assert 200 < listed < 800
        assert transfer_count(thread, "axfr", "ok") == 1
        # A change: one address in, one out. dnsbl sends NOTIFY; BIND asks
        # for the SOA and then an IXFR, and answers the new data.
        (tmp_path / "bl.zone").write_text(
            INTEROP_DATA.replace("198.51.0.5 :4:Host $\n", "") + "192.0.2.99 :4:New $\n")
        assert thread.check()
        wait_for(lambda: seen(ask(bind.port, "99.2.0.192.bl.example.org", "A"), "A")
                 == ("listed", ["127.0.0.4"]), timeout=scaled(60),
                 what="BIND answering the new data")
        assert ask(bind.port, "5.0.51.198.bl.example.org", "A").rcode() == dns.rcode.NXDOMAIN
        assert (ask(bind.port, "bl.example.org", "SOA").answer[0][0].serial
                == ask(ours.port, "bl.example.org", "SOA").answer[0][0].serial == 8)
        assert transfer_count(thread, "ixfr", "ok") == 1
        assert transfer_count(thread, "axfr", "ok") == 1
        assert thread.server is not None and thread.server.transfers is not None
        # The change's NOTIFY answered, and the start's unless BIND came up
        # after its last try.
        counts = thread.server.transfers.notifier.counts
        assert counts.get(("bl.example.org", "ok"), 0) in (1, 2)
        assert counts.get(("bl.example.org", "ok"), 0) + counts.get(
            ("bl.example.org", "unanswered"), 0) <= 2
        assert thread.server.transfers.tsig_counts.get("ok", 0) >= 1  # BIND's SOA query
        assert not thread.server.transfers.tsig_counts.keys() - {"ok"}
    finally:
        stop_all([bind.stop, thread.stop])


# -- interop: PowerDNS Recursor taking the zone as RPZ (rpzPrimary) -------------------

PDNS_RECURSOR = shutil.which("pdns_recursor") or (
    "/usr/sbin/pdns_recursor" if Path("/usr/sbin/pdns_recursor").exists() else None)
#: The zone the recursor takes as its policy: the zone's RPZ form (the
#: ``rpz`` of its config), blocking answers that hold a listed address.
RPZ_ZONE = "rpz.bl.example.org"
#: Every IPv4 network but loopback's: the recursor asks nothing outside
#: loopback (the root priming and the security poll included), but may
#: forward web.test to dnsbl.
OUTSIDE = ("0.0.0.0/2, 64.0.0.0/3, 96.0.0.0/4, 112.0.0.0/5, 120.0.0.0/6, 124.0.0.0/7, "
           "126.0.0.0/8, 128.0.0.0/1, ::/0")


class Recursor(Daemon):
    """pdns_recursor with one rpzPrimary (``RPZ_ZONE`` from dnsbl, over
    TSIG), forwarding web.test to dnsbl."""

    name = "pdns"

    def __init__(self, tmp_path: Path, primary: int) -> None:
        super().__init__(tmp_path)
        self.primary = primary

    def command(self) -> list[str]:
        assert PDNS_RECURSOR is not None
        (self.dir / "rpz.lua").write_text(
            f'rpzPrimary("127.0.0.1:{self.primary}", "{RPZ_ZONE}", {{refresh=1, '
            f'tsigname="{KEY}", tsigalgo="hmac-sha256", tsigsecret="{SECRET}"}})\n')
        (self.dir / "recursor.conf").write_text(f"""\
local-address=127.0.0.1
local-port={self.port}
socket-dir={self.dir}
lua-config-file={self.dir / "rpz.lua"}
forward-zones=web.test=127.0.0.1:{self.primary}
daemon=no
threads=1
dnssec=off
loglevel=6
dont-query={OUTSIDE}
security-poll-suffix=
# No packet cache: an answer from before a change is not kept.
disable-packetcache=yes
""")
        return [PDNS_RECURSOR, f"--config-dir={self.dir}"]

    def ready(self) -> bool:
        return self.answer("listed.web.test") == ("NXDOMAIN", [])  # the policy is loaded

    def answer(self, name: str) -> tuple[str, list[str]]:
        r = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=self.port,
                          timeout=scaled(5))
        return dns.rcode.to_text(r.rcode()), sorted(
            rd.address for rrset in r.answer if rrset.rdtype == dns.rdatatype.A
            for rd in rrset)


@pytest.mark.slow
@pytest.mark.skipif(PDNS_RECURSOR is None,
                    reason="pdns_recursor not installed (apt-get install pdns-recursor)")
def test_pdns_recursor_takes_the_rpz_form_by_axfr_then_ixfr(tmp_path):
    path = config_file(tmp_path, key=KEY)
    (tmp_path / "web.zone").write_text("listed A 192.0.2.66\nclean A 192.0.2.1\n"
                                       "fresh A 192.0.2.1\n")
    path.write_text(path.read_text() + f"""\
rpz = {{ origin = "{RPZ_ZONE}" }}
[[zone]]
name = "web.test"
type = "generic"
files = ["web.zone"]
[rpz]
default = "nxdomain"
""")
    (tmp_path / "bl.zone").write_text(DATA + "192.0.2.66\n")
    thread = ServerThread(replace(load_config(str(path)), listen=(Listen("127.0.0.1", 0),),
                                  check_interval=0), metrics=Listen("127.0.0.1", 0))
    ours = thread.start()
    recursor = Recursor(tmp_path, ours.port)
    try:
        recursor.start()  # ready: it blocks a listed answer, so it has the policy
        assert recursor.answer("clean.web.test") == ("NOERROR", ["192.0.2.1"])
        assert transfer_count(thread, "axfr", "ok") == 1
        (tmp_path / "bl.zone").write_text(DATA + "192.0.2.66\n192.0.2.1\n")
        assert thread.check()
        # It checks the SOA each second (refresh=1; it takes no NOTIFY for RPZ).
        # A name not asked before, so no cached answer is in the way.
        wait_for(lambda: recursor.answer("fresh.web.test") == ("NXDOMAIN", []),
                 timeout=scaled(60), what="the recursor taking the change")
        # Counted once the last message is sent: the recursor may answer first.
        wait_for(lambda: transfer_count(thread, "ixfr", "ok") >= 1, timeout=20,
                 what="the IXFR counted")
        assert transfer_count(thread, "axfr", "ok") == 1
        assert transfer_count(thread, "ixfr", "full") == 0
        assert thread.server is not None and thread.server.transfers is not None
        assert thread.server.transfers.counts.get((RPZ_ZONE, "ixfr", "ok"), 0) >= 1
    finally:
        stop_all([recursor.stop, thread.stop])
