"""TCP limits and response rate limiting, over real sockets."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import replace

import dns.flags
import dns.message
import dns.rcode
import pytest

from dnsbl.config import Listen, RRLConfig, ServerConfig, parse_zone_spec, with_overrides
from tests.conftest import ServerThread


def start(zone_file, **settings) -> tuple[ServerThread, object]:
    config = ServerConfig(listen=(Listen("127.0.0.1", 0),), zones=(
        parse_zone_spec(f"bl.test:ip4set:{zone_file(['127.0.0.2'])}"),))
    thread = ServerThread(replace(config, **settings))
    return thread, thread.start()


def tcp_ask(sock: socket.socket, name: str) -> dns.message.Message:
    wire = dns.message.make_query(name, "A").to_wire()
    sock.sendall(struct.pack(">H", len(wire)) + wire)
    size = struct.unpack(">H", recv_exactly(sock, 2))[0]
    return dns.message.from_wire(recv_exactly(sock, size))


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_idle_tcp_connection_is_closed(zone_file):
    thread, client = start(zone_file, tcp_idle_timeout=0.5)
    try:
        with socket.create_connection((client.host, client.port), timeout=3) as s:
            assert tcp_ask(s, "2.0.0.127.bl.test").answer
            started = time.monotonic()
            assert closed_by_peer(s, 3)
            assert 0.3 < time.monotonic() - started < 2.5
        # A client that sends half a message and stalls is closed as well.
        with socket.create_connection((client.host, client.port), timeout=3) as s:
            s.sendall(b"\x00\x40\x12")
            assert closed_by_peer(s, 3)
    finally:
        thread.stop()


def test_connection_cap(zone_file):
    thread, client = start(zone_file, tcp_max_connections=3)
    try:
        held = [socket.create_connection((client.host, client.port), timeout=3)
                for _ in range(3)]
        for s in held:
            assert tcp_ask(s, "2.0.0.127.bl.test").answer
        extra = socket.create_connection((client.host, client.port), timeout=3)
        assert closed_by_peer(extra, 3)  # over the cap: closed at once
        extra.close()
        assert client.a("2.0.0.127.bl.test") == ["127.0.0.2"]  # UDP unaffected
        held.pop().close()
        time.sleep(0.2)
        with socket.create_connection((client.host, client.port), timeout=3) as again:
            assert tcp_ask(again, "2.0.0.127.bl.test").answer
        for s in held:
            s.close()
    finally:
        thread.stop()


def flood(host: str, port: int, source: str, count: int) -> list[dns.message.Message]:
    """Send ``count`` queries from ``source`` as fast as possible; collect replies."""
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        queries = [dns.message.make_query("2.0.0.127.bl.test", "A") for _ in range(count)]
        for q in queries:
            s.sendto(q.to_wire(), (host, port))
        s.settimeout(0.5)
        try:
            while True:
                replies.append(dns.message.from_wire(s.recv(4096)))
        except TimeoutError:
            pass
    return replies


def test_rrl_limits_a_flooding_prefix_and_serves_others(zone_file):
    rrl = RRLConfig(rate=10, slip=2, exempt=("127.0.3.0/24",))
    thread, client = start(zone_file, rrl=rrl)
    try:
        replies = flood(client.host, client.port, "127.0.1.1", 200)
        full = [r for r in replies if r.answer]
        slipped = [r for r in replies if r.flags & dns.flags.TC and not r.answer]
        assert 5 <= len(full) <= 20  # the burst allowance, give or take the clock
        assert len(slipped) >= 80  # about every second limited response slips
        assert len(full) + len(slipped) < 200  # the rest were dropped
        # Another /24 is served in full meanwhile, and so is an exempt one.
        assert len([r for r in flood(client.host, client.port, "127.0.2.1", 8)
                    if r.answer]) == 8
        assert len([r for r in flood(client.host, client.port, "127.0.3.1", 100)
                    if r.answer]) == 100
        # TCP is never limited: the slipped client gets its answer there.
        r = client.query("2.0.0.127.bl.test", tcp=True)
        assert r.rcode() == dns.rcode.NOERROR and r.answer
        dropped, slipped_count = thread.server.rrl.limited
        assert slipped_count == len(slipped) and dropped >= 1
        # A second later the prefix is served again.
        time.sleep(1.1)
        assert flood(client.host, client.port, "127.0.1.1", 1)[0].answer
    finally:
        thread.stop()


def test_nsid_only_when_asked_and_payload_setting(zone_file):
    import dns.edns

    thread, client = start(zone_file, nsid="node-7", edns_payload=4096)
    try:
        asked = client.query("2.0.0.127.bl.test", use_edns=0,
                             options=[dns.edns.GenericOption(dns.edns.NSID, b"")])
        assert [(o.otype, o.to_wire()) for o in asked.options] == [(dns.edns.NSID, b"node-7")]
        assert asked.payload == 4096
        plain = client.query("2.0.0.127.bl.test", use_edns=0)
        assert plain.options == () or list(plain.options) == []
        assert plain.answer
    finally:
        thread.stop()


def test_client_that_does_not_read_answers_is_not_read_from(zone_file):
    """A TCP client pipelining questions without reading the answers must stall
    on its own sends (the server stops reading it) rather than make the server
    buffer answers without bound; other clients are served meanwhile."""
    thread, client = start(zone_file)
    try:
        wire = dns.message.make_query("2.0.0.127.bl.test", "TXT").to_wire()
        chunk = (struct.pack(">H", len(wire)) + wire) * 1000
        sent = 0
        with socket.create_connection((client.host, client.port), timeout=3) as greedy:
            greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            greedy.settimeout(2)
            try:
                while sent < 200_000_000:  # bounded: 200 MB of questions at most
                    sent += greedy.send(chunk)
            except TimeoutError:
                pass
            # Without backpressure the server would read (and answer into memory)
            # all 200 MB; with it, sends stall once the socket buffers are full.
            assert sent < 50_000_000, sent
            assert client.a("2.0.0.127.bl.test") == ["127.0.0.2"]
            assert client.query("2.0.0.127.bl.test", tcp=True).answer
    finally:
        thread.stop()


@pytest.mark.parametrize("udp_batch", [32, 0], ids=["recvmmsg", "one-at-a-time"])
def test_burst_of_datagrams_all_answered(zone_file, udp_batch):
    # Several batches' worth sent before reading any reply: every query gets
    # its own answer (matching ID and name), however the datagrams are read.
    thread, client = start(zone_file, udp_batch=udp_batch)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.settimeout(3)
            sent = {}
            for qid in range(300):
                name = "2.0.0.127.bl.test" if qid % 2 else f"{qid % 250}.9.0.10.bl.test"
                q = dns.message.make_query(name, "A", id=qid)
                sent[qid] = q
                s.sendto(q.to_wire(), (client.host, client.port))
            got = {}
            for _ in range(300):
                r = dns.message.from_wire(s.recv(4096))
                got[r.id] = r
        assert sorted(got) == list(range(300))
        for qid, r in got.items():
            assert r.question == sent[qid].question
            assert bool(r.answer) == bool(qid % 2)
            assert r.rcode() == (dns.rcode.NOERROR if qid % 2 else dns.rcode.NXDOMAIN)
    finally:
        thread.stop()


@pytest.mark.parametrize("udp_batch", [32, 0], ids=["recvmmsg", "one-at-a-time"])
def test_ipv6_listener_sees_client_addresses(zone_file, udp_batch):
    # An ACL needs the client's address: over IPv6 it must come through intact.
    acl = zone_file(["::1 :127.0.0.9:every address listed for $"])
    config = with_overrides(ServerConfig(listen=(Listen("::1", 0),), udp_batch=udp_batch),
                            zones=[f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
                                   f"bl.test:acl:{acl}"])
    thread = ServerThread(config)
    client = thread.start()
    try:
        assert client.a("3.3.3.3.bl.test") == ["127.0.0.9"]
        assert client.txt("3.3.3.3.bl.test") == ["every address listed for ::1"]
    finally:
        thread.stop()
