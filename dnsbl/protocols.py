"""Transports: UDP datagrams and TCP streams in, answer(), replies out.

Around answer() only what a transport owns: rate limiting and the query log
on the way out, and the bounds on TCP connections (RFC 7766 6.2).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from dnsbl.answer import DEFAULT_EDNS, Edns, Stats, answer
from dnsbl.querylog import QueryLog
from dnsbl.rrl import RateLimiter, limited
from dnsbl.stats import TCP_CAP, TCP_IDLE, TCP_STALLED
from dnsbl.zones import ServedZones, Zones

#: Bytes of answers that may wait to be sent on one TCP connection before
#: answering stops until the client reads (the transport's high-water mark).
MAX_BUFFERED = 64 * 1024


class TCPLimits:
    """Bounds shared by every TCP connection of a server (RFC 7766 section 6.2),
    and the connections open now."""

    __slots__ = ("idle_timeout", "max_connections", "max_per_client", "max_buffered",
                 "connections", "per_client")

    def __init__(self, idle_timeout: float = 10.0, max_connections: int = 512,
                 max_buffered: int = MAX_BUFFERED, max_per_client: int = 64) -> None:
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        #: One address may not take every slot, even with well-formed queries.
        self.max_per_client = max_per_client
        self.max_buffered = max_buffered
        self.connections: set[TCPProtocol] = set()
        self.per_client: dict[str | None, int] = {}

    @property
    def open(self) -> int:
        return len(self.connections)

    def buffered(self) -> int:
        """Bytes held for all connections: answers not yet sent, questions not yet answered."""
        return sum(c.buffered() for c in self.connections)

    async def close_all(self, grace: float) -> None:
        """Close every connection, sending the answers already made; those still
        open after ``grace`` seconds (clients not reading) are reset."""
        for connection in list(self.connections):
            connection.transport.close()
        for step in range(2 * round(grace / 0.01) + 10):  # bounded: about 2 * grace
            if not self.connections:
                return
            if step == round(grace / 0.01):
                for connection in list(self.connections):
                    connection.transport.abort()
            await asyncio.sleep(0.01)


@dataclass
class Shared:
    """What every transport of one server shares."""

    served: ServedZones
    stats: Stats
    edns: Edns = DEFAULT_EDNS
    query_log: QueryLog | None = None
    rrl: RateLimiter | None = None
    tcp: TCPLimits = field(default_factory=TCPLimits)
    #: Zone transfers (dnsbl.xfr.Transfers); None: every transfer is NOTIMP.
    xfr: Any = None


class _Answering:
    """What both transports read per query, hoisted once into plain attributes."""

    __slots__ = ("_registry", "_stats", "_edns", "_qlog", "_transport")

    def __init__(self, shared: Shared) -> None:
        self._registry = shared.served
        self._stats = shared.stats
        self._edns = shared.edns
        self._qlog = shared.query_log
        self._transport: Any = None


def udp_reply(shared: Shared, zones: Zones, data: bytes, addr: Any) -> bytes | None:
    """The reply to one datagram from ``addr``: answered, rate limited, logged;
    ``None``: send nothing."""
    xfr = shared.xfr
    if xfr is not None and xfr.special(data):  # signed, or an IXFR
        reply = xfr.answer(data, addr[0], True, lambda message: answer(
            message, zones, shared.stats, True, shared.edns, addr[0]))
    else:
        reply = answer(data, zones, shared.stats, True, shared.edns, addr[0])
    if reply is None:
        return None
    if shared.rrl is not None:
        reply = limited(shared.rrl.check(addr), reply)
        if reply is None:
            return None
    if shared.query_log is not None:
        shared.query_log.offer(data, reply, addr)
    return reply


class UDPProtocol(_Answering, asyncio.DatagramProtocol):
    """Answers each datagram from the current snapshot of the served zones."""

    __slots__ = ("_shared",)

    def __init__(self, shared: Shared) -> None:
        super().__init__(shared)
        self._shared = shared

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        reply = udp_reply(self._shared, self._registry.current.zones, data, addr)
        if reply is not None:
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier replies (client gone): nothing to do, keep serving.
        pass


class TCPProtocol(_Answering, asyncio.Protocol):
    """Two-byte length framing; several queries per connection, answered in order.

    A client that does not read its answers is not read from either: once the
    answers waiting to be sent pass ``max_buffered``, answering stops (the
    questions already read wait) until they drain. A connection on which
    nothing moves for ``idle_timeout`` is closed, or aborted when answers are
    still waiting, since a graceful close would wait for them forever. Only a
    whole question or answers drained count as something moving: bytes
    trickling in do not.
    """

    __slots__ = ("_limits", "_buffer", "_timer", "_counted", "_client", "_paused", "_xfr",
                 "_transfer", "_drained", "_loop")

    def __init__(self, shared: Shared, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(shared)
        # The loop the idle timer runs on: the running one, unless a test
        # hands in one whose clock it moves (as uvicorn's protocol tests do).
        self._loop = loop
        self._limits = shared.tcp
        self._buffer = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._counted = False
        self._client: str | None = None
        self._paused = False  # the answers waiting to be sent are past max_buffered
        self._xfr = shared.xfr
        self._transfer: asyncio.Task[None] | None = None  # a zone transfer being sent
        self._drained: asyncio.Event | None = None  # what a transfer waits on when paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._client = peer[0] if isinstance(peer, tuple) else None
        limits = self._limits
        client = self._client
        if (len(limits.connections) >= limits.max_connections
                or limits.per_client.get(client, 0) >= limits.max_per_client):
            self._stats.tcp_closed[TCP_CAP] += 1
            transport.close()
            return
        limits.connections.add(self)
        limits.per_client[client] = limits.per_client.get(client, 0) + 1
        self._counted = True
        # pause_writing() fires once this much waits to be sent.
        transport.set_write_buffer_limits(high=limits.max_buffered)  # type: ignore[attr-defined]
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None  # set by connection_made()
        self._timer = self._loop.call_later(self._limits.idle_timeout, self._expire)

    def _expire(self) -> None:
        """Nothing read and no answer drained for ``idle_timeout``."""
        self._timer = None
        transport = self._transport
        if self._transfer is not None and self._xfr.moving(transport):
            self._arm()  # a zone transfer the client reads, however slowly
            return
        if transport.get_write_buffer_size():
            # close() would wait for the client to read what is pending, which a
            # client that stopped reading never does: reset the connection.
            self._stats.tcp_closed[TCP_STALLED] += 1
            transport.abort()
        elif not transport.is_closing():
            self._stats.tcp_closed[TCP_IDLE] += 1
            transport.close()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        # Only a whole question restarts the clock: a client dribbling a byte
        # at a time (slowloris) must not hold a connection slot for ever.
        if self._answer_buffered():
            self._arm()

    def _answer_buffered(self) -> bool:
        """Answer the complete messages in the buffer, until the answers waiting
        to be sent pass the limit (write() then calls pause_writing()); True
        when there was at least one."""
        buffer = self._buffer
        zones = self._registry.current.zones
        answered = False
        while len(buffer) >= 2 and not self._paused and self._transfer is None:
            size = buffer[0] << 8 | buffer[1]
            if len(buffer) < 2 + size:
                break
            message = bytes(buffer[2:2 + size])
            del buffer[:2 + size]
            answered = True
            if self._xfr is not None and self._xfr.wants(message):
                reply = self._xfr.start(self, message, self._client)
                if reply is not None:
                    self._transport.write(len(reply).to_bytes(2, "big") + reply)
                continue
            if self._xfr is not None and self._xfr.special(message):  # signed
                reply = self._xfr.answer(message, self._client, False, lambda m: answer(
                    m, zones, self._stats, False, self._edns, self._client))
            else:
                reply = answer(message, zones, self._stats, False, self._edns, self._client)
            if reply is not None:
                self._transport.write(len(reply).to_bytes(2, "big") + reply)
                if self._qlog is not None:
                    self._qlog.offer(message, reply, self._transport.get_extra_info("peername"))
        return answered

    @property
    def transport(self) -> asyncio.Transport:
        return self._transport  # type: ignore[no-any-return]

    def buffered(self) -> int:
        """Bytes held for this connection: answers not yet sent, questions not yet answered."""
        return len(self._buffer) + self._transport.get_write_buffer_size()

    def pause_writing(self) -> None:
        # The client is not reading its answers: stop answering and stop reading,
        # so what one connection holds stays bounded (one read of questions, and
        # max_buffered plus one answer waiting to be sent).
        self._paused = True
        self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None:
            self._drained.set()
        if self._go_on():
            self._arm()  # the client read something: not stalled

    def _go_on(self) -> bool:
        """Answer the questions waiting and read again, unless paused or
        sending a zone; False when the connection is closing."""
        transport = self._transport
        if transport.is_closing():
            return False
        self._answer_buffered()
        if not self._paused and self._transfer is None:
            transport.resume_reading()
        return True

    def transfer_started(self, task: asyncio.Task[None]) -> None:
        """A zone transfer is being sent: no other answer, nor reading, until it ends."""
        self._transfer = task
        self._transport.pause_reading()

    async def send_transfer(self, message: bytes) -> bool:
        """Send one message of a transfer once the client has read the ones
        before it; False when the connection has gone."""
        transport = self._transport
        while self._paused and not transport.is_closing():
            self._drained = asyncio.Event()
            await self._drained.wait()
        if transport.is_closing():
            return False
        transport.write(len(message).to_bytes(2, "big") + message)
        if not self._paused:
            self._arm()  # the client reads: not stalled
        return True

    def transfer_done(self) -> None:
        self._transfer = None
        self._go_on()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._transfer is not None:
            self._transfer.cancel()  # the client went, or stopped reading
        if self._counted:
            limits = self._limits
            limits.connections.discard(self)
            left = limits.per_client[self._client] - 1
            if left:
                limits.per_client[self._client] = left
            else:
                del limits.per_client[self._client]
            self._counted = False
