"""The answering rules, checked over real UDP/TCP sockets with dnspython."""

from __future__ import annotations

import os
import socket
import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from tests.helpers import ServerThread, needs_ipv6, scaled, soa_of

SOA_LINE = "$SOA 3600 ns1.example.org hostmaster.example.org 42 1h 15m 1w 300"
DATA = [
    SOA_LINE,
    "$NS 0 ns1.example.org ns2.example.org",
    "$TTL 600",
    ":127.0.0.2:Listed: $",
    "127.0.0.2",
    "10.0.0.0/8 :3:Big block",
]


@pytest.fixture
def bl(zone):
    return zone(DATA)


def test_listed_a_and_txt(bl):
    r = bl.query("2.0.0.127.bl.test", "A")
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    [rrset] = r.answer
    assert [rd.address for rd in rrset] == ["127.0.0.2"]
    assert rrset.ttl == 600
    assert bl.txt("2.0.0.127.bl.test") == ["Listed: 127.0.0.2"]
    assert bl.a("9.8.7.10.bl.test") == ["127.0.0.3"]
    assert bl.txt("9.8.7.10.bl.test") == ["Big block"]


def test_not_listed_is_nxdomain_with_soa_and_negative_ttl(bl):
    r = bl.query("1.0.0.127.bl.test", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert r.flags & dns.flags.AA
    assert not r.answer
    soa = soa_of(r)
    assert soa.name == dns.name.from_text("bl.test")
    # RFC 2308: min(SOA TTL 3600, MINIMUM 300)
    assert soa.ttl == 300
    assert soa[0].serial == 42 and soa[0].minimum == 300


@pytest.mark.parametrize("name", [
    "5.4.3.2.1.bl.test",        # too many labels
    "x.0.0.127.bl.test",        # non-numeric label
    "256.0.0.10.bl.test",       # not an octet
    "1.2.0.0.127.bl.test",
    "www.bl.test",
])
def test_names_that_cannot_be_addresses_are_nxdomain(bl, name):
    r = bl.query(name, "A")
    assert r.rcode() == dns.rcode.NXDOMAIN
    soa_of(r)


@pytest.mark.parametrize("name", ["127.bl.test", "0.127.bl.test", "0.0.127.bl.test",
                                  "10.bl.test", "200.bl.test"])
def test_intermediate_names_are_nodata_not_nxdomain(bl, name):
    # RFC 8020: with QNAME minimisation, NXDOMAIN here would hide the whole subtree.
    r = bl.query(name, "A")
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.answer
    assert soa_of(r).ttl == 300


@pytest.mark.parametrize("rdtype", ["AAAA", "MX", "NS", "SOA", "CNAME", "PTR"])
def test_listed_name_other_type_is_nodata(bl, rdtype):
    r = bl.query("2.0.0.127.bl.test", rdtype)
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.answer
    soa_of(r)


def test_any_gets_a_and_txt(bl):
    r = bl.query("2.0.0.127.bl.test", "ANY")
    types = sorted(dns.rdatatype.to_text(rrset.rdtype) for rrset in r.answer)
    assert types == ["A", "TXT"]


def test_listed_without_txt_answers_txt_with_nodata(zone):
    c = zone(["127.0.0.2"])
    assert c.a("2.0.0.127.bl.test") == ["127.0.0.2"]
    r = c.query("2.0.0.127.bl.test", "TXT")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    soa_of(r)


def test_apex_soa_and_ns(bl):
    r = bl.query("bl.test", "SOA")
    [rrset] = r.answer
    soa = rrset[0]
    assert (str(soa.mname), str(soa.rname), soa.serial) == (
        "ns1.example.org.", "hostmaster.example.org.", 42)
    assert (soa.refresh, soa.retry, soa.expire, soa.minimum) == (3600, 900, 604800, 300)
    assert rrset.ttl == 3600
    r = bl.query("bl.test", "NS")
    assert sorted(str(rd.target) for rd in r.answer[0]) == ["ns1.example.org.",
                                                            "ns2.example.org."]
    assert r.answer[0].ttl == 600  # $NS ttl 0 means the dataset's TTL
    r = bl.query("bl.test", "A")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    soa_of(r)


def test_default_soa_when_data_has_none(zone, tmp_path):
    c = zone(["127.0.0.2"])
    r = c.query("bl.test", "SOA")
    [rrset] = r.answer
    soa = rrset[0]
    assert str(soa.rname) == "hostmaster.bl.test."
    assert soa.serial > 1_000_000_000  # the file's mtime
    assert soa.minimum == 60
    r = c.query("1.0.0.127.bl.test")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert soa_of(r).ttl == 60


def test_negative_ttl_is_the_soa_ttl_when_that_is_lower(zone):
    """RFC 2308 section 5: min(SOA TTL, MINIMUM), not the MINIMUM alone (rbldnsd's rule)."""
    c = zone(["$SOA 120 ns1.example.org hostmaster.example.org 7 1h 15m 1w 7200", "127.0.0.2"])
    for name in ("1.0.0.127.bl.test", "2.0.0.127.bl.test"):  # NXDOMAIN, and NODATA for AAAA
        r = c.query(name, "AAAA")
        assert soa_of(r).ttl == 120
    assert c.query("bl.test", "SOA").answer[0][0].minimum == 7200


def test_soa_and_ns_from_the_config_take_the_place_of_the_data(process, tmp_path, zone_file):
    data = zone_file([SOA_LINE, "$NS 0 ns1.example.org", "127.0.0.2"])
    config = tmp_path / "dnsbl.toml"
    config.write_text(f"""
[[zone]]
name = "bl.test"
type = "ip4set"
files = ["{data}"]
soa = "900 ns.operator.example hostmaster.operator.example 0 2h 30m 2w 120"
ns = ["ns.operator.example", "ns2.operator.example"]

[[zone]]
name = "other.test"
type = "ip4set"
files = ["{data}"]
ns = "3600 ns.other.example"
""")
    os.utime(data, (1_700_000_000, 1_700_000_000))
    c = process("--config", str(config), "--listen", "127.0.0.1:0").wait_listening()
    r = c.query("bl.test", "SOA")
    [soa] = r.answer[0]
    assert (str(soa.mname), str(soa.rname)) == ("ns.operator.example.",
                                                "hostmaster.operator.example.")
    assert soa.serial == 1_700_000_000  # 0: the newest file's mtime, as in $SOA
    assert (soa.refresh, soa.retry, soa.expire, soa.minimum) == (7200, 1800, 1209600, 120)
    assert r.answer[0].ttl == 900
    ns = c.query("bl.test", "NS").answer[0]
    assert sorted(str(rd.target) for rd in ns) == ["ns.operator.example.",
                                                   "ns2.operator.example."]
    assert ns.ttl == 2100  # a list of names: the zone's TTL
    assert soa_of(c.query("1.0.0.127.bl.test")).ttl == 120
    # Only NS configured: the data's $SOA still serves, the NS is the config's.
    assert c.query("other.test", "SOA").answer[0][0].serial == 42
    ns = c.query("other.test", "NS").answer[0]
    assert [str(rd.target) for rd in ns] == ["ns.other.example."] and ns.ttl == 3600


def test_name_outside_every_zone_is_refused(bl):
    r = bl.query("2.0.0.127.other.test", "A")
    assert r.rcode() == dns.rcode.REFUSED
    assert not r.flags & dns.flags.AA  # not our zone
    r = bl.query("test", "A")
    assert r.rcode() == dns.rcode.REFUSED


def test_question_echoed_in_original_case(bl):
    name = "2.0.0.127.Bl.TeSt"
    q = dns.message.make_query(name, "A")
    wire = q.to_wire()
    r = raw_udp(bl, wire)
    assert name.encode() == _labels_text(r[12:])
    assert dns.message.from_wire(r).answer[0][0].address == "127.0.0.2"


def _labels_text(wire: bytes) -> bytes:
    out, pos = [], 0
    while wire[pos]:
        out.append(wire[pos + 1:pos + 1 + wire[pos]])
        pos += wire[pos] + 1
    return b".".join(out)


def raw_udp(client, payload: bytes, expect_reply: bool = True) -> bytes | None:
    """The reply to ``payload``; None for none, when none is expected."""
    if not expect_reply:
        return client.reply_or_silence(payload)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(scaled(3))
        s.sendto(payload, (client.host, client.port))
        return s.recv(65535)


@pytest.mark.parametrize("opcode, rcode", [(dns.opcode.UPDATE, dns.rcode.NOTIMP),
                                           (dns.opcode.STATUS, dns.rcode.NOTIMP),
                                           (dns.opcode.NOTIFY, dns.rcode.REFUSED)])
def test_other_opcode_is_notimp_and_notify_refused(bl, opcode, rcode):
    # NOTIFY is for secondaries; we are nobody's: whoever sends one is refused.
    q = dns.message.make_query("2.0.0.127.bl.test", "A")
    q.set_opcode(opcode)
    r = dns.message.from_wire(raw_udp(bl, q.to_wire()))
    assert r.rcode() == rcode
    assert r.id == q.id
    assert r.opcode() == opcode


def test_zone_transfer_is_notimp(bl):
    r = bl.query("bl.test", "AXFR")
    assert r.rcode() == dns.rcode.NOTIMP


def test_other_class_is_refused(bl):
    r = bl.query("2.0.0.127.bl.test", "A", rdclass="CH")
    assert r.rcode() == dns.rcode.REFUSED


def test_header_without_readable_question_is_formerr(bl):
    header = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for tail in [b"", b"\x05ab", b"\x03abc", b"\xc0\x0c\x00\x01\x00\x01", b"\x00\x00\x01"]:
        reply = raw_udp(bl, header + tail)
        assert reply[:2] == b"\x12\x34"
        assert reply[3] & 0x0F == dns.rcode.FORMERR
    no_question = struct.pack(">HHHHHH", 0x4321, 0x0100, 0, 0, 0, 0)
    reply = raw_udp(bl, no_question)
    assert reply[3] & 0x0F == dns.rcode.FORMERR


def test_short_datagram_and_responses_get_no_reply(bl):
    assert raw_udp(bl, b"\x12\x34\x01", expect_reply=False) is None
    assert raw_udp(bl, b"", expect_reply=False) is None
    q = dns.message.make_query("2.0.0.127.bl.test", "A")
    q.flags |= dns.flags.QR
    assert raw_udp(bl, q.to_wire(), expect_reply=False) is None
    # ...and the server is still answering.
    assert bl.a("2.0.0.127.bl.test") == ["127.0.0.2"]


def test_combined_zone_returns_every_listing(serve, zone_file):
    sbl = zone_file([":2:SBL listing $", "127.0.0.2", "192.0.2.0/24"])
    xbl = zone_file([":4:XBL listing $", "127.0.0.2", "198.51.100.1"])
    pbl = zone_file([":10:PBL", "127.0.0.0/24"])
    c = serve(f"zen.test:ip4set:{sbl}", f"zen.test:ip4trie:{xbl}", f"zen.test:ip4set:{pbl}",
              f"sbl.zen.test:ip4set:{sbl}")
    assert c.a("2.0.0.127.zen.test") == ["127.0.0.10", "127.0.0.2", "127.0.0.4"]
    assert c.txt("2.0.0.127.zen.test") == ["PBL", "SBL listing 127.0.0.2",
                                           "XBL listing 127.0.0.2"]
    assert c.a("1.100.51.198.zen.test") == ["127.0.0.4"]
    # The most specific zone answers: sbl.zen.test has only the SBL data.
    assert c.a("2.0.0.127.sbl.zen.test") == ["127.0.0.2"]
    assert c.query("1.100.51.198.sbl.zen.test").rcode() == dns.rcode.NXDOMAIN


def test_edns_query_gets_opt_back(bl):
    r = bl.query("2.0.0.127.bl.test", "A", use_edns=0, payload=4096)
    assert r.edns == 0
    assert r.payload == 1232
    r = bl.query("1.0.0.127.bl.test", "A", use_edns=0)
    assert r.rcode() == dns.rcode.NXDOMAIN and r.edns == 0


@pytest.mark.parametrize("name, rdtype", [
    ("2.0.0.127.bl.test", "A"),  # listed: the fast path
    ("1.0.0.127.bl.test", "A"),  # NXDOMAIN: the fast path
    ("2.0.0.127.bl.test", "AAAA"),  # NODATA: the general path
    ("bl.test", "SOA"),
])
def test_dnssec_ok_bit_is_copied_into_the_reply(bl, name, rdtype):
    """RFC 3225 3: the DO bit of the query MUST be copied in the response."""
    r = bl.query(name, rdtype, use_edns=0, want_dnssec=True)
    assert r.edns == 0 and r.ednsflags & dns.flags.DO
    r = bl.query(name, rdtype, use_edns=0)
    assert r.edns == 0 and not r.ednsflags & dns.flags.DO
    r = bl.query(name, rdtype, use_edns=0, want_dnssec=True, tcp=True)
    assert r.ednsflags & dns.flags.DO


def test_edns_version_1_gets_badvers(bl):
    r = bl.query("2.0.0.127.bl.test", "A", use_edns=1)
    assert r.rcode() == dns.rcode.BADVERS
    r = bl.query("2.0.0.127.bl.test", "A", use_edns=1, want_dnssec=True)
    assert r.rcode() == dns.rcode.BADVERS and r.ednsflags & dns.flags.DO


def test_tcp_answers_the_same(bl):
    r = bl.query("2.0.0.127.bl.test", "TXT", tcp=True)
    assert [b"".join(rd.strings) for rd in r.answer[0]] == [b"Listed: 127.0.0.2"]
    assert bl.query("1.0.0.127.bl.test", tcp=True).rcode() == dns.rcode.NXDOMAIN


def test_tcp_pipelined_queries_on_one_connection(bl):
    names = ["2.0.0.127.bl.test", "1.0.0.127.bl.test", "1.2.3.10.bl.test"]
    queries = [dns.message.make_query(n, "A") for n in names]
    with socket.create_connection((bl.host, bl.port), timeout=scaled(3)) as s:
        s.sendall(b"".join(struct.pack(">H", len(w)) + w for w in (q.to_wire() for q in queries)))
        replies = []
        buf = b""
        while len(replies) < 3:
            chunk = s.recv(4096)
            assert chunk, f"closed after {len(replies)} replies"  # else this would spin
            buf += chunk
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                size = struct.unpack(">H", buf[:2])[0]
                replies.append(dns.message.from_wire(buf[2:2 + size]))
                buf = buf[2 + size:]
    assert [r.id for r in replies] == [q.id for q in queries]
    assert [r.rcode() for r in replies] == [dns.rcode.NOERROR, dns.rcode.NXDOMAIN,
                                            dns.rcode.NOERROR]


def test_truncation_over_udp_and_full_answer_over_tcp(serve, zone_file):
    files = [zone_file([f":{i}:reason {i} " + "x" * 200, "127.0.0.2"]) for i in range(2, 6)]
    c = serve(*(f"big.test:ip4set:{f}" for f in files))
    r = c.query("2.0.0.127.big.test", "TXT")  # 4 x ~230 bytes > 512
    assert r.flags & dns.flags.TC
    assert not r.answer
    r = c.query("2.0.0.127.big.test", "TXT", tcp=True)
    assert not r.flags & dns.flags.TC
    assert len(r.answer[0]) == 4
    # With EDNS and a big enough buffer it fits in UDP.
    r = c.query("2.0.0.127.big.test", "TXT", use_edns=0, payload=1232)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 4


def test_truncation_at_the_advertised_edns_size(serve, zone_file):
    """RFC 6891 7 and RFC 2181 9: a UDP answer over the client's advertised size
    goes out with TC=1, the OPT and no records at all (never part of an RRset);
    a size below 512 counts as 512 (RFC 6891 6.2.5). A combined zone where an
    address is listed in four datasets with long reasons makes it real."""
    reason = "listed for a reason this long, " * 6  # 186 bytes: ~830-byte answer
    files = [zone_file([f":{i}:{reason[:180]}{i:06d}", "127.0.0.2"]
                       + (["127.0.0.3"] if i < 4 else [])) for i in range(2, 6)]
    c = serve(*(f"big.test:ip4set:{f}" for f in files))
    whole = c.query("2.0.0.127.big.test", "TXT", use_edns=0, payload=1000)
    assert not whole.flags & dns.flags.TC and len(whole.answer[0]) == 4
    size = len(whole.to_wire())
    assert 800 < size < 900, size
    cut = c.query("2.0.0.127.big.test", "TXT", use_edns=0, payload=600)
    assert cut.flags & dns.flags.TC
    assert cut.edns == 0 and cut.payload == 1232  # the OPT is there
    assert not cut.answer and not cut.authority  # no partial RRset
    assert cut.question == whole.question
    # Under 512 is taken as 512: a 438-byte answer comes whole, an 830-byte one does not.
    small = c.query("3.0.0.127.big.test", "TXT", use_edns=0, payload=300)
    assert not small.flags & dns.flags.TC and len(small.answer[0]) == 2
    assert 300 < len(small.to_wire()) <= 512
    assert c.query("2.0.0.127.big.test", "TXT", use_edns=0, payload=300).flags & dns.flags.TC
    # The resolver's retry over TCP gets it whole.
    assert len(c.query("2.0.0.127.big.test", "TXT", tcp=True).answer[0]) == 4


@needs_ipv6
def test_ipv6_listener(serve, zone_file):
    from dnsbl.config import Listen

    c = serve(f"bl.test:ip4set:{zone_file(['127.0.0.2'])}", listen=(Listen("::1", 0),))
    assert c.host == "::1"
    assert c.a("2.0.0.127.bl.test") == ["127.0.0.2"]


def test_dataset_named_by_two_zones_is_loaded_once(serve, zone_file):
    from dnsbl.config import ServerConfig, parse_zone_spec
    from dnsbl.loader import load_snapshot

    shared = zone_file([":3:shared", "192.0.2.0/24"])
    specs = [f"a.test:ip4set:{shared}", f"b.test:ip4set:{shared}"]
    zoneset = load_snapshot(ServerConfig(zones=tuple(parse_zone_spec(s) for s in specs)))
    assert len(zoneset.datasets) == 1
    assert zoneset.by_name("a.test").datasets[0] is zoneset.by_name("b.test").datasets[0]
    c = serve(*specs)
    assert c.a("1.2.0.192.a.test") == c.a("1.2.0.192.b.test") == ["127.0.0.3"]


def test_dropped_packets_are_counted(zone_file, cleanup):
    from dnsbl.answer import DROP_REASONS
    from dnsbl.config import Listen, ServerConfig, parse_zone_spec

    thread = ServerThread(ServerConfig(listen=(Listen("127.0.0.1", 0),), zones=(
        parse_zone_spec(f"bl.test:ip4set:{zone_file(['127.0.0.2'])}"),)))
    client = thread.start()
    cleanup.callback(thread.stop)
    response = dns.message.make_query("2.0.0.127.bl.test", "A")
    response.flags |= dns.flags.QR
    for payload in (b"", b"\x01\x02\x03", response.to_wire(), response.to_wire()):
        assert raw_udp(client, payload, expect_reply=False) is None
    assert client.a("2.0.0.127.bl.test") == ["127.0.0.2"]  # answered after them
    dropped = dict(zip(DROP_REASONS, thread.server.stats.dropped, strict=True))
    assert dropped == {"short": 2, "response": 2, "acl": 0, "send": 0}
