"""Hostile input: hand-built bad packets over real UDP (and TCP) to a running server.

Each case says what a DNS server must do with it, from RFC 1035 (header,
names, compression), RFC 6891 (EDNS0) and the README's "Answers" table:
an error RCODE with the query's ID and opcode, or no reply at all for what is
shorter than a header or is itself a response (QR=1). Packets are built with
struct, not with a DNS library, so they can be wrong on purpose. After the
corpus the server must still answer ordinary queries correctly.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from dnsbl.config import Listen, ServerConfig, with_overrides
from tests.helpers import ServerThread, samples, scaled

ZONE_DATA = [
    "$SOA 3600 ns1.example.org hostmaster.example.org 42 1h 15m 1w 300",
    "$TTL 600",
    ":127.0.0.2:Listed: $",
    "127.0.0.2",
]

QID = 0xBEEF
SENTINEL_ID = 0x5A5A
RD = 0x0100

FORMERR = dns.rcode.FORMERR
NOTIMP = dns.rcode.NOTIMP
REFUSED = dns.rcode.REFUSED
BADVERS = dns.rcode.BADVERS
NOERROR = dns.rcode.NOERROR
NXDOMAIN = dns.rcode.NXDOMAIN

CLASS_IN, CLASS_CH, CLASS_HS, CLASS_NONE, CLASS_ANY = 1, 3, 4, 254, 255
TYPE_A, TYPE_TXT, TYPE_OPT = 1, 16, 41


# --- packet building, by hand ---------------------------------------------------------------

def wire_name(*labels: bytes) -> bytes:
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"


def long_name(size: int) -> bytes:
    """A name of exactly ``size`` wire bytes under bl.test (RFC 1035 2.3.4: at most 255)."""
    tail = [b"bl", b"test"]
    labels = [b"a" * 63] * 3
    rest = size - len(wire_name(*labels, *tail)) - 1
    name = wire_name(*labels, b"b" * rest, *tail)
    assert len(name) == size
    return name


LISTED = wire_name(b"2", b"0", b"0", b"127", b"bl", b"test")


def header(qid: int = QID, flags: int = RD, qd: int = 1, an: int = 0, ns: int = 0,
           ar: int = 0) -> bytes:
    return struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar)


def question(name: bytes = LISTED, qtype: int = TYPE_A, qclass: int = CLASS_IN) -> bytes:
    return name + struct.pack(">HH", qtype, qclass)


def opt(payload: int = 1232, ext_rcode: int = 0, version: int = 0, flags: int = 0,
        options: bytes = b"", owner: bytes = b"\x00", rdlen: int | None = None) -> bytes:
    """An OPT pseudo-record (RFC 6891 6.1.2); ``rdlen`` may lie about the options."""
    ttl = ext_rcode << 24 | version << 16 | flags
    size = len(options) if rdlen is None else rdlen
    return owner + struct.pack(">HHIH", TYPE_OPT, payload, ttl, size) + options


def option(code: int, data: bytes) -> bytes:
    return struct.pack(">HH", code, len(data)) + data


def a_record(owner: bytes) -> bytes:
    return owner + struct.pack(">HHIH", TYPE_A, CLASS_IN, 300, 4) + b"\x7f\x00\x00\x02"


QUERY = header() + question()


# --- the corpus -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    packet: bytes
    rcode: int | None  # None: the server must stay silent
    edns: bool = False  # the reply must carry an OPT (the query had a valid one)


def _qr1(packet: bytes) -> bytes:
    return packet[:2] + bytes((packet[2] | 0x80,)) + packet[3:]


SELF_LOOP = 12 + len(question())  # offset of the additional record's owner below

CORPUS: dict[str, Case] = {
    # Shorter than a header: nothing to answer to (README; no ID can be trusted).
    "empty datagram": Case(b"", None),
    **{f"{n}-byte datagram": Case(QUERY[:n], None) for n in range(1, 12)},
    # RFC 1035 4.1.2: a query has one question; anything else cannot be answered.
    "qdcount 0": Case(header(qd=0), FORMERR),
    "qdcount 0 with a question after": Case(header(qd=0) + question(), FORMERR),
    "qdcount 2, two questions": Case(header(qd=2) + question() + question(), FORMERR),
    "qdcount 2, one question": Case(header(qd=2) + question(), FORMERR),
    "qdcount 65535": Case(header(qd=65535) + question(), FORMERR),
    "qdcount 256": Case(header(qd=256) + question(), FORMERR),
    "header only, qdcount 1": Case(header(), FORMERR),
    # Counts claiming records that are not in the message.
    "ancount 1, no answer": Case(header(an=1) + question(), FORMERR),
    "nscount 1, no authority": Case(header(ns=1) + question(), FORMERR),
    "arcount 1, no additional": Case(header(ar=1) + question(), FORMERR),
    "arcount 2, one OPT": Case(header(ar=2) + question() + opt(), FORMERR),
    "arcount 65535, one OPT": Case(header(ar=65535) + question() + opt(), FORMERR),
    "ancount 65535 and OPT": Case(header(an=65535, ar=1) + question() + opt(), FORMERR),
    "additional record cut in its fixed part": Case(
        header(ar=1) + question() + a_record(b"\x00")[:7], FORMERR),
    "additional record rdata cut": Case(
        header(ar=1) + question() + a_record(b"\x00")[:-2], FORMERR),
    # Names: labels past the end, pointers, lengths (RFC 1035 2.3.4, 3.1, 4.1.4).
    "label runs past the end": Case(header() + b"\x3fabc", FORMERR),
    "label runs into the end exactly": Case(header() + b"\x03abc", FORMERR),
    "name without its root label": Case(header() + b"\x02bl\x04test", FORMERR),
    "question without type and class": Case(header() + LISTED, FORMERR),
    "question without class": Case(header() + LISTED + b"\x00\x01", FORMERR),
    "pointer as the whole question name": Case(header() + b"\xc0\x0c\x00\x01\x00\x01", FORMERR),
    "pointer after a label in the question": Case(
        header() + b"\x02bl\xc0\x0c\x00\x01\x00\x01", FORMERR),
    "pointer into the header": Case(header() + b"\x01a\xc0\x02\x00\x01\x00\x01", FORMERR),
    "half a pointer": Case(header() + b"\xc0", FORMERR),
    "reserved label type 0x80": Case(header() + b"\x80abc\x00\x00\x01\x00\x01", FORMERR),
    "extended label type 0x41": Case(header() + b"\x41" + b"a" * 65 + b"\x00\x00\x01\x00\x01",
                                     FORMERR),
    "64-byte label": Case(header() + question(wire_name(b"a" * 64, b"bl", b"test")), FORMERR),
    "64-byte label, zone-relative": Case(
        header() + question(wire_name(b"1" * 64, b"0", b"0", b"127", b"bl", b"test")), FORMERR),
    "name of 256 bytes": Case(header() + question(long_name(256)), FORMERR),
    "name of 321 bytes": Case(header() + question(wire_name(*[b"a" * 63] * 5)), FORMERR),
    # A name of exactly 255 bytes is legal: answered (NXDOMAIN, not an address).
    "name of 255 bytes": Case(header() + question(long_name(255)), NXDOMAIN),
    # Pointer loops and forward pointers in an additional record's owner: the
    # message is malformed (RFC 1035 4.1.4: a pointer names a *prior* occurrence).
    "additional owner points at itself": Case(
        header(ar=1) + question() + a_record(struct.pack(">H", 0xC000 | SELF_LOOP)), FORMERR),
    "additional owner: two pointers pointing at each other": Case(
        header(ar=2) + question()
        + a_record(struct.pack(">H", 0xC000 | (SELF_LOOP + 16)))
        + a_record(struct.pack(">H", 0xC000 | SELF_LOOP)), FORMERR),
    "additional owner: label then pointer back to itself": Case(
        header(ar=1) + question()
        + a_record(b"\x01x" + struct.pack(">H", 0xC000 | SELF_LOOP)), FORMERR),
    "additional owner: pointer past the end": Case(
        header(ar=1) + question() + a_record(b"\xff\xff"), FORMERR),
    # A good backward pointer (to the question name) is fine: answered normally.
    "additional owner: valid pointer to the question": Case(
        header(ar=1) + question() + a_record(b"\xc0\x0c"), NOERROR),
    # Classes other than IN (RFC 1035 3.2.4, RFC 2136 NONE, ANY): not ours.
    "class CH": Case(header() + question(qclass=CLASS_CH), REFUSED),
    "class HS": Case(header() + question(qclass=CLASS_HS), REFUSED),
    "class NONE": Case(header() + question(qclass=CLASS_NONE), REFUSED),
    "class ANY": Case(header() + question(qclass=CLASS_ANY), REFUSED),
    "class 0": Case(header() + question(qclass=0), REFUSED),
    # QR=1: a response; answering it could start a reflection loop.
    "QR=1 response": Case(_qr1(QUERY), None),
    "QR=1 with NOTIFY opcode": Case(_qr1(header(flags=RD | 4 << 11) + question()), None),
    "QR=1 with qdcount 0": Case(_qr1(header(qd=0)), None),
    "QR=1 with garbage": Case(_qr1(header()) + b"\xff" * 40, None),
    "QR=1 header only": Case(_qr1(header(qd=0, flags=0xFFFF)), None),
    # Every opcode but QUERY: NOTIMP (RFC 1035 4.1.1: the opcode is echoed);
    # NOTIFY is REFUSED: we are nobody's secondary.
    **{f"opcode {op}": Case(header(flags=RD | op << 11) + question(),
                            REFUSED if op == 4 else NOTIMP)
       for op in range(1, 16)},
    # EDNS (RFC 6891).
    "two OPT records": Case(header(ar=2) + question() + opt() + opt(), FORMERR),
    "OPT in the answer section": Case(header(an=1) + question() + opt(), FORMERR),
    "OPT in the authority section": Case(header(ns=1) + question() + opt(), FORMERR),
    "OPT in the answer and the additional section": Case(
        header(an=1, ar=1) + question() + opt() + opt(), FORMERR),
    "OPT with a non-root owner": Case(header(ar=1) + question() + opt(owner=b"\x02bl\x00"),
                                      FORMERR),
    "OPT owned by a pointer": Case(header(ar=1) + question() + opt(owner=b"\xc0\x0c"), FORMERR),
    "OPT rdata cut short": Case(
        header(ar=1) + question() + opt(options=option(10, b"12345678"), rdlen=40), FORMERR),
    "OPT fixed part cut short": Case(header(ar=1) + question() + opt()[:6], FORMERR),
    "OPT option longer than the rdata": Case(
        header(ar=1) + question() + opt(options=struct.pack(">HH", 10, 20) + b"12345678"),
        FORMERR),
    "OPT option header cut": Case(
        header(ar=1) + question() + opt(options=b"\x00\x0a\x00"), FORMERR),
    "EDNS version 1": Case(header(ar=1) + question() + opt(version=1), BADVERS, edns=True),
    "EDNS version 255": Case(header(ar=1) + question() + opt(version=255), BADVERS, edns=True),
    "EDNS version 1, unknown class": Case(
        header(ar=1) + question(qclass=CLASS_CH) + opt(version=1), BADVERS, edns=True),
    "EDNS unknown options": Case(
        header(ar=1) + question()
        + opt(options=option(65001, b"hello") + option(3, b"") + option(65535, b"\x00" * 40)),
        NOERROR, edns=True),
    "EDNS payload 0": Case(header(ar=1) + question() + opt(payload=0), NOERROR, edns=True),
    "EDNS DO bit and unknown flags": Case(
        header(ar=1) + question() + opt(flags=0xFFFF), NOERROR, edns=True),
}


# What each case counts under (README "Metrics"): dnsbl_dns_malformed_total's
# reason, or "dropped:<reason>" for dnsbl_dns_dropped_total. Cases not named
# here are well-formed (answered, or BADVERS) and count under neither.
COUNTED: dict[str, str] = {
    "empty datagram": "dropped:short",
    **{f"{n}-byte datagram": "dropped:short" for n in range(1, 12)},
    **dict.fromkeys(["qdcount 0", "qdcount 0 with a question after", "qdcount 2, two questions",
                     "qdcount 2, one question", "qdcount 65535", "qdcount 256",
                     "ancount 1, no answer", "nscount 1, no authority",
                     "arcount 1, no additional", "arcount 2, one OPT", "arcount 65535, one OPT",
                     "additional record cut in its fixed part", "additional record rdata cut"],
                    "counts"),
    **dict.fromkeys(["header only, qdcount 1", "question without type and class",
                     "question without class"], "question"),
    **dict.fromkeys(["label runs past the end", "label runs into the end exactly",
                     "name without its root label", "reserved label type 0x80",
                     "extended label type 0x41", "64-byte label", "64-byte label, zone-relative",
                     "name of 256 bytes", "name of 321 bytes"], "name"),
    **dict.fromkeys(["pointer as the whole question name",
                     "pointer after a label in the question", "pointer into the header",
                     "half a pointer", "additional owner points at itself",
                     "additional owner: two pointers pointing at each other",
                     "additional owner: label then pointer back to itself",
                     "additional owner: pointer past the end"], "pointer"),
    # The first record the counts claim is an OPT, in the answer section.
    "ancount 65535 and OPT": "edns",
    **dict.fromkeys(["two OPT records", "OPT in the answer section",
                     "OPT in the authority section",
                     "OPT in the answer and the additional section", "OPT with a non-root owner",
                     "OPT owned by a pointer", "OPT rdata cut short", "OPT fixed part cut short",
                     "OPT option longer than the rdata", "OPT option header cut"], "edns"),
    **dict.fromkeys(["class CH", "class HS", "class NONE", "class ANY", "class 0"], "class"),
    **dict.fromkeys(["QR=1 response", "QR=1 with NOTIFY opcode", "QR=1 with qdcount 0",
                     "QR=1 with garbage", "QR=1 header only"], "dropped:response"),
    **{f"opcode {op}": "opcode" for op in range(1, 16)},
}


# --- sending and checking -------------------------------------------------------------------

def _udp_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.settimeout(scaled(2.0))
    return s


def sentinel() -> bytes:
    return header(qid=SENTINEL_ID) + question()


def exchange_udp(client, packet: bytes) -> bytes | None:
    """Send ``packet`` then an ordinary query from the same socket. The server reads
    them in order, so whatever arrives before the sentinel's reply is the reply to
    ``packet``; no timing guesswork decides "silence"."""
    with _udp_socket() as s:
        s.connect((client.host, client.port))
        s.send(packet)
        s.send(sentinel())
        first = s.recv(65535)
        if first[:2] == struct.pack(">H", SENTINEL_ID) and packet[:2] != first[:2]:
            check_sentinel(first)
            return None
        second = s.recv(65535)
        check_sentinel(second)
        return first


def check_sentinel(reply: bytes) -> None:
    r = dns.message.from_wire(reply)
    assert r.id == SENTINEL_ID and r.rcode() == NOERROR
    assert [rd.address for rd in r.answer[0]] == ["127.0.0.2"]


def check_reply(name: str, case: Case, reply: bytes | None) -> None:
    packet = case.packet
    if case.rcode is None:
        assert reply is None, f"{name}: must get no reply, got {reply!r}"
        return
    assert reply is not None, f"{name}: got no reply"
    # A well-formed message, whatever the query was.
    r = dns.message.from_wire(reply)
    assert r.id == struct.unpack(">H", packet[:2])[0], name
    assert r.flags & dns.flags.QR, name
    assert r.rcode() == case.rcode, f"{name}: {dns.rcode.to_text(r.rcode())}"
    # RFC 1035 4.1.1: OPCODE and RD are copied into the response.
    assert r.opcode() == (packet[2] >> 3) & 0x0F, name
    assert bool(r.flags & dns.flags.RD) == bool(packet[2] & 1), name
    if case.edns:
        # RFC 6891 6.1.3/7: an OPT back, version 0 (what we implement), no options
        # (we understand none of the ones asked), payload at least 512.
        assert r.edns == 0, name
        assert r.options == (), name
        assert r.payload >= 512, name
        assert reply.endswith(b"\x00\x00"), f"{name}: OPT rdata not empty"
    elif len(packet) >= 12 and packet[10:12] == b"\x00\x00":
        # No OPT asked, no OPT back (RFC 6891 7).
        assert r.edns == -1, name
    if case.rcode == BADVERS:
        assert not r.answer and not r.authority, name
        # The 12-bit RCODE is split: 0 in the header, 1 in the OPT (RFC 6891 6.1.3).
        assert reply[3] & 0x0F == 0, name
    if case.rcode in (FORMERR, NOTIMP, REFUSED, BADVERS):
        assert not r.answer, name
    if case.rcode == NOERROR and (packet[2] >> 3) & 0x0F == 0:
        assert [rd.address for rd in r.answer[0]] == ["127.0.0.2"], name


@pytest.fixture
def server(serve, zone_file):
    return serve(f"bl.test:ip4set:{zone_file(ZONE_DATA)}")


def still_answers(client) -> None:
    r = client.query("2.0.0.127.bl.test", "A")
    assert r.rcode() == NOERROR and [rd.address for rd in r.answer[0]] == ["127.0.0.2"]
    assert client.txt("2.0.0.127.bl.test") == ["Listed: 127.0.0.2"]
    assert client.query("1.0.0.127.bl.test", "A").rcode() == NXDOMAIN
    assert client.query("2.0.0.127.bl.test", "A", tcp=True).answer[0][0].address == "127.0.0.2"


@pytest.mark.parametrize("name", list(CORPUS))
def test_hostile_packet_over_udp(server, name):
    case = CORPUS[name]
    check_reply(name, case, exchange_udp(server, case.packet))
    still_answers(server)


def test_whole_corpus_in_a_row_then_normal_queries(server):
    for name, case in CORPUS.items():
        check_reply(name, case, exchange_udp(server, case.packet))
    still_answers(server)


def test_edns_reply_opt_is_exactly_version_0_with_no_options(server):
    packet = header(ar=1) + question() + opt(options=option(65001, b"x" * 100))
    reply = exchange_udp(server, packet)
    assert reply is not None
    # The OPT is the last record: root owner, type 41, payload, ttl 0, rdlen 0.
    owner, rtype, _payload, ttl, rdlen = struct.unpack(">BHHIH", reply[-11:])
    assert (owner, rtype, ttl, rdlen) == (0, TYPE_OPT, 0, 0)
    assert struct.unpack(">H", reply[10:12])[0] == 1  # arcount: just the OPT


def test_badvers_opt_carries_extended_rcode(server):
    reply = exchange_udp(server, header(ar=1) + question() + opt(version=1))
    assert reply is not None
    owner, rtype, _payload, ext_rcode, version, _flags, rdlen = struct.unpack(
        ">BHHBBHH", reply[-11:])
    assert (owner, rtype, rdlen) == (0, TYPE_OPT, 0)
    assert (ext_rcode, version, reply[3] & 0x0F) == (1, 0, 0)  # BADVERS = 16 = 1 << 4 | 0


# --- the biggest datagram ---------------------------------------------------------------------

MAX_UDP4 = 65507  # 65535 - 20 (IPv4) - 8 (UDP)


def _padded_query(total: int, qid: int = QID) -> bytes:
    head = header(qid=qid, ar=1) + question()
    fixed = len(head) + 11 + 4  # OPT fixed part + one option header
    return head + opt(payload=4096, options=option(12, b"\x00" * (total - fixed)))  # Padding


def test_64k_udp_datagram_is_answered(server):
    packet = _padded_query(MAX_UDP4)
    assert len(packet) == MAX_UDP4
    reply = exchange_udp(server, packet)
    assert reply is not None, "no reply to a 64 KiB query (was it read whole?)"
    r = dns.message.from_wire(reply)
    assert r.id == QID and r.rcode() == NOERROR
    assert [rd.address for rd in r.answer[0]] == ["127.0.0.2"]
    assert r.edns == 0 and r.options == ()
    assert len(reply) < 512  # the padding is not echoed
    still_answers(server)


def test_64k_udp_datagram_of_garbage(server):
    # A header claiming 65535 of each section, then junk: malformed, FORMERR.
    packet = header(an=65535, ns=65535, ar=65535) + question() + b"\xc1" * (MAX_UDP4 - 35)
    assert len(packet) == MAX_UDP4
    check_reply("64k garbage", Case(packet, FORMERR), exchange_udp(server, packet))
    still_answers(server)


# --- TCP ------------------------------------------------------------------------------------

def _tcp_exchange(client, messages: list[bytes], expected_replies: int) -> list[bytes]:
    with socket.create_connection((client.host, client.port), timeout=scaled(3)) as s:
        s.sendall(b"".join(struct.pack(">H", len(m)) + m for m in messages))
        replies: list[bytes] = []
        buf = b""
        for _ in range(10_000):  # bounded
            if len(replies) == expected_replies:
                break
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                size = struct.unpack(">H", buf[:2])[0]
                replies.append(buf[2:2 + size])
                buf = buf[2 + size:]
            if len(replies) == expected_replies:
                break
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return replies


TCP_CASES = ["empty datagram", "5-byte datagram", "11-byte datagram", "qdcount 0",
             "qdcount 65535", "64-byte label", "name of 256 bytes",
             "pointer as the whole question name", "QR=1 response", "opcode 4",
             "opcode 15", "class CH", "two OPT records", "OPT rdata cut short",
             "additional owner points at itself", "EDNS version 1", "EDNS unknown options"]


def test_hostile_messages_over_one_tcp_connection(server):
    """Pipelined on one connection: each bad message gets its reply (or none) in
    order, the connection survives, and a good query after them is answered."""
    messages = [CORPUS[name].packet for name in TCP_CASES] + [sentinel()]
    answered = [name for name in TCP_CASES if CORPUS[name].rcode is not None]
    replies = _tcp_exchange(server, messages, len(answered) + 1)
    assert len(replies) == len(answered) + 1
    for name, reply in zip(answered, replies, strict=False):
        check_reply(f"tcp {name}", CORPUS[name], reply)
    check_sentinel(replies[-1])
    still_answers(server)


def test_largest_tcp_message_is_answered(server):
    packet = _padded_query(65535)
    [reply] = _tcp_exchange(server, [packet], 1)
    r = dns.message.from_wire(reply)
    assert r.id == QID and r.rcode() == NOERROR
    assert [rd.address for rd in r.answer[0]] == ["127.0.0.2"]
    still_answers(server)


# --- counted by reason ------------------------------------------------------------------------

@pytest.fixture
def metered(zone_file):
    config = with_overrides(ServerConfig(listen=(Listen("127.0.0.1", 0),)),
                            zones=[f"bl.test:ip4set:{zone_file(ZONE_DATA)}"])
    thread = ServerThread(config, metrics=Listen("127.0.0.1", 0))
    client = thread.start()
    yield client, thread.server.metrics_port
    thread.stop()


def counted(port: int) -> dict[str, float]:
    """The malformed and dropped counters, scraped from /metrics, by reason."""
    found = samples(port)
    return {(reason if name == "dnsbl_dns_malformed_total" else f"dropped:{reason}"): v
            for (name, labels), v in found.items()
            for key, reason in labels if key == "reason"
            and name in ("dnsbl_dns_malformed_total", "dnsbl_dns_dropped_total")}


def test_each_bad_packet_counts_once_under_its_reason(metered):
    """Scraped after each case: the case's reason moved by exactly 1 and no other
    malformed or dropped counter moved (well-formed cases move none)."""
    client, port = metered
    before = counted(port)
    assert set(COUNTED.values()) <= set(before)  # every reason is a series from the start
    for name, case in CORPUS.items():
        check_reply(name, case, exchange_udp(client, case.packet))
        after = counted(port)
        moved = {reason: after[reason] - before[reason] for reason in after
                 if after[reason] != before[reason]}
        expected = {COUNTED[name]: 1} if name in COUNTED else {}
        assert moved == expected, name
        before = after
    still_answers(client)
    assert counted(port) == before  # good queries count nothing here


def test_bad_messages_over_tcp_are_counted_too(metered):
    client, port = metered
    names = ["qdcount 0", "64-byte label", "pointer as the whole question name", "opcode 4",
             "class CH", "two OPT records", "EDNS version 1"]
    before = counted(port)
    replies = _tcp_exchange(client, [CORPUS[n].packet for n in names] + [sentinel()],
                            len(names) + 1)
    check_sentinel(replies[-1])
    after = counted(port)
    assert {r: after[r] - before[r] for r in after if after[r] != before[r]} == {
        "counts": 1, "name": 1, "pointer": 1, "opcode": 1, "class": 1, "edns": 1}
