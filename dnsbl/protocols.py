"""Transports: datagrams in, answer(), datagrams out. Nothing else happens here."""

from __future__ import annotations

import asyncio
from typing import Any

from dnsbl.answer import Stats, answer
from dnsbl.registry import Registry


class UDPProtocol(asyncio.DatagramProtocol):
    """Answers each datagram from the registry's current snapshot."""

    __slots__ = ("_registry", "_stats", "_transport")

    def __init__(self, registry: Registry, stats: Stats) -> None:
        self._registry = registry
        self._stats = stats
        self._transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        reply = answer(data, self._registry.current.zones, self._stats)
        if reply is not None:
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier replies (client gone): nothing to do, keep serving.
        pass
