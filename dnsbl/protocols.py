"""Transports: datagrams in, answer(), datagrams out. Nothing else happens here."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from dnsbl.answer import DEFAULT_EDNS, Edns, Stats, answer
from dnsbl.querylog import QueryLog
from dnsbl.registry import Registry
from dnsbl.rrl import DROP, RateLimiter, truncate


class TCPLimits:
    """Bounds shared by every TCP connection of a server (RFC 7766 section 6.2)."""

    __slots__ = ("idle_timeout", "max_connections", "open")

    def __init__(self, idle_timeout: float = 10.0, max_connections: int = 512) -> None:
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.open = 0


@dataclass
class Shared:
    """What every transport of one server shares."""

    registry: Registry
    stats: Stats
    edns: Edns = DEFAULT_EDNS
    query_log: QueryLog | None = None
    rrl: RateLimiter | None = None
    tcp: TCPLimits = field(default_factory=TCPLimits)


class _Answering:
    """What both transports read per query, hoisted once into plain attributes."""

    __slots__ = ("_registry", "_stats", "_edns", "_qlog", "_transport")

    def __init__(self, shared: Shared) -> None:
        self._registry = shared.registry
        self._stats = shared.stats
        self._edns = shared.edns
        self._qlog = shared.query_log
        self._transport: Any = None


def udp_reply(shared: Shared, zones: dict, data: bytes, addr: Any) -> bytes | None:
    """The reply to one datagram from ``addr``: answered, rate limited, logged;
    ``None``: send nothing."""
    reply = answer(data, zones, shared.stats, True, shared.edns, addr[0])
    if reply is None:
        return None
    if shared.rrl is not None:
        verdict = shared.rrl.check(addr)
        if verdict:
            if verdict == DROP:
                return None
            reply = truncate(reply)  # slip: a real resolver retries over TCP
    if shared.query_log is not None:
        shared.query_log.offer(data, reply, addr)
    return reply


class UDPProtocol(_Answering, asyncio.DatagramProtocol):
    """Answers each datagram from the registry's current snapshot."""

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
    """Two-byte length framing; several queries per connection, answered in order."""

    __slots__ = ("_limits", "_buffer", "_timer", "_counted", "_client")

    def __init__(self, shared: Shared) -> None:
        super().__init__(shared)
        self._limits = shared.tcp
        self._buffer = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._counted = False
        self._client: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._client = peer[0] if isinstance(peer, tuple) else None
        if self._limits.open >= self._limits.max_connections:
            transport.close()
            return
        self._limits.open += 1
        self._counted = True
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._limits.idle_timeout, self._transport.close)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        zones = self._registry.current.zones
        while len(buffer) >= 2:
            size = buffer[0] << 8 | buffer[1]
            if len(buffer) < 2 + size:
                break
            message = bytes(buffer[2:2 + size])
            del buffer[:2 + size]
            reply = answer(message, zones, self._stats, False, self._edns, self._client)
            if reply is not None:
                self._transport.write(len(reply).to_bytes(2, "big") + reply)
                if self._qlog is not None:
                    self._qlog.offer(message, reply, self._transport.get_extra_info("peername"))
        # What stays in the buffer is less than one message (2 + 65535 bytes): the
        # framing bounds it. Answers a client does not read are bounded by
        # pause_writing below.
        self._arm()

    def pause_writing(self) -> None:
        # The client is not reading its answers: stop reading its questions, so
        # a slow reader cannot make us buffer without bound.
        self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._counted:
            self._limits.open -= 1
            self._counted = False
