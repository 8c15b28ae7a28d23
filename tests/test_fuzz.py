"""Property-based fuzzing of the query path.

Datagrams are random bytes, or valid queries made with dnspython and then
mutated (bit flips, truncations, insertions, deletions, count tweaks). The
property, from RFC 1035 and the README's "Answers" table: a datagram shorter
than a header or with QR=1 gets no reply; every other gets exactly one reply
that dnspython reads as a well-formed message, with the query's ID, QR=1 and
the query's opcode, no OPT when the query had no additional records, and at
most 512 bytes unless it carries an OPT (RFC 1035 4.2.1, RFC 6891 7).

Each runs once per fast path (the compiled one and the Python one), and
in-process the two are also held to the same bytes for every input.

One real server is fuzzed over UDP with hypothesis: at most UDP_EXAMPLES
(2,500) datagrams or UDP_SECONDS (30 s) of wall time, whichever ends first
(examples drawn past the time budget are not sent; drawing them costs about
a millisecond each). Then answer() is called in-process with at most
IN_PROCESS_INPUTS (20,000) inputs from a seeded generator, or for
IN_PROCESS_SECONDS (20 s). Each test prints and records how many it did; at
least 100 must have gone over UDP.
"""

from __future__ import annotations

import random
import socket
import struct
import time

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsbl.answer import answer
from dnsbl.config import Listen, ServerConfig, merge_zones, parse_zone_spec
from tests.helpers import ServerThread, scaled
from tests.test_fastpath import FAST_PATHS, assert_paths_agree, fast_path  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow  # tens of thousands of inputs

UDP_EXAMPLES = 2500
UDP_SECONDS = 30.0
IN_PROCESS_INPUTS = 20_000
IN_PROCESS_SECONDS = 20.0

DATA = [
    "$SOA 3600 ns1.example.org hostmaster.example.org 42 1h 15m 1w 300",
    "$NS 0 ns1.example.org ns2.example.org",
    "$TTL 600",
    ":127.0.0.2:Listed: $",
    "127.0.0.2",
    "10.0.0.0/8 :3:Big block",
]

NAMES = [
    "2.0.0.127.bl.test", "1.0.0.127.bl.test", "9.8.7.10.bl.test", "127.bl.test",
    "0.0.127.bl.test", "bl.test", "BL.Test", "2.0.0.127.big.test", "big.test",
    "x.0.0.127.bl.test", "256.0.0.10.bl.test", "1.2.0.0.127.bl.test", "www.other.test",
    "test", ".",
]
RDTYPES = [1, 16, 255, 6, 2, 28, 15, 252, 251, 0, 65535, 41, 250]
RDCLASSES = [1, 1, 1, 1, 3, 4, 254, 255, 0]
VALID_RCODES = {dns.rcode.NOERROR, dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NXDOMAIN,
                dns.rcode.NOTIMP, dns.rcode.REFUSED, dns.rcode.BADVERS}


class Chooser:
    """The choices a generator makes, from hypothesis or from a seeded Random."""

    def __init__(self, draw=None, rng: random.Random | None = None) -> None:
        self._draw = draw
        self._rng = rng

    def integer(self, lo: int, hi: int) -> int:
        if self._draw is not None:
            return self._draw(st.integers(lo, hi))
        assert self._rng is not None
        return self._rng.randint(lo, hi)

    def choice(self, seq):
        return seq[self.integer(0, len(seq) - 1)]

    def raw(self, lo: int, hi: int) -> bytes:
        if self._draw is not None:
            return self._draw(st.binary(min_size=lo, max_size=hi))
        assert self._rng is not None
        return self._rng.randbytes(self._rng.randint(lo, hi))


def valid_query(c: Chooser) -> bytes:
    """A well-formed query made with dnspython, with some of everything."""
    name = c.choice(NAMES)
    if c.integer(0, 5) == 0:
        name = ".".join(str(c.integer(0, 300)) for _ in range(c.integer(1, 6))) + ".bl.test"
    q = dns.message.make_query(name, c.choice(RDTYPES), rdclass=c.choice(RDCLASSES))
    q.id = c.integer(0, 0xFFFF)
    q.flags = c.choice([dns.flags.RD, 0, dns.flags.RD | dns.flags.CD, dns.flags.AD])
    edns = c.integer(0, 5)
    if edns >= 3:
        options = []
        if c.integer(0, 2) == 0:
            options.append(dns.edns.GenericOption(c.integer(0, 65535), c.raw(0, 40)))
        if c.integer(0, 3) == 0:
            options.append(dns.edns.ECSOption("192.0.2.0", 24))
        q.use_edns(c.choice([0, 0, 0, 1, 255]), ednsflags=c.choice([0, dns.flags.DO]),
                   payload=c.choice([0, 512, 1232, 4096, 65535]), options=options)
    if c.integer(0, 7) == 0:  # a record to compress against the question
        q.additional.append(
            dns.rrset.from_text(q.question[0].name, 300, "IN", "A", "127.0.0.2"))
    if c.integer(0, 15) == 0:
        q.set_opcode(c.choice([dns.opcode.NOTIFY, dns.opcode.UPDATE, dns.opcode.STATUS]))
    return q.to_wire()


def mutate(data: bytes, c: Chooser) -> bytes:
    buf = bytearray(data)
    for _ in range(c.integer(1, 4)):
        op = c.integer(0, 6)
        i = c.integer(0, len(buf))
        if op == 0 and buf:  # bit flip
            i = min(i, len(buf) - 1)
            buf[i] ^= 1 << c.integer(0, 7)
        elif op == 1:  # truncation
            del buf[i:]
        elif op == 2:  # insertion
            buf[i:i] = c.raw(1, 8)
        elif op == 3:  # deletion
            del buf[i:i + c.integer(1, 8)]
        elif op == 4 and len(buf) >= 12:  # a count claiming something else
            field = 4 + 2 * c.integer(0, 3)
            buf[field:field + 2] = struct.pack(
                ">H", c.choice([0, 1, 2, 3, 255, 256, 0xFFFF, c.integer(0, 0xFFFF)]))
        elif op == 5 and buf:  # a byte with a meaning for names
            i = min(i, len(buf) - 1)
            buf[i] = c.choice([0, 1, 0x3F, 0x40, 0x80, 0xC0, 0xFF, c.integer(0, 255)])
        elif op == 6:  # the records again
            buf += buf[12:]
    return bytes(buf)


def datagram(c: Chooser) -> bytes:
    kind = c.integer(0, 9)
    if kind == 0:
        return c.raw(0, 600)
    if kind == 1:
        return c.raw(12, 12) + c.raw(0, 300)  # at least a header, random behind
    query = valid_query(c)
    return query if kind == 2 else mutate(query, c)


@st.composite
def datagrams(draw) -> bytes:
    return datagram(Chooser(draw=draw))


def check_reply(query: bytes, reply: bytes | None) -> None:
    """The property every (datagram, reply) pair must have."""
    if len(query) < 12 or query[2] & 0x80:
        assert reply is None, "a short datagram or a response must not be answered"
        return
    assert reply is not None, "a datagram with a full header must be answered"
    r = dns.message.from_wire(reply)  # raises if the reply is malformed
    assert r.id == struct.unpack(">H", query[:2])[0]
    assert r.flags & dns.flags.QR
    assert r.opcode() == (query[2] >> 3) & 0x0F  # RFC 1035 4.1.1: copied from the query
    assert r.rcode() in VALID_RCODES
    if r.rcode() not in (dns.rcode.NOERROR,):
        assert not r.answer
    if query[10:12] == b"\x00\x00":
        assert r.edns == -1, "no OPT asked, none may come back (RFC 6891 7)"
    if r.edns == -1:
        assert len(reply) <= 512, "over 512 bytes without EDNS (RFC 1035 4.2.1)"
    else:
        assert r.edns == 0 and len(reply) <= 1232


@pytest.fixture
def server(zone_file):
    big = [zone_file([f":{i}:reason {i} " + "x" * 200, "127.0.0.2"]) for i in range(2, 6)]
    specs = [f"bl.test:ip4set:{zone_file(DATA)}", *(f"big.test:ip4set:{f}" for f in big)]
    thread = ServerThread(ServerConfig(listen=(Listen("127.0.0.1", 0),),
                                       zones=merge_zones([parse_zone_spec(s) for s in specs])))
    client = thread.start()
    yield thread, client
    thread.stop()


def assert_still_answers(client) -> None:
    assert client.a("2.0.0.127.bl.test") == ["127.0.0.2"]
    assert client.txt("2.0.0.127.bl.test") == ["Listed: 127.0.0.2"]
    assert client.query("1.0.0.127.bl.test").rcode() == dns.rcode.NXDOMAIN
    assert client.query("127.bl.test").rcode() == dns.rcode.NOERROR
    assert client.query("2.0.0.127.bl.test", tcp=True).answer[0][0].address == "127.0.0.2"


@pytest.mark.usefixtures("fast_path")
def test_fuzz_udp_server(server, record_property):
    _thread, client = server
    sent = [0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((client.host, client.port))
        sock.settimeout(scaled(2.0))
        sentinel_query = dns.message.make_query("2.0.0.127.bl.test", "A")

        def exchange(packet: bytes) -> bytes | None:
            """Send ``packet`` then an ordinary query: the server answers in order, so
            what comes before the ordinary query's reply is the reply to ``packet``."""
            sentinel_query.id = 0x5A5A if packet[:2] != b"\x5a\x5a" else 0xA5A5
            sock.send(packet)
            sock.send(sentinel_query.to_wire())
            sent[0] += 2
            first = sock.recv(65535)
            if first[:2] == struct.pack(">H", sentinel_query.id):
                return None
            second = sock.recv(65535)
            assert second[:2] == struct.pack(">H", sentinel_query.id), "more than one reply"
            assert dns.message.from_wire(second).answer[0][0].address == "127.0.0.2"
            return first

        started = time.monotonic()
        stop = started + UDP_SECONDS

        @settings(max_examples=UDP_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(datagrams())
        def fuzz(packet: bytes) -> None:
            if time.monotonic() > stop:
                return  # out of time: the remaining examples are only drawn
            check_reply(packet, exchange(packet))

        fuzz()
        elapsed = time.monotonic() - started
        assert elapsed < UDP_SECONDS + 30, "drawing the unsent examples took long"
    record_property("fuzz_udp_datagrams", sent[0])
    print(f"\nfuzz: {sent[0]} UDP datagrams ({sent[0] // 2} fuzzed, each followed by a "
          f"sentinel query) in {elapsed:.1f} s")
    assert sent[0] >= 2 * 100  # hypothesis did run
    assert_still_answers(client)


@pytest.mark.usefixtures("fast_path")
def test_fuzz_answer_in_process(server, record_property):
    thread, client = server
    zones = thread.server.served.current.zones
    stats = thread.server.stats
    rng = random.Random(20240607)
    c = Chooser(rng=rng)
    started = time.monotonic()
    done = 0
    for i in range(IN_PROCESS_INPUTS):
        if time.monotonic() - started > IN_PROCESS_SECONDS:
            break
        done += 1
        packet = datagram(c)
        udp = i % 4 != 0
        try:
            reply = answer(packet, zones, stats, udp=udp)
        except Exception as exc:  # the point of the test: it must never raise
            pytest.fail(f"answer() raised {exc!r} for {packet!r}")
        if "compiled" in FAST_PATHS:  # the two fast paths: the same bytes, the same counts
            assert_paths_agree(packet, zones, udp)
        if udp:
            check_reply(packet, reply)
        elif reply is not None:
            assert dns.message.from_wire(reply).id == struct.unpack(">H", packet[:2])[0]
    record_property("fuzz_in_process_inputs", done)
    print(f"\nfuzz: {done} inputs to answer() in-process in "
          f"{time.monotonic() - started:.1f} s")
    assert_still_answers(client)
