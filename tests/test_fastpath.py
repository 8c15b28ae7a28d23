"""The fast path answers exactly as the general path does.

Two zones serve the same ip4trie file: ``fast.test`` holds only that data, so
its reversed-address questions take answer.py's fast path; ``slow.test`` also
holds a generic record, which sends every question through the general path.
The names have the same length, so for any question the two replies must be
the same bytes but for the zone's name. A spy on the fast path checks that
``fast.test`` questions do take it (else the comparison proves nothing).
"""

from __future__ import annotations

import os
import re
import socket
import struct

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import ServerThread, scaled

ZONE = [
    ":127.0.0.2:Listed, see https://bl.example.org/?ip=$",
    "192.0.2.1",
    "192.0.2.2 :3:Spam from $",
    "192.0.2.3 :4:",  # no TXT at all: TXT is NODATA
    "192.0.2.4 :5:" + "x" * 250 + "$",  # a long TXT: ANY without EDNS is 512+ bytes
    "198.51.100.0/24 :6:Range",
    "!198.51.100.128/26",
    "203.0.113.7",
]
ADDRESSES = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5",
             "198.51.100.9", "198.51.100.130", "203.0.113.7", "203.0.113.8", "10.1.2.3",
             # also nibble names: 6to4's 2002:: and IPv4-mapped ::ffff: start so
             "2.0.0.2", "0.0.0.0"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    from dnsbl.config import Listen, ServerConfig, with_overrides

    work = tmp_path_factory.mktemp("fast")
    data = work / "bl.txt"
    data.write_text("\n".join(ZONE) + "\n")
    generic = work / "generic.txt"
    generic.write_text("www A 127.0.0.9\n")
    mtime = data.stat().st_mtime
    os.utime(generic, (mtime, mtime))  # the same SOA serial (newest mtime) for both zones
    config = with_overrides(ServerConfig(listen=(Listen("127.0.0.1", 0),)), zones=[
        f"fast.test:ip4trie:{data}", f"slow.test:ip4trie:{data}",
        f"slow.test:generic:{generic}"])
    thread = ServerThread(config)
    client = thread.start()
    yield client
    thread.stop()


@pytest.fixture(scope="module")
def fast_answered():
    """The questions answer.py's fast path answered (it returns None for those
    it leaves to the general path); the server runs in this process."""
    from dnsbl import answer

    answered: list[bytes] = []
    fast = answer._fast

    def spy(data, *args):
        reply = fast(data, *args)
        if reply is not None:
            answered.append(data)
        return reply

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(answer, "_fast", spy)
        yield answered


def _exchange(client, wire: bytes, tcp: bool) -> bytes:
    if tcp:
        with socket.create_connection((client.host, client.port), timeout=scaled(3)) as conn:
            conn.sendall(struct.pack(">H", len(wire)) + wire)
            size = struct.unpack(">H", conn.recv(2, socket.MSG_WAITALL))[0]
            return conn.recv(size, socket.MSG_WAITALL)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(scaled(3))
        sock.sendto(wire, (client.host, client.port))
        return sock.recv(65535)


def _as_fast(match: re.Match) -> bytes:
    """"slow" as "fast", letter case kept (the question echoes the client's case)."""
    return bytes(f if s >= 0x61 else f - 0x20 for s, f in zip(match[0], b"fast", strict=True))


def _name(address: str, zone: str, zeros: bool, upper: str) -> str:
    octets = address.split(".")[::-1]
    if zeros:
        octets = [f"{int(o):03d}" for o in octets]
    name = ".".join(octets) + "." + zone
    return "".join(c.upper() if u == "1" else c for c, u in zip(name, upper.ljust(len(name), "0"),
                                                                strict=False))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(address=st.sampled_from(ADDRESSES),
       qtype=st.sampled_from(["A", "TXT", "ANY", "MX", "AAAA"]),
       edns=st.sampled_from([None, 512, 1232, 4096]),
       zeros=st.booleans(), upper=st.text("01", max_size=40), rd=st.booleans(),
       tcp=st.booleans(), qid=st.integers(0, 65535), dnssec=st.booleans())
def test_fast_and_general_paths_agree(servers, fast_answered, address, qtype, edns, zeros, upper,
                                      rd, tcp, qid, dnssec):
    replies = {}
    taken = {}
    for zone in ("fast.test", "slow.test"):
        query = dns.message.make_query(_name(address, zone, zeros, upper), qtype,
                                       use_edns=edns is not None, payload=edns or 512,
                                       want_dnssec=dnssec and edns is not None)
        query.id = qid
        if not rd:
            query.flags &= ~dns.flags.RD
        fast_answered.clear()
        replies[zone] = _exchange(servers, query.to_wire(), tcp)
        taken[zone] = bool(fast_answered)
    fast, slow = replies["fast.test"], replies["slow.test"]
    assert fast == re.sub(rb"(?i)slow", _as_fast, slow)
    dns.message.from_wire(fast)  # and it is a well-formed message
    # What the fast path leaves to the general one: other types, a TXT the
    # entry does not have (NODATA), and a reply to truncate.
    fast_case = (qtype in ("A", "TXT", "ANY") and not (address == "192.0.2.3" and qtype != "A")
                 and not dns.message.from_wire(fast).flags & dns.flags.TC)
    assert taken == {"fast.test": fast_case, "slow.test": False}


@pytest.mark.parametrize("qtype", ["A", "TXT", "ANY"])
@pytest.mark.parametrize("address", ["192.0.2.2", "198.51.100.130", "10.1.2.3"])
def test_the_common_questions_take_the_fast_path(servers, fast_answered, address, qtype):
    # Listed, excluded and unlisted, with and without EDNS and the DO bit.
    for zone, fast in (("fast.test", True), ("slow.test", False)):
        for edns, dnssec in ((None, False), (1232, False), (1232, True)):
            query = dns.message.make_query(_name(address, zone, False, ""), qtype,
                                           use_edns=edns is not None, payload=edns or 512,
                                           want_dnssec=dnssec)
            fast_answered.clear()
            reply = dns.message.from_wire(_exchange(servers, query.to_wire(), False))
            assert reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
            assert fast_answered == ([query.to_wire()] if fast else [])


def test_fast_path_answers_listed_and_unlisted(servers):
    # The same facts the general path's tests pin down, on the fast zone.
    assert servers.a("1.2.0.192.fast.test") == ["127.0.0.2"]
    assert servers.txt("2.2.0.192.fast.test") == ["Spam from 192.0.2.2"]
    assert servers.a("130.100.51.198.fast.test") == []
    reply = servers.query("8.113.0.203.fast.test", "A")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.authority[0].rdtype == dns.rdatatype.SOA
