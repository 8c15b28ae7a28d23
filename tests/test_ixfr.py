"""Transfer state: serials that never go back (reloads, restarts, a clock
set back), IXFR from the kept differences as dnspython applies it, NOTIFY
to secondaries, and TSIG on the answers to signed queries."""

from __future__ import annotations

import copy
import os
import socket
import struct
import time
from dataclasses import replace
from pathlib import Path

import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnsbl.config import load_config
from tests.helpers import ServerThread, Told, ask, scaled, wait_for, write
from tests.test_xfr import (  # noqa: F401 - server: a fixture
    DATA,
    SECRET,
    big_zone,
    config_file,
    port,
    server,
    transfer_count,
)

ZONE = "bl.example.org"
KEY = "xfr.example.org"
KEYRING = dns.tsigkeyring.from_text({f"{KEY}.": ("hmac-sha256", SECRET)})


@pytest.fixture
def servers(server):  # noqa: F811 - the fixture of that name, imported
    """start(config path, **settings) -> a started ServerThread that reloads
    when the test says (``check()``), with metrics."""
    return lambda path, **settings: server(path, **{"check_interval": 0, **settings})


def serial(thread: ServerThread) -> int:
    r = ask(port(thread), ZONE, "SOA")
    return r.answer[0][0].serial


def change(path: Path, data: str, mtime: float | None = None) -> None:
    write(path, data.splitlines())
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_serial_rises_with_each_change_never_back_across_restarts(tmp_path, servers):
    path = config_file(tmp_path)
    zone_file = tmp_path / "bl.zone"
    first = servers(path)
    assert serial(first) == 7  # the data's own, the first time
    change(zone_file, DATA + "192.0.2.1\n")
    assert first.check()
    assert serial(first) == 8  # the data still says 7: the last + 1
    change(zone_file, DATA.replace(" 7 1h", " 100 1h") + "192.0.2.2\n")
    assert first.check()
    assert serial(first) == 100  # the data's own, newer: taken
    first.stop()
    # A restart on the same data keeps its serial; on other data, the next.
    second = servers(path)
    assert serial(second) == 100
    second.stop()
    change(zone_file, DATA + "192.0.2.3\n")  # back to 7 in the file
    third = servers(path)
    assert serial(third) == 101
    state = (tmp_path / "state" / f"{ZONE}.serial").read_text()
    assert '"serial": 101' in state


def test_a_clock_set_back_does_not_take_the_serial_back(tmp_path, servers):
    # No serial in the data: it is the file's time, which a clock set back
    # (or an older copy put back) makes earlier.
    data = DATA.replace(" 7 1h", " 0 1h")
    path = config_file(tmp_path, data=data)
    zone_file = tmp_path / "bl.zone"
    os.utime(zone_file, (2_000_000_000, 2_000_000_000))
    thread = servers(path)
    assert serial(thread) == 2_000_000_000
    for i, when in enumerate((1_000_000_000, 1_000_000_000, 1_500_000_000), 1):
        change(zone_file, data + f"192.0.2.{i}\n", mtime=when)
        assert thread.check()
        assert serial(thread) == 2_000_000_000 + i
    # A time past the last serial is taken again.
    change(zone_file, data + "192.0.2.9\n", mtime=2_100_000_000)
    assert thread.check()
    assert serial(thread) == 2_100_000_000


def axfr(thread: ServerThread, **tsig) -> dns.zone.Zone:
    return dns.zone.from_xfr(dns.query.xfr("127.0.0.1", f"{ZONE}.", port=port(thread),
                                           relativize=False, timeout=scaled(10), **tsig),
                             relativize=False)


def kept(thread: ServerThread, serial: int) -> bool:
    assert thread.server is not None and thread.server.transfers is not None
    return serial in thread.server.transfers.kept(ZONE)


def incremental(thread: ServerThread, zone: dns.zone.Zone) -> None:
    """Bring ``zone`` up to date by IXFR, as a secondary does."""
    query, _serial = dns.xfr.make_query(zone)
    dns.query.inbound_xfr("127.0.0.1", zone, query, port=port(thread), timeout=scaled(10))


VERSIONS = [
    DATA + "192.0.2.1\n192.0.2.2 :5:Other $\n",
    DATA + "192.0.2.2 :5:Other $\n192.0.2.3\n",              # one gone, one new
    DATA.replace("!10.1.0.0/16\n", "") + "192.0.2.3\n",       # a hole filled, one gone
    DATA.replace(":127.0.0.2:Listed: $", ":127.0.0.2:Now listed: $"),  # every TXT
]


def test_ixfr_applied_by_dnspython_gives_the_new_zone(tmp_path, servers):
    path = config_file(tmp_path, data=VERSIONS[0])
    thread = servers(path)
    old = axfr(thread)
    copies = [copy.deepcopy(old)]
    for data in VERSIONS[1:]:
        before = serial(thread)
        change(tmp_path / "bl.zone", data)
        assert thread.check()
        wait_for(lambda before=before: kept(thread, before), timeout=scaled(20),
                 what="the difference made")
        copies.append(axfr(thread))
    # From each older version, the differences since lead to the newest.
    newest = copies[-1]
    assert newest.get_rdataset(f"{ZONE}.", "SOA")[0].serial == 10
    assert newest.get_rdataset(f"2.0.0.127.{ZONE}.", "TXT")[0].strings == (
        b"Now listed: 127.0.0.2",)
    for version in copies[:-1]:
        zone = copy.deepcopy(version)
        incremental(thread, zone)
        assert zone == newest
    assert transfer_count(thread, "ixfr", "ok") == len(VERSIONS) - 1
    assert transfer_count(thread, "ixfr", "full") == 0


def test_ixfr_from_a_serial_not_kept_is_the_whole_zone_and_udp_fits_or_soa(tmp_path,
                                                                           servers):
    path = config_file(tmp_path, data=VERSIONS[0])
    # One datagram at a time: the batched receive's compiled path does not
    # hand on the client's address, which the ACL needs (it sends the SOA).
    thread = servers(path, zones=tuple(replace(z, ixfr_versions=1)
                                       for z in load_config(str(path)).zones), udp_batch=0)
    first = axfr(thread)
    for data in VERSIONS[1:3]:
        before = serial(thread)
        change(tmp_path / "bl.zone", data)
        assert thread.check()
        wait_for(lambda before=before: kept(thread, before), timeout=scaled(20),
                 what="the difference made")
    # One version kept: from the first, the whole zone, which dnspython takes too.
    zone = copy.deepcopy(first)
    incremental(thread, zone)
    assert zone == axfr(thread)
    assert transfer_count(thread, "ixfr", "full") == 1
    # Over UDP: a small difference fits in one datagram (EDNS: up to 1232) ...
    last = serial(thread)
    change(tmp_path / "bl.zone", VERSIONS[2] + "192.0.2.77\n")
    assert thread.check()
    wait_for(lambda: kept(thread, last), timeout=scaled(20), what="the difference made")
    query = ixfr_query(last)
    query.use_edns(0, payload=4096)
    r = dns.query.udp(query, "127.0.0.1", port=port(thread), timeout=scaled(10),
                      one_rr_per_rrset=True)
    assert r.edns == 0 and r.payload == 1232
    # Our SOA; the old one, nothing deleted; the new one, what was added; ours.
    assert [rrset[0].serial for rrset in r.answer if rrset.rdtype == dns.rdatatype.SOA] == [
        last + 1, last, last + 1, last + 1]
    assert "77.2.0.192.bl.example.org." in [rrset.name.to_text() for rrset in r.answer]
    # ... one not kept, or too big, does not: our SOA alone says "ask over
    # TCP" (RFC 1995 section 2).
    r = dns.query.udp(ixfr_query(7), "127.0.0.1", port=port(thread), timeout=scaled(10))
    assert [rrset.rdtype for rrset in r.answer] == [dns.rdatatype.SOA]
    assert r.answer[0][0].serial == serial(thread)
    assert transfer_count(thread, "ixfr", "toobig") == 1


def ixfr_query(serial: int) -> dns.message.Message:
    q = dns.message.make_query(ZONE, "IXFR")
    q.authority.append(dns.rrset.from_text(
        f"{ZONE}.", 0, "IN", "SOA", f"ns1.example.org. hostmaster.example.org. {serial} 1 1 1 1"))
    return q


# -- TSIG on the query path -----------------------------------------------------------

def tsig_count(thread: ServerThread, result: str) -> float:
    from urllib.request import urlopen

    assert thread.server is not None and thread.server.metrics_port is not None
    with urlopen(f"http://127.0.0.1:{thread.server.metrics_port}/metrics",
                 timeout=scaled(10)) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(f'dnsbl_tsig_queries_total{{result="{result}"}}'):
                return float(line.split()[-1])
    return 0.0


def test_signed_queries_get_signed_answers_and_bad_keys_notauth(tmp_path, servers):
    thread = servers(config_file(tmp_path, key=KEY))
    for tcp in (False, True):
        # dnspython checks the answer's TSIG, and fails on a missing or bad one.
        for name, rdtype in ((ZONE, "SOA"), ("2.0.0.127." + ZONE, "A")):
            q = dns.message.make_query(name, rdtype, use_edns=tcp)
            q.use_tsig(KEYRING, keyname=f"{KEY}.", algorithm="hmac-sha256")
            send = dns.query.tcp if tcp else dns.query.udp
            r = send(q, "127.0.0.1", port=port(thread), timeout=scaled(10))
            assert r.rcode() == dns.rcode.NOERROR and r.had_tsig
            assert r.answer and r.answer[0].rdtype == dns.rdatatype.from_text(rdtype)
    assert tsig_count(thread, "ok") == 4
    wrong = dns.tsigkeyring.from_text({
        f"{KEY}.": ("hmac-sha256", "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==")})
    other = dns.tsigkeyring.from_text({"other.example.org.": ("hmac-sha256", SECRET)})
    for keyring, error in ((wrong, dns.rcode.BADSIG), (other, dns.rcode.BADKEY)):
        q = dns.message.make_query(ZONE, "SOA")
        q.use_tsig(keyring, algorithm="hmac-sha256")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(scaled(10))
            s.sendto(q.to_wire(), ("127.0.0.1", port(thread)))
            r = dns.message.from_wire(s.recv(65535), keyring=False)
        assert r.rcode() == dns.rcode.NOTAUTH and r.tsig_error == error
        assert r.id == q.id and not r.answer
    assert tsig_count(thread, "badsig") == 1 and tsig_count(thread, "badkey") == 1
    # An unsigned query is answered as ever.
    assert ask(port(thread), ZONE, "SOA").answer[0][0].serial == 7


# -- NOTIFY ---------------------------------------------------------------------------

def notify_count(thread: ServerThread, result: str) -> float:
    from urllib.request import urlopen

    assert thread.server is not None and thread.server.metrics_port is not None
    with urlopen(f"http://127.0.0.1:{thread.server.metrics_port}/metrics",
                 timeout=scaled(10)) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("dnsbl_notify_total{") and f'result="{result}"' in line:
                return float(line.split()[-1])
    return 0.0


def test_notify_after_each_change_signed_and_retried_until_answered(tmp_path, servers,
                                                                    secondary):
    path = config_file(tmp_path, key=KEY)
    target = secondary.getsockname()[1]
    path.write_text(path.read_text() + f'notify = ["127.0.0.1:{target}"]\n')
    thread = servers(path)
    # Told at the start of the serial served; answered.
    told = Told(secondary, KEYRING)
    told.until(lambda t: t == [(f"{ZONE}.", 7)])
    wait_for(lambda: notify_count(thread, "ok") == 1, timeout=scaled(10),
             what="the start's NOTIFY counted answered")
    assert told.waiting() == [(f"{ZONE}.", 7)]  # and a retry sent meanwhile read
    change(tmp_path / "bl.zone", DATA + "192.0.2.1\n")
    assert thread.check()
    # The first NOTIFY goes unanswered; it comes again, the same but for its
    # signature's time, and is answered.
    seen = []
    for _try in range(2):
        wire, sender = secondary.recvfrom(65535)
        notify = dns.message.from_wire(wire, keyring=KEYRING)  # fails on a bad TSIG
        seen.append(notify)
    assert seen[0].id == seen[1].id
    for notify in seen:
        assert notify.opcode() == dns.opcode.NOTIFY and notify.had_tsig
        assert notify.question[0].name.to_text() == f"{ZONE}."
        assert notify.question[0].rdtype == dns.rdatatype.SOA
        assert notify.answer[0][0].serial == 8
    response = dns.message.make_response(seen[1])
    secondary.sendto(response.to_wire(), sender)
    wait_for(lambda: notify_count(thread, "ok") == 2, timeout=scaled(10),
             what="the NOTIFY counted answered")
    # An answer that is an error is an answer too: no more tries, counted.
    change(tmp_path / "bl.zone", DATA + "192.0.2.2\n")
    assert thread.check()
    wire, sender = secondary.recvfrom(65535)
    notify = dns.message.from_wire(wire, keyring=KEYRING)
    assert notify.answer[0][0].serial == 9
    response = dns.message.make_response(notify)
    response.set_rcode(dns.rcode.REFUSED)
    secondary.sendto(response.to_wire(), sender)
    wait_for(lambda: notify_count(thread, "refused") == 1, timeout=scaled(10),
             what="the refused NOTIFY counted")


def test_notify_is_a_configuration_error_without_transfer(tmp_path):
    from dnsbl.config import ConfigError

    path = config_file(tmp_path, transfer="[]")
    path.write_text(path.read_text() + 'notify = ["127.0.0.1:5353"]\n')
    with pytest.raises(ConfigError, match="'notify' needs 'transfer'"):
        load_config(str(path))
    path = config_file(tmp_path)
    path.write_text(path.read_text() + 'notify = ["ns2.example.org"]\n')
    with pytest.raises(ConfigError, match="'ns2.example.org' is not an address"):
        load_config(str(path))


# -- a client that stops reading mid-IXFR ---------------------------------------------

@pytest.mark.slow
def test_a_client_that_stops_reading_mid_ixfr_is_cut_off_and_others_answered(tmp_path,
                                                                             servers):
    path = config_file(tmp_path, data=big_zone(1000))
    thread = servers(path, tcp_idle_timeout=scaled(1.0))
    before = serial(thread)
    old = axfr(thread)
    change(tmp_path / "bl.zone", big_zone(40_000))  # a difference of 78,000 records
    assert thread.check()
    wait_for(lambda: kept(thread, before), timeout=scaled(60), what="the difference made")
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", port(thread)))
        wire = ixfr_query(before).to_wire()
        stalled.sendall(struct.pack(">H", len(wire)) + wire)
        started = time.monotonic()
        for i in range(20):
            r = ask(port(thread), f"1.{i}.0.10.{ZONE}", "A")
            assert [rd.address for rrset in r.answer for rd in rrset] == ["127.0.0.4"]
        assert time.monotonic() - started < scaled(10)
        wait_for(lambda: transfer_count(thread, "ixfr", "aborted") == 1, timeout=scaled(30),
                 what="the stalled IXFR cut off")
    finally:
        stalled.close()
    # The next one goes through, and applies; dnspython applying it here
    # shares the interpreter lock with the server, so it gets a longer
    # idle timeout than the stalled client had.
    assert thread.server is not None
    thread.server.tcp_limits.idle_timeout = scaled(30)
    incremental(thread, old)
    assert old == axfr(thread)
    assert transfer_count(thread, "ixfr", "ok") == 1


# -- the difference itself ------------------------------------------------------------

RECORDS = st.tuples(st.sampled_from(["@", "a", "b.a", "*.c", "2.0.0.127"]),
                    st.sampled_from([60, 600]), st.sampled_from([1, 16, 65280]),
                    st.binary(max_size=3))


@given(st.lists(RECORDS, unique=True, max_size=30), st.lists(RECORDS, unique=True,
                                                             max_size=30),
       st.booleans(), st.randoms())
def test_difference_is_what_was_deleted_and_added_in_any_order(old, new, known, rng):
    from dnsbl.ixfr import Digests, difference

    soa = ("@", 3600, 6, b"soa")
    shuffled = list(new)
    rng.shuffle(shuffled)
    found = difference(lambda: iter([soa, *old]), [soa, *shuffled],
                       Digests(old) if known else None)
    assert found is not None
    deleted, added, digests = found
    assert sorted(deleted) == sorted(set(old) - set(new))
    assert sorted(added) == sorted(set(new) - set(old))
    # The new version's digests start the next difference: back to the old.
    back = difference(lambda: iter(new), old, digests)
    assert back is not None
    assert sorted(back[0]) == sorted(added) and sorted(back[1]) == sorted(deleted)


def test_difference_past_the_limit_is_none():
    from dnsbl.ixfr import difference

    old = [(f"{i}", 60, 1, b"\x7f\x00\x00\x02") for i in range(10)]
    assert difference(lambda: iter(old), old[:5], limit=4) is None  # 5 deleted
    assert difference(lambda: iter(old[:5]), old, limit=4) is None  # 5 added
    assert difference(lambda: iter(old), old[:6], limit=4) is not None


def test_a_notify_to_us_is_refused_signed_or_not(tmp_path, servers):
    # We are the primary: a NOTIFY comes from nobody we take zones from.
    thread = servers(config_file(tmp_path, key=KEY))
    for signed in (False, True):
        q = dns.message.make_query(ZONE, "SOA")
        q.set_opcode(dns.opcode.NOTIFY)
        if signed:
            q.use_tsig(KEYRING, keyname=f"{KEY}.", algorithm="hmac-sha256")
        r = dns.query.udp(q, "127.0.0.1", port=port(thread), timeout=scaled(10))
        assert r.rcode() == dns.rcode.REFUSED and r.opcode() == dns.opcode.NOTIFY
        assert r.had_tsig == signed  # dnspython checked the signature
    assert serial(thread) == 7  # and nothing changed


def test_a_signature_from_another_time_is_notauth_badtime(tmp_path, servers):
    import dns.name
    import dns.rdataclass
    import dns.rdtypes.ANY.TSIG

    thread = servers(config_file(tmp_path, key=KEY))
    q = dns.message.make_query(ZONE, "SOA")
    wire = q.to_wire()
    # Signed an hour ago: past the 300 s fudge (RFC 8945 section 5.2.3).
    name = dns.name.from_text(f"{KEY}.")
    key = KEYRING[name]
    template = dns.rdtypes.ANY.TSIG.TSIG(dns.rdataclass.ANY, dns.rdatatype.TSIG,
                                         key.algorithm, 0, 300, b"", q.id, 0, b"")
    tsig, _ctx = dns.tsig.sign(wire, key, template, int(time.time()) - 3600, None, None)
    rdata = tsig.to_wire()
    wire = (wire[:10] + b"\x00\x01" + wire[12:] + name.to_wire()
            + struct.pack(">HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata))
            + rdata)
    assert dns.message.from_wire(wire, keyring=False).tsig is not None  # well formed
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(scaled(10))
        s.sendto(wire, ("127.0.0.1", port(thread)))
        r = dns.message.from_wire(s.recv(65535), keyring=False)
    assert r.rcode() == dns.rcode.NOTAUTH and r.tsig_error == dns.rcode.BADTIME
    assert tsig_count(thread, "badtime") == 1


def test_condensed_differences_are_the_net_change():
    from dnsbl.ixfr import Delta, condensed

    a, b, c = (("a", 60, 1, b"1"), ("b", 60, 1, b"2"), ("c", 60, 1, b"3"))
    deltas = [Delta(1, b"s1", 2, b"s2", (a,), (b,)),   # a out, b in
              Delta(2, b"s2", 3, b"s3", (b,), (a, c)),  # b out again, a back, c in
              Delta(3, b"s3", 4, b"s4", (), ())]
    one = condensed(deltas)
    assert (one.old_serial, one.old_soa, one.new_serial, one.new_soa) == (1, b"s1", 4, b"s4")
    assert one.deleted == () and one.added == (c,)
