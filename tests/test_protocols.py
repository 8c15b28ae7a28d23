"""TCPProtocol on its own: a fake transport and a clock the test moves.

The socket tests (test_transport.py) show the same behaviour end to end, but
they wait on real timeouts and kernel buffers; here each event (a question,
the client reading, the idle timeout) happens when the test says, as in
uvicorn's protocol tests (a mock transport and a mock loop).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import dns.message
import dns.rcode
import pytest

from dnsbl.config import ServerConfig, parse_zone_spec
from dnsbl.loader import load_snapshot
from dnsbl.protocols import Shared, TCPLimits, TCPProtocol
from dnsbl.stats import TCP_CAP, TCP_CLOSE_REASONS, TCP_IDLE, TCP_STALLED, Stats
from dnsbl.zones import ServedZones

IDLE = 10.0


class FakeTimer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """call_later() on a clock that moves only in advance()."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[FakeTimer] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for timer in sorted(self.timers, key=lambda t: t.when):
            if timer.when <= self.now and not timer.cancelled:
                self.timers.remove(timer)
                timer.callback()

    def pending(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled]


class FakeTransport:
    """What asyncio's TCP transport does that the protocol relies on: a write
    buffer with a high-water mark (pause_writing() past it, resume_writing()
    once the client has read it), reading paused and resumed, close and abort."""

    def __init__(self, peer: tuple[str, int] = ("192.0.2.1", 40000)) -> None:
        self.protocol: TCPProtocol | None = None
        self.peer = peer
        self.sent = bytearray()  # everything written, read by the client or not
        self.waiting = 0  # bytes written and not yet read by the client
        self.high: int | None = None
        self.writing_paused = False
        self.reading = True
        self.closing = False
        self.aborted = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.high = high

    def write(self, data: bytes) -> None:
        assert not self.closing
        self.sent += data
        self.waiting += len(data)
        if self.high is not None and self.waiting > self.high and not self.writing_paused:
            self.writing_paused = True
            assert self.protocol is not None
            self.protocol.pause_writing()

    def client_reads(self) -> None:
        self.waiting = 0
        if self.writing_paused:
            self.writing_paused = False
            assert self.protocol is not None
            self.protocol.resume_writing()

    def get_write_buffer_size(self) -> int:
        return self.waiting

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def replies(self) -> list[dns.message.Message]:
        out, data = [], bytes(self.sent)
        while data:
            size = struct.unpack(">H", data[:2])[0]
            out.append(dns.message.from_wire(data[2:2 + size]))
            data = data[2 + size:]
        return out


@pytest.fixture
def shared(zone_file) -> Shared:
    path = zone_file([":2:Listed $", "192.0.2.0/24"])
    config = ServerConfig(zones=(parse_zone_spec(f"bl.test:ip4set:{path}"),))
    return Shared(ServedZones(load_snapshot(config)), Stats(),
                  tcp=TCPLimits(idle_timeout=IDLE, max_buffered=1024, max_connections=2,
                                max_per_client=2))


@pytest.fixture
def connect(shared):
    """connect(peer=...) -> (protocol, transport, loop): a connection just made."""
    made: list[tuple[TCPProtocol, FakeTransport]] = []

    def _connect(peer: tuple[str, int] = ("192.0.2.1", 40000)
                 ) -> tuple[TCPProtocol, FakeTransport, FakeLoop]:
        loop = FakeLoop()
        protocol = TCPProtocol(shared, loop)  # type: ignore[arg-type]
        transport = FakeTransport(peer)
        transport.protocol = protocol
        protocol.connection_made(transport)  # type: ignore[arg-type]
        made.append((protocol, transport))
        return protocol, transport, loop

    yield _connect
    for protocol, _ in made:  # as asyncio does once the transport is gone
        protocol.connection_lost(None)
    assert not shared.tcp.connections and not shared.tcp.per_client


def framed(name: str, qid: int = 1) -> bytes:
    query = dns.message.make_query(name, "TXT")
    query.id = qid
    wire = query.to_wire()
    return struct.pack(">H", len(wire)) + wire


def closed(shared: Shared) -> dict[str, int]:
    return dict(zip(TCP_CLOSE_REASONS, shared.stats.tcp_closed, strict=True))


def test_a_connection_nothing_is_asked_on_is_closed_at_the_idle_timeout(shared, connect):
    _, transport, loop = connect()
    loop.advance(IDLE - 0.1)
    assert not transport.closing
    loop.advance(0.1)
    assert transport.closing and not transport.aborted
    assert closed(shared) == {"cap": 0, "idle": 1, "stalled": 0}
    assert shared.stats.tcp_closed[TCP_IDLE] == 1


def test_each_whole_question_restarts_the_idle_clock(shared, connect):
    protocol, transport, loop = connect()
    for qid in range(3):
        loop.advance(IDLE * 0.9)
        protocol.data_received(framed("1.2.0.192.bl.test", qid))
        transport.client_reads()
    assert [r.id for r in transport.replies()] == [0, 1, 2]
    assert transport.replies()[0].rcode() == dns.rcode.NOERROR
    assert len(loop.pending()) == 1  # the old timers were cancelled, not left to fire
    loop.advance(IDLE * 0.9)
    assert not transport.closing
    loop.advance(IDLE * 0.1)
    assert transport.closing and closed(shared)["idle"] == 1


def test_bytes_trickling_in_do_not_restart_the_idle_clock(shared, connect):
    protocol, transport, loop = connect()
    question = framed("1.2.0.192.bl.test")
    for i in range(len(question) - 1):  # all but the last byte, spread over the timeout
        loop.advance(IDLE / len(question))
        protocol.data_received(question[i:i + 1])
    assert not transport.closing
    loop.advance(IDLE - loop.now)
    assert transport.closing and not transport.sent
    assert closed(shared)["idle"] == 1


def test_a_client_not_reading_its_answers_is_not_answered_or_read_until_it_does(shared,
                                                                                 connect):
    protocol, transport, loop = connect()
    burst = b"".join(framed(f"{i}.2.0.192.bl.test", i) for i in range(40))
    protocol.data_received(burst)
    # Answering stopped just past max_buffered, and reading with it.
    assert transport.writing_paused and not transport.reading
    first = len(transport.replies())
    assert 0 < first < 40
    # What waits to be sent: max_buffered and one answer more, at most.
    largest = max(len(reply.to_wire()) + 2 for reply in transport.replies())
    assert transport.waiting <= shared.tcp.max_buffered + largest
    assert protocol.buffered() > transport.waiting  # the questions not answered wait
    protocol.data_received(framed("1.2.0.192.bl.test", 99))  # asyncio may deliver one more read
    assert len(transport.replies()) == first
    while transport.writing_paused:  # the client reads: the rest is answered, in order
        transport.client_reads()
    assert transport.reading
    assert [r.id for r in transport.replies()] == [*range(40), 99]
    assert protocol.buffered() == transport.waiting


def test_a_client_that_stops_reading_is_reset_at_the_idle_timeout(shared, connect):
    protocol, transport, loop = connect()
    protocol.data_received(b"".join(framed(f"{i}.2.0.192.bl.test", i) for i in range(40)))
    assert transport.writing_paused
    loop.advance(IDLE)
    # close() would wait for the client to read: the connection is reset.
    assert transport.aborted
    assert closed(shared) == {"cap": 0, "idle": 0, "stalled": 1}
    assert shared.stats.tcp_closed[TCP_STALLED] == 1


def test_answers_drained_restart_the_idle_clock(shared, connect):
    protocol, transport, loop = connect()
    protocol.data_received(b"".join(framed(f"{i}.2.0.192.bl.test", i) for i in range(40)))
    loop.advance(IDLE * 0.9)
    transport.client_reads()  # resume_writing(): something moved
    loop.advance(IDLE * 0.9)
    assert not transport.closing
    while transport.writing_paused:
        transport.client_reads()
    transport.client_reads()
    loop.advance(IDLE)
    assert transport.closing and not transport.aborted and closed(shared)["idle"] == 1


def test_resume_on_a_closing_connection_answers_nothing_more(shared, connect):
    protocol, transport, loop = connect()
    protocol.data_received(b"".join(framed(f"{i}.2.0.192.bl.test", i) for i in range(40)))
    answered = len(transport.replies())
    transport.close()
    transport.writing_paused = False
    protocol.resume_writing()
    assert len(transport.replies()) == answered and not transport.reading
    assert loop.pending()  # no new timer armed either: the old one still stands
    assert len(loop.pending()) == 1


def test_connections_past_the_caps_are_closed_at_once(shared, connect):
    connect(("192.0.2.1", 1))
    connect(("192.0.2.1", 2))
    _, third, loop = connect(("192.0.2.1", 3))  # max_per_client
    assert third.closing and not loop.pending()
    assert shared.stats.tcp_closed[TCP_CAP] == 1
    _, other, _ = connect(("192.0.2.2", 1))  # max_connections
    assert other.closing and shared.stats.tcp_closed[TCP_CAP] == 2
    assert shared.tcp.open == 2 and shared.tcp.per_client == {"192.0.2.1": 2}


def test_a_connection_lost_stops_its_timer_and_frees_its_slot(shared, connect):
    protocol, _, loop = connect()
    assert shared.tcp.open == 1
    protocol.connection_lost(None)
    assert shared.tcp.open == 0 and shared.tcp.per_client == {}
    assert not loop.pending()
    loop.advance(IDLE)
    assert closed(shared)["idle"] == 0
