"""TCP limits and response rate limiting, over real sockets."""

from __future__ import annotations

import asyncio
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import dns.flags
import dns.message
import dns.rcode
import pytest

from dnsbl.config import Listen, RRLConfig, ServerConfig, parse_zone_spec
from dnsbl.protocols import MAX_BUFFERED
from dnsbl.server import UDP_RECEIVE_BUFFER
from dnsbl.stats import TCP_CLOSE_REASONS
from tests.helpers import Client, ServerThread, needs_ipv6, samples, scaled, value, wait_for


@pytest.fixture
def start(zone_file, cleanup):
    """start(**settings) -> (ServerThread, Client) serving bl.test, stopped after the test."""

    def _start(metrics: Listen | None = None, zone: str | None = None,
               **settings) -> tuple[ServerThread, Client]:
        config = ServerConfig(listen=(Listen("127.0.0.1", 0),), zones=(
            parse_zone_spec(f"bl.test:ip4set:{zone or zone_file(['127.0.0.2'])}"),))
        thread = ServerThread(replace(config, **settings), metrics=metrics)
        client = thread.start()
        cleanup.callback(thread.stop)
        return thread, client

    return _start


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


def connect(cleanup, client: Client, source: str | None = None) -> socket.socket:
    """A TCP connection to the server, closed after the test whatever happens."""
    return cleanup.enter_context(socket.create_connection(
        (client.host, client.port), timeout=scaled(3),
        source_address=(source, 0) if source else None))


def served_on_a_new_connection(client: Client, source: str | None = None) -> bool:
    """Whether a new connection (from ``source``) gets an answer now: False when
    the server closes it at once, as it does over a connection cap."""
    try:
        with socket.create_connection((client.host, client.port), timeout=scaled(3),
                                      source_address=(source, 0) if source else None) as s:
            return bool(tcp_ask(s, "2.0.0.127.bl.test").answer)
    except (ConnectionError, TimeoutError):
        return False


def test_idle_tcp_connection_is_closed(start, cleanup):
    thread, client = start(tcp_idle_timeout=0.5)
    s = connect(cleanup, client)
    assert tcp_ask(s, "2.0.0.127.bl.test").answer
    started = time.monotonic()
    assert closed_by_peer(s, scaled(3))
    assert 0.3 < time.monotonic() - started < scaled(2.5)
    # A client that sends half a message and stalls is closed as well.
    s = connect(cleanup, client)
    s.sendall(b"\x00\x40\x12")
    assert closed_by_peer(s, scaled(3))
    closed = dict(zip(TCP_CLOSE_REASONS, thread.server.stats.tcp_closed, strict=True))
    assert closed == {"cap": 0, "idle": 2, "stalled": 0}


def test_client_trickling_bytes_is_closed_at_the_idle_timeout(start, cleanup):
    """Slowloris: a byte every 0.2 s never completes a question, so it does not
    keep the connection open past the idle timeout (0.6 s) and its slot."""
    thread, client = start(tcp_idle_timeout=0.6, tcp_max_connections=1)
    s = connect(cleanup, client)
    started = time.monotonic()
    closed = False
    for byte in b"\xff\xff" + bytes(20):  # bounded: 22 bytes, 4.4 s at most
        try:
            s.sendall(bytes([byte]))
        except OSError:  # reset: closed
            closed = True
            break
        if closed_by_peer(s, 0.2):
            closed = True
            break
    assert closed  # before the trickle ended: the bytes did not keep it open
    assert time.monotonic() - started < scaled(3.5)  # the trickle would last 4.4 s
    wait_for(lambda: served_on_a_new_connection(client), what="the one slot free again")


def test_connection_cap(start, cleanup):
    thread, client = start(tcp_max_connections=3)
    held = [connect(cleanup, client) for _ in range(3)]
    for s in held:
        assert tcp_ask(s, "2.0.0.127.bl.test").answer
    extra = connect(cleanup, client)
    assert closed_by_peer(extra, scaled(3))  # over the cap: closed at once
    assert thread.server.stats.tcp_closed[TCP_CLOSE_REASONS.index("cap")] == 1
    assert client.a("2.0.0.127.bl.test") == ["127.0.0.2"]  # UDP unaffected
    held.pop().close()
    # Once the server has seen that close, its slot serves a new client.
    wait_for(lambda: served_on_a_new_connection(client), what="the freed slot")


def test_one_client_cannot_take_every_connection(start, cleanup):
    """Well-formed queries keep a connection open; one address still gets only
    tcp_max_per_client of the slots, and others are served."""
    thread, client = start(tcp_max_connections=10, tcp_max_per_client=2)
    held = [connect(cleanup, client, "127.0.0.1") for _ in range(2)]
    for s in held:
        assert tcp_ask(s, "2.0.0.127.bl.test").answer
    third = connect(cleanup, client, "127.0.0.1")
    assert closed_by_peer(third, scaled(3))  # this address is at its share
    other = connect(cleanup, client, "127.0.0.2")
    assert tcp_ask(other, "2.0.0.127.bl.test").answer
    assert thread.server.stats.tcp_closed[TCP_CLOSE_REASONS.index("cap")] == 1
    held.pop().close()
    # Its share freed once the server has seen the close.
    wait_for(lambda: served_on_a_new_connection(client, "127.0.0.1"), what="the freed share")


def stall(cleanup, host: str, port: int, count: int,
          budget: int = 3_000_000) -> list[socket.socket]:
    """``count`` connections that pipeline questions and never read an answer,
    all sending at once until every send stalls (the server stopped reading) or
    ``budget`` bytes went (the kernel's buffers can take many megabytes, and
    the answers to 3 MB of questions are more than it holds for the server).
    Each is closed after the test whatever happens."""
    wire = dns.message.make_query("2.0.0.127.bl.test", "TXT").to_wire()
    chunk = (struct.pack(">H", len(wire)) + wire) * 1000
    stalled = []
    for _ in range(count):
        s = cleanup.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        s.settimeout(scaled(3))
        s.connect((host, port))
        s.setblocking(False)
        stalled.append(s)
    sent = dict.fromkeys(stalled, 0)
    sending = list(stalled)
    for _ in range(100_000):  # bounded
        _, writable, _ = select.select([], sending, [], scaled(0.2))
        if not writable:
            break  # a while without room to send on any of them
        for s in writable:
            try:
                sent[s] += s.send(chunk)
            except BlockingIOError:
                pass
            except (ConnectionResetError, BrokenPipeError):
                sending.remove(s)  # stalled long enough already to be reset (a slow run)
                continue
            if sent[s] >= budget:
                sending.remove(s)
        if not sending:
            break
    for s in stalled:
        s.setblocking(True)
    return stalled


T = TypeVar("T")


def while_stalled(start, cleanup, count: int, look: Callable[[ServerThread, Client], T],
                  **settings) -> tuple[ServerThread, Client, list[socket.socket], T, float]:
    """A server with ``count`` clients that never read, and what ``look`` saw
    while they all held their connections: (server, client, the stalled
    sockets, what was seen, the server's idle timeout).

    The idle timeout is 2 s unless this host took longer than that to set up
    and look: then no connection was reset yet only if it ran within it, so
    the server is started again with room derived from the time it took."""
    idle = 2.0
    for _ in range(4):  # bounded: each try has twice the room the last one needed
        thread, client = start(tcp_idle_timeout=idle, **settings)
        began = time.monotonic()  # no idle timer of theirs started before this
        stalled = stall(cleanup, client.host, client.port, count)
        seen = look(thread, client)
        took = time.monotonic() - began
        if took < idle:
            return thread, client, stalled, seen, idle
        for s in stalled:
            s.close()
        thread.stop()
        idle = 2 * took
    raise AssertionError(f"setting up {count} stalled clients took {took:.1f} s every time")


def reset_by_peer(sock: socket.socket, within: float) -> bool:
    """True once the server reset (or closed) ``sock``; the answers that reached
    it are read and thrown away meanwhile (bounded: 100 MB)."""
    sock.settimeout(within)
    try:
        for _ in range(100_000):
            if not sock.recv(1024 * 1024):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


@pytest.mark.slow
def test_clients_that_never_read_are_reset_and_free_their_slots(start, cleanup):
    """Clients sending questions and never reading the answers cannot hold the
    connection slots: a graceful close would wait for them forever, so they are
    reset once nothing moved for the idle timeout, and a new client is served."""

    def extra_refused(thread: ServerThread, client: Client) -> bool:
        # Every slot is held: one more is refused at once.
        with socket.create_connection((client.host, client.port), timeout=scaled(3)) as extra:
            return closed_by_peer(extra, scaled(3))

    thread, client, stalled, refused, idle = while_stalled(
        start, cleanup, 5, extra_refused, tcp_max_connections=5)
    assert refused
    started = time.monotonic()
    waited = wait_for(lambda: served_on_a_new_connection(client), timeout=idle + 4,
                      what="a slot freed by the stalled clients")
    assert waited < idle + scaled(4), waited  # about the idle timeout, not forever
    for s in stalled:
        assert reset_by_peer(s, idle + scaled(3))
    closed = dict(zip(TCP_CLOSE_REASONS, thread.server.stats.tcp_closed, strict=True))
    # Reset with answers pending, or closed once the kernel took them all.
    assert closed["stalled"] >= 1 and closed["stalled"] + closed["idle"] == 5, closed
    assert closed["cap"] >= 1  # the extra one, and any fresh try while slots were held
    print(f"\nidle timeout {idle:.1f} s; served {time.monotonic() - started:.2f} s after "
          f"the stalled clients' last send; closed: {closed}")


@pytest.mark.slow
def test_what_a_stalled_connection_holds_is_bounded(start, cleanup, zone_file):
    """The server stops answering a client's questions once 64 KiB of answers
    wait for it (those already read wait unanswered), so each stalled connection
    holds a bounded amount, seen in dnsbl_tcp_buffered_bytes; then it is reset."""
    reason = "a long listing reason, " * 9  # ~200-byte TXT: answers outweigh questions
    data = zone_file([f":127.0.0.2:{reason}", "127.0.0.2"])

    def held(thread: ServerThread, client: Client) -> tuple[list[tuple[int, int]], dict]:
        async def buffered() -> list[tuple[int, int]]:
            return [(c.buffered(), c._transport.get_write_buffer_size())
                    for c in thread.server.tcp_limits.connections]

        return thread.call(buffered), samples(thread.server.metrics_port)

    thread, client, stalled, (per_connection, found), idle = while_stalled(
        start, cleanup, 4, held, zone=data, metrics=Listen("127.0.0.1", 0))
    print(f"\nheld per stalled connection (total, of which answers): {per_connection}")
    assert len(per_connection) == 4
    for total, answers in per_connection:
        assert answers <= MAX_BUFFERED + 2 + 65535  # the limit, and one answer past it
        assert total <= 1024 * 1024  # and one read of questions, unanswered
    assert value(found, "dnsbl_tcp_connections") == 4
    assert value(found, "dnsbl_tcp_buffered_bytes") == sum(t for t, _ in per_connection)
    # Other clients are served meanwhile; then the stalled ones are reset.
    assert client.query("2.0.0.127.bl.test", tcp=True).answer
    for s in stalled:
        assert reset_by_peer(s, idle + scaled(3))
    wait_for(lambda: value(samples(thread.server.metrics_port),
                           "dnsbl_tcp_connections") == 0)
    found = samples(thread.server.metrics_port)
    assert value(found, "dnsbl_tcp_buffered_bytes") == 0
    # Reset with answers pending, or closed once the kernel (or our reading
    # them just now) took them all. The served client closed its own.
    stalled_count = value(found, "dnsbl_tcp_closed_total", reason="stalled")
    assert stalled_count >= 1
    assert stalled_count + value(found, "dnsbl_tcp_closed_total", reason="idle") == 4


def test_stop_closes_open_connections(start, cleanup):
    """A stop closes TCP connections still open: an idle one sees the close,
    one that is not reading is reset, and the server's loop ends cleanly."""
    thread, client = start()
    [stalled] = stall(cleanup, client.host, client.port, 1)
    idle = connect(cleanup, client)
    assert tcp_ask(idle, "2.0.0.127.bl.test").answer
    started = time.monotonic()
    thread.stop()
    assert closed_by_peer(idle, scaled(3))
    assert reset_by_peer(stalled, scaled(3))
    assert time.monotonic() - started < scaled(3)
    assert thread.server is not None and thread.server.tcp_limits.open == 0


def flood(host: str, port: int, source: str, count: int) -> list[dns.message.Message]:
    """Send ``count`` queries from ``source`` as fast as possible; collect replies."""
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        queries = [dns.message.make_query("2.0.0.127.bl.test", "A") for _ in range(count)]
        for q in queries:
            s.sendto(q.to_wire(), (host, port))
        s.settimeout(scaled(0.5))  # until replies stop coming for a while
        try:
            while True:
                replies.append(dns.message.from_wire(s.recv(4096)))
        except TimeoutError:
            pass
    return replies


@pytest.mark.parametrize("udp_batch", [32, 0], ids=["recvmmsg", "one-at-a-time"])
def test_rrl_limits_a_flooding_prefix_and_serves_others(start, udp_batch):
    rrl = RRLConfig(rate=10, slip=2, exempt=("127.0.3.0/24",))
    thread, client = start(rrl=rrl, udp_batch=udp_batch)
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
    time.sleep(1.1)  # the limit's own window, not a guess at this host's speed
    assert client.query("2.0.0.127.bl.test", source="127.0.1.1").answer


def test_nsid_only_when_asked_and_payload_setting(start):
    import dns.edns

    thread, client = start(nsid="node-7", edns_payload=4096)
    asked = client.query("2.0.0.127.bl.test", use_edns=0,
                         options=[dns.edns.GenericOption(dns.edns.NSID, b"")])
    assert [(o.otype, o.to_wire()) for o in asked.options] == [(dns.edns.NSID, b"node-7")]
    assert asked.payload == 4096
    plain = client.query("2.0.0.127.bl.test", use_edns=0)
    assert plain.options == () or list(plain.options) == []
    assert plain.answer


def test_client_that_does_not_read_answers_is_not_read_from(start, cleanup):
    """A TCP client pipelining questions without reading the answers must stall
    on its own sends (the server stops reading it) rather than make the server
    buffer answers without bound; other clients are served meanwhile."""
    thread, client = start()
    wire = dns.message.make_query("2.0.0.127.bl.test", "TXT").to_wire()
    chunk = (struct.pack(">H", len(wire)) + wire) * 1000
    sent = 0
    greedy = connect(cleanup, client)
    greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    greedy.settimeout(scaled(2))
    try:
        while sent < 200_000_000:  # bounded: 200 MB of questions at most
            sent += greedy.send(chunk)
    except TimeoutError:
        pass
    except ConnectionResetError:
        pass  # stalled past the idle timeout (a slow host) and reset: not read either
    # Without backpressure the server would read (and answer into memory)
    # all 200 MB; with it, sends stall once the socket buffers are full.
    assert sent < 50_000_000, sent
    assert client.a("2.0.0.127.bl.test") == ["127.0.0.2"]
    assert client.query("2.0.0.127.bl.test", tcp=True).answer


def replies_by_id(sock: socket.socket, wanted: set[int]) -> dict[int, dns.message.Message]:
    """Replies on ``sock`` until one for each of ``wanted`` came, or none for a
    while (scaled to the host)."""
    got: dict[int, dns.message.Message] = {}
    sock.settimeout(scaled(2))
    try:
        while not wanted <= got.keys():
            r = dns.message.from_wire(sock.recv(4096))
            got[r.id] = r
    except TimeoutError:
        pass
    return got


@pytest.mark.parametrize("udp_batch", [32, 0], ids=["recvmmsg", "one-at-a-time"])
def test_burst_of_datagrams_all_answered(start, cleanup, udp_batch):
    # Several batches' worth sent before reading any reply: every query gets
    # its own answer (matching ID and name), however the datagrams are read.
    thread, client = start(udp_batch=udp_batch)
    s = cleanup.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sent, got, asked_again = {}, {}, 0
    # Waves of 100: three batches' worth each, and well inside the kernel's
    # receive buffers however small (a machine busy with other work may run
    # the server thread only after the whole wave is sent).
    for wave in range(0, 300, 100):
        for qid in range(wave, wave + 100):
            name = "2.0.0.127.bl.test" if qid % 2 else f"{qid % 250}.9.0.10.bl.test"
            sent[qid] = dns.message.make_query(name, "A", id=qid)
            s.sendto(sent[qid].to_wire(), (client.host, client.port))
        wanted = set(range(wave, wave + 100))
        got.update(replies_by_id(s, wanted))
        # What this test shows is each answer matching its question, not that
        # none is lost (test_burst_while_the_server_is_busy_is_not_dropped):
        # a datagram lost on a loaded host is asked again, a few times at most.
        for _ in range(3):
            missing = wanted - got.keys()
            if not missing:
                break
            asked_again += len(missing)
            for qid in sorted(missing):
                s.sendto(sent[qid].to_wire(), (client.host, client.port))
            got.update(replies_by_id(s, missing))
    assert sorted(got) == list(range(300)), f"{asked_again} asked again"
    for qid, r in got.items():
        assert r.question == sent[qid].question
        assert bool(r.answer) == bool(qid % 2)
        assert r.rcode() == (dns.rcode.NOERROR if qid % 2 else dns.rcode.NXDOMAIN)
    if asked_again:
        print(f"\n{asked_again} of 300 lost and asked again; server drops: "
              f"{thread.server.stats.dropped}")


def _rmem_max() -> int:
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return int(f.read())
    except OSError:
        return 0


@pytest.mark.skipif(_rmem_max() < UDP_RECEIVE_BUFFER,
                    reason="net.core.rmem_max caps UDP receive buffers below 1 MiB here")
def test_burst_while_the_server_is_busy_is_not_dropped(start, cleanup):
    """600 queries arrive while the server is busy elsewhere (here: its loop
    blocked for a moment); the kernel's default buffer (~200 datagrams) would
    drop most of them."""
    thread, client = start()
    s = cleanup.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    blocked = threading.Event()
    busy = asyncio.run_coroutine_threadsafe(_block(0.5, blocked), thread._loop)
    assert blocked.wait(scaled(5))
    for qid in range(600):
        q = dns.message.make_query("2.0.0.127.bl.test", "A", id=qid)
        s.sendto(q.to_wire(), (client.host, client.port))
    ids = set(replies_by_id(s, set(range(600))))
    busy.result(scaled(5))
    assert ids == set(range(600))  # none lost: nothing asked again here


async def _block(seconds: float, blocked: threading.Event) -> None:
    blocked.set()
    time.sleep(seconds)  # holds the event loop, as a long step of real work would


@needs_ipv6
def test_udp_and_tcp_on_ipv4_and_ipv6_listeners(start, cleanup):
    """Listening on 127.0.0.1 and [::1] at once: both answer, over UDP and TCP."""
    thread, _ = start(listen=(Listen("127.0.0.1", 0), Listen("::1", 0)))
    assert thread.server is not None
    hosts = [b.host for b in thread.server.bound]
    assert hosts == ["127.0.0.1", "::1"]
    for listen in thread.server.bound:
        client = Client(listen.host, listen.port)
        for tcp in (False, True):
            r = client.query("2.0.0.127.bl.test", tcp=tcp)
            assert [rd.address for rd in r.answer[0]] == ["127.0.0.2"], (listen, tcp)
        # Pipelined over one IPv6 (or IPv4) connection as well.
        s = connect(cleanup, client)
        assert tcp_ask(s, "2.0.0.127.bl.test").answer
        assert tcp_ask(s, "3.0.0.127.bl.test").rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize("udp_batch", [32, 0], ids=["recvmmsg", "one-at-a-time"])
def test_ipv6_listener_sees_client_addresses(zone_file, serve, udp_batch):
    # An ACL needs the client's address: over IPv6 it must come through intact.
    acl = zone_file(["::1 :127.0.0.9:every address listed for $"])
    client = serve(f"bl.test:ip4set:{zone_file(['127.0.0.2'])}", f"bl.test:acl:{acl}",
                   listen=(Listen("::1", 0),), udp_batch=udp_batch)
    assert client.a("3.3.3.3.bl.test") == ["127.0.0.9"]
    assert client.txt("3.3.3.3.bl.test") == ["every address listed for ::1"]
